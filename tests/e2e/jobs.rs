//! Scheduled jobs with the real binary: `run JOB` by hand (twice at one
//! clock, an unknown job, a job that fails, refused while a daemon holds
//! the spool); `serve` with its clock frozen by `PPAS_GATEWAY_NOW` catching
//! up a missed occurrence once, never again at a restart, `status` showing
//! the last and next runs; a failing or panicking job recorded as failed
//! without stopping the daemon; a run interrupted by a stop of the process
//! run again once; a new schedule taken on SIGHUP.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::habitat::{orders_csv, ORDERS, PROVIDERS};
use crate::pipeline_support::*;

/// Ergothérapeutes and their orders (C04-2026-000123, dated 1 September
/// 2026, is due for a relance from 31 October; the others in December).
/// `jobs` is the body of `[jobs]`.
fn gw(jobs: &str) -> Gw {
    let g = Gw::new_with(&format!("\n[jobs]\n{jobs}"));
    g.import("providers", PROVIDERS);
    g.import("orders", &orders_csv(ORDERS));
    g
}

/// Only relances scheduled (daily 07:00): the others disabled.
const RELANCES_ONLY: &str =
    "invoice_threshold = \"\"\ninvoice_weekly = \"\"\nbordereaux = \"\"\npurge = \"\"\nrelances = \"0 7 * * *\"\n";

fn run_at(g: &Gw, now: &str, args: &[&str]) -> Output {
    g.cmd()
        .env("PPAS_GATEWAY_NOW", now)
        .args(args)
        .output()
        .expect("run ppas-gateway")
}

fn status_at(g: &Gw, now: &str) -> Value {
    let out = run_at(g, now, &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn job<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == name)
        .unwrap_or_else(|| panic!("no job {name} in {status}"))
}

/// `serve` with the clock at `now`, ready and past the scheduler's first
/// look at the clock.
pub(crate) fn serve_at(g: &Gw, now: &str, log: &std::path::Path, fault: Option<&str>) -> Daemon {
    let from = std::fs::read_to_string(log).map(|l| l.len()).unwrap_or(0);
    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_NOW", now);
    if let Some(f) = fault {
        cmd.env("PPAS_GATEWAY_FAULT", f);
    }
    let mut d = Daemon::start_with(cmd, log);
    d.wait_ready(Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "the scheduler's first look", || {
        log_since(log, from).contains("job occurrences due at start handed to the processor")
    });
    d
}

fn log_since(log: &std::path::Path, from: usize) -> String {
    let all = std::fs::read(log).unwrap_or_default();
    String::from_utf8_lossy(all.get(from..).unwrap_or_default()).into_owned()
}

/// (occurrence, cause, outcome, attempts) of every run of `job`, in order.
pub(crate) fn runs(g: &Gw, job: &str) -> Vec<Vec<String>> {
    g.rows(&format!(
        "SELECT occurrence, cause, COALESCE(outcome, '-'), attempts FROM job_runs WHERE job = '{job}' ORDER BY id"
    ))
}

/// Waits until every run recorded is finished and `n` runs of `job` are.
/// Both read in one statement: a run begun between two reads would be taken
/// for a finished one.
pub(crate) fn wait_runs(g: &Gw, job: &str, n: usize) {
    wait_for(Duration::from_secs(20), &format!("{n} run(s) of {job}"), || {
        g.count(&format!(
            "SELECT NOT EXISTS (SELECT 1 FROM job_runs WHERE finished_at IS NULL)
                    AND (SELECT COUNT(*) FROM job_runs WHERE job = '{job}') = {n}"
        )) == 1
    });
}

const NOW: &str = "2026-11-20T10:00:00+01:00";

#[test]
fn run_by_hand_twice_an_unknown_job_a_failing_one_and_under_a_daemon() {
    let g = gw(RELANCES_ONLY);
    let out = run_at(&g, NOW, &["run", "relances"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("relances : 1 commande(s) signalée(s) en relance (1 prestataire(s))"),
        "{}",
        text(&out.stdout)
    );
    // Again at the same clock: nothing more to do, and a second run recorded.
    let out = run_at(&g, NOW, &["run", "relances"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("relances : 0 commande(s) signalée(s) en relance"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        runs(&g, "relances"),
        vec![
            vec![
                "manual:2026-11-20T09:00:00Z".to_string(),
                "manual".into(),
                "ok".into(),
                "1".into()
            ];
            2
        ]
    );
    let h = g.rows("SELECT application, comment FROM history WHERE kind = 'job' AND interface = 'jobs' ORDER BY id");
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0][0], "habitat");
    assert!(
        h[0][1].starts_with("relances (lancement manuel) : ok — 1 commande(s)"),
        "{h:?}"
    );

    // An unknown job: exit 2, the names listed, nothing recorded.
    let out = run_at(&g, NOW, &["run", "invoices"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for name in [
        "invoice-threshold",
        "invoice-weekly",
        "relances",
        "bordereaux",
        "purge",
        "mail",
    ] {
        assert!(err.contains(name), "{err}");
    }
    assert!(err.contains("unknown job \"invoices\""), "{err}");

    // A job that fails (an error provoked in it): exit 2, recorded, noted.
    let out = g
        .cmd()
        .env("PPAS_GATEWAY_NOW", NOW)
        .env("PPAS_GATEWAY_FAULT", "job-error:invoice-threshold")
        .args(["run", "invoice-threshold"])
        .output()
        .expect("run ppas-gateway");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invoice-threshold : échec — "),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(runs(&g, "invoice-threshold")[0][2], "error");
    let st = status_at(&g, NOW);
    assert_eq!(job(&st, "invoice-threshold")["last_run"]["outcome"], "error");
    assert!(st["last_errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("invoice-threshold (manual:2026-11-20T09:00:00Z)"));

    // `run mail` is a job like the others.
    let out = run_at(&g, NOW, &["run", "mail"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("mail : ") && text(&out.stdout).contains(" envoyé(s), 0 à réessayer"),
        "{}",
        text(&out.stdout)
    );

    // While a daemon holds the spool: refused, saying why.
    let log = g.dir.path().join("serve.log");
    let d = serve_at(&g, NOW, &log, None);
    for name in ["relances", "mail"] {
        let out = run_at(&g, NOW, &["run", name]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("run {name}: a running daemon runs the jobs"))
                && err.contains("another ppas-gateway instance is processing this spool"),
            "{err}"
        );
    }
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(
        runs(&g, "relances").len(),
        2,
        "no run while refused, none by the daemon"
    );
}

#[test]
fn serve_catches_up_a_missed_occurrence_once_and_status_shows_the_runs() {
    // The hourly check scheduled too: it fails (an error provoked in it on
    // Friday) and the daemon goes on.
    let g = gw("invoice_threshold = \"0 * * * *\"\ninvoice_weekly = \"\"\nbordereaux = \"\"\npurge = \"\"\n");
    let log = g.dir.path().join("serve.log");

    // First start, Monday 10:00: the schedules are taken up; nothing before
    // is owed (07:00 came before the daemon followed the schedule).
    let monday = "2026-11-16T10:00:00+01:00";
    let d = serve_at(&g, monday, &log, None);
    assert_eq!(d.terminate().0, Some(0));
    assert_eq!(g.count("SELECT COUNT(*) FROM job_runs"), 0);
    assert_eq!(
        g.rows("SELECT job, schedule, since FROM job_schedules ORDER BY job"),
        [
            ["invoice-threshold", "0 * * * *", "2026-11-16T09:00:00Z"],
            ["relances", "0 7 * * *", "2026-11-16T09:00:00Z"]
        ]
    );
    let st = status_at(&g, monday);
    assert_eq!(job(&st, "relances")["next_occurrence"], "2026-11-17T07:00");
    assert_eq!(job(&st, "relances")["last_run"], Value::Null);

    // Stopped until Friday 09:00: Tuesday's to Friday's 07:00 were missed;
    // Friday's alone runs, once, and the log says so.
    let friday = "2026-11-20T09:00:00+01:00";
    let st = status_at(&g, friday);
    assert_eq!(job(&st, "relances")["owed"], "2026-11-20T07:00");
    let from = std::fs::read_to_string(&log).unwrap().len();
    let d = serve_at(&g, friday, &log, Some("job-error:invoice-threshold"));
    wait_runs(&g, "relances", 1);
    wait_runs(&g, "invoice-threshold", 1);
    assert_eq!(runs(&g, "relances"), [["2026-11-20T07:00", "catch-up", "ok", "1"]]);
    assert_eq!(
        runs(&g, "invoice-threshold"),
        [["2026-11-20T09:00", "catch-up", "error", "1"]]
    );
    let logs = log_since(&log, from);
    let caught: Vec<&str> = logs.lines().filter(|l| l.contains("caught up once now")).collect();
    assert_eq!(caught.len(), 2, "{logs}");
    assert!(caught.iter().any(|l| l.contains("2026-11-20T07:00")), "{logs}");
    assert_eq!(
        g.rows("SELECT state FROM orders WHERE rf_commande = 'C04-2026-000123'"),
        [["relance"]]
    );
    // The failure is logged and counted; the daemon runs on.
    assert!(logs.contains("job failed; not retried"), "{logs}");
    assert_eq!(
        g.count("SELECT COUNT(*) FROM errors WHERE worker = 'jobs' AND message LIKE 'invoice-threshold (2026-11-20T09:00)%'"),
        1
    );
    let st = status_at(&g, friday);
    assert_eq!(st["daemon_running"], true);
    let r = job(&st, "relances");
    assert_eq!(r["schedule"], "0 7 * * *");
    assert_eq!(r["last_run"]["cause"], "catch-up");
    assert_eq!(r["last_run"]["occurrence"], "2026-11-20T07:00");
    assert_eq!(r["last_run"]["outcome"], "ok");
    assert_eq!(r["last_run"]["started_at"], "2026-11-20 09:00:00");
    assert!(r["last_run"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("1 commande(s) signalée(s) en relance"));
    assert_eq!(r["next_occurrence"], "2026-11-21T07:00");
    assert_eq!(r["next_run_at"], "2026-11-21 07:00");
    assert_eq!(r["owed"], Value::Null);
    assert_eq!(job(&st, "purge")["schedule"], Value::Null);
    assert_eq!(job(&st, "invoice-threshold")["last_run"]["outcome"], "error");
    assert_eq!(job(&st, "invoice-threshold")["next_run_at"], "2026-11-20 10:00");
    // The screen an operator reads.
    let out = run_at(&g, friday, &["status"]);
    let screen = text(&out.stdout);
    for needle in [
        "jobs (Europe/Paris time)",
        "  relances           \"0 7 * * *\"  next 2026-11-21 07:00",
        "      last run  2026-11-20 09:00:00 (catch-up of 2026-11-20T07:00) ok: 1 commande(s)",
        "  purge              disabled",
    ] {
        assert!(screen.contains(needle), "missing {needle:?} in:\n{screen}");
    }
    // Each run is a history entry.
    let h = g.rows("SELECT application, comment FROM history WHERE interface = 'jobs' ORDER BY id");
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(
        h.iter()
            .any(|r| r[1].starts_with("relances (rattrapage de l'échéance du 20/11/2026 07:00) : ok")),
        "{h:?}"
    );
    assert_eq!(d.terminate().0, Some(0));

    // A restart at the same clock: nothing runs again.
    let d = serve_at(&g, friday, &log, None);
    assert_eq!(d.terminate().0, Some(0));
    assert_eq!(g.count("SELECT COUNT(*) FROM job_runs"), 2);

    // Saturday: Saturday's occurrence, once.
    let d = serve_at(&g, "2026-11-21T07:30:00+01:00", &log, None);
    wait_runs(&g, "relances", 2);
    assert_eq!(runs(&g, "relances")[1], ["2026-11-21T07:00", "catch-up", "ok", "1"]);
    assert_eq!(d.terminate().0, Some(0));
}

#[test]
fn a_panicking_job_is_a_failed_run_and_an_interrupted_one_runs_again_once() {
    let g = gw(RELANCES_ONLY);
    let log = g.dir.path().join("serve.log");
    let d = serve_at(&g, "2026-11-16T10:00:00+01:00", &log, None);
    assert_eq!(d.terminate().0, Some(0));

    // Tuesday's catch-up panics: recorded as failed, the daemon goes on
    // (a file dropped afterwards is still processed).
    let d = serve_at(&g, "2026-11-17T08:00:00+01:00", &log, Some("job:relances"));
    wait_runs(&g, "relances", 1);
    assert_eq!(runs(&g, "relances")[0][..3], ["2026-11-17T07:00", "catch-up", "error"]);
    let summary = &g.rows("SELECT summary FROM job_runs")[0][0];
    assert!(summary.contains("internal error (panic)"), "{summary}");
    drop_orders(&g);
    wait_for(Duration::from_secs(20), "a drop after the panic", || {
        g.count("SELECT COUNT(*) FROM orders WHERE rf_commande = 'C04-2026-000300'") == 1
    });
    assert_eq!(d.terminate().0, Some(0));

    // Wednesday's run was started and never finished (the process was
    // killed in the middle of it): the next start runs it again, once.
    g.db()
        .execute(
            "INSERT INTO job_runs (job, occurrence, cause, due_at, started_at) VALUES
             ('relances', '2026-11-18T07:00', 'schedule', '2026-11-18T06:00:00Z', '2026-11-18T06:00:00Z')",
            [],
        )
        .unwrap();
    let from = std::fs::read_to_string(&log).unwrap().len();
    let d = serve_at(&g, "2026-11-18T08:00:00+01:00", &log, None);
    wait_runs(&g, "relances", 2);
    assert_eq!(runs(&g, "relances")[1], ["2026-11-18T07:00", "schedule", "ok", "2"]);
    assert!(
        log_since(&log, from).contains("job run interrupted by a stop of the process: run again once now"),
        "{}",
        log_since(&log, from)
    );
    assert_eq!(d.terminate().0, Some(0));
}

/// Drops an orders file into the caisse's folder.
fn drop_orders(g: &Gw) {
    let dir = g.path("caisse/inbound/orders");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = orders_csv(&[
        "C04-2026-000300;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas 62000 Arras;03 21 00 00 01;PS;2026-11-02",
    ]);
    let tmp = dir.join(".new.csv");
    std::fs::write(&tmp, csv).unwrap();
    std::fs::rename(&tmp, dir.join("new.csv")).unwrap();
}

#[test]
fn sighup_takes_a_new_schedule() {
    let g = gw(RELANCES_ONLY);
    let log = g.dir.path().join("serve.log");
    let d = serve_at(&g, NOW, &log, None);
    let config = std::fs::read_to_string(&g.config).unwrap();
    std::fs::write(
        &g.config,
        config
            .replace(
                "relances = \"0 7 * * *\"",
                "relances = \"0 8 * * mon-fri\"\npurge = \"30 3 * * *\"",
            )
            .replacen("purge = \"\"\n", "", 1),
    )
    .unwrap();
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) }, 0);
    wait_for(Duration::from_secs(10), "the new schedules", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("scheduler: new schedules")
    });
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("jobs.relances") && logs.contains("jobs.purge"), "{logs}");
    assert_eq!(
        g.rows("SELECT job, schedule, since FROM job_schedules ORDER BY job"),
        [
            ["purge", "30 3 * * *", "2026-11-20T09:00:00Z"],
            ["relances", "0 8 * * mon-fri", "2026-11-20T09:00:00Z"]
        ]
    );
    // Taken up now: 08:00 today came before, nothing is owed.
    assert_eq!(d.terminate().0, Some(0));
    assert_eq!(g.count("SELECT COUNT(*) FROM job_runs"), 0);
    let st = status_at(&g, NOW);
    assert_eq!(job(&st, "relances")["next_occurrence"], "2026-11-23T08:00");

    // A bad expression is refused, naming its key; the running one stays.
    let config = std::fs::read_to_string(&g.config).unwrap();
    std::fs::write(&g.config, config.replace("0 8 * * mon-fri", "0 8 * *")).unwrap();
    let out = run_at(&g, NOW, &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[jobs] relances: \"0 8 * *\" is not a cron expression"),
        "{}",
        text(&out.stderr)
    );
}

/// A daily 02:30 across both clock changes of 2026, the daemon restarted
/// around each: on 29 March 02:30 does not exist and the occurrence runs
/// once, at the first instant after the gap; on 25 October 02:30 comes
/// twice and the occurrence runs once, whichever pass the daemon sees.
#[test]
fn a_daily_0230_runs_once_on_each_dst_sunday_across_restarts() {
    // The purge itself, kept from removing its own earlier runs (6 months
    // apart here) by keeping the history for ever.
    let g = gw(
        "invoice_threshold = \"\"\ninvoice_weekly = \"\"\nrelances = \"\"\nbordereaux = \"\"\n\
                purge = \"30 2 * * *\"\n[retention]\nhistory_months = 0\n",
    );
    let log = g.dir.path().join("serve.log");
    // Starts the daemon at `now`, waits until the scheduler has handed
    // what is due at start and `n` runs of purge are finished, stops it.
    let start = |now: &str, n: usize| {
        let from = std::fs::read_to_string(&log).map(|l| l.len()).unwrap_or(0);
        let d = serve_at(&g, now, &log, None);
        wait_for(Duration::from_secs(20), "the scheduler's start", || {
            log_since(&log, from).contains("occurrences due at start handed to the processor")
        });
        wait_runs(&g, "purge", n);
        assert_eq!(d.terminate().0, Some(0));
    };
    // Saturday 28 March: the schedule is taken up.
    start("2026-03-28T12:00:00+01:00", 0);
    assert!(runs(&g, "purge").is_empty());
    // Sunday 29 March, 01:59 (winter time): not yet due.
    start("2026-03-29T01:59:00+01:00", 0);
    assert!(runs(&g, "purge").is_empty());
    // 03:05 summer time, just after the gap: the 02:30 occurrence, once.
    start("2026-03-29T03:05:00+02:00", 1);
    assert_eq!(runs(&g, "purge")[0][0], "2026-03-29T02:30");
    start("2026-03-29T03:40:00+02:00", 1);
    assert_eq!(runs(&g, "purge").len(), 1, "not twice");

    // Sunday 25 October: 02:40 in summer time (first pass) runs it...
    start("2026-10-25T02:40:00+02:00", 2);
    assert_eq!(runs(&g, "purge").len(), 2);
    assert_eq!(runs(&g, "purge")[1][0], "2026-10-25T02:30");
    // ... and 02:40 again, in winter time (second pass), finds it done.
    start("2026-10-25T02:40:00+01:00", 2);
    start("2026-10-25T09:00:00+01:00", 2);
    assert_eq!(runs(&g, "purge").len(), 2, "the repeated hour runs nothing twice");
    // Monday: Monday's occurrence, once.
    start("2026-10-26T02:31:00+01:00", 3);
    assert_eq!(runs(&g, "purge").len(), 3);
    assert!(
        runs(&g, "purge").iter().all(|r| r[2] == "ok"),
        "{:?}",
        runs(&g, "purge")
    );
}
