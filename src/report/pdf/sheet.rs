//! A PDF of one table with a summary above it: the layout the documents
//! other than the processing report share (payment statements, reports of
//! anomalies returned by the payment chain). Same page, fonts, sizes and
//! archival profile as the processing report (A4 portrait, DejaVu Sans
//! embedded, PDF/A-2u, "page X / Y" at the foot of every page), drawn with
//! the same primitives; only the blocks differ.
//!
//! In: a [`Sheet`] — title, summary rows, the table's columns and rows, an
//! optional totals row, closing paragraphs. Out: the PDF bytes. Pure: the
//! same sheet always gives the same bytes (the creation date is the
//! sheet's, never the clock).
//!
//! Cells wrap inside their column (at most the column's `max_lines` lines,
//! then `…`; a `\n` in a cell starts a new line); numbers and amounts
//! (right-aligned) are never cut. The table's header row is repeated at the
//! top of every page.

use anyhow::Context;
use chrono::{DateTime, Datelike, Timelike, Utc};
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::surface::Surface;

use super::draw::{rect, right, rule, stroke, text, BLACK, GREY_TEXT, HEADER_BG, RULE};
use super::text::{fonts, Face, Fonts};
use super::{
    CELL_PAD_X, CELL_PAD_Y, CONTENT_BOTTOM, CONTENT_W, KV_LABEL_W, KV_LEADING, KV_MAX_LINES, KV_SIZE, MARGIN_TOP,
    MARGIN_X, PAGE_H, PAGE_W, TABLE_LEADING, TABLE_SIZE,
};

/// How a column's cells sit in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers and amounts.
    Right,
}

/// One column of the table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    /// Share of the table's width (the weights of all columns are scaled
    /// to the page's content width).
    pub weight: f32,
    pub align: Align,
    /// Lines a cell may take before it is cut with `…` (right-aligned
    /// cells always take one).
    pub max_lines: usize,
}

/// What the PDF shows, top to bottom.
#[derive(Debug, Clone)]
pub struct Sheet {
    /// Big title (`Bordereau de paiement`).
    pub title: String,
    /// One line under the title.
    pub subtitle: String,
    /// Label and value rows of the summary block.
    pub summary: Vec<(String, String)>,
    /// Above the table.
    pub heading: String,
    pub columns: Vec<Column>,
    /// One entry per row, one cell per column.
    pub rows: Vec<Vec<String>>,
    /// A bold last row (totals), one cell per column.
    pub totals: Option<Vec<String>>,
    /// Said instead of the table when there is no row.
    pub empty: String,
    /// Paragraphs after the table.
    pub notes: Vec<String>,
    /// Left part of every page's foot (the right part is `page X / Y`).
    pub footer: String,
    /// Document title in the PDF's metadata.
    pub doc_title: String,
    /// Creation date in the PDF's metadata.
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
enum Block {
    Title,
    Subtitle,
    Kv(usize),
    Heading,
    Empty,
    Header,
    Row(usize),
    Totals,
    Note(usize),
    Gap(f32),
}

struct Cx<'a> {
    s: &'a Sheet,
    f: &'static Fonts,
    /// Column widths in points.
    widths: Vec<f32>,
}

/// Renders the sheet as an A4 PDF/A-2u document.
pub fn render_sheet(s: &Sheet) -> anyhow::Result<Vec<u8>> {
    let total: f32 = s.columns.iter().map(|c| c.weight.max(0.0)).sum();
    let widths = s
        .columns
        .iter()
        .map(|c| {
            if total > 0.0 {
                c.weight.max(0.0) / total * CONTENT_W
            } else {
                CONTENT_W / s.columns.len().max(1) as f32
            }
        })
        .collect();
    let cx = Cx { s, f: fonts()?, widths };
    let pages = layout(&cx, blocks(s));

    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_U)
        .finish()
        .map_err(|e| anyhow::anyhow!("PDF configuration: {e:?}"))?;
    let settings = krilla::SerializeSettings {
        configuration,
        ..Default::default()
    };
    let mut doc = krilla::Document::new_with(settings);
    doc.set_metadata(metadata(s));
    let n = pages.len();
    for (i, page) in pages.iter().enumerate() {
        let Some(settings) = PageSettings::from_wh(PAGE_W, PAGE_H) else {
            continue;
        };
        let mut p = doc.start_page_with(settings);
        let mut sf = p.surface();
        for (b, y) in page {
            draw(&mut sf, &cx, *b, *y);
        }
        footer(&mut sf, &cx, i + 1, n);
        sf.finish();
        p.finish();
    }
    doc.finish()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("cannot render the PDF {}", s.doc_title))
}

fn metadata(s: &Sheet) -> Metadata {
    let t = s.created;
    let date = krilla::metadata::DateTime::new(t.year().clamp(0, 9999) as u16)
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    Metadata::new()
        .title(crate::report::one_line(&s.doc_title).into_owned())
        .language("fr-FR".into())
        .creator("ppas-gateway".into())
        .creation_date(date)
}

fn blocks(s: &Sheet) -> Vec<Block> {
    let mut b = vec![Block::Title, Block::Subtitle, Block::Gap(6.0)];
    b.extend((0..s.summary.len()).map(Block::Kv));
    b.push(Block::Gap(10.0));
    b.push(Block::Heading);
    if s.rows.is_empty() {
        b.push(Block::Empty);
    } else {
        b.push(Block::Header);
        b.extend((0..s.rows.len()).map(Block::Row));
        if s.totals.is_some() {
            b.push(Block::Totals);
        }
    }
    if !s.notes.is_empty() {
        b.push(Block::Gap(8.0));
        b.extend((0..s.notes.len()).map(Block::Note));
    }
    b
}

fn paragraph_lines(face: &Face, t: &str) -> Vec<String> {
    face.wrap(&face.clean(t), KV_SIZE, CONTENT_W, 10)
}

fn kv_lines(cx: &Cx<'_>, value: &str) -> Vec<String> {
    let r = &cx.f.regular;
    r.wrap(&r.clean(value), KV_SIZE, CONTENT_W - KV_LABEL_W, KV_MAX_LINES)
}

/// The wrapped cells of a row (`bold` for the totals). A left-aligned
/// cell starts a new line at each `\n` of its text; a right-aligned one (a
/// number, an amount) is one line and never cut.
fn cells(cx: &Cx<'_>, row: &[String], bold: bool) -> Vec<Vec<String>> {
    let face = if bold { &cx.f.bold } else { &cx.f.regular };
    cx.s.columns
        .iter()
        .zip(&cx.widths)
        .enumerate()
        .map(|(i, (c, w))| {
            let raw = row.get(i).map(String::as_str).unwrap_or("");
            let inner = w - 2.0 * CELL_PAD_X;
            let max = c.max_lines.max(1);
            match c.align {
                Align::Right => vec![face.clean(&crate::report::one_line(raw))],
                Align::Left => {
                    let mut lines: Vec<String> = Vec::new();
                    for part in raw.split('\n') {
                        let left = max.saturating_sub(lines.len());
                        if left == 0 {
                            if let Some(last) = lines.last_mut() {
                                *last = face.fit(&format!("{last}…"), TABLE_SIZE, inner);
                            }
                            break;
                        }
                        let v = face.clean(&crate::report::one_line(part));
                        lines.extend(face.wrap(&v, TABLE_SIZE, inner, left));
                    }
                    lines
                }
            }
        })
        .collect()
}

fn row_height(cells: &[Vec<String>]) -> f32 {
    cells.iter().map(Vec::len).max().unwrap_or(1).max(1) as f32 * TABLE_LEADING + 2.0 * CELL_PAD_Y
}

fn height(cx: &Cx<'_>, b: Block) -> f32 {
    let f = cx.f;
    match b {
        Block::Title => 24.0,
        Block::Subtitle => {
            let n = f
                .regular
                .wrap(&f.regular.clean(&cx.s.subtitle), 10.0, CONTENT_W, 3)
                .len();
            n as f32 * 13.0 + 2.0
        }
        Block::Kv(i) => kv_lines(cx, &cx.s.summary[i].1).len() as f32 * KV_LEADING,
        Block::Heading => 20.0,
        Block::Empty => paragraph_lines(&f.regular, &cx.s.empty).len() as f32 * KV_LEADING + 4.0,
        Block::Header => row_height(&header_cells(cx)),
        Block::Row(i) => row_height(&cells(cx, &cx.s.rows[i], false)),
        Block::Totals => row_height(&cells(cx, cx.s.totals.as_deref().unwrap_or(&[]), true)),
        Block::Note(i) => paragraph_lines(&f.regular, &cx.s.notes[i]).len() as f32 * KV_LEADING + 4.0,
        Block::Gap(h) => h,
    }
}

fn header_cells(cx: &Cx<'_>) -> Vec<Vec<String>> {
    let b = &cx.f.bold;
    cx.s.columns
        .iter()
        .zip(&cx.widths)
        .map(|(c, w)| b.wrap(&b.clean(c.title), TABLE_SIZE, w - 2.0 * CELL_PAD_X, 2))
        .collect()
}

/// Places the blocks on pages; a row that does not fit starts a new page
/// headed by the table's header; a heading is kept with what follows it.
fn layout(cx: &Cx<'_>, blocks: Vec<Block>) -> Vec<Vec<(Block, f32)>> {
    let mut pages: Vec<Vec<(Block, f32)>> = Vec::new();
    let mut page: Vec<(Block, f32)> = Vec::new();
    let mut y = MARGIN_TOP;
    let mut iter = blocks.into_iter().peekable();
    while let Some(b) = iter.next() {
        let h = height(cx, b);
        let keep = match (b, iter.peek()) {
            (Block::Heading, Some(&Block::Header)) => height(cx, Block::Header) + height(cx, Block::Row(0)),
            (Block::Heading | Block::Header, Some(&next)) => height(cx, next),
            _ => 0.0,
        };
        let fresh = y <= MARGIN_TOP;
        if y + h + keep > CONTENT_BOTTOM && !fresh {
            if let Block::Gap(_) = b {
                continue;
            }
            pages.push(std::mem::take(&mut page));
            y = MARGIN_TOP;
            if matches!(b, Block::Row(_) | Block::Totals) {
                page.push((Block::Header, y));
                y += height(cx, Block::Header);
            }
        }
        if matches!(b, Block::Gap(_)) && y <= MARGIN_TOP {
            continue;
        }
        page.push((b, y));
        y += h;
    }
    pages.push(page);
    pages
}

fn draw(sf: &mut Surface<'_>, cx: &Cx<'_>, b: Block, y: f32) {
    let f = cx.f;
    match b {
        Block::Title => text(sf, &f.bold, 16.0, MARGIN_X, y + 16.0, &cx.s.title, BLACK),
        Block::Subtitle => {
            let lines = f.regular.wrap(&f.regular.clean(&cx.s.subtitle), 10.0, CONTENT_W, 3);
            for (i, l) in lines.iter().enumerate() {
                text(sf, &f.regular, 10.0, MARGIN_X, y + 10.0 + i as f32 * 13.0, l, GREY_TEXT);
            }
        }
        Block::Kv(i) => {
            let (label, value) = &cx.s.summary[i];
            let label = f.bold.fit(&f.bold.clean(label), KV_SIZE, KV_LABEL_W - 6.0);
            text(sf, &f.bold, KV_SIZE, MARGIN_X, y + KV_SIZE, &label, BLACK);
            for (k, l) in kv_lines(cx, value).iter().enumerate() {
                let by = y + KV_SIZE + k as f32 * KV_LEADING;
                text(sf, &f.regular, KV_SIZE, MARGIN_X + KV_LABEL_W, by, l, BLACK);
            }
        }
        Block::Heading => text(sf, &f.bold, 11.0, MARGIN_X, y + 13.0, &cx.s.heading, BLACK),
        Block::Empty => paragraph(sf, &f.regular, &cx.s.empty, y),
        Block::Note(i) => paragraph(sf, &f.regular, &cx.s.notes[i], y),
        Block::Header => {
            let c = header_cells(cx);
            rect(sf, MARGIN_X, y, CONTENT_W, row_height(&c), HEADER_BG);
            row(sf, cx, &c, &f.bold, y);
        }
        Block::Row(i) => {
            let c = cells(cx, &cx.s.rows[i], false);
            row(sf, cx, &c, &f.regular, y);
            rule(sf, y + row_height(&c));
        }
        Block::Totals => {
            let c = cells(cx, cx.s.totals.as_deref().unwrap_or(&[]), true);
            rect(sf, MARGIN_X, y, CONTENT_W, row_height(&c), HEADER_BG);
            row(sf, cx, &c, &f.bold, y);
        }
        Block::Gap(_) => {}
    }
}

/// Draws the wrapped cells of one row whose top is `y`.
fn row(sf: &mut Surface<'_>, cx: &Cx<'_>, cells: &[Vec<String>], face: &Face, y: f32) {
    let by = y + CELL_PAD_Y + TABLE_SIZE;
    let mut x = MARGIN_X;
    for ((lines, w), c) in cells.iter().zip(&cx.widths).zip(&cx.s.columns) {
        for (k, l) in lines.iter().enumerate() {
            let ly = by + k as f32 * TABLE_LEADING;
            match c.align {
                Align::Left => text(sf, face, TABLE_SIZE, x + CELL_PAD_X, ly, l, BLACK),
                Align::Right => right(sf, face, TABLE_SIZE, x + w - CELL_PAD_X, ly, l),
            }
        }
        x += w;
    }
}

fn paragraph(sf: &mut Surface<'_>, face: &Face, t: &str, y: f32) {
    for (i, l) in paragraph_lines(face, t).iter().enumerate() {
        text(
            sf,
            face,
            KV_SIZE,
            MARGIN_X,
            y + KV_SIZE + i as f32 * KV_LEADING,
            l,
            BLACK,
        );
    }
}

fn footer(sf: &mut Surface<'_>, cx: &Cx<'_>, n: usize, total: usize) {
    let f = &cx.f.regular;
    let y = PAGE_H - 30.0;
    let mut pb = krilla::geom::PathBuilder::new();
    pb.move_to(MARGIN_X, y - 12.0);
    pb.line_to(PAGE_W - MARGIN_X, y - 12.0);
    stroke(sf, pb, RULE, 0.5);
    let pages = format!("page {n} / {total}");
    let left = f.fit(&f.clean(&cx.s.footer), 8.0, CONTENT_W - f.width(&pages, 8.0) - 20.0);
    text(sf, f, 8.0, MARGIN_X, y, &left, GREY_TEXT);
    right(sf, f, 8.0, PAGE_W - MARGIN_X, y, &pages);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(rows: usize) -> Sheet {
        Sheet {
            title: "Bordereau de paiement".into(),
            subtitle: "Convention 62739900".into(),
            summary: vec![("Caisse".into(), "04 — Carsat Nord-Picardie".into())],
            heading: "Lignes payées".into(),
            columns: vec![
                Column {
                    title: "Facture",
                    weight: 3.0,
                    align: Align::Left,
                    max_lines: 2,
                },
                Column {
                    title: "Montant payé",
                    weight: 1.0,
                    align: Align::Right,
                    max_lines: 1,
                },
            ],
            rows: (0..rows)
                .map(|i| {
                    vec![
                        format!("03_151126_100_2110000{i} {}", "x ".repeat(i % 40)),
                        "1\u{a0}234,50\u{a0}€".into(),
                    ]
                })
                .collect(),
            totals: Some(vec!["Total".into(), "9\u{a0}999,00\u{a0}€".into()]),
            empty: "Aucune ligne.".into(),
            notes: vec!["Une note.".into()],
            footer: "Bordereau de paiement P1".into(),
            doc_title: "Bordereau P1".into(),
            created: DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn rows_paginate_under_a_repeated_header_and_fit_the_page() {
        let s = sheet(400);
        let cx = Cx {
            s: &s,
            f: fonts().unwrap(),
            widths: vec![CONTENT_W * 0.75, CONTENT_W * 0.25],
        };
        let pages = layout(&cx, blocks(&s));
        assert!(pages.len() > 4, "{}", pages.len());
        let rows = pages
            .iter()
            .flatten()
            .filter(|(b, _)| matches!(b, Block::Row(_)))
            .count();
        assert_eq!(rows, 400);
        for page in pages.iter().skip(1) {
            assert!(matches!(page[0].0, Block::Header | Block::Note(_)), "{:?}", page[0].0);
            for (b, y) in page {
                assert!(y + height(&cx, *b) <= CONTENT_BOTTOM + 0.01, "{b:?} at {y}");
            }
        }
    }

    #[test]
    fn deterministic_and_a_pdf_with_or_without_rows() {
        let a = render_sheet(&sheet(3)).unwrap();
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, render_sheet(&sheet(3)).unwrap());
        assert!(render_sheet(&sheet(0)).unwrap().starts_with(b"%PDF-"));
    }
}
