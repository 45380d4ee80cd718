//! The billing pipeline as the caisse runs it: reference data imported by
//! the CLI, files dropped into `inbound/<provider>/` (temp name, then
//! renamed in), `validate`, `process --once` and `serve`; results read
//! back from the spool with real tools (xmllint, pdftotext) and from the
//! database. This file holds the whole scenario; the stateful controls,
//! the drop-folder rules and `serve` have their own files below it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::pipeline_support::*;

mod controls;
mod drops;
mod outbox_once;
mod quarantine;
mod reload;
mod serve;
mod watchdog;
mod writers;

/// `process --once`, asserting its exit code; returns stderr (the logs).
fn process(g: &Gw, code: i32) -> String {
    let out = g.process();
    assert_eq!(
        out.status.code(),
        Some(code),
        "process --once\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
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
    crate::support::assert_no_nir(logs, ALL_NIRS, &format!("the logs of {what}"));
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
    let b = Bill::new(SITE_B, 3).lines([
        BLine::month(NIR_B1, SITE_B, 3, "10"),
        BLine::month(NIR_B1, SITE_B, 4, "11.75"),
    ]);
    let pa = g.drop_bill("saadA", &a);
    let pb = g.drop_bill("saadB", &b);

    // validate: the stateful verdict, and nothing changes.
    let before_files = snapshot(&g);
    let before_db = g.dump();
    let out = g.run(&["validate", "--json", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let verdicts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
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
    assert!(
        v["anomalies"].as_array().unwrap().iter().any(|a| a["code"] == "F12"),
        "{v}"
    );
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
    assert!(g
        .read(&outbox_rel(&a))
        .contains(&format!("<rf-borfact>{}</rf-borfact>", a.rf_borfact())));

    // Reports: three forms each, in the sender's folder only.
    for (p, bill) in [("saadA", &a), ("saadB", &b)] {
        let xml = report_rel(p, bill, 1, "xml");
        xmllint_schema("report.xsd", &g.path(&xml)).unwrap_or_else(|e| panic!("{xml}: {e}"));
        let csv = std::fs::read(g.path(&report_rel(p, bill, 1, "csv"))).unwrap();
        assert!(csv.starts_with(b"\xEF\xBB\xBF"), "CSV without BOM");
        let csv = String::from_utf8(csv).expect("CSV in UTF-8");
        assert!(
            csv.lines().nth(1).is_some_and(|l| l.contains(';')),
            "CSV not ;-separated:\n{csv}"
        );
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
    // Per-provider isolation: each outbound folder holds its own reports
    // only, and its own listing of plans.
    for p in ["saadA", "saadB"] {
        let listing = g.read(&format!("outbound/{p}/beneficiaires.csv"));
        assert!(
            listing.contains(if p == "saadA" { NIR_A1 } else { NIR_B1 }),
            "{listing}"
        );
        assert!(
            !listing.contains(if p == "saadA" { NIR_B1 } else { NIR_A1 }),
            "{listing}"
        );
    }
    let stems = |p: &str| g.files(&format!("outbound/{p}/reports"));
    assert_eq!(stems("saadA").len(), 3);
    assert!(
        stems("saadA").iter().all(|f| f.contains(&a.rf_borfact())),
        "{:?}",
        stems("saadA")
    );
    assert_eq!(stems("saadB").len(), 3);
    assert!(
        stems("saadB").iter().all(|f| f.contains(&b.rf_borfact())),
        "{:?}",
        stems("saadB")
    );

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
        vec![
            format!("saadA|{}|done|partial|3|2", a.name()),
            format!("saadB|{}|done|accepted|2|2", b.name())
        ]
    );
    assert!(g.files("inbound").is_empty(), "{:?}", g.files("inbound"));
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
    assert_eq!(g.files("archive").len(), 2);

    // History, read as the caisse IT team reads it: reception, verdict,
    // outbox, each report, the e-mail.
    let history = |filter: &[&str]| -> Vec<Value> {
        let mut args = vec![
            "history",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-20",
            "--format",
            "json",
            "--order",
            "asc",
        ];
        args.extend_from_slice(filter);
        let out = g.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
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
    let processed = h
        .iter()
        .find(|e| e["kind"] == "processed" && e["provider"] == "saadA")
        .unwrap();
    let comment = processed["comment"].as_str().unwrap();
    assert!(
        comment.contains(&a.name()) && comment.contains("partiellement"),
        "{processed}"
    );
    // Spec §7: each entry carries the régime, the caisse and the convention.
    // Once the file's header is read, they are known: the entries of the
    // verdict, the outbox file and the reports carry them, and the history
    // can be filtered by convention.
    for e in h
        .iter()
        .filter(|e| matches!(e["kind"].as_str(), Some("processed" | "outbox" | "chargement")))
    {
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
