//! The three forms of `ppas-gateway history`: history rows in, text out.
//!
//! - **table**: for a person at a terminal; aligned columns, one entry a line,
//!   timestamps in Europe/Paris, written in two passes (widths, then lines)
//!   so that a long period needs no more memory than a short one. Control characters (a file name delivered
//!   by a provider may hold an escape sequence) are shown as spaces so that
//!   nobody's terminal is driven by the data.
//! - **json**: JSON Lines, one object per entry per line, like `check
//!   --json`: a script reads it as a stream and a long period never has to be
//!   held whole. `at` is RFC 3339 with the Paris offset.
//! - **csv**: for a French spreadsheet, like the processing reports: UTF-8
//!   with a BOM, `;` separator, CRLF line ends, one entry a row, and every
//!   cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
//!   carriage return first) prefixed with `'`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;

use super::query::Row;

/// Column titles of the table (the caisse column holds the `id-cram`).
pub const TABLE_COLUMNS: [&str; 9] = [
    "horodatage (Paris)",
    "période",
    "régime",
    "caisse",
    "application",
    "interface",
    "prestataire",
    "convention",
    "commentaire",
];

/// Column titles of the CSV export.
pub const CSV_COLUMNS: [&str; 11] = [
    "horodatage (Paris)",
    "période",
    "type",
    "régime",
    "id-cram",
    "caisse",
    "application",
    "interface",
    "prestataire",
    "convention",
    "commentaire",
];

/// Known caisses (`id-cram` → name), from `[billing] caisses`.
pub type Caisses = BTreeMap<String, String>;

fn local_time(r: &Row) -> String {
    r.local().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The text on one line: line breaks and other control characters become spaces.
fn one_line(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// The aligned table, in two passes so that memory stays flat whatever the
/// period: [`Table::measure`] every row (column widths), then
/// [`Table::header`] and [`Table::row`] every row again. Both passes must
/// see the same rows (one read transaction).
#[derive(Debug, Clone)]
pub struct Table {
    widths: [usize; 9],
}

impl Default for Table {
    fn default() -> Table {
        Table {
            widths: TABLE_COLUMNS.map(|t| t.chars().count()),
        }
    }
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Widens the columns to fit this row.
    pub fn measure(&mut self, r: &Row) {
        for (w, c) in self.widths.iter_mut().zip(table_cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }

    /// The column titles and the rule under them.
    pub fn header(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.line(out, &TABLE_COLUMNS)?;
        let rule: Vec<String> = self.widths.iter().map(|w| "-".repeat(*w)).collect();
        self.line(out, &rule.iter().map(String::as_str).collect::<Vec<_>>())
    }

    pub fn row(&self, out: &mut impl Write, r: &Row) -> std::io::Result<()> {
        let cells = table_cells(r);
        self.line(out, &cells.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// One line, every column but the last padded to its width.
    fn line(&self, out: &mut impl Write, row: &[&str]) -> std::io::Result<()> {
        let last = row.len() - 1;
        let mut text = String::new();
        for (i, c) in row.iter().enumerate() {
            text.push_str(c);
            if i < last {
                let pad = self.widths[i].saturating_sub(c.chars().count());
                text.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    }
}

/// The cells of one table line ("-" for an absent value).
fn table_cells(r: &Row) -> [String; 9] {
    let dash = |v: &Option<String>| {
        v.as_deref()
            .map(one_line)
            .map(Cow::into_owned)
            .unwrap_or_else(|| "-".into())
    };
    [
        local_time(r),
        r.period(),
        dash(&r.regime),
        dash(&r.id_cram),
        one_line(&r.application).into_owned(),
        one_line(&r.interface).into_owned(),
        dash(&r.provider),
        dash(&r.convention),
        one_line(&r.comment).into_owned(),
    ]
}

/// Writes rows already in memory as an aligned table.
pub fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let mut t = Table::new();
    rows.iter().for_each(|r| t.measure(r));
    t.header(out)?;
    rows.iter().try_for_each(|r| t.row(out, r))
}

/// One entry as a JSON object (one line of the `json` form).
pub fn json(r: &Row, caisses: &Caisses) -> serde_json::Value {
    serde_json::json!({
        "at": r.local().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "period": r.period(),
        "kind": r.kind,
        "regime": r.regime,
        "id_cram": r.id_cram,
        "caisse": r.id_cram.as_ref().and_then(|id| caisses.get(id)),
        "application": r.application,
        "interface": r.interface,
        "provider": r.provider,
        "convention": r.convention,
        "comment": r.comment,
    })
}

/// Prefixes a cell a spreadsheet would read as a formula.
pub fn guard(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The CSV export, written row by row.
pub struct CsvOut<W: Write> {
    w: csv::Writer<W>,
}

impl<W: Write> CsvOut<W> {
    /// Writes the BOM and the header row.
    pub fn new(mut out: W) -> std::io::Result<CsvOut<W>> {
        out.write_all("\u{FEFF}".as_bytes())?;
        let w = csv::WriterBuilder::new()
            .delimiter(b';')
            .terminator(csv::Terminator::CRLF)
            .from_writer(out);
        let mut me = CsvOut { w };
        me.cells(&CSV_COLUMNS)?;
        Ok(me)
    }

    fn cells(&mut self, cells: &[&str]) -> std::io::Result<()> {
        let record: csv::StringRecord = cells.iter().map(|c| guard(&one_line(c)).into_owned()).collect();
        self.w.write_record(&record).map_err(csv_io)
    }

    pub fn row(&mut self, r: &Row, caisses: &Caisses) -> std::io::Result<()> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let id_cram = opt(&r.id_cram);
        let caisse = caisses.get(&id_cram).cloned().unwrap_or_default();
        self.cells(&[
            &local_time(r),
            &r.period(),
            &r.kind,
            &opt(&r.regime),
            &id_cram,
            &caisse,
            &r.application,
            &r.interface,
            &opt(&r.provider),
            &opt(&r.convention),
            &r.comment,
        ])
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

/// The I/O error inside a CSV error (a broken pipe stays recognisable).
fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn row(comment: &str, provider: Option<&str>) -> Row {
        Row {
            id: 1,
            at: DateTime::parse_from_rfc3339("2026-07-01T08:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
            kind: "processed".into(),
            regime: Some("Régime général".into()),
            id_cram: Some("04".into()),
            application: "aide-a-domicile".into(),
            interface: "facturation".into(),
            provider: provider.map(str::to_string),
            convention: None,
            comment: comment.into(),
        }
    }

    fn caisses() -> Caisses {
        crate::config::Config::default().billing.caisses
    }

    #[test]
    fn table_aligns_columns_and_neutralises_controls() {
        let rows = [
            row("fichier \u{1b}[31mrouge\nsuite", Some("saad21")),
            row("court", None),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let titles: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|t| !t.is_empty()).collect();
        assert_eq!(titles, TABLE_COLUMNS, "{text}");
        assert!(!text.contains('\u{1b}'), "no escape reaches the terminal");
        assert!(
            lines[2].starts_with("2026-07-01 10:30:00  2026-07  Régime général  04"),
            "summer time: {text}"
        );
        assert!(lines[2].ends_with("fichier  [31mrouge suite"), "{text}");
        // The comment column starts at the same place on every line.
        let col = |l: &str, comment: &str| l.chars().count() - comment.chars().count();
        assert_eq!(
            col(lines[2], "fichier  [31mrouge suite"),
            col(lines[3], "court"),
            "{text}"
        );
        assert_eq!(col(lines[0], "commentaire"), col(lines[3], "court"), "{text}");
        assert!(lines[3].contains("  -  "), "an absent provider shows as -: {text}");
    }

    #[test]
    fn json_carries_the_paris_offset_and_the_caisse_name() {
        let v = json(&row("x", Some("saad21")), &caisses());
        assert_eq!(v["at"], "2026-07-01T10:30:00+02:00");
        assert_eq!(v["period"], "2026-07");
        assert_eq!(v["caisse"], "Carsat Nord-Picardie");
        assert_eq!(v["convention"], serde_json::Value::Null);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 11);
    }

    #[test]
    fn csv_has_bom_semicolons_crlf_and_guards_formulas() {
        let mut buf = Vec::new();
        let mut w = CsvOut::new(&mut buf).unwrap();
        w.row(&row("=HYPERLINK(\"http://x\";\"clic\")", Some("@saad")), &caisses())
            .unwrap();
        w.row(&row("-1 ligne\r\nrejetée", Some("saad21")), &caisses()).unwrap();
        w.finish().unwrap();
        assert!(buf.starts_with("\u{FEFF}".as_bytes()));
        let text = std::str::from_utf8(&buf[3..]).unwrap();
        assert!(
            text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'),
            "{text:?}"
        );
        let mut r = csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows[0].iter().collect::<Vec<_>>(), CSV_COLUMNS);
        assert_eq!(&rows[1][10], "'=HYPERLINK(\"http://x\";\"clic\")");
        assert_eq!(&rows[1][8], "'@saad");
        assert_eq!(&rows[1][5], "Carsat Nord-Picardie");
        assert_eq!(&rows[2][10], "'-1 ligne  rejetée");
        assert_eq!(&rows[2][0], "2026-07-01 10:30:00");
    }
}
