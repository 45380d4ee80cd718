use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Env {
    _dir: tempfile::TempDir,
    cfg: Config,
    conn: Connection,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.paths.spool = dir.path().join("spool");
    cfg.paths.database = dir.path().join("spool/state/gateway.db");
    let conn = crate::store::open_in_memory().unwrap();
    Env { _dir: dir, cfg, conn }
}

fn at(s: &str) -> Clock {
    Clock::Fixed(utc(s))
}

fn occ(k: &str) -> Occurrence {
    Occurrence::parse(k).unwrap()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn an_occurrence_runs_once_and_each_run_is_recorded_with_its_history() {
    let mut e = env();
    let clock = at("2026-11-20T07:00:00+01:00");
    let o = occ("2026-11-20T07:00");
    let key = RunKey::Occurrence(o);
    let rec = execute(&mut e.conn, &e.cfg, &clock, Job::Relances, key, Cause::Schedule, None)
        .unwrap()
        .expect("runs");
    assert!(rec.ok(), "{rec:?}");
    assert_eq!(
        (rec.occurrence.as_str(), rec.cause.as_str(), rec.attempts),
        ("2026-11-20T07:00", "schedule", 1)
    );
    assert_eq!(rec.due_at.as_deref(), Some("2026-11-20T06:00:00Z"));
    assert!(rec
        .summary
        .as_deref()
        .unwrap()
        .starts_with("0 commande(s) signalée(s) en relance"));
    // Again: already run, whatever the cause or the clock.
    let later = at("2026-11-20T09:00:00+01:00");
    assert_eq!(
        execute(&mut e.conn, &e.cfg, &later, Job::Relances, key, Cause::CatchUp, None).unwrap(),
        None
    );
    assert!(has_run(&e.conn, Job::Relances, &o).unwrap());
    assert!(!has_run(&e.conn, Job::Relances, &occ("2026-11-21T07:00")).unwrap());
    assert!(!has_run(&e.conn, Job::Purge, &o).unwrap());
    let h: String = e
        .conn
        .query_row(
            "SELECT comment FROM history WHERE kind = 'job' AND interface = 'jobs' AND application = 'habitat'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        h.starts_with("relances (échéance du 20/11/2026 07:00) : ok — 0 commande(s)"),
        "{h}"
    );
    assert_eq!(last_run(&e.conn, Job::Relances).unwrap(), Some(rec));
}

#[test]
fn runs_by_hand_repeat_and_cover_the_occurrence_before_them() {
    let mut e = env();
    let clock = at("2026-11-20T10:00:00+01:00");
    for _ in 0..2 {
        let rec = execute(
            &mut e.conn,
            &e.cfg,
            &clock,
            Job::Relances,
            RunKey::Manual(clock.now()),
            Cause::Manual,
            None,
        )
        .unwrap()
        .expect("a run by hand always runs");
        assert_eq!(rec.occurrence, "manual:2026-11-20T09:00:00Z");
        assert!(rec.ok());
    }
    assert_eq!(count(&e.conn, "SELECT COUNT(*) FROM job_runs"), 2);
    // Today's 07:00 is covered (the work was done after it), tomorrow's not.
    assert!(has_run(&e.conn, Job::Relances, &occ("2026-11-20T07:00")).unwrap());
    assert!(!has_run(&e.conn, Job::Relances, &occ("2026-11-21T07:00")).unwrap());
    let h: String = e
        .conn
        .query_row(
            "SELECT comment FROM history WHERE interface = 'jobs' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(h.starts_with("relances (lancement manuel) : ok"), "{h}");
}

#[test]
fn a_failed_run_is_recorded_noted_and_its_occurrence_done() {
    let mut e = env();
    // A job that fails: invoicing finds no table of invoices.
    e.conn
        .execute_batch("ALTER TABLE invoices RENAME TO invoices_elsewhere")
        .unwrap();
    let clock = at("2026-11-20T10:00:00+01:00");
    let key = RunKey::Occurrence(occ("2026-11-20T10:00"));
    let rec = execute(
        &mut e.conn,
        &e.cfg,
        &clock,
        Job::InvoiceThreshold,
        key,
        Cause::Schedule,
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(rec.outcome.as_deref(), Some("error"));
    assert!(
        rec.summary.as_deref().unwrap().contains("no such table: invoices"),
        "{rec:?}"
    );
    assert_eq!(count(&e.conn, "SELECT COUNT(*) FROM errors WHERE worker = 'jobs'"), 1);
    let h: String = e
        .conn
        .query_row("SELECT comment FROM history WHERE interface = 'jobs'", [], |r| r.get(0))
        .unwrap();
    assert!(
        h.starts_with("invoice-threshold (échéance du 20/11/2026 10:00) : échec — "),
        "{h}"
    );
    // Done: not retried.
    assert_eq!(
        execute(
            &mut e.conn,
            &e.cfg,
            &clock,
            Job::InvoiceThreshold,
            key,
            Cause::Schedule,
            None
        )
        .unwrap(),
        None
    );
    // A failed run by hand does not cover an occurrence.
    let manual = RunKey::Manual(clock.now());
    execute(&mut e.conn, &e.cfg, &clock, Job::Purge, manual, Cause::Manual, None).unwrap();
    assert!(!has_run(&e.conn, Job::Purge, &occ("2026-11-20T03:30")).unwrap());
}

#[test]
fn a_schedule_is_followed_from_when_it_is_taken_up() {
    let e = env();
    let mut jobs = crate::config::Jobs::default();
    let s = Schedules::from_config(&jobs).unwrap();
    let t0 = utc("2026-11-20T10:00:00Z");
    let changed = follow(&e.conn, &s, t0).unwrap();
    assert_eq!(changed.len(), 5, "every scheduled job, not mail");
    assert_eq!(since(&e.conn, Job::Relances).unwrap(), Some(t0));
    assert_eq!(since(&e.conn, Job::Mail).unwrap(), None);
    // The same schedules later: nothing changes.
    let t1 = utc("2026-11-25T10:00:00Z");
    assert!(follow(&e.conn, &s, t1).unwrap().is_empty());
    assert_eq!(since(&e.conn, Job::Relances).unwrap(), Some(t0));
    // One changed, one disabled.
    jobs.relances = "0 8 * * *".into();
    jobs.purge = String::new();
    let s = Schedules::from_config(&jobs).unwrap();
    let changed = follow(&e.conn, &s, t1).unwrap();
    assert_eq!(
        changed,
        [(Job::Relances, Some("0 8 * * *".to_string())), (Job::Purge, None)]
    );
    assert_eq!(since(&e.conn, Job::Relances).unwrap(), Some(t1));
    assert_eq!(since(&e.conn, Job::Purge).unwrap(), None);
    assert_eq!(since(&e.conn, Job::Bordereaux).unwrap(), Some(t0));
}

/// A run recorded as started and never finished, as a killed process
/// leaves it.
fn interrupted(conn: &Connection, job: Job, key: &str, cause: &str, attempts: i64) {
    conn.execute(
        "INSERT INTO job_runs (job, occurrence, cause, started_at, attempts) VALUES (?1, ?2, ?3, '2026-11-20T06:00:00Z', ?4)",
        params![job.as_str(), key, cause, attempts],
    )
    .unwrap();
}

#[test]
fn interrupted_runs_are_retried_once_at_the_next_start() {
    let mut e = env();
    let s = Schedules::from_config(&e.cfg.jobs).unwrap();
    follow(&e.conn, &s, utc("2026-11-19T12:00:00Z")).unwrap();
    // Relances of today 07:00, interrupted once: retried.
    interrupted(&e.conn, Job::Relances, "2026-11-20T07:00", "schedule", 1);
    // Purge of today 03:30, interrupted for the second time: failed.
    interrupted(&e.conn, Job::Purge, "2026-11-20T03:30", "catch-up", 2);
    // The hourly check of 08:00, but 09:00 is owed by now: covered by it.
    interrupted(&e.conn, Job::InvoiceThreshold, "2026-11-20T08:00", "schedule", 1);
    // By hand: closed, never retried by the daemon.
    interrupted(&e.conn, Job::Mail, "manual:2026-11-20T06:00:00Z", "manual", 1);
    let clock = at("2026-11-20T09:30:00+01:00");
    let retry = take_up(&mut e.conn, &clock, &s).unwrap();
    assert_eq!(retry, [(Job::Relances, occ("2026-11-20T07:00"))]);
    let rows: Vec<(String, Option<String>, Option<String>)> = e
        .conn
        .prepare("SELECT job, outcome, summary FROM job_runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows[0], ("relances".into(), None, None));
    assert_eq!(rows[1].1.as_deref(), Some("error"));
    assert!(rows[1].2.as_deref().unwrap().contains("deux fois"), "{rows:?}");
    assert!(rows[2].2.as_deref().unwrap().contains("2026-11-20T09:00"), "{rows:?}");
    assert!(rows[3].2.as_deref().unwrap().contains("à la main"), "{rows:?}");
    assert_eq!(
        count(&e.conn, "SELECT COUNT(*) FROM history WHERE interface = 'jobs'"),
        3
    );

    // The retry: the same row, a second attempt, finished.
    let key = RunKey::Occurrence(occ("2026-11-20T07:00"));
    let rec = execute(&mut e.conn, &e.cfg, &clock, Job::Relances, key, Cause::Schedule, None)
        .unwrap()
        .unwrap();
    assert_eq!((rec.attempts, rec.ok()), (2, true), "{rec:?}");
    assert_eq!(
        count(&e.conn, "SELECT COUNT(*) FROM job_runs WHERE job = 'relances'"),
        1
    );
    // Nothing left to settle.
    assert!(take_up(&mut e.conn, &clock, &s).unwrap().is_empty());
}

#[test]
fn status_lists_every_job_with_its_last_and_next_runs() {
    let mut e = env();
    let clock = at("2026-11-20T07:00:30+01:00");
    let s = Schedules::from_config(&e.cfg.jobs).unwrap();
    follow(&e.conn, &s, utc("2026-11-19T12:00:00Z")).unwrap();
    let key = RunKey::Occurrence(occ("2026-11-20T07:00"));
    execute(&mut e.conn, &e.cfg, &clock, Job::Relances, key, Cause::Schedule, None).unwrap();
    let st = status(&e.conn, &e.cfg, clock.now()).unwrap();
    assert_eq!(st.len(), Job::ALL.len());
    let r = st.iter().find(|j| j.job == "relances").unwrap();
    assert_eq!(r.schedule.as_deref(), Some("0 7 * * *"));
    assert_eq!(r.next_occurrence.as_deref(), Some("2026-11-21T07:00"));
    assert_eq!(r.next_run_at.as_deref(), Some("2026-11-21 07:00"));
    assert!(r.last_run.as_ref().unwrap().ok());
    assert_eq!(r.owed, None);
    let t = st.iter().find(|j| j.job == "invoice-threshold").unwrap();
    assert_eq!(t.owed.as_deref(), Some("2026-11-20T07:00"), "due, no run yet");
    let m = st.iter().find(|j| j.job == "mail").unwrap();
    assert!(m.schedule.is_none() && m.note.as_deref().unwrap().contains("poll_secs"));
}
