//! Processing reports read back by real tools: `xmllint --schema` for the
//! XML form, Python's `csv` module (as a spreadsheet import would) for the
//! CSV form, `pdftotext` / `pdfinfo` / `pdffonts` for the PDF form.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Utc};
use ppas_gateway::anomaly::FileKind;
use ppas_gateway::billing::{Anomaly, Code, FileVerdict, Footer, Header, Verdict};
use ppas_gateway::report::{render_csv, render_pdf, render_xml, report_file_names, ReportMeta};
use rust_decimal::Decimal;

use crate::support::{have, repo};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn meta() -> ReportMeta<'static> {
    ReportMeta {
        kind: FileKind::Billing,
        provider: "SAADNORD",
        received_at: t("2026-11-25T09:58:12Z"),
        processed_at: t("2026-11-25T09:58:14Z"),
        channel: "dépôt",
        sha256: "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b",
        caisse_name: Some("Carsat Nord-Picardie"),
    }
}

fn header() -> Header {
    Header {
        rf_borfact: "04_251126_100_21999000".into(),
        log_fact: String::new(),
        id_cram: "04".into(),
        id_site: "21999000".into(),
        rf_prstpap: "PPP100".into(),
    }
}

fn partial() -> FileVerdict {
    FileVerdict {
        file: "04_251126_100_21999000.xml".into(),
        verdict: Verdict::Partial,
        lines: 3,
        accepted_lines: 1,
        accepted_hours: Decimal::new(1750, 2),
        header: header(),
        footer: Footer::default(),
        anomalies: vec![
            Anomaly::line(
                Code::L06,
                2,
                31,
                "nb-quant",
                "Quantité 46 supérieure au maximum mensuel de 30 heures (PPP100).",
            ),
            Anomaly::line(
                Code::L03,
                2,
                29,
                "dtf-interv",
                "Date de fin « 2027-01-31 » postérieure au jour de réception (25/11/2026).",
            ),
            Anomaly::line(
                Code::L08,
                3,
                44,
                "dtd-interv",
                "Période déjà facturée et acceptée : même bénéficiaire, même prestation, période chevauchante.",
            ),
        ],
    }
}

fn accepted() -> FileVerdict {
    FileVerdict {
        verdict: Verdict::Accepted,
        accepted_lines: 3,
        accepted_hours: Decimal::new(42, 0),
        anomalies: vec![],
        ..partial()
    }
}

fn rejected_unreadable() -> FileVerdict {
    FileVerdict {
        file: "relevé & <notes>.txt".into(),
        verdict: Verdict::Rejected,
        lines: 0,
        accepted_lines: 0,
        accepted_hours: Decimal::ZERO,
        header: Header::default(),
        footer: Footer::default(),
        anomalies: vec![
            Anomaly::file(Code::F03, None, None, "L'extension du fichier doit être .xml."),
            Anomaly::file(
                Code::F01,
                Some(7),
                Some("factbord"),
                "XML mal formé : « </fact> » ne ferme pas <factbord> ]]> & \"guillemets\" \u{1} \r\n fin",
            ),
        ],
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `xmllint --xpath` output without the newline it appends.
fn xpath(file: &Path, expr: &str) -> String {
    let out = run(Command::new("xmllint").arg("--xpath").arg(expr).arg(file));
    out.strip_suffix('\n').unwrap_or(&out).to_string()
}

fn pdftotext(pdf: &Path) -> String {
    run(Command::new("pdftotext")
        .arg("-layout")
        .arg("-enc")
        .arg("UTF-8")
        .arg(pdf)
        .arg("-"))
}

fn pdf_pages(pdf: &Path) -> usize {
    let info = run(Command::new("pdfinfo").arg(pdf));
    info.lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no page count in {info}"))
}

#[test]
fn xml_reports_validate_against_the_schema() {
    assert!(have("xmllint"), "xmllint (libxml2-utils) is required");
    let d = tempfile::tempdir().unwrap();
    let xsd = repo().join("schema/report.xsd");
    for (i, v) in [partial(), accepted(), rejected_unreadable()].iter().enumerate() {
        let mut m = meta();
        if i == 2 {
            m.caisse_name = None;
        }
        let p = write(d.path(), &format!("r{i}.xml"), &render_xml(v, &m));
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&xsd)
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "report {i} invalid: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the provider's parser reads back: the hostile message intact
    // except the control character, the file name escaped.
    let p = write(d.path(), "hostile.xml", &render_xml(&rejected_unreadable(), &meta()));
    let msg = xpath(&p, "string(//anomalie[@code='F01']/message)");
    assert_eq!(
        msg,
        "XML mal formé : « </fact> » ne ferme pas <factbord> ]]> & \"guillemets\" \u{FFFD} \r\n fin"
    );
    let name = xpath(&p, "string(/compte-rendu/fichier/nom)");
    assert_eq!(name, "relevé & <notes>.txt");
    let verdict = xpath(&p, "string(//verdict)");
    assert_eq!(verdict, "rejeté");
}

/// Reads the CSV back with Python's csv module, the way a spreadsheet
/// import does: `utf-8-sig` drops the BOM, `;` separates.
fn python_csv_rows(path: &Path) -> Vec<Vec<String>> {
    let script = concat!(
        "import csv, json, sys\n",
        "with open(sys.argv[1], newline='', encoding='utf-8-sig') as f:\n",
        "    print(json.dumps(list(csv.reader(f, delimiter=';'))))\n",
    );
    let out = run(Command::new("/usr/bin/python3").arg("-c").arg(script).arg(path));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn csv_reports_parse_back_with_bom_semicolons_and_guards() {
    let d = tempfile::tempdir().unwrap();
    let bytes = render_csv(&partial(), &meta());
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let p = write(d.path(), "partial.csv", &bytes);
    let rows = python_csv_rows(&p);
    assert!(rows.iter().all(|r| r.len() == 7), "{rows:?}");
    let find = |label: &str| rows.iter().find(|r| r[0] == label).map(|r| r[1].clone());
    assert_eq!(find("Verdict").as_deref(), Some("partiellement accepté"));
    assert_eq!(find("Caisse").as_deref(), Some("04 — Carsat Nord-Picardie"));
    assert_eq!(find("Canal").as_deref(), Some("dépôt"));
    assert_eq!(find("Reçu le (heure de Paris)").as_deref(), Some("25/11/2026 10:58:12"));
    assert_eq!(find("Lignes rejetées").as_deref(), Some("2"));
    assert_eq!(find("Heures acceptées").as_deref(), Some("17,50"));
    let head = rows.iter().position(|r| r[0] == "Code").unwrap();
    assert_eq!(
        rows[head],
        ["Code", "Libellé", "Niveau", "Ligne", "Ligne XML", "Champ", "Message"]
    );
    let table = &rows[head + 1..];
    assert_eq!(table.len(), 3);
    assert_eq!(
        table[2][..6],
        ["L08", "Période déjà facturée", "ligne", "3", "44", "dtd-interv"]
    );

    // Formula injection: every dangerous first character is neutralised.
    let mut v = partial();
    v.anomalies = ["=1+1", "+33", "-2", "@SUM(A1)", "\tx", "ok=1"]
        .iter()
        .enumerate()
        .map(|(i, m)| Anomaly::line(Code::L12, 1, 10 + i as u64, "nom-per", *m))
        .collect();
    v.header.rf_borfact = "=cmd|' /C calc'!A0".into();
    let p = write(d.path(), "guard.csv", &render_csv(&v, &meta()));
    let rows = python_csv_rows(&p);
    let messages: Vec<&str> = rows.iter().rev().take(6).rev().map(|r| r[6].as_str()).collect();
    assert_eq!(messages, ["'=1+1", "'+33", "'-2", "'@SUM(A1)", " x", "ok=1"]);
    assert_eq!(
        rows.iter().find(|r| r[0] == "Bordereau (rf-borfact)").unwrap()[1],
        "'=cmd|' /C calc'!A0"
    );

    // CRLF everywhere, no bare LF.
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
}

#[test]
fn pdf_report_extracts_with_accents_codes_messages_and_page_numbers() {
    assert!(have("pdftotext"), "pdftotext (poppler-utils) is required");
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "partial.pdf", &render_pdf(&partial(), &meta()).unwrap());
    let text = pdftotext(&p);
    for needle in [
        "Compte rendu de traitement",
        "04_251126_100_21999000.xml",
        "SAADNORD",
        "04 — Carsat Nord-Picardie",
        "21999000",
        "PPP100",
        "dépôt",
        "25/11/2026 10:58:12 (heure de Paris)",
        "25/11/2026 10:58:14 (heure de Paris)",
        "partiellement accepté",
        "Heures acceptées",
        "17,50",
        "Quantité invalide",
        "Date d'intervention invalide",
        "Période déjà facturée",
        "Ligne XML",
        "nb-quant",
        "dtf-interv",
        "« 2027-01-31 »",
        "Total : 3 anomalies (0 de fichier, 3 de ligne) ; 2 lignes rejetées sur 3 ; 17,50 heures acceptées.",
        "page 1 / 1",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    for code in ["L03", "L06", "L08"] {
        assert!(
            text.matches(code).count() >= 2,
            "{code} should be in the legend and the table:\n{text}"
        );
    }
    // Messages wrap inside their cell: every word is there, in order.
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Période déjà facturée et acceptée : même bénéficiaire, même prestation,"),
        "{flat}"
    );

    // The font is embedded and subset.
    let fonts = run(Command::new("pdffonts").arg(&p));
    assert!(fonts.contains("DejaVuSans"), "{fonts}");
    let embedded: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(
        !embedded.is_empty() && embedded.iter().all(|l| l.contains(" yes ")),
        "{fonts}"
    );
    assert!(
        embedded
            .iter()
            .all(|l| l.split_whitespace().next().unwrap_or("").contains('+')),
        "not subset: {fonts}"
    );
    let size = std::fs::metadata(&p).unwrap().len();
    assert!(size < 60_000, "PDF of {size} bytes: the font is not subset");
}

#[test]
fn long_pdf_repeats_the_table_header_and_numbers_every_page() {
    let d = tempfile::tempdir().unwrap();
    let mut v = partial();
    v.lines = 400;
    v.accepted_lines = 0;
    v.verdict = Verdict::Rejected;
    v.accepted_hours = Decimal::ZERO;
    v.anomalies = (1..=400u32)
        .map(|i| {
            let msg = if i % 7 == 0 {
                format!(
                    "Anomalie n°{i} : NIR « 15412999990{i:02} » invalide, {} (fin n°{i}).",
                    "très long commentaire ".repeat(12)
                )
            } else {
                format!("Anomalie n°{i} : NIR invalide (fin n°{i}).")
            };
            Anomaly::line(Code::L02, i, 10 * u64::from(i), "nir-per", msg)
        })
        .collect();
    let p = write(d.path(), "long.pdf", &render_pdf(&v, &meta()).unwrap());
    let pages = pdf_pages(&p);
    assert!(pages >= 8, "{pages} pages");
    for n in 1..=pages {
        let page = run(Command::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8", "-f", &n.to_string(), "-l", &n.to_string()])
            .arg(&p)
            .arg("-"));
        assert!(page.contains(&format!("page {n} / {pages}")), "page {n}:\n{page}");
        if n > 1 {
            assert!(
                page.contains("Ligne XML") && page.contains("Message"),
                "no table header on page {n}:\n{page}"
            );
        }
    }
    let flat: String = pdftotext(&p).split_whitespace().collect::<Vec<_>>().join(" ");
    for i in 1..=400 {
        assert!(flat.contains(&format!("(fin n°{i}).")), "anomaly {i} missing");
    }
    assert!(flat.contains("Total : 400 anomalies (0 de fichier, 400 de ligne) ; 400 lignes rejetées sur 400"));
}

#[test]
fn accepted_report_without_anomaly_in_every_form() {
    let d = tempfile::tempdir().unwrap();
    let v = accepted();
    let m = meta();
    let [xml_name, csv_name, pdf_name] = report_file_names(&v.file, 1);
    let xml = write(d.path(), &xml_name, &render_xml(&v, &m));
    let csv = write(d.path(), &csv_name, &render_csv(&v, &m));
    let pdf = write(d.path(), &pdf_name, &render_pdf(&v, &m).unwrap());
    assert_eq!(xml_name, "04_251126_100_21999000.report.xml");

    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(repo().join("schema/report.xsd"))
        .arg(&xml)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = xpath(&xml, "count(//anomalie)");
    assert_eq!(n, "0");

    let rows = python_csv_rows(&csv);
    assert_eq!(
        rows.last().unwrap()[0],
        "Code",
        "the table header ends an accepted report"
    );
    assert_eq!(rows.iter().find(|r| r[0] == "Verdict").unwrap()[1], "accepté");

    let text = pdftotext(&pdf);
    assert!(text.contains("accepté") && !text.contains("partiellement"), "{text}");
    assert!(
        text.contains("Aucune anomalie : toutes les lignes du fichier ont été transmises à la caisse."),
        "{text}"
    );
    assert!(text.contains("42,00") && text.contains("page 1 / 1"), "{text}");
}

#[test]
fn rejected_file_report_shows_file_anomalies() {
    let d = tempfile::tempdir().unwrap();
    let mut m = meta();
    m.caisse_name = None;
    let p = write(
        d.path(),
        "rejected.pdf",
        &render_pdf(&rejected_unreadable(), &m).unwrap(),
    );
    let text = pdftotext(&p);
    for needle in [
        "rejeté",
        "Le fichier est rejeté en entier",
        "Extension du fichier différente de .xml",
        "Fichier XML mal formé ou illisible",
        "relevé & <notes>.txt",
        "F01",
        "F03",
        "factbord",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }
}

/// The report of a file of visit attestations: same layout, counted in
/// attestations, no bordereau and no hours; valid against the same schema.
#[test]
fn an_attestation_report_counts_attestations_in_every_form() {
    let d = tempfile::tempdir().unwrap();
    let v = FileVerdict {
        file: "attestations-2026-11.xml".into(),
        verdict: Verdict::Partial,
        lines: 3,
        accepted_lines: 2,
        accepted_hours: Decimal::ZERO,
        header: Header::default(),
        footer: Footer::default(),
        anomalies: vec![Anomaly::line(
            Code::A06,
            2,
            17,
            "commentaire",
            "Le commentaire contient le signe €, qui n'est pas accepté.",
        )],
    };
    let mut m = meta();
    m.kind = FileKind::Attestations;
    m.provider = "ERGO62";
    let x = write(d.path(), "a.xml", &render_xml(&v, &m));
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(repo().join("schema/report.xsd"))
        .arg(&x)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(xpath(&x, "string(/compte-rendu/@type)"), "attestations");
    assert_eq!(xpath(&x, "count(//bordereau)"), "0");
    assert_eq!(xpath(&x, "count(//heures-acceptees)"), "0");
    assert_eq!(xpath(&x, "string(//anomalie/@niveau)"), "attestation");
    let c = write(d.path(), "a.csv", &render_csv(&v, &m));
    let rows = python_csv_rows(&c);
    let value = |label: &str| rows.iter().find(|r| r[0] == label).map(|r| r[1].clone());
    assert_eq!(value("Attestations acceptées").as_deref(), Some("2"));
    assert_eq!(value("Type de fichier").as_deref(), Some("attestations de visite"));
    assert_eq!(value("Heures acceptées"), None);
    assert!(rows.iter().any(|r| r[3] == "Attestation"), "{rows:?}");
    let p = write(d.path(), "a.pdf", &render_pdf(&v, &m).unwrap());
    let text = pdftotext(&p);
    for needle in [
        "Fichier d'attestations de visite",
        "Attestations trouvées",
        "A06",
        "signe €",
        "1 attestation rejetée sur 3",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }
    assert!(
        !text.contains("Heures acceptées") && !text.contains("Bordereau"),
        "{text}"
    );
}

/// 100 000 anomalies (a large file where every line is wrong) must still
/// render: many pages, in reasonable time. The time is printed for the
/// record; the bound only catches a pathological slowdown.
#[test]
fn hundred_thousand_anomalies_render() {
    let mut v = partial();
    v.lines = 50_000;
    v.accepted_lines = 0;
    v.verdict = Verdict::Rejected;
    v.anomalies = (1..=100_000u32)
        .map(|i| {
            let line = i.div_ceil(2);
            if i % 2 == 0 {
                Anomaly::line(
                    Code::L06,
                    line,
                    20 * u64::from(line) + 9,
                    "nb-quant",
                    format!("Quantité {i} supérieure au maximum mensuel de 30 heures (PPP100)."),
                )
            } else {
                Anomaly::line(
                    Code::L04,
                    line,
                    20 * u64::from(line) + 3,
                    "nir-per",
                    "Aucun plan d'aide pour ce bénéficiaire et cette prestation chez ce prestataire et cette caisse.",
                )
            }
        })
        .collect();
    let m = meta();
    let start = Instant::now();
    let xml = render_xml(&v, &m);
    let t_xml = start.elapsed();
    let csv = render_csv(&v, &m);
    let t_csv = start.elapsed() - t_xml;
    let pdf = render_pdf(&v, &m).unwrap();
    let t_pdf = start.elapsed() - t_xml - t_csv;
    eprintln!(
        "100 000 anomalies: xml {:?} ({} KB), csv {:?} ({} KB), pdf {:?} ({} KB)",
        t_xml,
        xml.len() / 1024,
        t_csv,
        csv.len() / 1024,
        t_pdf,
        pdf.len() / 1024
    );
    assert!(t_pdf.as_secs() < 300, "PDF took {t_pdf:?}");
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "big.pdf", &pdf);
    let pages = pdf_pages(&p);
    assert!(pages > 1000, "{pages} pages");
    let last = run(Command::new("pdftotext")
        .args([
            "-layout",
            "-enc",
            "UTF-8",
            "-f",
            &pages.to_string(),
            "-l",
            &pages.to_string(),
        ])
        .arg(&p)
        .arg("-"));
    assert!(last.contains(&format!("page {pages} / {pages}")), "{last}");
    assert!(last.contains("Total : 100000 anomalies"), "{last}");
}
