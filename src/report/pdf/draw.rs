//! Second pass of the PDF report: draws the placed blocks of one page, then
//! its footer ("page X / Y"). Coordinates are krilla's: origin at the top
//! left, y downwards, in points; text is placed by its baseline.

use chrono::{Datelike, Timelike};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::Document;

use super::text::Face;
use super::*;
use crate::billing::Verdict;

pub(super) const BLACK: (u8, u8, u8) = (0, 0, 0);
pub(super) const GREY_TEXT: (u8, u8, u8) = (90, 90, 90);
pub(super) const HEADER_BG: (u8, u8, u8) = (225, 229, 235);
pub(super) const RULE: (u8, u8, u8) = (190, 190, 190);

/// Document information: title, language, and the processing time as the
/// creation date (never the wall clock: the same report gives the same bytes).
pub(crate) fn metadata(cx: &Ctx<'_>) -> Metadata {
    let t = cx.m.processed_at;
    let date = DateTime::new(t.year().clamp(0, 9999) as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    Metadata::new()
        .title(format!("Compte rendu de traitement — {}", one_line(&cx.v.file)))
        .language("fr-FR".into())
        .creator("ppas-gateway".into())
        .creation_date(date)
}

pub(crate) fn draw_page(doc: &mut Document, cx: &Ctx<'_>, blocks: &[(Block, f32)], n: usize, total: usize) {
    let Some(settings) = PageSettings::from_wh(PAGE_W, PAGE_H) else {
        return;
    };
    let mut page = doc.start_page_with(settings);
    let mut sf = page.surface();
    for (b, y) in blocks {
        draw_block(&mut sf, cx, b, *y);
    }
    footer(&mut sf, cx, n, total);
    sf.finish();
    page.finish();
}

fn draw_block(sf: &mut Surface<'_>, cx: &Ctx<'_>, b: &Block, y: f32) {
    let f = cx.fonts;
    match b {
        Block::Title(t) => text(sf, &f.bold, 16.0, MARGIN_X, y + 16.0, t, BLACK),
        Block::Subtitle(t) => {
            let lines = f.regular.wrap(&f.regular.clean(t), 10.0, CONTENT_W, 3);
            for (i, l) in lines.iter().enumerate() {
                text(sf, &f.regular, 10.0, MARGIN_X, y + 10.0 + i as f32 * 13.0, l, GREY_TEXT);
            }
        }
        Block::Kv(label, value) => {
            text(sf, &f.bold, KV_SIZE, MARGIN_X, y + KV_SIZE, label, BLACK);
            for (i, l) in kv_lines(cx, value).iter().enumerate() {
                let by = y + KV_SIZE + i as f32 * KV_LEADING;
                text(sf, &f.regular, KV_SIZE, MARGIN_X + KV_LABEL_W, by, l, BLACK);
            }
        }
        Block::Verdict => {
            let color = match cx.v.verdict {
                Verdict::Accepted => (0, 110, 40),
                Verdict::Partial => (170, 90, 0),
                Verdict::Rejected => (180, 20, 20),
            };
            text(sf, &f.bold, 12.0, MARGIN_X, y + 13.0, "Verdict :", BLACK);
            text(
                sf,
                &f.bold,
                12.0,
                MARGIN_X + KV_LABEL_W,
                y + 13.0,
                cx.s.verdict_fr,
                color,
            );
        }
        Block::Heading(t) => {
            text(sf, &f.bold, 11.0, MARGIN_X, y + 13.0, t, BLACK);
        }
        Block::Paragraph(t) => {
            let lines = f.regular.wrap(&f.regular.clean(t), KV_SIZE, CONTENT_W, 10);
            for (i, l) in lines.iter().enumerate() {
                text(
                    sf,
                    &f.regular,
                    KV_SIZE,
                    MARGIN_X,
                    y + KV_SIZE + i as f32 * KV_LEADING,
                    l,
                    BLACK,
                );
            }
        }
        Block::LegendHeader => {
            let h = height(cx, b);
            rect(sf, MARGIN_X, y, CONTENT_W, h, HEADER_BG);
            let by = y + CELL_PAD_Y + TABLE_SIZE;
            text(sf, &f.bold, TABLE_SIZE, MARGIN_X + CELL_PAD_X, by, "Code", BLACK);
            text(
                sf,
                &f.bold,
                TABLE_SIZE,
                MARGIN_X + COLS[0] + CELL_PAD_X,
                by,
                "Libellé",
                BLACK,
            );
            right(sf, &f.bold, TABLE_SIZE, MARGIN_X + CONTENT_W - CELL_PAD_X, by, "Nombre");
        }
        Block::LegendRow(i) => {
            let (code, count) = cx.s.codes[*i];
            let by = y + CELL_PAD_Y + TABLE_SIZE;
            text(
                sf,
                &f.regular,
                TABLE_SIZE,
                MARGIN_X + CELL_PAD_X,
                by,
                code.as_str(),
                BLACK,
            );
            let title = f.regular.fit(code.title_fr(), TABLE_SIZE, CONTENT_W - COLS[0] - 60.0);
            text(
                sf,
                &f.regular,
                TABLE_SIZE,
                MARGIN_X + COLS[0] + CELL_PAD_X,
                by,
                &title,
                BLACK,
            );
            right(
                sf,
                &f.regular,
                TABLE_SIZE,
                MARGIN_X + CONTENT_W - CELL_PAD_X,
                by,
                &count.to_string(),
            );
            rule(sf, y + height(cx, b));
        }
        Block::TableHeader => {
            let h = height(cx, b);
            rect(sf, MARGIN_X, y, CONTENT_W, h, HEADER_BG);
            let by = y + CELL_PAD_Y + TABLE_SIZE;
            let mut x = MARGIN_X;
            let mut titles = COL_TITLES;
            if cx.m.kind == crate::anomaly::FileKind::Attestations {
                titles[1] = "Attest.";
            }
            for (i, (w, title)) in COLS.iter().zip(titles).enumerate() {
                if i == 1 || i == 2 {
                    right(sf, &f.bold, TABLE_SIZE, x + w - CELL_PAD_X, by, title);
                } else {
                    text(sf, &f.bold, TABLE_SIZE, x + CELL_PAD_X, by, title, BLACK);
                }
                x += w;
            }
        }
        Block::Row(i) => {
            let a = &cx.v.anomalies[*i];
            let (field, message) = row_lines(cx, *i);
            let by = y + CELL_PAD_Y + TABLE_SIZE;
            let mut x = MARGIN_X;
            text(sf, &f.bold, TABLE_SIZE, x + CELL_PAD_X, by, a.code.as_str(), BLACK);
            x += COLS[0];
            let num = |n: Option<String>| n.unwrap_or_else(|| "—".into());
            right(
                sf,
                &f.regular,
                TABLE_SIZE,
                x + COLS[1] - CELL_PAD_X,
                by,
                &num(a.line.map(|n| n.to_string())),
            );
            x += COLS[1];
            right(
                sf,
                &f.regular,
                TABLE_SIZE,
                x + COLS[2] - CELL_PAD_X,
                by,
                &num(a.xml_line.map(|n| n.to_string())),
            );
            x += COLS[2];
            for (k, l) in field.iter().enumerate() {
                text(
                    sf,
                    &f.regular,
                    TABLE_SIZE,
                    x + CELL_PAD_X,
                    by + k as f32 * TABLE_LEADING,
                    l,
                    BLACK,
                );
            }
            x += COLS[3];
            for (k, l) in message.iter().enumerate() {
                text(
                    sf,
                    &f.regular,
                    TABLE_SIZE,
                    x + CELL_PAD_X,
                    by + k as f32 * TABLE_LEADING,
                    l,
                    BLACK,
                );
            }
            rule(sf, y + row_height(&field, &message));
        }
        Block::Totals(t) => {
            let lines = f.bold.wrap(&f.bold.clean(t), KV_SIZE, CONTENT_W, 10);
            for (i, l) in lines.iter().enumerate() {
                text(
                    sf,
                    &f.bold,
                    KV_SIZE,
                    MARGIN_X,
                    y + KV_SIZE + i as f32 * KV_LEADING,
                    l,
                    BLACK,
                );
            }
        }
        Block::Gap(_) => {}
    }
}

fn footer(sf: &mut Surface<'_>, cx: &Ctx<'_>, n: usize, total: usize) {
    let f = &cx.fonts.regular;
    let y = PAGE_H - 30.0;
    let mut pb = PathBuilder::new();
    pb.move_to(MARGIN_X, y - 12.0);
    pb.line_to(PAGE_W - MARGIN_X, y - 12.0);
    stroke(sf, pb, RULE, 0.5);
    let pages = format!("page {n} / {total}");
    let left = format!("Compte rendu de traitement — {}", f.clean(&cx.v.file));
    let left = f.fit(&left, 8.0, CONTENT_W - f.width(&pages, 8.0) - 20.0);
    text(sf, f, 8.0, MARGIN_X, y, &left, GREY_TEXT);
    right(sf, f, 8.0, PAGE_W - MARGIN_X, y, &pages);
}

/// Draws `s` (cleaned here) with its baseline at `y`. A no-break space
/// (which keeps `1 234,50 €` on one line when text wraps) is drawn as the
/// space it looks like, so that the text copied or extracted from the PDF
/// reads `1 234,50 €` with plain spaces.
pub(super) fn text(sf: &mut Surface<'_>, face: &Face, size: f32, x: f32, y: f32, s: &str, color: (u8, u8, u8)) {
    let s = face.clean(s).replace('\u{a0}', " ");
    if s.trim().is_empty() {
        return;
    }
    sf.set_stroke(None);
    sf.set_fill(Some(Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        ..Default::default()
    }));
    let glyphs = face.run(&s);
    sf.draw_glyphs(Point::from_xy(x, y), &glyphs, face.font.clone(), &s, size, false);
}

/// Draws `s` right-aligned on `x_right`.
pub(super) fn right(sf: &mut Surface<'_>, face: &Face, size: f32, x_right: f32, y: f32, s: &str) {
    let s = face.clean(s);
    let x = x_right - face.width(&s, size);
    text(sf, face, size, x, y, &s, BLACK);
}

pub(super) fn rect(sf: &mut Surface<'_>, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
    let Some(r) = Rect::from_xywh(x, y, w, h) else {
        return;
    };
    let mut pb = PathBuilder::new();
    pb.push_rect(r);
    let Some(path) = pb.finish() else {
        return;
    };
    sf.set_stroke(None);
    sf.set_fill(Some(Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        ..Default::default()
    }));
    sf.draw_path(&path);
}

/// A thin horizontal rule across the table at `y`.
pub(super) fn rule(sf: &mut Surface<'_>, y: f32) {
    let mut pb = PathBuilder::new();
    pb.move_to(MARGIN_X, y);
    pb.line_to(MARGIN_X + CONTENT_W, y);
    stroke(sf, pb, RULE, 0.4);
}

pub(super) fn stroke(sf: &mut Surface<'_>, pb: PathBuilder, color: (u8, u8, u8), width: f32) {
    let Some(path) = pb.finish() else {
        return;
    };
    sf.set_fill(None);
    sf.set_stroke(Some(Stroke {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        width,
        ..Default::default()
    }));
    sf.draw_path(&path);
    sf.set_stroke(None);
}
