//! PDF form of the processing report: A4 portrait, DejaVu Sans embedded and
//! subset, PDF/A-2u (archivable, every glyph mapped back to Unicode).
//!
//! Content, in reading order: a title, the summary block (file, provider,
//! bordereau, caisse, site, prestation, times, verdict, counts, hours), a
//! legend of the codes met with their French title and count, the table of
//! every anomaly (header repeated at the top of each page, long messages
//! wrapped), and the totals. Each page ends with "page X / Y".
//!
//! Two passes, because "page X / Y" needs Y before the first page is drawn:
//! [`layout`] turns the report into blocks and places them on pages (only
//! heights are computed; a 100 000-anomaly table stays a list of indices),
//! then [`draw`](draw::draw_page) renders each page. Both passes wrap text
//! with the same function, so they agree on every height.

mod draw;
pub mod sheet;
mod text;

use anyhow::Context;
use krilla::configure::{Archival, ConfigurationBuilder};

use super::{one_line, ReportMeta, Summary};
use crate::anomaly::FileKind;
use crate::billing::FileVerdict;
use text::Fonts;

/// A4 in points.
pub(crate) const PAGE_W: f32 = 595.28;
pub(crate) const PAGE_H: f32 = 841.89;
pub(crate) const MARGIN_X: f32 = 42.0;
pub(crate) const MARGIN_TOP: f32 = 42.0;
/// Lowest point content may reach; the footer lives below.
pub(crate) const CONTENT_BOTTOM: f32 = PAGE_H - 52.0;
pub(crate) const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN_X;

/// Anomaly table: body size, line height, cell padding.
pub(crate) const TABLE_SIZE: f32 = 8.0;
pub(crate) const TABLE_LEADING: f32 = 10.0;
pub(crate) const CELL_PAD_Y: f32 = 3.0;
pub(crate) const CELL_PAD_X: f32 = 3.0;
/// Column widths of the anomaly table: Code, Ligne, Ligne XML, Champ, Message.
pub(crate) const COLS: [f32; 5] = [32.0, 40.0, 54.0, 86.0, CONTENT_W - 32.0 - 40.0 - 54.0 - 86.0];
pub(crate) const COL_TITLES: [&str; 5] = ["Code", "Ligne", "Ligne XML", "Champ", "Message"];
/// A message longer than this many lines is cut in the PDF (the XML and CSV
/// forms keep it whole): one row must always fit on a page.
pub(crate) const MAX_MESSAGE_LINES: usize = 30;
pub(crate) const MAX_FIELD_LINES: usize = 4;

/// Summary block: label column width, size, leading.
pub(crate) const KV_LABEL_W: f32 = 150.0;
pub(crate) const KV_SIZE: f32 = 9.0;
pub(crate) const KV_LEADING: f32 = 12.0;
pub(crate) const KV_MAX_LINES: usize = 6;

/// What goes on the pages, top to bottom.
#[derive(Debug, Clone)]
pub(crate) enum Block {
    Title(String),
    Subtitle(String),
    /// A label and its value (summary block).
    Kv(std::borrow::Cow<'static, str>, String),
    Verdict,
    Heading(String),
    Paragraph(String),
    /// Legend header row and one row per code met (index in `Summary::codes`).
    LegendHeader,
    LegendRow(usize),
    /// Anomaly table header and one row per anomaly (index in the verdict).
    TableHeader,
    Row(usize),
    Totals(String),
    Gap(f32),
}

/// A summary row.
fn kv(label: impl Into<std::borrow::Cow<'static, str>>, value: String) -> Block {
    Block::Kv(label.into(), value)
}

/// Which table a block belongs to, for repeating its header on a new page.
fn table_of(b: &Block) -> Option<Block> {
    match b {
        Block::Row(_) => Some(Block::TableHeader),
        Block::LegendRow(_) => Some(Block::LegendHeader),
        _ => None,
    }
}

/// Everything the two passes share.
pub(crate) struct Ctx<'a> {
    pub v: &'a FileVerdict,
    pub m: &'a ReportMeta<'a>,
    pub s: Summary,
    pub fonts: &'static Fonts,
}

/// Renders the PDF report.
pub fn render_pdf(v: &FileVerdict, m: &ReportMeta<'_>) -> anyhow::Result<Vec<u8>> {
    let cx = Ctx {
        v,
        m,
        s: Summary::new(v, m),
        fonts: text::fonts()?,
    };
    let pages = layout(&cx, blocks(&cx));

    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_U)
        .finish()
        .map_err(|e| anyhow::anyhow!("PDF configuration: {e:?}"))?;
    let settings = krilla::SerializeSettings {
        configuration,
        ..Default::default()
    };
    let mut doc = krilla::Document::new_with(settings);
    doc.set_metadata(draw::metadata(&cx));
    let total = pages.len();
    for (i, page) in pages.iter().enumerate() {
        draw::draw_page(&mut doc, &cx, page, i + 1, total);
    }
    doc.finish()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("cannot render the PDF report of {}", v.file))
}

/// The report as a flat list of blocks.
fn blocks(cx: &Ctx<'_>) -> Vec<Block> {
    let (v, m, s) = (cx.v, cx.m, &cx.s);
    let or_dash = |x: &str| {
        if x.trim().is_empty() {
            "—".to_string()
        } else {
            x.to_string()
        }
    };
    let billing = m.kind == FileKind::Billing;
    let mut b = vec![
        Block::Title("Compte rendu de traitement".into()),
        Block::Subtitle(if billing {
            format!("Fichier de facturation {}", v.file)
        } else {
            format!("Fichier d'attestations de visite {}", v.file)
        }),
        Block::Gap(6.0),
        kv("Fichier", or_dash(&v.file)),
        kv("Prestataire", or_dash(m.provider)),
    ];
    if billing {
        b.extend([
            kv("Bordereau (rf-borfact)", or_dash(&v.header.rf_borfact)),
            kv("Caisse", or_dash(&s.caisse_label)),
            kv("Site (id-site)", or_dash(&v.header.id_site)),
            kv("Prestation (rf-prstpap)", or_dash(&v.header.rf_prstpap)),
        ]);
    }
    b.extend([
        kv("Canal", or_dash(m.channel)),
        kv("Reçu le", format!("{} (heure de Paris)", s.received_fr)),
        kv("Traité le", format!("{} (heure de Paris)", s.processed_fr)),
        kv("Empreinte SHA-256", or_dash(m.sha256)),
        Block::Gap(6.0),
        Block::Verdict,
        kv(s.items("trouvées"), s.lines.to_string()),
        kv(s.items("acceptées"), s.accepted_lines.to_string()),
        kv(s.items("rejetées"), s.rejected_lines.to_string()),
    ]);
    if billing {
        b.push(kv("Heures acceptées", s.hours_fr.clone()));
    }
    b.extend([kv("Anomalies", v.anomalies.len().to_string()), Block::Gap(10.0)]);
    let (item, items) = if billing {
        ("ligne", "lignes")
    } else {
        ("attestation", "attestations")
    };
    if v.anomalies.is_empty() {
        b.push(Block::Heading("Anomalies".into()));
        b.push(Block::Paragraph(format!(
            "Aucune anomalie : toutes les {items} du fichier ont été transmises à la caisse."
        )));
        return b;
    }
    b.push(Block::Heading("Codes relevés".into()));
    b.push(Block::LegendHeader);
    b.extend((0..s.codes.len()).map(Block::LegendRow));
    b.push(Block::Gap(10.0));
    b.push(Block::Heading(format!("Détail des anomalies ({})", v.anomalies.len())));
    if v.has_file_anomaly() {
        b.push(Block::Paragraph(format!(
            "Le fichier est rejeté en entier : aucune {item} n'a été transmise à la caisse."
        )));
    }
    b.push(Block::TableHeader);
    b.extend((0..v.anomalies.len()).map(Block::Row));
    b.push(Block::Gap(6.0));
    let hours = if billing {
        format!(" ; {} heures acceptées", s.hours_fr)
    } else {
        String::new()
    };
    b.push(Block::Totals(format!(
        "Total : {} anomalie{} ({} de fichier, {} {}) ; {} {item}{} rejetée{} sur {}{hours}.",
        v.anomalies.len(),
        plural(v.anomalies.len()),
        s.file_anomalies,
        s.line_anomalies,
        if billing { "de ligne" } else { "d'attestation" },
        s.rejected_lines,
        plural(s.rejected_lines as usize),
        plural(s.rejected_lines as usize),
        s.lines,
    )));
    b
}

fn plural(n: usize) -> &'static str {
    if n > 1 {
        "s"
    } else {
        ""
    }
}

/// Height of a block on the page.
pub(crate) fn height(cx: &Ctx<'_>, b: &Block) -> f32 {
    let f = cx.fonts;
    match b {
        Block::Title(_) => 24.0,
        Block::Subtitle(t) => {
            let n = f.regular.wrap(&f.regular.clean(t), 10.0, CONTENT_W, 3).len();
            n as f32 * 13.0 + 2.0
        }
        Block::Kv(_, value) => kv_lines(cx, value).len() as f32 * KV_LEADING,
        Block::Verdict => 20.0,
        Block::Heading(_) => 20.0,
        Block::Paragraph(t) => {
            let n = f.regular.wrap(&f.regular.clean(t), KV_SIZE, CONTENT_W, 10).len();
            n as f32 * KV_LEADING + 4.0
        }
        Block::LegendHeader | Block::TableHeader => TABLE_LEADING + 2.0 * CELL_PAD_Y,
        Block::LegendRow(_) => TABLE_LEADING + 2.0 * CELL_PAD_Y,
        Block::Row(i) => {
            let (field, message) = row_lines(cx, *i);
            row_height(&field, &message)
        }
        Block::Totals(t) => {
            let n = f.bold.wrap(&f.bold.clean(t), KV_SIZE, CONTENT_W, 10).len();
            n as f32 * KV_LEADING
        }
        Block::Gap(h) => *h,
    }
}

pub(crate) fn kv_lines(cx: &Ctx<'_>, value: &str) -> Vec<String> {
    let r = &cx.fonts.regular;
    r.wrap(&r.clean(value), KV_SIZE, CONTENT_W - KV_LABEL_W, KV_MAX_LINES)
}

/// Height of an anomaly row from its wrapped cells.
pub(crate) fn row_height(field: &[String], message: &[String]) -> f32 {
    field.len().max(message.len()).max(1) as f32 * TABLE_LEADING + 2.0 * CELL_PAD_Y
}

/// The wrapped field and message cells of anomaly `i`.
pub(crate) fn row_lines(cx: &Ctx<'_>, i: usize) -> (Vec<String>, Vec<String>) {
    let r = &cx.fonts.regular;
    let a = &cx.v.anomalies[i];
    let inner = |w: f32| w - 2.0 * CELL_PAD_X;
    let field = r.wrap(
        &r.clean(&one_line(a.field.as_deref().unwrap_or(""))),
        TABLE_SIZE,
        inner(COLS[3]),
        MAX_FIELD_LINES,
    );
    let message = r.wrap(
        &r.clean(&one_line(&a.message)),
        TABLE_SIZE,
        inner(COLS[4]),
        MAX_MESSAGE_LINES,
    );
    (field, message)
}

/// Places the blocks on pages: `(block, top y)` per page. A table row that
/// does not fit starts a new page headed by its table's header; a heading
/// is never left alone at the bottom of a page.
pub(crate) fn layout(cx: &Ctx<'_>, blocks: Vec<Block>) -> Vec<Vec<(Block, f32)>> {
    let mut pages: Vec<Vec<(Block, f32)>> = Vec::new();
    let mut page: Vec<(Block, f32)> = Vec::new();
    let mut y = MARGIN_TOP;
    let mut iter = blocks.into_iter().peekable();
    while let Some(b) = iter.next() {
        let h = height(cx, &b);
        // Keep a heading (or a table header) with what follows it.
        let keep = match (&b, iter.peek()) {
            (Block::Heading(_) | Block::TableHeader | Block::LegendHeader, Some(next)) => {
                let mut k = height(cx, next);
                if let (Block::Heading(_), Block::TableHeader | Block::LegendHeader) = (&b, next) {
                    k += TABLE_LEADING + 2.0 * CELL_PAD_Y + TABLE_LEADING;
                }
                k
            }
            _ => 0.0,
        };
        let on_fresh_page = y <= MARGIN_TOP;
        if y + h + keep > CONTENT_BOTTOM && !on_fresh_page {
            if let Block::Gap(_) = b {
                // A gap at a page break is simply dropped.
                continue;
            }
            pages.push(std::mem::take(&mut page));
            y = MARGIN_TOP;
            if let Some(header) = table_of(&b) {
                let hh = height(cx, &header);
                page.push((header, y));
                y += hh;
            }
        }
        if let (Block::Gap(_), true) = (&b, y <= MARGIN_TOP) {
            continue;
        }
        page.push((b, y));
        y += h;
    }
    pages.push(page);
    pages
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted, meta, partial};
    use super::*;
    use crate::billing::{Anomaly, Code};

    #[test]
    fn many_rows_paginate_with_the_header_on_every_page() {
        let mut v = partial();
        v.anomalies = (0..500)
            .map(|i| {
                Anomaly::line(
                    Code::L02,
                    i + 1,
                    10 + u64::from(i),
                    "nir-per",
                    "NIR invalide : 13 caractères attendus, chiffres ou 2A/2B en positions 6 et 7.",
                )
            })
            .collect();
        let m = meta();
        let cx = Ctx {
            v: &v,
            m: &m,
            s: Summary::new(&v, &m),
            fonts: text::fonts().unwrap(),
        };
        let pages = layout(&cx, blocks(&cx));
        assert!(pages.len() > 5, "{}", pages.len());
        let rows: usize = pages
            .iter()
            .flatten()
            .filter(|(b, _)| matches!(b, Block::Row(_)))
            .count();
        assert_eq!(rows, 500);
        for (n, page) in pages.iter().enumerate().skip(1) {
            assert!(
                matches!(page[0].0, Block::TableHeader),
                "page {} starts with {:?}",
                n + 1,
                page[0].0
            );
            for (b, y) in page {
                assert!(y + height(&cx, b) <= CONTENT_BOTTOM + 0.01, "{b:?} at {y}");
            }
        }
    }

    #[test]
    fn pdf_is_deterministic_and_starts_like_a_pdf() {
        let a = render_pdf(&partial(), &meta()).unwrap();
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, render_pdf(&partial(), &meta()).unwrap());
        let b = render_pdf(&accepted(), &meta()).unwrap();
        assert!(b.starts_with(b"%PDF-"));
    }

    #[test]
    fn a_huge_message_and_exotic_characters_still_render() {
        let mut v = partial();
        v.file = "facture\u{0}\u{1F600}\u{4E2D}.xml".into();
        v.anomalies = vec![Anomaly::file(
            Code::F01,
            Some(1),
            Some(&"x".repeat(3000)),
            "é ".repeat(50_000),
        )];
        let pdf = render_pdf(&v, &meta()).unwrap();
        assert!(pdf.len() < 200_000, "{}", pdf.len());
    }
}
