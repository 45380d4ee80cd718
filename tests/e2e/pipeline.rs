//! The billing pipeline as the caisse runs it: reference data imported by
//! the CLI, files dropped into `inbound/<provider>/` (temp name, then
//! renamed in), `validate`, `process --once` and `serve`; results read
//! back from the spool with real tools (xmllint, pdftotext) and from the
//! database. Each stateful control of spec §3 has its own test.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::pipeline_support::*;

/// `process --once`, asserting its exit code; returns stderr (the logs).
fn process(g: &Gw, code: i32) -> String {
    let out = g.process();
    assert_eq!(out.status.code(), Some(code), "process --once\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stderr)
}

/// The report of `bill` (the `n`-th of that name) for `provider`.
fn report(g: &Gw, provider: &str, bill: &Bill, n: u32) -> ReportSummary {
    read_report(&g.read(&report_rel(provider, bill, n, "xml")))
}

fn report_rel(provider: &str, bill: &Bill, n: u32, ext: &str) -> String {
    let stem = bill.rf_borfact();
    if n <= 1 {
        format!("outbound/{provider}/reports/{stem}.report.{ext}")
    } else {
        format!("outbound/{provider}/reports/{stem}.{n}.report.{ext}")
    }
}

fn outbox_rel(bill: &Bill) -> String {
    format!("outbox/{}/{}", bill.id_cram, bill.name())
}

/// Anomalies as ("code", line) with line 0 for a file anomaly.
fn codes(r: &ReportSummary) -> Vec<(&str, u32)> {
    r.anomalies.iter().map(|(c, l)| (c.as_str(), l.unwrap_or(0))).collect()
}

fn has(r: &ReportSummary, code: &str, line: u32) -> bool {
    codes(r).contains(&(code, line))
}

/// The NIRs and periods of an outbox file, in order.
fn outbox_lines(g: &Gw, bill: &Bill) -> Vec<OutLine> {
    let rel = outbox_rel(bill);
    xmllint_schema("FactficTrans.xsd", &g.path(&rel)).unwrap_or_else(|e| panic!("{rel} not valid: {e}"));
    read_outbox(&g.read(&rel)).0
}

fn line_of(l: &BLine) -> OutLine {
    (l.nir.clone(), l.dtd.clone(), l.dtf.clone(), l.nb_quant.clone())
}

/// Every file under the spool with its bytes (what "changes nothing" compares).
fn snapshot(g: &Gw) -> BTreeMap<String, Vec<u8>> {
    g.files("")
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(g.path(&f)).unwrap_or_default();
            (f, bytes)
        })
        .collect()
}

fn assert_no_nir(logs: &str, what: &str) {
    for nir in ALL_NIRS {
        assert!(!logs.contains(nir), "NIR {nir} in clear in the logs of {what}:\n{logs}");
    }
}

// ---------------------------------------------------------------------------
// 1. The whole scenario: two providers, validate, process, every output.
// ---------------------------------------------------------------------------

#[test]
fn two_providers_validate_then_process_every_output() {
    let g = Gw::with_cast();
    // saadA: two good lines and one for saadB's beneficiary (L04): partial.
    let a = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "12.5"),
        BLine::month(NIR_A5, SITE_A2, 2, "7.25").id_prest(SITE_A2),
        BLine::month(NIR_B1, SITE_A, 3, "3"),
    ]);
    // saadB: all good.
    let b = Bill::new(SITE_B, 3).lines([BLine::month(NIR_B1, SITE_B, 3, "10"), BLine::month(NIR_B1, SITE_B, 4, "11.75")]);
    let pa = g.drop_bill("saadA", &a);
    let pb = g.drop_bill("saadB", &b);

    // validate: the stateful verdict, and nothing changes.
    let before_files = snapshot(&g);
    let before_db = g.dump();
    let out = g.run(&["validate", "--json", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let verdicts: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    assert_eq!(verdicts.len(), 2);
    assert_eq!(verdicts[0]["file"], a.name());
    assert_eq!(verdicts[0]["verdict"], "partial");
    assert_eq!(verdicts[0]["lines"], 3);
    assert_eq!(verdicts[0]["accepted_lines"], 2);
    let an = verdicts[0]["anomalies"].as_array().unwrap();
    assert_eq!(an.len(), 1, "{an:?}");
    assert_eq!((an[0]["code"].as_str(), an[0]["line"].as_u64()), (Some("L04"), Some(3)));
    assert_eq!(verdicts[1]["verdict"], "accepted");
    assert_eq!(verdicts[1]["accepted_lines"], 2);
    // The same file seen as coming from saadB: not its site.
    let out = g.run(&["validate", "--json", "--provider", "saadB", pa.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["verdict"], "rejected");
    assert!(v["anomalies"].as_array().unwrap().iter().any(|a| a["code"] == "F12"), "{v}");
    assert_no_nir(&text(&out.stderr), "validate");
    assert_eq!(g.dump(), before_db, "validate changed the database");
    assert_eq!(snapshot(&g), before_files, "validate changed the spool");

    // process --once: exit 1 (one file partial).
    let logs = process(&g, 1);
    assert_no_nir(&logs, "process --once");

    // Outbox: one file per received file with accepted lines, valid, exactly those lines.
    assert_eq!(g.files("outbox"), vec![outbox_rel(&a), outbox_rel(&b)]);
    assert_eq!(outbox_lines(&g, &a), vec![line_of(&a.lines[0]), line_of(&a.lines[1])]);
    assert_eq!(outbox_lines(&g, &b), b.lines.iter().map(line_of).collect::<Vec<_>>());
    let (_, footer) = read_outbox(&g.read(&outbox_rel(&a)));
    assert_eq!(footer, ("2".to_string(), "19.75".to_string(), "0".to_string()));
    let (_, footer) = read_outbox(&g.read(&outbox_rel(&b)));
    assert_eq!(footer, ("2".to_string(), "21.75".to_string(), "0".to_string()));
    // The outbox keeps the header of the file it answers.
    assert!(g.read(&outbox_rel(&a)).contains(&format!("<rf-borfact>{}</rf-borfact>", a.rf_borfact())));

    // Reports: three forms each, in the sender's folder only.
    for (p, bill) in [("saadA", &a), ("saadB", &b)] {
        let xml = report_rel(p, bill, 1, "xml");
        xmllint_schema("report.xsd", &g.path(&xml)).unwrap_or_else(|e| panic!("{xml}: {e}"));
        let csv = std::fs::read(g.path(&report_rel(p, bill, 1, "csv"))).unwrap();
        assert!(csv.starts_with(b"\xEF\xBB\xBF"), "CSV without BOM");
        let csv = String::from_utf8(csv).expect("CSV in UTF-8");
        assert!(csv.lines().nth(1).is_some_and(|l| l.contains(';')), "CSV not ;-separated:\n{csv}");
        assert!(csv.contains(&bill.name()));
        let pdf = pdf_text(&g.path(&report_rel(p, bill, 1, "pdf")));
        assert!(pdf.contains(&bill.name()), "{pdf}");
    }
    let ra = report(&g, "saadA", &a, 1);
    assert_eq!((ra.verdict.as_str(), ra.lines, ra.accepted), ("partial", 3, 2));
    assert_eq!(codes(&ra), vec![("L04", 3)]);
    assert!(g.read(&report_rel("saadA", &a, 1, "csv")).contains("L04;"));
    assert!(pdf_text(&g.path(&report_rel("saadA", &a, 1, "pdf"))).contains("L04"));
    let rb = report(&g, "saadB", &b, 1);
    assert_eq!((rb.verdict.as_str(), rb.lines, rb.accepted), ("accepted", 2, 2));
    assert!(rb.anomalies.is_empty());
    // Per-provider isolation: each outbound folder holds its own reports only.
    let stems = |p: &str| g.files(&format!("outbound/{p}"));
    assert_eq!(stems("saadA").len(), 3);
    assert!(stems("saadA").iter().all(|f| f.contains(&a.rf_borfact())), "{:?}", stems("saadA"));
    assert_eq!(stems("saadB").len(), 3);
    assert!(stems("saadB").iter().all(|f| f.contains(&b.rf_borfact())), "{:?}", stems("saadB"));

    // E-mail: one notice for the report with anomalies, none for the clean one.
    let mails = g.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].is_about(&a.name()), "{:?}", mails[0]);
    assert_eq!(mails[0].to, "a@saada.example");
    assert!(mails[0].raw.contains("L04"));
    assert!(!mails.iter().any(|m| m.is_about(&b.name())));

    // Received files done, originals archived, inbound and work empty.
    let rows = g.rows("SELECT provider, name, state, verdict, lines, accepted_lines FROM received_files ORDER BY id");
    let mut rows = rows.into_iter().map(|r| r.join("|")).collect::<Vec<_>>();
    rows.sort();
    assert_eq!(
        rows,
        vec![format!("saadA|{}|done|partial|3|2", a.name()), format!("saadB|{}|done|accepted|2|2", b.name())]
    );
    assert!(g.files("inbound").is_empty(), "{:?}", g.files("inbound"));
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
    assert_eq!(g.files("archive").len(), 2);

    // History, read as the caisse IT team reads it: reception, verdict,
    // outbox, each report, the e-mail.
    let history = |filter: &[&str]| -> Vec<Value> {
        let mut args = vec!["history", "--from", "2026-11-20", "--to", "2026-11-20", "--format", "json", "--order", "asc"];
        args.extend_from_slice(filter);
        let out = g.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
    };
    let h = history(&[]);
    let count = |k: &str, p: &str| h.iter().filter(|e| e["kind"] == k && e["provider"] == p).count();
    for p in ["saadA", "saadB"] {
        assert_eq!(count("received", p), 1, "{h:?}");
        assert_eq!(count("processed", p), 1, "{h:?}");
        assert_eq!(count("outbox", p), 1, "{h:?}");
        assert_eq!(count("chargement", p), 3, "{h:?}");
    }
    assert_eq!(h.iter().filter(|e| e["kind"] == "mail").count(), 1, "{h:?}");
    let processed = h.iter().find(|e| e["kind"] == "processed" && e["provider"] == "saadA").unwrap();
    let comment = processed["comment"].as_str().unwrap();
    assert!(comment.contains(&a.name()) && comment.contains("partiellement"), "{processed}");
    // Spec §7: each entry carries the régime, the caisse and the convention.
    // Once the file's header is read, they are known: the entries of the
    // verdict, the outbox file and the reports carry them, and the history
    // can be filtered by convention.
    for e in h.iter().filter(|e| matches!(e["kind"].as_str(), Some("processed" | "outbox" | "chargement"))) {
        assert_eq!(e["id_cram"], "03", "caisse of {e}");
        assert_eq!(e["regime"], "Régime général", "régime of {e}");
        let conv = if e["provider"] == "saadA" { "C03A1" } else { "C03B1" };
        assert_eq!(e["convention"], conv, "convention of {e}");
    }
    let by_conv = history(&["--convention", "C03A1"]);
    let kinds: Vec<&str> = by_conv.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "chargement").count(), 3, "{by_conv:?}");
    assert!(kinds.contains(&"processed") && kinds.contains(&"outbox"), "{by_conv:?}");
}

// ---------------------------------------------------------------------------
// 2. One test per stateful control.
// ---------------------------------------------------------------------------

#[test]
fn f05_unknown_site_rejects_the_file() {
    let g = Gw::with_cast();
    let bill = Bill::new("21999999", 4).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("F05", 0)]);
    assert!(g.files("outbox").is_empty());
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 0);
}

#[test]
fn f06_unknown_caisse_or_no_convention_with_it() {
    let g = Gw::with_cast();
    // Caisse 98 does not exist.
    let unknown = Bill::new(SITE_A, 5).cram("98").line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &unknown);
    process(&g, 1);
    let r = report(&g, "saadA", &unknown, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F06", 0), "{r:?}");
    assert!(!codes(&r).iter().any(|(c, _)| matches!(*c, "F05" | "F12")), "{r:?}");
    // saadC holds a convention with caisse 04 only and bills caisse 03.
    let no_conv = Bill::new(SITE_C, 5).line(BLine::month(NIR_A1, SITE_C, 1, "5"));
    g.drop_bill("saadC", &no_conv);
    process(&g, 1);
    let r = report(&g, "saadC", &no_conv, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F06", 0), "{r:?}");
    assert!(!codes(&r).iter().any(|(c, _)| matches!(*c, "F05" | "F12")), "{r:?}");
    assert!(g.files("outbox").is_empty(), "{:?}", g.files("outbox"));
}

#[test]
fn f09_same_bytes_twice_gets_a_second_report() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 6).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 0);
    let first_report = g.read(&report_rel("saadA", &bill, 1, "xml"));
    let first_outbox = g.read(&outbox_rel(&bill));

    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r2 = report(&g, "saadA", &bill, 2);
    assert_eq!(r2.verdict, "rejected");
    assert!(has(&r2, "F09", 0), "{r2:?}");
    for ext in ["xml", "csv", "pdf"] {
        assert!(g.exists(&report_rel("saadA", &bill, 2, ext)), "second report .{ext}");
    }
    // The first report and the outbox file are untouched; no line doubled.
    assert_eq!(g.read(&report_rel("saadA", &bill, 1, "xml")), first_report);
    assert_eq!(g.read(&outbox_rel(&bill)), first_outbox);
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 1);
    // A third time: third report.
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    assert!(has(&report(&g, "saadA", &bill, 3), "F09", 0));
}

#[test]
fn f09_an_rf_borfact_with_transmitted_lines_cannot_be_sent_again() {
    let g = Gw::with_cast();
    // Partial: one line transmitted, one rejected (regularisation).
    let partial = Bill::new(SITE_A, 7).lines([BLine::month(NIR_A1, SITE_A, 1, "5"), BLine::month(NIR_A1, SITE_A, 2, "5").regul()]);
    g.drop_bill("saadA", &partial);
    process(&g, 1);
    assert_eq!(report(&g, "saadA", &partial, 1).verdict, "partial");
    // The "corrected" file (same rf-borfact, other bytes) is refused.
    let corrected = Bill::new(SITE_A, 7).line(BLine::month(NIR_A1, SITE_A, 2, "5"));
    g.drop_bill("saadA", &corrected);
    process(&g, 1);
    let r = report(&g, "saadA", &corrected, 2);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("F09", 0)]);
    assert_eq!(outbox_lines(&g, &partial), vec![line_of(&partial.lines[0])]);
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 1);
}

#[test]
fn f09_a_fully_rejected_rf_borfact_may_be_sent_again_corrected() {
    let g = Gw::with_cast();
    // Every line rejected (saadB's beneficiary, a regularisation).
    let bad = Bill::new(SITE_A, 8).lines([BLine::month(NIR_B1, SITE_A, 1, "5"), BLine::month(NIR_A1, SITE_A, 2, "6").regul()]);
    g.drop_bill("saadA", &bad);
    process(&g, 1);
    let r = report(&g, "saadA", &bad, 1);
    assert_eq!(r.verdict, "rejected");
    assert_eq!(codes(&r), vec![("L04", 1), ("L10", 2)]);
    assert!(!g.exists(&outbox_rel(&bad)));
    // A file rejected by a file anomaly (footer) also transmits nothing.
    let mut footer = Bill::new(SITE_A, 9).line(BLine::month(NIR_A1, SITE_A, 3, "4"));
    footer.nb_ligbor = Some("2".into());
    g.drop_bill("saadA", &footer);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &footer, 1)), vec![("F08", 0)]);

    // Both corrected and sent again under the same names: accepted.
    let good = Bill::new(SITE_A, 8).line(BLine::month(NIR_A1, SITE_A, 2, "6"));
    g.drop_bill("saadA", &good);
    let mut footer_ok = footer.clone();
    footer_ok.nb_ligbor = None;
    g.drop_bill("saadA", &footer_ok);
    process(&g, 0);
    for bill in [&good, &footer_ok] {
        let r = report(&g, "saadA", bill, 2);
        assert_eq!(r.verdict, "accepted", "{} {r:?}", bill.name());
        assert_eq!(outbox_lines(&g, bill), bill.lines.iter().map(line_of).collect::<Vec<_>>());
    }
}

#[test]
fn names_that_differ_only_by_extension_case_get_their_own_reports() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 28).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &bill);
    process(&g, 0);
    // The same rf-borfact again as `.XML` (F03 accepts any case), then the
    // same stem without extension: both map to the report stem of the first.
    let again = Bill::new(SITE_A, 28).line(BLine::month(NIR_A1, SITE_A, 2, "5"));
    g.drop_file("saadA", &format!("{}.XML", bill.rf_borfact()), again.xml().as_bytes());
    process(&g, 1);
    g.drop_file("saadA", &bill.rf_borfact(), again.xml().as_bytes());
    let other = Bill::new(SITE_A, 29).line(BLine::month(NIR_A1, SITE_A, 3, "5"));
    g.drop_bill("saadA", &other);
    process(&g, 1);
    let r2 = report(&g, "saadA", &bill, 2);
    assert_eq!(r2.verdict, "rejected");
    assert!(has(&r2, "F09", 0), "{r2:?}");
    let r3 = report(&g, "saadA", &bill, 3);
    assert!(has(&r3, "F03", 0) && has(&r3, "F09", 0), "{r3:?}");
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "accepted", "the first report is kept");
    assert_eq!(report(&g, "saadA", &other, 1).verdict, "accepted", "later files are not blocked");
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'"), 0);
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
}

#[test]
fn f12_a_site_of_another_provider_is_never_billed_for_the_sender() {
    let g = Gw::with_cast();
    // saadB drops a file of saadA's site into its own folder.
    let bill = Bill::new(SITE_A, 10).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadB", &bill);
    process(&g, 1);
    let r = report(&g, "saadB", &bill, 1);
    assert_eq!(r.verdict, "rejected");
    assert!(has(&r, "F12", 0), "{r:?}");
    assert!(!codes(&r).contains(&("F05", 0)));
    assert!(g.files("outbound/saadA").is_empty(), "saadA never sees saadB's report");
    assert!(g.files("outbox").is_empty());
    // The period was not taken: saadA bills it.
    let own = Bill::new(SITE_A, 11).line(BLine::month(NIR_A1, SITE_A, 1, "5"));
    g.drop_bill("saadA", &own);
    process(&g, 0);
    assert_eq!(report(&g, "saadA", &own, 1).verdict, "accepted");
}

#[test]
fn l04_no_plan_for_this_provider_and_prestation() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 12).lines([
        BLine::month(NIR_B1, SITE_A, 1, "5"),   // saadB's beneficiary
        BLine::month(NIR_NONE, SITE_A, 1, "5"), // nobody's
        BLine::month(NIR_A1, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &bill);
    // PPP119: NIR_A1 has a plan, NIR_A3 only a PPP100 one.
    let p119 = Bill::new(SITE_A, 12)
        .prest("PPP119")
        .lines([BLine::month(NIR_A3, SITE_A, 1, "5").prest("PPP119"), BLine::month(NIR_A1, SITE_A, 1, "40").prest("PPP119")]);
    g.drop_file("saadA", &p119.name(), p119.xml().as_bytes());
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!((r.verdict.as_str(), r.accepted), ("partial", 1));
    assert_eq!(codes(&r), vec![("L04", 1), ("L04", 2)]);
    let r = report(&g, "saadA", &p119, 1);
    assert_eq!((r.verdict.as_str(), r.accepted), ("partial", 1));
    assert_eq!(codes(&r), vec![("L04", 1)]);
    assert_eq!(outbox_lines(&g, &p119), vec![line_of(&p119.lines[1])]);
}

#[test]
fn l05_period_outside_the_plan() {
    let g = Gw::with_cast();
    // NIR_A3's plan runs from January to June.
    let bill = Bill::new(SITE_A, 13).lines([
        BLine::new(NIR_A3, SITE_A, "2026-06-15", "2026-07-15", "5"),
        BLine::month(NIR_A3, SITE_A, 10, "5"),
        BLine::month(NIR_A3, SITE_A, 3, "5"),
        BLine::new(NIR_A3, SITE_A, "2026-06-01", "2026-06-30", "5"),
    ]);
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(codes(&r), vec![("L05", 1), ("L05", 2)]);
    assert_eq!(outbox_lines(&g, &bill), vec![line_of(&bill.lines[2]), line_of(&bill.lines[3])]);
}

#[test]
fn l07_budget_is_consumed_across_lines_and_files_but_not_by_rejected_lines() {
    let g = Gw::with_cast();
    // NIR_A2: total 20, 4 consumed before the gateway: 16 left.
    // A file rejected as a whole (footer) consumes nothing.
    let mut rejected = Bill::new(SITE_A, 14).line(BLine::month(NIR_A2, SITE_A, 1, "16"));
    rejected.nb_ligbor = Some("3".into());
    g.drop_bill("saadA", &rejected);
    process(&g, 1);
    assert_eq!(report(&g, "saadA", &rejected, 1).verdict, "rejected");

    let first = Bill::new(SITE_A, 15).lines([
        BLine::month(NIR_A2, SITE_A, 1, "6"),         // 10 left
        BLine::month(NIR_A2, SITE_A, 2, "8"),         // 2 left
        BLine::month(NIR_A2, SITE_A, 3, "3"),         // L07: 3 > 2
        BLine::month(NIR_A2, SITE_A, 4, "1").regul(), // L10: consumes nothing
        BLine::month(NIR_A2, SITE_A, 5, "2"),         // exactly what is left
    ]);
    g.drop_bill("saadA", &first);
    process(&g, 1);
    let r = report(&g, "saadA", &first, 1);
    assert_eq!(codes(&r), vec![("L07", 3), ("L10", 4)]);
    assert_eq!(
        outbox_lines(&g, &first),
        vec![line_of(&first.lines[0]), line_of(&first.lines[1]), line_of(&first.lines[4])]
    );

    // A later file: nothing left for NIR_A2.
    let second = Bill::new(SITE_A, 16).lines([BLine::month(NIR_A2, SITE_A, 6, "0.5"), BLine::month(NIR_A1, SITE_A, 6, "30")]);
    let p = g.drop_bill("saadA", &second);
    let out = g.run(&["validate", "--json", p.to_str().unwrap()]);
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["anomalies"][0]["code"], "L07", "{v}");
    assert_eq!(v["anomalies"][0]["line"], 1, "{v}");
    process(&g, 1);
    let r = report(&g, "saadA", &second, 1);
    assert_eq!(codes(&r), vec![("L07", 1)]);
    assert_eq!(outbox_lines(&g, &second), vec![line_of(&second.lines[1])]);
}

#[test]
fn l08_overlap_within_a_file_and_with_earlier_files_but_not_with_rejected_lines() {
    let g = Gw::with_cast();
    let first = Bill::new(SITE_A, 17).lines([
        BLine::month(NIR_A1, SITE_A, 10, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-10-15", "2026-10-31", "2"), // L08 in the file
        BLine::month(NIR_A1, SITE_A, 9, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-08-01", "2026-08-15", "3").regul(), // rejected: blocks nothing
        BLine::new(NIR_A1, SITE_A, "2026-08-10", "2026-08-20", "3"),
    ]);
    g.drop_bill("saadA", &first);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &first, 1)), vec![("L08", 2), ("L10", 4)]);
    assert_eq!(
        outbox_lines(&g, &first),
        vec![line_of(&first.lines[0]), line_of(&first.lines[2]), line_of(&first.lines[4])]
    );

    let second = Bill::new(SITE_A, 18).lines([
        BLine::new(NIR_A1, SITE_A, "2026-09-30", "2026-09-30", "1"), // one common day
        BLine::month(NIR_A1, SITE_A, 10, "1"),                       // identical period, other amount
        BLine::month(NIR_A1, SITE_A, 7, "10"),
        BLine::new(NIR_A1, SITE_A, "2026-08-21", "2026-08-31", "2"), // touches, does not overlap
    ]);
    g.drop_bill("saadA", &second);
    // Another prestation for the same NIR and period is not an overlap.
    let p119 = Bill::new(SITE_A, 18).prest("PPP119").line(BLine::month(NIR_A1, SITE_A, 10, "10").prest("PPP119"));
    g.drop_bill("saadA", &p119);
    process(&g, 1);
    assert_eq!(codes(&report(&g, "saadA", &second, 1)), vec![("L08", 1), ("L08", 2)]);
    assert_eq!(outbox_lines(&g, &second), vec![line_of(&second.lines[2]), line_of(&second.lines[3])]);
    assert_eq!(report(&g, "saadA", &p119, 1).verdict, "accepted");
}

#[test]
fn l11_intervening_site_must_belong_to_the_sender() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 19).lines([
        BLine::month(NIR_A1, SITE_B, 1, "5"),      // saadB's site
        BLine::month(NIR_A1, "99999999", 2, "5"),  // nobody's site
        BLine::month(NIR_A1, SITE_A2, 3, "5"),     // saadA's other site
        BLine::month(NIR_A5, SITE_A, 3, "5"),      // plan at the other site, billed from this one
    ]);
    g.drop_bill("saadA", &bill);
    process(&g, 1);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(codes(&r), vec![("L11", 1), ("L11", 2)]);
    assert_eq!(outbox_lines(&g, &bill), vec![line_of(&bill.lines[2]), line_of(&bill.lines[3])]);
}

// ---------------------------------------------------------------------------
// 3. Reference data dropped by the caisse.
// ---------------------------------------------------------------------------

#[test]
fn caisse_drops_are_applied_whole_or_refused_whole() {
    let g = Gw::new();
    // A good providers file, then beneficiaries: both applied, in that order.
    let drop = |kind: &str, name: &str, body: &str| {
        let dir = g.path(&format!("caisse/inbound/{kind}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!(".{name}")), body).unwrap();
        std::fs::rename(dir.join(format!(".{name}")), dir.join(name)).unwrap();
    };
    drop("providers", "prestataires.csv", &providers_csv());
    drop("beneficiaries", "plans.csv", &beneficiaries_csv());
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM conventions"), 4);
    assert_eq!(g.count("SELECT COUNT(*) FROM plans"), PLANS.len() as i64);
    assert!(g.files("caisse/inbound").is_empty(), "{:?}", g.files("caisse/inbound"));
    let archived = g.files("archive/caisse");
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert!(archived.iter().any(|f| f.starts_with("archive/caisse/providers/") && f.ends_with("prestataires.csv")));
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'import'"), 2);

    // A bad file: moved to rejected/ with every bad row named, nothing applied.
    let before = g.dump();
    let mut bad = providers_csv();
    bad.push_str(&format!("saadD;D;{};d@saadd.example;03 80 00 00 04;saad;03;C03D1;21400001\n", siret(4)));
    bad.push_str("saad E;E;12345678901234;e@@x;0380;aide;99;C;21500001\n");
    bad.push_str(&format!("saadF;F;{};f@saadf.example;03 80 00 00 06;saad;03;C03F1\n", siret(6)));
    drop("providers", "bad.csv", &bad);
    let out = g.process();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 refusé"), "{}", text(&out.stdout));
    assert!(!g.exists("caisse/inbound/providers/bad.csv"));
    assert!(g.exists("caisse/inbound/providers/rejected/bad.csv"));
    let errors = g.read("caisse/inbound/providers/rejected/bad.csv.errors.txt");
    for needle in ["line 7: column provider", "line 7: column siret", "line 7: column email", "line 7: column telephone", "line 7: column type", "line 7: column id-cram", "line 8: has 8 cells"] {
        assert!(errors.contains(needle), "missing {needle:?} in:\n{errors}");
    }
    assert!(!errors.contains("line 6"), "the good row is not named:\n{errors}");
    assert_eq!(g.dump().get("conventions"), before.get("conventions"), "nothing applied");
    assert_eq!(g.dump().get("providers"), before.get("providers"), "nothing applied");
}

// ---------------------------------------------------------------------------
// 4. Temp names are left alone until renamed.
// ---------------------------------------------------------------------------

#[test]
fn temp_names_wait_until_renamed() {
    let g = Gw::with_cast();
    let bills: Vec<Bill> = (20..25).map(|d| Bill::new(SITE_A, d).line(BLine::month(NIR_A1, SITE_A, d - 19, "1"))).collect();
    let temp_names: Vec<String> = vec![
        format!(".{}", bills[0].name()),
        format!("~{}", bills[1].name()),
        format!("{}.part", bills[2].name()),
        format!("{}.tmp", bills[3].name()),
        format!("{}.filepart", bills[4].name()),
    ];
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    for (b, t) in bills.iter().zip(&temp_names) {
        std::fs::write(dir.join(t), b.xml()).unwrap();
    }
    // Caisse folders too.
    std::fs::create_dir_all(g.path("caisse/inbound/providers")).unwrap();
    std::fs::write(g.path("caisse/inbound/providers/providers.csv.part"), "provider\n").unwrap();
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files"), 0);
    let mut left: Vec<String> = g.files("inbound/saadA");
    left.sort();
    let mut expected: Vec<String> = temp_names.iter().map(|t| format!("inbound/saadA/{t}")).collect();
    expected.sort();
    assert_eq!(left, expected);
    assert!(g.exists("caisse/inbound/providers/providers.csv.part"));
    assert_eq!(g.count("SELECT COUNT(*) FROM caisse_imports"), 0);

    for (b, t) in bills.iter().zip(&temp_names) {
        std::fs::rename(dir.join(t), dir.join(b.name())).unwrap();
    }
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done' AND verdict = 'accepted'"), 5);
    assert!(g.files("inbound/saadA").is_empty());
}

// ---------------------------------------------------------------------------
// 5. serve.
// ---------------------------------------------------------------------------

/// When the log line with `message` about `file` was written (the log's own
/// timestamp, RFC 3339 at the start of the line, colours stripped).
fn log_time(logs: &str, message: &str, file: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    logs.lines().find_map(|l| {
        let plain = strip_ansi(l);
        if !(plain.contains(message) && plain.contains(file)) {
            return None;
        }
        let stamp = plain.split_whitespace().next()?;
        chrono::DateTime::parse_from_rfc3339(stamp).ok().map(|t| t.with_timezone(&chrono::Utc))
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn serve_processes_drops_refuses_a_second_instance_and_stops_on_sigterm() {
    let g = Gw::with_cast();
    // Present before start.
    let early = Bill::new(SITE_A, 25).lines([BLine::month(NIR_A1, SITE_A, 1, "5"), BLine::month(NIR_NONE, SITE_A, 1, "5")]);
    g.drop_bill("saadA", &early);
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "file present at start", || g.exists(&report_rel("saadA", &early, 1, "pdf")));

    // Dropped while running (written under a temp name, renamed in). The
    // daemon must take it at once (the rename is an event): measured from
    // its own log, so that a loaded machine slowing the processing itself
    // (fsyncs, a debug build) does not blur what is under test.
    let late = Bill::new(SITE_B, 26).line(BLine::month(NIR_B1, SITE_B, 2, "5"));
    let dropped_at = chrono::Utc::now();
    g.drop_bill("saadB", &late);
    let took = wait_for(Duration::from_secs(10), "file dropped while running", || g.exists(&report_rel("saadB", &late, 1, "pdf")));
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let taken_at = log_time(&logs, "file received", &late.name()).unwrap_or_else(|| panic!("no reception logged:\n{logs}"));
    let pickup = (taken_at - dropped_at).to_std().unwrap_or_default();
    eprintln!("serve: dropped file taken after {pickup:?}, outputs written after {took:?}");
    assert!(pickup < Duration::from_millis(1000), "a dropped file was taken after {pickup:?}; logs:\n{logs}");
    assert_eq!(report(&g, "saadB", &late, 1).verdict, "accepted");
    assert_eq!(outbox_lines(&g, &late), vec![line_of(&late.lines[0])]);
    // The mail worker sends the notice of the partial file.
    wait_for(Duration::from_secs(10), "e-mail notice", || g.mails().iter().any(|m| m.is_about(&early.name())));

    // A second processing instance is refused while serve holds the spool.
    let out = g.process();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("lock"), "{}", text(&out.stderr));

    let (code, took) = d.terminate();
    assert_eq!(code, Some(0), "serve exit code; logs:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_no_nir(&logs, "serve");
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'"), 2);
    assert!(g.files("inbound").is_empty() && g.files("work").is_empty());
    // Once it is stopped, process --once may run (and finds nothing).
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

// ---------------------------------------------------------------------------
// 7. No NIR in the logs, even at debug level and with anomalies about NIRs.
// ---------------------------------------------------------------------------

#[test]
fn logs_never_show_a_nir_even_at_debug_level() {
    let g = Gw::new_with("\n[log]\nlevel = \"debug\"\n");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let mut bad_nir = BLine::month(NIR_A1, SITE_A, 4, "1");
    bad_nir.nir = format!("{NIR_A1}9"); // L02, and the value echoed nowhere in the logs
    let bill = Bill::new(SITE_A, 27).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 2, "5"),
        BLine::month(NIR_A2, SITE_A, 3, "30"),
        bad_nir,
    ]);
    let p = g.drop_bill("saadA", &bill);
    let out = g.run(&["validate", p.to_str().unwrap()]);
    assert_no_nir(&text(&out.stderr), "validate");
    let logs = process(&g, 1);
    assert_no_nir(&logs, "process --once at debug level");
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "partial");
    let mut f = std::fs::File::open(g.path(&report_rel("saadA", &bill, 1, "xml"))).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert!(s.contains("L02") && s.contains("L08") && s.contains("L04") && s.contains("L07"), "{s}");
}

#[test]
fn serve_never_takes_a_file_still_open_for_writing() {
    use std::io::Write;
    let g = Gw::with_cast();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    // A provider's program writes the file in place, slowly: it stalls
    // half-way for longer than a rescan and than the settle delay.
    let bill = Bill::new(SITE_A, 30).lines((1..=6).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    let xml = bill.xml();
    let (head, tail) = xml.split_at(xml.len() / 2);
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join(bill.name())).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    // Absence cannot be polled for: wait past three rescans (1 s) and the
    // 2 s settle delay of files seen only by a rescan.
    std::thread::sleep(Duration::from_millis(3500));
    let taken = g.count("SELECT COUNT(*) FROM received_files");
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    wait_for(Duration::from_secs(10), "file processed once closed", || g.exists(&report_rel("saadA", &bill, 1, "xml")));
    let r = report(&g, "saadA", &bill, 1);
    let _ = d.terminate();
    assert_eq!(taken, 0, "the file was taken while still open for writing");
    assert_eq!(r.verdict, "accepted", "{r:?}");
}

#[test]
fn process_once_never_takes_a_file_still_open_for_writing() {
    use std::io::Write;
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 30).lines((1..=6).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    let xml = bill.xml();
    let (head, tail) = xml.split_at(xml.len() / 2);
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    // cron fires while a provider's program is writing the file in place.
    let mut f = std::fs::File::create(dir.join(bill.name())).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files"), 0, "taken while still open for writing");
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    process(&g, 0);
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "accepted");
}

#[test]
fn a_caisse_file_still_open_for_writing_is_not_applied_in_part() {
    use std::io::Write;
    let g = Gw::new();
    g.import("providers", &providers_csv());
    let csv = beneficiaries_csv();
    // Cut after the third row: what is written so far is a valid file.
    let cut = csv.match_indices('\n').nth(3).map(|(i, _)| i + 1).unwrap();
    let dir = g.path("caisse/inbound/beneficiaries");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join("plans.csv")).unwrap();
    f.write_all(&csv.as_bytes()[..cut]).unwrap();
    f.flush().unwrap();
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM plans"), 0, "a file still being written was applied in part");
    f.write_all(&csv.as_bytes()[cut..]).unwrap();
    drop(f);
    process(&g, 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM plans"), PLANS.len() as i64);
}
