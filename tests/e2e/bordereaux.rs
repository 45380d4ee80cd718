//! What the payment chain returns, as the caisse runs it: payments imported
//! by the CLI or dropped into `caisse/inbound/payments/` (bad rows named,
//! nothing applied), `run bordereaux` under `PPAS_GATEWAY_NOW` on both
//! sides of the payment date + 48 hours and twice at the same instant, the
//! statements read back (xmllint against `schema/bordereau.xsd`, pdftotext
//! with French amounts, the CSV as a spreadsheet), a statement completed
//! later published as a new edition; report anomalies routed to the
//! provider that sent the billing file, and to it only.

use crate::habitat::{expect, import_bytes, read_listing_csv, run_at};
use crate::pipeline_support::*;

const P_HEADER: &str = "rf-paiement;dt-paiement;id-cram;code-convention;rf-facture;nir-per;nom-per;pn-per;rf-prstpap;dtd-interv;dtf-interv;nb-quant;mt-paye\n";
const RA_HEADER: &str = "rf-facture;nir-per;dtd-interv;dtf-interv;code;motif\n";

/// Paid on 19 November 2026 (the tests' clock is the 20th): due on 21
/// November at 00:00 in Paris.
const RF: &str = "VIR-2026-1119";
const BEFORE: &str = "2026-11-20T23:59:59+01:00";
const DUE: &str = "2026-11-21T00:00:00+01:00";
const STEM_A: &str = "bordereau-C03A1-VIR-2026-1119";
const STEM_B: &str = "bordereau-C03B1-VIR-2026-1119";

fn payments(rows: &[String]) -> String {
    let mut s = P_HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

fn row(conv: &str, facture: &str, nir: &str, m: u32, quant: &str, paid: &str) -> String {
    format!("{RF};19/11/2026;03;{conv};{facture};{nir};NOM;Prenom;PPP100;2026-{m:02}-01;2026-{m:02}-28;{quant};{paid}")
}

/// saadA: two lines (1 234,50 € and 80,10 €); saadB: one line.
fn good() -> Vec<String> {
    vec![
        row("C03A1", "03_151026_100_21100001", NIR_A1, 9, "10", "1234,50"),
        row("C03A1", "03_151026_100_21100001", NIR_A2, 9, "2.5", "80.10"),
        row("C03B1", "03_151026_100_21200001", NIR_B1, 9, "4", "96"),
    ]
}

fn bordereaux(g: &Gw, now: &str) -> String {
    let out = run_at(g, now, &["run", "bordereaux"]);
    expect(&out, 0);
    text(&out.stdout)
}

/// pdftotext's text with no-break spaces as plain spaces.
fn pdf(g: &Gw, rel: &str) -> String {
    pdf_text(&g.path(rel)).replace(['\u{a0}', '\u{202f}'], " ")
}

fn mails_about(g: &Gw, needle: &str) -> Vec<Mail> {
    expect(&run_at(g, "2027-01-01T00:00:00+01:00", &["run", "mail"]), 0);
    g.mails().into_iter().filter(|m| m.raw.contains(needle)).collect()
}

#[test]
fn bad_payment_rows_are_all_named_and_nothing_is_applied() {
    let g = Gw::with_cast();
    let mut rows = good();
    rows.push(row("C03X9", "F1", NIR_A1, 9, "1", "10"));
    rows.push(format!(
        "{RF};2026-11-21;99;C03A1;;1234;NOM;Prenom;PPP100;2026-09-01;2026-08-31;1e3;12.345"
    ));
    rows.push(row("C03A1", "03_151026_100_21100001", NIR_A1, 9, "10", "1234,50"));
    let out = import_bytes(&g, "payments", "paiements.csv", payments(&rows).as_bytes());
    expect(&out, 2);
    let err = text(&out.stderr);
    for needle in [
        "payments file paiements.csv: 8 problems found, nothing applied",
        "line 5: column code-convention: C03X9 is not a validated convention of caisse 03",
        "line 6: column id-cram: \"99\" is not a known caisse id-cram",
        "line 6: column rf-facture: must not be empty",
        "line 6: column nir-per: must be 13 characters",
        "line 6: column dtf-interv: 2026-08-31 is before the start of the period (2026-09-01)",
        "line 6: column nb-quant: \"1e3\" is not a decimal number",
        "line 6: column mt-paye: \"12.345\" has more than 2 decimals",
        "line 7: same rf-paiement, rf-facture, nir-per and dtd-interv as line 2",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    for nir in ALL_NIRS {
        assert!(!err.contains(nir), "a NIR in the error:\n{err}");
    }
    assert_eq!(g.count("SELECT COUNT(*) FROM statements"), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM payments"), 0);
    // The same file dropped into caisse/inbound/payments/: refused whole.
    let dir = g.path("caisse/inbound/payments");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".p.csv"), payments(&rows)).unwrap();
    std::fs::rename(dir.join(".p.csv"), dir.join("p.csv")).unwrap();
    let out = g.process();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let errors = g.read("caisse/inbound/payments/rejected/p.csv.errors.txt");
    assert!(errors.contains("line 5: column code-convention"), "{errors}");
    assert_eq!(g.count("SELECT COUNT(*) FROM payments"), 0);
}

#[test]
fn statements_are_published_48_hours_after_the_payment_date_once() {
    let g = Gw::with_cast();
    // Dropped into the caisse's folder, taken by process --once.
    let dir = g.path("caisse/inbound/payments");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".paiements.csv"), payments(&good())).unwrap();
    std::fs::rename(dir.join(".paiements.csv"), dir.join("paiements.csv")).unwrap();
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(g.count("SELECT COUNT(*) FROM statements"), 2);
    assert!(g.files("caisse/inbound/payments").is_empty());

    // One second before the 48 hours: nothing.
    let out = bordereaux(&g, BEFORE);
    assert!(out.starts_with("bordereaux : 0 bordereau(x) publié(s)"), "{out}");
    assert!(g.files("outbound/saadA/bordereaux").is_empty());

    // At the instant: one statement per convention, in its provider's folder.
    let out = bordereaux(&g, DUE);
    assert!(
        out.starts_with("bordereaux : 2 bordereau(x) publié(s), 2 e-mail(s) mis en file"),
        "{out}"
    );
    let a: Vec<String> = ["csv", "pdf", "xml"]
        .iter()
        .map(|e| format!("outbound/saadA/bordereaux/{STEM_A}.{e}"))
        .collect();
    assert_eq!(g.files("outbound/saadA/bordereaux"), a);
    assert_eq!(
        g.files("outbound/saadB/bordereaux"),
        ["csv", "pdf", "xml"].map(|e| format!("outbound/saadB/bordereaux/{STEM_B}.{e}"))
    );
    assert!(g.files("outbound/saadC/bordereaux").is_empty());

    // Twice at the same instant, once more later: published once, mailed once.
    let first: Vec<Vec<u8>> = a.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();
    let out = bordereaux(&g, DUE);
    assert!(
        out.starts_with("bordereaux : 0 bordereau(x) publié(s), 0 e-mail(s)"),
        "{out}"
    );
    bordereaux(&g, "2026-12-01T08:00:00+01:00");
    let again: Vec<Vec<u8>> = a.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();
    assert_eq!(first, again);
    let mails = mails_about(&g, "VIR-2026-1119");
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails.iter().any(|m| m.to.contains("a@saada.example")));
    assert!(mails.iter().any(|m| m.to.contains("b@saadb.example")));
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE kind = 'chargement' AND interface = 'bordereaux'"),
        2
    );

    // The XML against its schema.
    for f in [
        format!("outbound/saadA/bordereaux/{STEM_A}.xml"),
        format!("outbound/saadB/bordereaux/{STEM_B}.xml"),
    ] {
        xmllint_schema("bordereau.xsd", &g.path(&f)).unwrap_or_else(|e| panic!("{f}: {e}\n{}", g.read(&f)));
    }
    let xml = g.read(&format!("outbound/saadA/bordereaux/{STEM_A}.xml"));
    assert!(xml.contains("<mt-paye>1234.50</mt-paye>"), "{xml}");
    assert!(xml.contains("<dt-paiement>2026-11-19</dt-paiement>"), "{xml}");

    // The PDF as read: convention, date, reference, each line, the total, in French.
    let text = pdf(&g, &format!("outbound/saadA/bordereaux/{STEM_A}.pdf"));
    for needle in [
        "Bordereau de paiement",
        "Code convention",
        "C03A1",
        "Date du paiement",
        "19/11/2026",
        "Référence du paiement",
        "VIR-2026-1119",
        "Carsat Bourgogne et Franche-Comté",
        NIR_A1,
        NIR_A2,
        "1 234,50 €",
        "80,10 €",
        "1 314,60 €",
        "du 01/09/2026",
        "au 28/09/2026",
        "page 1 / 1",
    ] {
        assert!(text.contains(needle), "{needle:?} not in the PDF:\n{text}");
    }
    assert!(!text.contains("1234,50") && !text.contains("1234.50"), "{text}");
    // As copied from the PDF: plain spaces, the amount on one line.
    let raw = pdf_text(&g.path(&format!("outbound/saadA/bordereaux/{STEM_A}.pdf")));
    assert!(raw.contains("1 234,50 €") && raw.contains("1 314,60 €"), "{raw}");

    // The CSV as a spreadsheet reads it.
    let rows = read_listing_csv(&std::fs::read(g.path(&format!("outbound/saadA/bordereaux/{STEM_A}.csv"))).unwrap());
    assert!(rows.iter().all(|r| r.len() == 9), "{rows:?}");
    let value = |label: &str| {
        rows.iter()
            .find(|r| r[0] == label)
            .unwrap_or_else(|| panic!("{label} in {rows:?}"))[1]
            .clone()
    };
    assert_eq!(value("Code convention"), "C03A1");
    assert_eq!(value("Date du paiement"), "19/11/2026");
    assert_eq!(value("Référence du paiement"), RF);
    assert_eq!(value("Montant total payé (euros)"), "1 314,60");
    let header = rows
        .iter()
        .position(|r| r[0] == "Référence facture")
        .expect("table header");
    assert_eq!(
        rows[header + 1],
        [
            "03_151026_100_21100001",
            NIR_A1,
            "NOM",
            "Prenom",
            "PPP100",
            "01/09/2026",
            "28/09/2026",
            "10,00",
            "1 234,50"
        ]
    );
    assert_eq!(rows.len(), header + 3);
}

#[test]
fn a_statement_completed_later_is_published_again_under_new_names() {
    let g = Gw::with_cast();
    g.import("payments", &payments(&good()[..1]));
    bordereaux(&g, DUE);
    let rel = |e: &str| format!("outbound/saadA/bordereaux/{STEM_A}.{e}");
    let first: Vec<Vec<u8>> = ["pdf", "xml", "csv"]
        .iter()
        .map(|e| std::fs::read(g.path(&rel(e))).unwrap())
        .collect();

    g.import("payments", &payments(&good()));
    let out = bordereaux(&g, "2026-11-21T09:00:00+01:00");
    assert!(
        out.starts_with("bordereaux : 2 bordereau(x) publié(s)"),
        "saadA's second edition, saadB's first: {out}"
    );
    let second = |e: &str| format!("outbound/saadA/bordereaux/{STEM_A}.2.{e}");
    for e in ["pdf", "xml", "csv"] {
        assert!(g.exists(&second(e)), "{e}");
    }
    for (e, bytes) in ["pdf", "xml", "csv"].iter().zip(&first) {
        assert_eq!(
            &std::fs::read(g.path(&rel(e))).unwrap(),
            bytes,
            "{e}: a published file is never replaced"
        );
    }
    xmllint_schema("bordereau.xsd", &g.path(&second("xml"))).unwrap();
    let xml = g.read(&second("xml"));
    assert!(
        xml.contains("edition=\"2\"") && xml.contains("<paiements nombre=\"2\">"),
        "{xml}"
    );
    assert!(pdf(&g, &second("pdf")).contains("Édition 2"));
    let mails = mails_about(&g, "VIR-2026-1119");
    assert_eq!(mails.iter().filter(|m| m.to.contains("a@saada.example")).count(), 2);
}

#[test]
fn the_job_waits_for_the_spool_lock() {
    let g = Gw::with_cast();
    g.import("payments", &payments(&good()));
    let lock = ppas_gateway::pipeline::SpoolLock::try_acquire(&g.path("state/gateway.lock"))
        .unwrap()
        .expect("lock");
    let out = run_at(&g, DUE, &["run", "bordereaux"]);
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains("another ppas-gateway instance is processing this spool"),
        "{}",
        text(&out.stderr)
    );
    drop(lock);
    assert!(bordereaux(&g, DUE).starts_with("bordereaux : 2 "));
}

/// A gateway with an accepted billing file from saadA (two lines) and one
/// from saadB.
fn billed() -> (Gw, Bill, Bill) {
    let g = Gw::with_cast();
    let a = Bill::new(SITE_A, 15)
        .line(BLine::month(NIR_A1, SITE_A, 9, "10"))
        .line(BLine::month(NIR_A2, SITE_A, 9, "5"));
    let b = Bill::new(SITE_B, 15).line(BLine::month(NIR_B1, SITE_B, 9, "10"));
    g.drop_bill("saadA", &a);
    g.drop_bill("saadB", &b);
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    (g, a, b)
}

#[test]
fn report_anomalies_go_to_the_provider_that_sent_the_file_only() {
    let (g, a, b) = billed();
    let rf = a.rf_borfact();
    // Bad rows: an unknown file, a line never transmitted, a wrong period end.
    let bad = format!(
        "{RA_HEADER}{rf};{NIR_A2};2026-09-01;2026-09-30;R12;Bénéficiaire décédé\n\
         03_010126_100_21100001;{NIR_A1};2026-09-01;2026-09-30;R03;x\n\
         {rf};{NIR_B1};2026-09-01;2026-09-30;R03;x\n\
         {rf};{NIR_A1};01/09/2026;29/09/2026;R03;x\n"
    );
    let out = import_bytes(&g, "report-anomalies", "rejets.csv", bad.as_bytes());
    expect(&out, 2);
    let err = text(&out.stderr);
    for needle in [
        "line 3: column rf-facture: no billing file 03_010126_100_21100001 with lines transmitted",
        &format!("line 4: billing file {rf} has no transmitted line for this nir-per starting on 2026-09-01"),
        &format!("line 5: column dtf-interv: line 1 of billing file {rf} (this nir-per, from 2026-09-01) ends on 2026-09-30, not 2026-09-29"),
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("line 2"), "{err}");
    assert_eq!(g.count("SELECT COUNT(*) FROM anomaly_reports"), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM report_anomalies"), 0);
    assert!(!g.files("outbound").iter().any(|f| f.contains("anomalies")));

    let good = format!("{RA_HEADER}{rf};{NIR_A2};2026-09-01;2026-09-30;R12;Bénéficiaire décédé avant la période\n");
    let out = import_bytes(&g, "report-anomalies", "rejets.csv", good.as_bytes());
    expect(&out, 0);
    let stem = format!("{rf}.anomalies-report.1");
    let files: Vec<String> = g
        .files("outbound")
        .into_iter()
        .filter(|f| f.contains("anomalies-report"))
        .collect();
    assert_eq!(
        files,
        ["csv", "pdf", "xml"].map(|e| format!("outbound/saadA/reports/{stem}.{e}")),
        "saadA's only"
    );
    assert!(!g
        .files("outbound/saadB")
        .iter()
        .any(|f| f.contains(&b.rf_borfact()) && f.contains("anomalies")));

    let xml_rel = format!("outbound/saadA/reports/{stem}.xml");
    xmllint_schema("anomalies-report.xsd", &g.path(&xml_rel)).unwrap_or_else(|e| panic!("{e}\n{}", g.read(&xml_rel)));
    let xml = g.read(&xml_rel);
    assert!(xml.contains(&format!("<nom>{}</nom>", a.name())), "{xml}");
    assert!(xml.contains("<ligne>2</ligne>"), "{xml}");
    let text = pdf(&g, &format!("outbound/saadA/reports/{stem}.pdf"));
    for needle in [
        "Anomalies de report",
        &a.name(),
        NIR_A2,
        "R12",
        "Bénéficiaire décédé avant la période",
        "du 01/09/2026",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let rows = read_listing_csv(&std::fs::read(g.path(&format!("outbound/saadA/reports/{stem}.csv"))).unwrap());
    assert!(rows.iter().all(|r| r.len() == 8), "{rows:?}");
    let header = rows.iter().position(|r| r[0] == "Ligne").expect("table header");
    assert_eq!(
        rows[header + 1],
        [
            "2",
            NIR_A2,
            "NOM",
            "Prenom",
            "01/09/2026",
            "30/09/2026",
            "R12",
            "Bénéficiaire décédé avant la période"
        ]
    );

    let mails = mails_about(&g, "anomalies de report");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].to.contains("a@saada.example"), "{:?}", mails[0]);
    assert_eq!(
        g.rows("SELECT provider FROM history WHERE kind = 'chargement' AND interface = 'anomalies-de-report'"),
        [["saadA"]]
    );

    // The same file again: nothing new, no second report.
    let out = import_bytes(&g, "report-anomalies", "rejets.csv", good.as_bytes());
    expect(&out, 0);
    assert!(text_of(&out).contains("nothing new to report"), "{}", text_of(&out));
    assert_eq!(
        g.files("outbound/saadA/reports")
            .iter()
            .filter(|f| f.contains("anomalies"))
            .count(),
        3
    );
}

fn text_of(out: &std::process::Output) -> String {
    text(&out.stdout)
}
