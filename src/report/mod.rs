//! Processing reports of one received file, billing (spec §3, "Outputs of
//! one billing file") or visit attestations (spec §4, "the report follows
//! the billing-file report"): a [`FileVerdict`] and a few facts about the
//! exchange ([`ReportMeta`], with the file's kind) come in; the same report comes out in three forms, as
//! bytes — XML for the provider's software ([`render_xml`], schema
//! `schema/report.xsd`), CSV for a French spreadsheet ([`render_csv`]) and
//! an A4 PDF to read and print ([`render_pdf`]).
//!
//! The renderers are pure (no I/O, no clock): the same input always gives
//! the same bytes, so a report re-rendered after a crash is identical to the
//! one a provider may already have downloaded. Writing the files (atomically,
//! under the names of [`report_file_names`]) is the caller's job.
//!
//! Every wording the three forms share is computed once, in [`Summary`], so
//! they never disagree. The layouts are documented in `docs/formats/report.md`.
//!
//! The other documents published in these three forms (payment statements
//! and reports of anomalies returned by the payment chain, in
//! [`crate::bordereaux`]) reuse the same page, fonts and drawing through
//! [`sheet`] (a summary above one table) and the same CSV conventions
//! through `sheet_csv`; the processing report itself is unchanged by them.

mod csv;
mod pdf;
mod xml;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use rust_decimal::Decimal;

use crate::anomaly::FileKind;
use crate::billing::{FileVerdict, Level};

pub use self::csv::render_csv;
pub use self::pdf::render_pdf;
pub use self::pdf::sheet;
pub use self::xml::render_xml;

// Shared with the listings (`crate::listing`): one way to write a text cell
// of a CSV, one way to escape text for XML.
pub(crate) use self::csv::sheet_csv;
pub(crate) use self::csv::text_cell as csv_text_cell;
pub(crate) use self::xml::text as xml_text;

/// What the report says about the exchange, beyond the verdict itself.
#[derive(Debug, Clone, Copy)]
pub struct ReportMeta<'a> {
    /// What the file is: a report of a billing file shows its header and
    /// the hours accepted; one of an attestation file counts attestations.
    pub kind: FileKind,
    /// Provider account that delivered the file.
    pub provider: &'a str,
    /// When the file was received (complete in the drop folder or uploaded).
    pub received_at: DateTime<Utc>,
    /// When the controls ended (the verdict's time).
    pub processed_at: DateTime<Utc>,
    /// How the file came in: `"sftp"` or `"dépôt"` (drop folder).
    pub channel: &'a str,
    /// SHA-256 of the file as received, lowercase hexadecimal.
    pub sha256: &'a str,
    /// Name of the caisse of the header's `id-cram` (`[billing] caisses`),
    /// `None` when the code is unknown or missing.
    pub caisse_name: Option<&'a str>,
}

/// The three forms of one report.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub xml: Vec<u8>,
    pub csv: Vec<u8>,
    pub pdf: Vec<u8>,
}

/// Renders the three forms at once.
pub fn render_all(v: &FileVerdict, m: &ReportMeta<'_>) -> anyhow::Result<Rendered> {
    Ok(Rendered {
        xml: render_xml(v, m),
        csv: render_csv(v, m),
        pdf: render_pdf(v, m)?,
    })
}

/// File names of the report of `file` (the billing file name as received),
/// for its `occurrence`-th processing (1 for the first).
///
/// A later report for the same file name never replaces an earlier one
/// (spec §3): the first is `<name>.report.xml`, the second
/// `<name>.2.report.xml`, and so on. `<name>` is the file name without its
/// `.xml` extension (any case); another extension is kept, so that
/// `bordereau.txt` gives `bordereau.txt.report.xml`. Returned in the order
/// xml, csv, pdf.
pub fn report_file_names(file: &str, occurrence: u32) -> [String; 3] {
    let stem = match file.len().checked_sub(4) {
        Some(cut) if file.is_char_boundary(cut) && file[cut..].eq_ignore_ascii_case(".xml") && cut > 0 => &file[..cut],
        _ => file,
    };
    let base = if occurrence <= 1 {
        format!("{stem}.report")
    } else {
        format!("{stem}.{occurrence}.report")
    };
    [format!("{base}.xml"), format!("{base}.csv"), format!("{base}.pdf")]
}

/// The facts every form shows, worded once.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    /// `accepted`, `partial` or `rejected` (machine value).
    pub verdict_code: &'static str,
    /// accepté / partiellement accepté / rejeté.
    pub verdict_fr: &'static str,
    pub lines: u32,
    pub accepted_lines: u32,
    /// Lines not transmitted: every line of a rejected file.
    pub rejected_lines: u32,
    /// Accepted hours, two decimals, `.` separator (XML).
    pub hours_dot: String,
    /// Accepted hours, two decimals, `,` separator (CSV, PDF).
    pub hours_fr: String,
    pub file_anomalies: usize,
    pub line_anomalies: usize,
    /// The caisse as shown to a reader: `04 — Carsat Nord-Picardie`.
    pub caisse_label: String,
    /// Received / processed, RFC 3339 in Europe/Paris (XML).
    pub received_rfc3339: String,
    pub processed_rfc3339: String,
    /// Received / processed, `25/11/2026 10:00:00` in Europe/Paris (CSV, PDF).
    pub received_fr: String,
    pub processed_fr: String,
    /// Per code met: (code, count), in code order (the legend).
    pub codes: Vec<(crate::billing::Code, usize)>,
    pub kind: FileKind,
    /// What one item is called, plural: `Lignes` / `Attestations`.
    pub items_fr: &'static str,
}

impl Summary {
    /// `Lignes trouvées`, `Attestations acceptées`, … (`what`: `trouvées`,
    /// `acceptées`, `rejetées`).
    pub(crate) fn items(&self, what: &str) -> String {
        format!("{} {what}", self.items_fr)
    }

    /// The French name of the level of an anomaly in this report.
    pub(crate) fn level_fr(&self, level: Level) -> &'static str {
        level_fr(level, self.kind)
    }
}

impl Summary {
    pub(crate) fn new(v: &FileVerdict, m: &ReportMeta<'_>) -> Summary {
        let file_anomalies = v.anomalies.iter().filter(|a| a.code.level() == Level::File).count();
        let mut counts = std::collections::BTreeMap::new();
        for a in &v.anomalies {
            *counts.entry(a.code).or_insert(0usize) += 1;
        }
        let id_cram = v.header.id_cram.trim();
        let caisse_label = match (id_cram.is_empty(), m.caisse_name) {
            (true, _) => String::new(),
            (false, Some(name)) => format!("{id_cram} — {name}"),
            (false, None) => format!("{id_cram} — caisse inconnue"),
        };
        let hours = v.accepted_hours.round_dp(2);
        Summary {
            verdict_code: v.verdict.as_str(),
            verdict_fr: v.verdict.label_fr(),
            lines: v.lines,
            accepted_lines: v.accepted_lines,
            rejected_lines: v.lines.saturating_sub(v.accepted_lines),
            hours_dot: format_hours(hours),
            hours_fr: format_hours(hours).replace('.', ","),
            file_anomalies,
            line_anomalies: v.anomalies.len() - file_anomalies,
            caisse_label,
            received_rfc3339: paris_rfc3339(m.received_at),
            processed_rfc3339: paris_rfc3339(m.processed_at),
            received_fr: paris_fr(m.received_at),
            processed_fr: paris_fr(m.processed_at),
            codes: counts.into_iter().collect(),
            kind: m.kind,
            items_fr: match m.kind {
                FileKind::Billing => "Lignes",
                FileKind::Attestations => "Attestations",
            },
        }
    }
}

/// Two decimals always (`12.50`, `0.00`).
fn format_hours(d: Decimal) -> String {
    let mut d = d;
    d.rescale(2);
    d.to_string()
}

fn paris_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn paris_fr(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).format("%d/%m/%Y %H:%M:%S").to_string()
}

/// Replaces what a text line cannot hold (controls, line breaks) by spaces:
/// a report shows each value on one logical line.
pub(crate) fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        std::borrow::Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// French label of an anomaly level: a line anomaly of an attestation
/// file is about one attestation.
pub(crate) fn level_fr(level: Level, kind: FileKind) -> &'static str {
    match (level, kind) {
        (Level::File, _) => "fichier",
        (Level::Line, FileKind::Billing) => "ligne",
        (Level::Line, FileKind::Attestations) => "attestation",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::billing::{Anomaly, Code, Footer, Header, Verdict};

    pub(crate) fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    pub(crate) fn meta() -> ReportMeta<'static> {
        ReportMeta {
            kind: FileKind::Billing,
            provider: "SAADNORD",
            received_at: t("2026-11-25T09:58:12Z"),
            processed_at: t("2026-11-25T09:58:13Z"),
            channel: "sftp",
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            caisse_name: Some("Carsat Nord-Picardie"),
        }
    }

    /// A partial file: two lines, the second rejected with two anomalies.
    pub(crate) fn partial() -> FileVerdict {
        FileVerdict {
            file: "04_150521_100_21999000.xml".into(),
            verdict: Verdict::Partial,
            lines: 2,
            accepted_lines: 1,
            accepted_hours: Decimal::new(1250, 2),
            header: Header {
                rf_borfact: "04_150521_100_21999000".into(),
                log_fact: String::new(),
                id_cram: "04".into(),
                id_site: "21999000".into(),
                rf_prstpap: "PPP100".into(),
            },
            footer: Footer::default(),
            anomalies: vec![
                Anomaly::line(
                    Code::L06,
                    2,
                    31,
                    "nb-quant",
                    "La quantité 46 dépasse le maximum mensuel (30 h) de la prestation PPP100.",
                ),
                Anomaly::line(
                    Code::L03,
                    2,
                    29,
                    "dtf-interv",
                    "La date de fin « 2027-01-31 » est postérieure au jour de réception.",
                ),
            ],
        }
    }

    pub(crate) fn accepted() -> FileVerdict {
        FileVerdict {
            verdict: Verdict::Accepted,
            accepted_lines: 2,
            accepted_hours: Decimal::new(20, 0),
            anomalies: vec![],
            ..partial()
        }
    }

    #[test]
    fn report_names_take_a_counter_after_the_first() {
        assert_eq!(
            report_file_names("04_150521_100_21999000.xml", 1),
            [
                "04_150521_100_21999000.report.xml",
                "04_150521_100_21999000.report.csv",
                "04_150521_100_21999000.report.pdf"
            ]
        );
        assert_eq!(report_file_names("A.XML", 2)[0], "A.2.report.xml");
        assert_eq!(report_file_names("bordereau.txt", 1)[2], "bordereau.txt.report.pdf");
        assert_eq!(report_file_names(".xml", 1)[0], ".xml.report.xml");
        assert_eq!(report_file_names("é.xml", 3)[1], "é.3.report.csv");
    }

    #[test]
    fn summary_words_times_in_paris_and_hours_with_two_decimals() {
        let s = Summary::new(&partial(), &meta());
        assert_eq!(s.received_fr, "25/11/2026 10:58:12");
        assert_eq!(s.received_rfc3339, "2026-11-25T10:58:12+01:00");
        assert_eq!(s.hours_dot, "12.50");
        assert_eq!(s.hours_fr, "12,50");
        assert_eq!(s.rejected_lines, 1);
        assert_eq!(s.caisse_label, "04 — Carsat Nord-Picardie");
        assert_eq!(s.codes, vec![(Code::L03, 1), (Code::L06, 1)]);
        // Summer time.
        let mut m = meta();
        m.processed_at = t("2026-07-01T22:30:00Z");
        assert_eq!(Summary::new(&partial(), &m).processed_fr, "02/07/2026 00:30:00");
        let mut v = accepted();
        v.accepted_hours = Decimal::new(123456, 4);
        assert_eq!(Summary::new(&v, &meta()).hours_dot, "12.35");
    }
}
