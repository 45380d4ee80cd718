//! Text for the PDF report: the embedded DejaVu Sans faces, their metrics,
//! line wrapping, and glyph runs ready to draw.
//!
//! The layout needs to know how wide a text is before drawing it (to wrap
//! messages in table cells), so glyphs are placed here from the font's own
//! tables (character map and horizontal advances, read with `skrifa`) and
//! drawn as positioned glyphs: what is measured is exactly what is drawn.
//! No kerning or ligatures: plain advances keep measurement and drawing
//! identical and make `pdftotext` give back the exact characters. Each glyph
//! keeps the range of the text it stands for, so krilla writes the
//! character mapping that copy-paste and text extraction use.
//!
//! A character the font lacks is drawn (and extracted) as `?`; control
//! characters become spaces. The XML and CSV forms keep the exact text.

use std::collections::HashMap;
use std::sync::OnceLock;

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::instance::{LocationRef, Size};
use skrifa::MetadataProvider;

static REGULAR_TTF: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");

/// Marks a code point the font has no glyph for.
const MISSING: u32 = u32::MAX;

/// One face: the krilla font to draw with and its metrics.
pub(crate) struct Face {
    pub font: Font,
    /// Basic Multilingual Plane: code point → (glyph id, advance in em),
    /// glyph id [`MISSING`] where the font has none. A flat table: the
    /// layout looks up every character of every cell, twice.
    bmp: Vec<(u32, f32)>,
    /// The few characters beyond the BMP the font has.
    astral: HashMap<char, (u32, f32)>,
    /// What an unknown character is drawn as: `?`.
    fallback: (u32, f32),
}

/// The two faces of the report.
pub(crate) struct Fonts {
    pub regular: Face,
    pub bold: Face,
}

/// The faces, read once per process (the character maps are a few thousand
/// entries; building them per report would dominate small reports).
pub(crate) fn fonts() -> anyhow::Result<&'static Fonts> {
    static FONTS: OnceLock<Result<Fonts, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Ok(Fonts {
                regular: Face::load(REGULAR_TTF, "DejaVuSans.ttf")?,
                bold: Face::load(BOLD_TTF, "DejaVuSans-Bold.ttf")?,
            })
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

impl Face {
    fn load(bytes: &'static [u8], name: &str) -> Result<Face, String> {
        let font = Font::new(bytes.into(), 0).ok_or_else(|| format!("embedded font {name} is unreadable"))?;
        let fref = skrifa::FontRef::new(bytes).map_err(|e| format!("embedded font {name}: {e}"))?;
        let upem = f32::from(fref.metrics(Size::unscaled(), LocationRef::default()).units_per_em);
        let metrics = fref.glyph_metrics(Size::unscaled(), LocationRef::default());
        let mut bmp = vec![(MISSING, 0.0f32); 0x1_0000];
        let mut astral = HashMap::new();
        for (cp, gid) in fref.charmap().mappings() {
            if let (Some(c), Some(adv)) = (char::from_u32(cp), metrics.advance_width(gid)) {
                let g = (gid.to_u32(), adv / upem);
                match bmp.get_mut(cp as usize) {
                    Some(slot) => *slot = g,
                    None => {
                        astral.insert(c, g);
                    }
                }
            }
        }
        let fallback = bmp[usize::from(b'?')];
        if fallback.0 == MISSING {
            return Err(format!("embedded font {name} has no '?' glyph"));
        }
        Ok(Face {
            font,
            bmp,
            astral,
            fallback,
        })
    }

    fn lookup(&self, c: char) -> Option<(u32, f32)> {
        match self.bmp.get(c as usize) {
            Some(&(gid, _)) if gid == MISSING => None,
            Some(&g) => Some(g),
            None => self.astral.get(&c).copied(),
        }
    }

    fn glyph(&self, c: char) -> (u32, f32) {
        self.lookup(c).unwrap_or(self.fallback)
    }

    /// The text as it will be drawn: controls as spaces, characters the
    /// font lacks as `?` (so the extracted text matches what is seen).
    pub fn clean(&self, s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    ' '
                } else if self.lookup(c).is_some() {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// Width of `s` (already cleaned) at `size` points.
    pub fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.glyph(c).1).sum::<f32>() * size
    }

    /// Positioned glyphs for `s` (already cleaned), one per character.
    pub fn run(&self, s: &str) -> Vec<KrillaGlyph> {
        s.char_indices()
            .map(|(i, c)| {
                let (gid, adv) = self.glyph(c);
                KrillaGlyph::new(GlyphId::new(gid), adv, 0.0, 0.0, 0.0, i..i + c.len_utf8(), None)
            })
            .collect()
    }

    /// Wraps `s` (already cleaned) into lines no wider than `width` at
    /// `size`: greedy on spaces, a word longer than a line is cut between
    /// characters. At most `max_lines` lines; when cut short the last line
    /// ends with `…`. An empty text gives one empty line.
    pub fn wrap(&self, s: &str, size: f32, width: f32, max_lines: usize) -> Vec<String> {
        let max_lines = max_lines.max(1);
        let space = self.glyph(' ').1 * size;
        let mut lines: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut cur_w = 0.0f32;
        let mut truncated = false;
        'words: for word in s.split(' ').filter(|w| !w.is_empty()) {
            let w = self.width(word, size);
            let need = if cur.is_empty() { w } else { cur_w + space + w };
            if need <= width {
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(word);
                cur_w = need;
                continue;
            }
            if w <= width {
                // Starts a new line.
                lines.push(std::mem::take(&mut cur));
                if lines.len() >= max_lines {
                    truncated = true;
                    break 'words;
                }
                cur.push_str(word);
                cur_w = w;
                continue;
            }
            // A word wider than a line: fill the current line, then cut.
            if !cur.is_empty() {
                cur.push(' ');
                cur_w += space;
            }
            for c in word.chars() {
                let cw = self.glyph(c).1 * size;
                if cur_w + cw > width && !cur.is_empty() {
                    lines.push(std::mem::take(&mut cur));
                    cur_w = 0.0;
                    if lines.len() >= max_lines {
                        truncated = true;
                        break 'words;
                    }
                }
                cur.push(c);
                cur_w += cw;
            }
        }
        if !truncated {
            lines.push(cur);
            if lines.len() > max_lines {
                lines.truncate(max_lines);
                truncated = true;
            }
        }
        if truncated {
            if let Some(last) = lines.last_mut() {
                let ell = self.glyph('…').1 * size;
                while !last.is_empty() && self.width(last, size) + ell > width {
                    last.pop();
                }
                last.push('…');
            }
        }
        lines
    }

    /// `s` (already cleaned) cut with `…` so that it fits `width` on one line.
    pub fn fit(&self, s: &str, size: f32, width: f32) -> String {
        if self.width(s, size) <= width {
            return s.to_string();
        }
        let ell = self.glyph('…').1 * size;
        let mut out = String::new();
        let mut w = 0.0;
        for c in s.chars() {
            let cw = self.glyph(c).1 * size;
            if w + cw + ell > width {
                break;
            }
            out.push(c);
            w += cw;
        }
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_load_and_measure_accents() {
        let f = fonts().unwrap();
        let a = f.regular.width("e", 10.0);
        assert!(a > 4.0 && a < 8.0, "{a}");
        assert!(f.bold.width("é", 10.0) > 0.0);
        assert_eq!(f.regular.clean("a\u{7}b\u{E000}"), "a b?");
        assert_eq!(f.regular.run("é a").len(), 3);
        assert_eq!(f.regular.run("é a")[1].text_range, 2..3);
    }

    #[test]
    fn wrap_respects_the_width_and_keeps_every_word() {
        let f = &fonts().unwrap().regular;
        let text = "La date de fin « 2027-01-31 » est postérieure au jour de réception du fichier.";
        let lines = f.wrap(text, 8.0, 100.0, 50);
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(f.width(l, 8.0) <= 100.0, "{l}");
        }
        assert_eq!(lines.join(" "), text);
        // A long word is cut, nothing is lost.
        let word = "x".repeat(200);
        let lines = f.wrap(&word, 8.0, 100.0, 50);
        assert_eq!(lines.concat(), word);
        // Capped, with an ellipsis.
        let lines = f.wrap(&word, 8.0, 100.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'));
        assert!(f.width(&lines[1], 8.0) <= 100.0);
        assert_eq!(f.wrap("", 8.0, 100.0, 3), vec![String::new()]);
        assert!(f.fit(&word, 8.0, 50.0).ends_with('…'));
    }
}
