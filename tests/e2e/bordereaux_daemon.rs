//! Payment statements across stops and restarts, with the real binary: the
//! daemon's scheduler crossing the payment date + 48 hours on a frozen
//! clock (`PPAS_GATEWAY_NOW`), restarted before and after it and at the
//! same instant, a run by hand after it; a stop between a statement's files
//! and their record (a fault injected there), then the run again; a report
//! of anomalies stopped the same way. Each statement is published once,
//! its users mailed once, one "chargement" entry each.

use std::time::Duration;

use crate::habitat::{expect, import_bytes, run_at};
use crate::pipeline_support::*;

const P_HEADER: &str = "rf-paiement;dt-paiement;id-cram;code-convention;rf-facture;nir-per;nom-per;pn-per;rf-prstpap;dtd-interv;dtf-interv;nb-quant;mt-paye\n";
const RA_HEADER: &str = "rf-facture;nir-per;dtd-interv;dtf-interv;code;motif\n";

/// Paid on 19 November 2026: due on 21 November at 00:00 in Paris.
const RF: &str = "VIR-2026-1119";
const STEM_A: &str = "bordereau-C03A1-VIR-2026-1119";
const STEM_B: &str = "bordereau-C03B1-VIR-2026-1119";

/// Only the statements scheduled (hourly at :15), the other jobs disabled.
const BORDEREAUX_ONLY: &str = "\n[jobs]\ninvoice_threshold = \"\"\ninvoice_weekly = \"\"\nrelances = \"\"\npurge = \"\"\nbordereaux = \"15 * * * *\"\n";

fn cast_with(extra: &str) -> Gw {
    let g = Gw::new_with(extra);
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    g
}

fn payments() -> String {
    format!(
        "{P_HEADER}\
         {RF};19/11/2026;03;C03A1;03_151026_100_21100001;{NIR_A1};NOM;Prenom;PPP100;2026-09-01;2026-09-30;10;1234,50\n\
         {RF};19/11/2026;03;C03A1;03_151026_100_21100001;{NIR_A2};NOM;Prenom;PPP100;2026-09-01;2026-09-30;2,5;80.10\n\
         {RF};19/11/2026;03;C03B1;03_151026_100_21200001;{NIR_B1};NOM;Prenom;PPP100;2026-09-01;2026-09-30;4;96\n"
    )
}

/// `serve` at `now`, ready and past the scheduler's first look at the clock.
fn serve_at(g: &Gw, now: &str, log: &std::path::Path) -> Daemon {
    let from = std::fs::read(log).map(|l| l.len()).unwrap_or(0);
    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_NOW", now);
    let mut d = Daemon::start_with(cmd, log);
    d.wait_ready(Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "the scheduler's first look", || {
        let all = std::fs::read(log).unwrap_or_default();
        String::from_utf8_lossy(all.get(from..).unwrap_or_default())
            .contains("job occurrences due at start handed to the processor")
    });
    d
}

/// Waits until every run is finished and `n` runs of the job are (read in
/// one statement: a run begun between two reads is not taken for done).
fn wait_runs(g: &Gw, n: i64) {
    wait_for(Duration::from_secs(20), &format!("{n} run(s) of bordereaux"), || {
        g.count(&format!(
            "SELECT NOT EXISTS (SELECT 1 FROM job_runs WHERE finished_at IS NULL)
                    AND (SELECT COUNT(*) FROM job_runs WHERE job = 'bordereaux') = {n}"
        )) == 1
    });
}

/// Every file of both providers' statement folders.
fn published(g: &Gw) -> Vec<String> {
    let mut f = g.files("outbound/saadA/bordereaux");
    f.extend(g.files("outbound/saadB/bordereaux"));
    f
}

fn expected_files() -> Vec<String> {
    let mut v: Vec<String> = ["csv", "pdf", "xml"]
        .iter()
        .map(|e| format!("outbound/saadA/bordereaux/{STEM_A}.{e}"))
        .collect();
    v.extend(
        ["csv", "pdf", "xml"]
            .iter()
            .map(|e| format!("outbound/saadB/bordereaux/{STEM_B}.{e}")),
    );
    v
}

/// Published once: three files each, one edition, one mail, one entry.
fn assert_once(g: &Gw) {
    assert_eq!(published(g), expected_files());
    assert_eq!(
        g.rows("SELECT stem, edition FROM statement_editions ORDER BY stem"),
        [[STEM_A, "1"], [STEM_B, "1"]]
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM mail_queue WHERE dedup_key LIKE 'bordereau:%'"),
        2
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE kind = 'chargement' AND interface = 'bordereaux'"),
        2
    );
}

#[test]
fn the_daemon_publishes_at_48_hours_once_across_restarts() {
    let g = cast_with(BORDEREAUX_ONLY);
    let log = g.dir.path().join("serve.log");
    expect(
        &run_at(
            &g,
            "2026-11-19T15:00:00+01:00",
            &["import", "payments", &write(&g, &payments())],
        ),
        0,
    );
    // First start: the schedule is taken up, nothing owed yet.
    let d = serve_at(&g, "2026-11-19T16:00:00+01:00", &log);
    assert_eq!(d.terminate().0, Some(0));
    // Restarted at 23:20 on the 20th: the 23:15 occurrence is caught up,
    // 40 minutes before the 48 hours: nothing published.
    let d = serve_at(&g, "2026-11-20T23:20:00+01:00", &log);
    wait_runs(&g, 1);
    assert_eq!(d.terminate().0, Some(0));
    assert!(published(&g).is_empty(), "{:?}", published(&g));
    assert_eq!(g.count("SELECT COUNT(*) FROM statement_editions"), 0);

    // Restarted at 00:20 on the 21st: the 00:15 occurrence publishes both.
    let d = serve_at(&g, "2026-11-21T00:20:00+01:00", &log);
    wait_runs(&g, 2);
    assert_eq!(d.terminate().0, Some(0));
    assert_once(&g);
    let bytes: Vec<Vec<u8>> = expected_files()
        .iter()
        .map(|f| std::fs::read(g.path(f)).unwrap())
        .collect();
    assert_eq!(
        g.rows("SELECT occurrence, outcome FROM job_runs WHERE job = 'bordereaux' ORDER BY id")[1],
        ["2026-11-21T00:15", "ok"]
    );

    // Restarted at the same instant, then hours later, then by hand:
    // nothing more, nothing rewritten.
    let d = serve_at(&g, "2026-11-21T00:20:00+01:00", &log);
    assert_eq!(d.terminate().0, Some(0));
    let d = serve_at(&g, "2026-11-23T09:20:00+01:00", &log);
    wait_runs(&g, 3);
    assert_eq!(d.terminate().0, Some(0));
    let out = run_at(&g, "2026-11-23T09:30:00+01:00", &["run", "bordereaux"]);
    expect(&out, 0);
    assert!(
        text(&out.stdout).starts_with("bordereaux : 0 bordereau(x) publié(s), 0 e-mail(s)"),
        "{}",
        text(&out.stdout)
    );
    assert_once(&g);
    let again: Vec<Vec<u8>> = expected_files()
        .iter()
        .map(|f| std::fs::read(g.path(f)).unwrap())
        .collect();
    assert_eq!(bytes, again);
    // The mails went out once, to each provider's users.
    expect(&run_at(&g, "2026-11-23T09:30:00+01:00", &["run", "mail"]), 0);
    let mails: Vec<Mail> = g.mails().into_iter().filter(|m| m.raw.contains(RF)).collect();
    assert_eq!(mails.len(), 2, "{mails:?}");
}

/// Writes `csv` into the test's folder and returns its path.
fn write(g: &Gw, csv: &str) -> String {
    let f = g.dir.path().join("paiements.csv");
    std::fs::write(&f, csv).unwrap();
    f.to_str().unwrap().to_string()
}

#[test]
fn a_stop_between_the_files_and_their_record_publishes_once() {
    let g = Gw::with_cast();
    g.import("payments", &payments());
    let due = "2026-11-21T08:00:00+01:00";
    // The run stops once saadA's files are written, before their record.
    let out = g
        .cmd()
        .env("PPAS_GATEWAY_NOW", due)
        .env("PPAS_GATEWAY_FAULT", format!("bordereau:{STEM_A}"))
        .args(["run", "bordereaux"])
        .output()
        .unwrap();
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains("fault injected at bordereau"),
        "{}",
        text(&out.stderr)
    );
    let a: Vec<String> = ["csv", "pdf", "xml"]
        .iter()
        .map(|e| format!("outbound/saadA/bordereaux/{STEM_A}.{e}"))
        .collect();
    assert_eq!(g.files("outbound/saadA/bordereaux"), a, "written, not recorded");
    let before: Vec<Vec<u8>> = a.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();
    assert_eq!(g.count("SELECT COUNT(*) FROM statement_editions"), 0);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM mail_queue WHERE dedup_key LIKE 'bordereau:%'"),
        0
    );

    // The next run writes the same bytes under the same names, records
    // and mails once; a run after it does nothing.
    let out = run_at(&g, due, &["run", "bordereaux"]);
    expect(&out, 0);
    assert!(text(&out.stdout).starts_with("bordereaux : 2 bordereau(x) publié(s), 2 e-mail(s)"));
    let after: Vec<Vec<u8>> = a.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();
    assert_eq!(before, after);
    expect(&run_at(&g, due, &["run", "bordereaux"]), 0);
    assert_once(&g);
    // No temporary file left behind.
    assert!(
        g.files("outbound").iter().all(|f| !f.contains("/.")),
        "{:?}",
        g.files("outbound")
    );
}

#[test]
fn a_report_of_anomalies_stopped_before_its_record_is_written_once() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 15).line(BLine::month(NIR_A1, SITE_A, 9, "10"));
    g.drop_bill("saadA", &bill);
    assert_eq!(g.process().status.code(), Some(0));
    // Named by the file's name this time (`<rf-borfact>.xml`).
    let csv = format!(
        "{RA_HEADER}{};{NIR_A1};2026-09-01;2026-09-30;R03;Période déjà payée\n",
        bill.name()
    );
    let stem = format!("{}.anomalies-report.1", bill.rf_borfact());
    let dir = g.dir.path().join("caisse-files");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rejets.csv"), &csv).unwrap();
    let out = g
        .cmd()
        .env("PPAS_GATEWAY_FAULT", format!("anomalies-report:{stem}"))
        .args(["import", "report-anomalies", dir.join("rejets.csv").to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The import is committed, its report owed and its files written.
    assert_eq!(g.count("SELECT COUNT(*) FROM anomaly_reports WHERE done_at IS NULL"), 1);
    let files: Vec<String> = ["csv", "pdf", "xml"]
        .iter()
        .map(|e| format!("outbound/saadA/reports/{stem}.{e}"))
        .collect();
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();

    // The next pass (here process --once) finishes it: same bytes, one mail.
    assert_eq!(g.process().status.code(), Some(0));
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(g.path(f)).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM anomaly_reports WHERE done_at IS NOT NULL"),
        1
    );
    // Imported again: nothing new; another pass writes nothing.
    expect(&import_bytes(&g, "report-anomalies", "rejets.csv", csv.as_bytes()), 0);
    assert_eq!(g.process().status.code(), Some(0));
    assert_eq!(
        g.files("outbound/saadA/reports")
            .into_iter()
            .filter(|f| f.contains("anomalies-report"))
            .collect::<Vec<_>>(),
        files
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM mail_queue WHERE dedup_key LIKE 'anomalies%'"),
        1
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE kind = 'chargement' AND interface = 'anomalies-de-report'"),
        1
    );
    xmllint_schema("anomalies-report.xsd", &g.path(&files[2])).unwrap();
    let pdf = pdf_text(&g.path(&files[1]));
    for needle in [bill.name().as_str(), "R03", "Période déjà payée"] {
        assert!(pdf.contains(needle), "{needle:?} not in:\n{pdf}");
    }
}
