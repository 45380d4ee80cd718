//! CSV form of the processing report, for a French spreadsheet: UTF-8 with a
//! BOM (so Excel reads the accents), `;` separator, CRLF line ends, decimal
//! comma.
//!
//! Layout (documented in `docs/formats/report.md`): every row has the same
//! seven columns, so strict CSV readers accept the file. First a summary
//! block (`Rubrique;Valeur` header then one `label;value` row per fact), one
//! empty row, then the anomaly table (a header row and one row per anomaly).
//! The summary comes first because it is what a person looks for when the
//! file opens; a program finds the table after the first empty row.
//!
//! Every cell that starts with `=`, `+`, `-`, `@` (or a tab / carriage
//! return, which some spreadsheets skip before looking) is prefixed with `'`:
//! a message quoting the provider's data must never run as a formula.

use super::{one_line, ReportMeta, Summary};
use crate::anomaly::FileKind;
use crate::billing::FileVerdict;

/// Columns of every row.
pub const COLUMNS: usize = 7;

/// Header of the anomaly table.
pub const ANOMALY_HEADER: [&str; COLUMNS] = ["Code", "Libellé", "Niveau", "Ligne", "Ligne XML", "Champ", "Message"];

/// Renders the CSV report.
pub fn render_csv(v: &FileVerdict, m: &ReportMeta<'_>) -> Vec<u8> {
    let s = Summary::new(v, m);
    let mut out = Vec::with_capacity(1024 + v.anomalies.len() * 200);
    out.extend_from_slice("\u{FEFF}".as_bytes());
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out);

    let billing = m.kind == FileKind::Billing;
    let mut summary: Vec<(String, String)> = vec![
        ("Compte rendu de traitement".into(), v.file.clone()),
        ("Prestataire".into(), m.provider.to_string()),
    ];
    if billing {
        summary.extend([
            ("Bordereau (rf-borfact)".into(), v.header.rf_borfact.clone()),
            ("Caisse".into(), s.caisse_label.clone()),
            ("Site (id-site)".into(), v.header.id_site.clone()),
            ("Prestation (rf-prstpap)".into(), v.header.rf_prstpap.clone()),
        ]);
    } else {
        summary.push(("Type de fichier".into(), "attestations de visite".into()));
    }
    summary.extend([
        ("Canal".into(), m.channel.to_string()),
        ("Reçu le (heure de Paris)".into(), s.received_fr.clone()),
        ("Traité le (heure de Paris)".into(), s.processed_fr.clone()),
        ("Empreinte SHA-256".into(), m.sha256.to_string()),
        ("Verdict".into(), s.verdict_fr.to_string()),
        (s.items("trouvées"), s.lines.to_string()),
        (s.items("acceptées"), s.accepted_lines.to_string()),
        (s.items("rejetées"), s.rejected_lines.to_string()),
    ]);
    if billing {
        summary.push(("Heures acceptées".into(), s.hours_fr.clone()));
    }
    summary.push(("Anomalies".into(), v.anomalies.len().to_string()));

    // Writing into a Vec cannot fail; errors are still propagated to keep
    // the function total (an empty report rather than a panic).
    let result = (|| -> csv::Result<()> {
        row(&mut w, &["Rubrique", "Valeur"])?;
        for (label, value) in &summary {
            row(&mut w, &[label, value])?;
        }
        row(&mut w, &[])?;
        let mut header = ANOMALY_HEADER;
        if !billing {
            header[3] = "Attestation";
        }
        row(&mut w, &header)?;
        for a in &v.anomalies {
            let line = a.line.map(|n| n.to_string()).unwrap_or_default();
            let xml_line = a.xml_line.map(|n| n.to_string()).unwrap_or_default();
            row(
                &mut w,
                &[
                    a.code.as_str(),
                    a.code.title_fr(),
                    s.level_fr(a.code.level()),
                    &line,
                    &xml_line,
                    a.field.as_deref().unwrap_or(""),
                    &a.message,
                ],
            )?;
        }
        w.flush()?;
        Ok(())
    })();
    match (result, w.into_inner()) {
        (Ok(()), Ok(bytes)) => bytes,
        _ => "\u{FEFF}".as_bytes().to_vec(),
    }
}

/// Writes one row padded to [`COLUMNS`] cells, each guarded.
fn row<W: std::io::Write>(w: &mut csv::Writer<W>, cells: &[&str]) -> csv::Result<()> {
    let mut record = csv::StringRecord::with_capacity(128, COLUMNS);
    for i in 0..COLUMNS {
        let cell = cells.get(i).copied().unwrap_or("");
        // One anomaly is one visual row: line breaks and controls become spaces.
        record.push_field(&text_cell(cell));
    }
    w.write_record(&record)
}

/// A CSV laid out like the report's (UTF-8 with a BOM, `;`, CRLF), for the
/// other documents in that form (payment statements, reports of
/// anomalies): every row padded to `width` cells, each cell a
/// [`text_cell`]. An empty row is a row of empty cells.
pub(crate) fn sheet_csv(rows: &[Vec<String>], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + rows.len() * 128);
    out.extend_from_slice("\u{FEFF}".as_bytes());
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(out);
    let result = (|| -> csv::Result<()> {
        for cells in rows {
            let mut record = csv::StringRecord::with_capacity(128, width);
            for i in 0..width.max(cells.len()) {
                record.push_field(&text_cell(cells.get(i).map(String::as_str).unwrap_or("")));
            }
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    })();
    match (result, w.into_inner()) {
        (Ok(()), Ok(bytes)) => bytes,
        _ => "\u{FEFF}".as_bytes().to_vec(),
    }
}

/// A text cell as every CSV of the gateway writes it (the reports, the
/// listings of `crate::listing`): on one line (controls and line breaks
/// become spaces), guarded against formulas.
pub(crate) fn text_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    match one_line(cell) {
        std::borrow::Cow::Borrowed(s) => guard(s),
        std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(guard(&s).into_owned()),
    }
}

/// Prefixes a cell a spreadsheet would read as a formula.
pub(crate) fn guard(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{cell}")),
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{accepted, meta, partial};
    use super::*;
    use crate::billing::{Anomaly, Code};

    fn read(bytes: &[u8]) -> Vec<Vec<String>> {
        let body = bytes.strip_prefix("\u{FEFF}".as_bytes()).expect("BOM");
        csv::ReaderBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .from_reader(body)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn summary_then_table_with_crlf_and_bom() {
        let b = render_csv(&partial(), &meta());
        assert!(
            b.starts_with(b"\xEF\xBB\xBFRubrique;Valeur;;;;;\r\n"),
            "{:?}",
            String::from_utf8_lossy(&b[..40])
        );
        let rows = read(&b);
        assert!(rows.iter().all(|r| r.len() == COLUMNS));
        assert_eq!(rows[11][..2], ["Verdict", "partiellement accepté"]);
        assert_eq!(rows[15][..2], ["Heures acceptées", "12,50"]);
        let table = rows.iter().position(|r| r[0] == "Code").unwrap();
        assert!(rows[table - 1].iter().all(String::is_empty));
        assert_eq!(
            rows[table + 1],
            [
                "L06",
                "Quantité invalide",
                "ligne",
                "2",
                "31",
                "nb-quant",
                "La quantité 46 dépasse le maximum mensuel (30 h) de la prestation PPP100."
            ]
        );
        assert_eq!(rows.len(), table + 3);
        let text = String::from_utf8(b).unwrap();
        assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
    }

    #[test]
    fn formula_cells_are_guarded() {
        let mut v = partial();
        v.file = "=HYPERLINK(\"http://x\")".into();
        v.anomalies = vec![
            Anomaly::line(Code::L12, 1, 5, "@champ", "+33 6 00"),
            Anomaly::line(Code::L12, 1, 6, "nom", "-1;\"x\"\nsuite"),
        ];
        let rows = read(&render_csv(&v, &meta()));
        assert_eq!(rows[1][1], "'=HYPERLINK(\"http://x\")");
        let n = rows.len();
        assert_eq!(rows[n - 2][5], "'@champ");
        assert_eq!(rows[n - 2][6], "'+33 6 00");
        assert_eq!(rows[n - 1][6], "'-1;\"x\" suite");
        assert_eq!(guard("a=b"), "a=b");
    }

    #[test]
    fn accepted_report_has_a_header_and_no_anomaly_row() {
        let b = render_csv(&accepted(), &meta());
        assert_eq!(b, render_csv(&accepted(), &meta()));
        let rows = read(&b);
        assert_eq!(rows.last().unwrap()[..], ANOMALY_HEADER.map(String::from)[..]);
        assert_eq!(rows[11][1], "accepté");
    }
}
