//! The simple-typed fields of a billing file: a field's text goes in as
//! it is read; out come the typed value on the [`Line`](super::Line), the
//! header or the footer, the facts the controls need ([`LineFacts`](super::LineFacts)) and
//! an F02 for a value its XSD type refuses.

use super::super::facets;
use super::{LineSink, State, Where, LINE_MAXLEN, LINE_SEQ, ROOT_MAXLEN, ROOT_SEQ};
use crate::xml;

impl<S: LineSink> State<'_, S> {
    pub(super) fn enter_leaf(&mut self, in_line: bool, idx: usize, line: u64) {
        self.value.clear();
        self.value_too_long = false;
        self.leaf_had_child = false;
        if in_line {
            self.facts.present |= 1 << idx;
            self.facts.field_lines[idx] = line;
        } else {
            self.out.root_present |= 1 << idx;
            self.out.root_lines[idx] = line;
        }
        self.parent = self.at;
        self.at = Where::Leaf { line: in_line, idx };
    }

    /// Starts a new line, reusing the previous one's buffers.
    pub(super) fn reset_line(&mut self, xml_line: u64) {
        let l = &mut self.line;
        l.index = self.out.lines;
        l.xml_line = xml_line;
        for s in [
            &mut l.nir_per,
            &mut l.nom_per,
            &mut l.pn_per,
            &mut l.rf_prstpap,
            &mut l.id_prest,
            &mut l.bo_regul,
        ] {
            s.clear();
        }
        l.dtd_interv = None;
        l.dtf_interv = None;
        l.nb_quant = None;
        l.mt_tu = None;
        l.mt_total = None;
    }

    pub(super) fn finish_leaf(&mut self, in_line: bool, idx: usize) {
        let name = if in_line { LINE_SEQ[idx] } else { ROOT_SEQ[idx] };
        let xml_line = if in_line {
            self.facts.field_lines[idx]
        } else {
            self.out.root_lines[idx]
        };
        if self.leaf_had_child {
            return;
        }
        if self.value_too_long {
            self.schema(xml_line, Some(name), format!("valeur de <{name}> trop longue"));
            return;
        }
        let owned = std::mem::take(&mut self.value);
        let value = owned.as_slice();
        // Only string fields and messages need the text as `str`: the
        // numbers and dates are read from the bytes. The lexer hands out
        // whole UTF-8 characters only, so this never fails.
        let text = || std::str::from_utf8(value).unwrap_or_default();
        let blank = xml::all_ws(value);
        if blank {
            if in_line {
                self.facts.blank |= 1 << idx;
            } else {
                self.out.root_blank |= 1 << idx;
            }
        }
        let set = |s: &mut String| {
            s.clear();
            s.push_str(text());
        };
        let err = if in_line {
            match idx {
                0..=4 => {
                    let n = facets::char_len(value);
                    let max = LINE_MAXLEN[idx];
                    match idx {
                        0 => set(&mut self.line.nir_per),
                        1 => set(&mut self.line.nom_per),
                        2 => set(&mut self.line.pn_per),
                        3 => set(&mut self.line.rf_prstpap),
                        _ => set(&mut self.line.id_prest),
                    }
                    (n > max).then(|| format!("{n} caractères pour {max} au plus"))
                }
                5 | 6 => match facets::date(value) {
                    Ok(d) => {
                        if idx == 5 {
                            self.line.dtd_interv = d.date;
                            self.facts.dtd = Some(d);
                        } else {
                            self.line.dtf_interv = d.date;
                            self.facts.dtf = Some(d);
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                7..=9 => match facets::decimal(value, 11, 2) {
                    Ok(v) => {
                        match idx {
                            7 => self.line.nb_quant = Some(v),
                            8 => self.line.mt_tu = Some(v),
                            _ => self.line.mt_total = Some(v),
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                _ => {
                    set(&mut self.line.bo_regul);
                    (!matches!(value, b"V" | b"F" | b"v" | b"f")).then(|| "valeur attendue : F (ou V)".to_string())
                }
            }
        } else {
            match idx {
                0..=4 => {
                    let n = facets::char_len(value);
                    let max = ROOT_MAXLEN[idx];
                    match idx {
                        0 => set(&mut self.out.header.rf_borfact),
                        1 => set(&mut self.out.header.log_fact),
                        2 => set(&mut self.out.header.id_cram),
                        3 => set(&mut self.out.header.id_site),
                        _ => set(&mut self.out.header.rf_prstpap),
                    }
                    (n > max).then(|| format!("{n} caractères pour {max} au plus"))
                }
                // nb-ligbor: totalDigits 15 and no fractionDigits facet.
                6 => match facets::decimal(value, 15, 15) {
                    Ok(v) => {
                        self.out.footer.nb_ligbor = Some(v);
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
                _ => match facets::decimal(value, 11, 2) {
                    Ok(v) => {
                        if idx == 7 {
                            self.out.footer.mt_totamd = Some(v);
                        } else {
                            self.out.footer.mt_totprest = Some(v);
                        }
                        None
                    }
                    Err(m) => Some(m.to_string()),
                },
            }
        };
        if let Some(reason) = err {
            let at = if in_line {
                format!(" (ligne {})", self.line.index)
            } else {
                String::new()
            };
            // A NIR is personal data: never repeated in messages, which end
            // up in e-mails and reports.
            let msg = if name == "nir-per" {
                format!("<{name}>{at} : {reason}")
            } else {
                let text = text();
                let cut = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
                format!("<{name}>{at} : « {} » : {reason}", &text[..cut])
            };
            self.schema(xml_line, Some(name), msg);
        }
        self.value = owned;
        self.value.clear();
    }
}
