//! The record of job runs (`job_runs`, `job_schedules`) and the one path
//! every run takes, scheduled by the daemon or by hand ([`execute`]).
//!
//! A scheduled run is keyed by (job, occurrence): it is recorded as started
//! before the job runs and finished after, in its own commits; an
//! occurrence with a finished run is never run again (whatever its outcome:
//! a failure is logged and counted, and the next occurrence comes). A run
//! started and never finished (the process stopped during it) is retried
//! once at the next start of the daemon ([`take_up`]), unless a later
//! occurrence is owed by then, which covers it.
//!
//! Each run leaves one history entry (kind `job`, interface `jobs`), written
//! with its end.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::{params, Connection, OptionalExtension};

use super::schedule::{self, Occurrence, Schedules};
use super::Job;
use crate::clock::Clock;
use crate::config::Config;
use crate::history::{self, Entry};
use crate::pipeline::{rfc3339, Progress};

/// Why a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Its occurrence came while the daemon ran.
    Schedule,
    /// Its occurrence came while the daemon was stopped: run at start, once.
    CatchUp,
    /// `ppas-gateway run JOB`.
    Manual,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Schedule => "schedule",
            Cause::CatchUp => "catch-up",
            Cause::Manual => "manual",
        }
    }
}

/// What a run is recorded under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKey {
    /// A scheduled occurrence (once per job).
    Occurrence(Occurrence),
    /// A run by hand, at this instant.
    Manual(DateTime<Utc>),
}

impl RunKey {
    /// The `occurrence` column: `2026-10-25T02:30` or `manual:<RFC 3339>`.
    pub fn key(&self) -> String {
        match self {
            RunKey::Occurrence(o) => o.key(),
            RunKey::Manual(t) => format!("manual:{}", rfc3339(*t)),
        }
    }
}

/// One row of `job_runs`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub job: String,
    pub occurrence: String,
    pub cause: String,
    pub due_at: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `ok` or `error`; `None` while in hand (or interrupted).
    pub outcome: Option<String>,
    pub summary: Option<String>,
    pub attempts: i64,
}

impl RunRecord {
    pub fn ok(&self) -> bool {
        self.outcome.as_deref() == Some("ok")
    }

    const COLUMNS: &'static str =
        "id, job, occurrence, cause, due_at, started_at, finished_at, outcome, summary, attempts";

    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            id: r.get(0)?,
            job: r.get(1)?,
            occurrence: r.get(2)?,
            cause: r.get(3)?,
            due_at: r.get(4)?,
            started_at: r.get(5)?,
            finished_at: r.get(6)?,
            outcome: r.get(7)?,
            summary: r.get(8)?,
            attempts: r.get(9)?,
        })
    }
}

/// Runs `job` through the one path of every run: recorded as started, run
/// (an error or a panic is its outcome, never the caller's), recorded as
/// finished with its history entry, logged; a failure is noted in `errors`
/// for `status`. `None` when the occurrence already has a finished run.
/// `Err` only when the record itself cannot be written.
///
/// `beat` is the daemon's heartbeat: beaten while the job works in SQLite,
/// so that a long job is not taken for a stuck processor (see
/// [`crate::pipeline::progress`]).
pub fn execute(
    conn: &mut Connection,
    cfg: &Config,
    clock: &Clock,
    job: Job,
    key: RunKey,
    cause: Cause,
    beat: Option<&Progress>,
) -> Result<Option<RunRecord>> {
    let Some(id) = begin(conn, clock.now(), job, key, cause)? else {
        return Ok(None);
    };
    if let Some(b) = beat {
        b.beat();
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _hb = beat.map(|b| Heartbeat::install(conn, b));
        // A job that panics, on demand (debug builds; see crate::fault).
        crate::fault::hit("job", job.as_str());
        // A job that fails with an error, on demand (debug builds).
        if crate::fault::asked("job-error", job.as_str()) {
            anyhow::bail!("fault injected: {job} failed");
        }
        super::run(conn, cfg, clock, job)
    }));
    let outcome: Result<String, String> = match outcome {
        Ok(Ok(summary)) => Ok(one_line(&summary)),
        Ok(Err(e)) => Err(one_line(&format!("{e:#}"))),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(one_line(&format!("internal error (panic): {msg}")))
        }
    };
    if let Some(b) = beat {
        b.beat();
    }
    let rec = finish(conn, clock.now(), id, job, &outcome)?;
    crate::metrics::global().job_run(job, outcome.is_ok());
    match &outcome {
        Ok(summary) => tracing::info!(
            job = job.as_str(),
            occurrence = rec.occurrence,
            cause = rec.cause,
            summary,
            "job run"
        ),
        Err(error) if cause == Cause::Manual => {
            tracing::error!(job = job.as_str(), occurrence = rec.occurrence, error, "job failed");
            crate::pipeline::note_error(conn, clock, "jobs", &format!("{job} ({}): {error}", rec.occurrence));
        }
        Err(error) => {
            tracing::error!(
                job = job.as_str(),
                occurrence = rec.occurrence,
                cause = rec.cause,
                error,
                "job failed; not retried: its next occurrence comes as scheduled"
            );
            crate::pipeline::note_error(conn, clock, "jobs", &format!("{job} ({}): {error}", rec.occurrence));
        }
    }
    Ok(Some(rec))
}

/// A message on one line (a job's summary or error goes into one column,
/// one log field, one history comment).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Records the start; `None` when the occurrence already has a finished
/// run. An unfinished one (interrupted) is taken again: one more attempt.
fn begin(conn: &Connection, now: DateTime<Utc>, job: Job, key: RunKey, cause: Cause) -> Result<Option<i64>> {
    let at = rfc3339(now);
    let (due_at, key_text) = match key {
        RunKey::Occurrence(o) => (Some(rfc3339(o.instant())), o.key()),
        RunKey::Manual(_) => (None, key.key()),
    };
    if let RunKey::Occurrence(_) = key {
        let existing: Option<(i64, Option<String>)> = conn
            .query_row(
                "SELECT id, finished_at FROM job_runs WHERE job = ?1 AND occurrence = ?2 AND cause != 'manual'",
                params![job.as_str(), key_text],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("reading the job runs")?;
        match existing {
            Some((_, Some(_))) => return Ok(None),
            Some((id, None)) => {
                conn.execute(
                    "UPDATE job_runs SET started_at = ?2, attempts = attempts + 1 WHERE id = ?1",
                    params![id, at],
                )
                .context("recording the start of a job run")?;
                return Ok(Some(id));
            }
            None => {}
        }
    }
    conn.execute(
        "INSERT INTO job_runs (job, occurrence, cause, due_at, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![job.as_str(), key_text, cause.as_str(), due_at, at],
    )
    .context("recording the start of a job run")?;
    Ok(Some(conn.last_insert_rowid()))
}

/// Records the end of run `id` and its history entry, in one transaction.
fn finish(
    conn: &mut Connection,
    now: DateTime<Utc>,
    id: i64,
    job: Job,
    outcome: &Result<String, String>,
) -> Result<RunRecord> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("recording the end of a job run")?;
    let (result, text) = match outcome {
        Ok(s) => ("ok", s.as_str()),
        Err(e) => ("error", e.as_str()),
    };
    tx.execute(
        "UPDATE job_runs SET finished_at = ?2, outcome = ?3, summary = ?4 WHERE id = ?1",
        params![id, rfc3339(now), result, text],
    )
    .context("recording the end of a job run")?;
    let rec = run_by_id(&tx, id)?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "job",
            application: job.application(),
            interface: "jobs",
            comment: history_comment(job, &rec),
            ..Default::default()
        },
    )?;
    tx.commit().context("recording the end of a job run")?;
    Ok(rec)
}

/// `relances (échéance du 24/11/2026 07:00) : ok — 1 commande(s) …`
fn history_comment(job: Job, rec: &RunRecord) -> String {
    let when = Occurrence::parse(&rec.occurrence)
        .map(|o| o.local().format("%d/%m/%Y %H:%M").to_string())
        .unwrap_or_default();
    let why = match rec.cause.as_str() {
        "schedule" => format!("échéance du {when}"),
        "catch-up" => format!("rattrapage de l'échéance du {when}"),
        _ => "lancement manuel".to_string(),
    };
    let retry = if rec.attempts > 1 {
        ", reprise après interruption"
    } else {
        ""
    };
    let summary = rec.summary.as_deref().unwrap_or("");
    if rec.ok() {
        format!("{job} ({why}{retry}) : ok — {summary}")
    } else {
        format!("{job} ({why}{retry}) : échec — {summary}")
    }
}

fn run_by_id(conn: &Connection, id: i64) -> Result<RunRecord> {
    conn.query_row(
        &format!("SELECT {} FROM job_runs WHERE id = ?1", RunRecord::COLUMNS),
        [id],
        RunRecord::from_row,
    )
    .context("reading a job run")
}

/// The latest run of `job` (by recording order), scheduled or by hand.
pub fn last_run(conn: &Connection, job: Job) -> Result<Option<RunRecord>> {
    conn.query_row(
        &format!(
            "SELECT {} FROM job_runs WHERE job = ?1 ORDER BY id DESC LIMIT 1",
            RunRecord::COLUMNS
        ),
        [job.as_str()],
        RunRecord::from_row,
    )
    .optional()
    .context("reading the job runs")
}

/// Whether occurrence `o` of `job` needs no run: it has one (finished or
/// in hand), or a successful run by hand started at or after its instant
/// did its work.
pub fn has_run(conn: &Connection, job: Job, o: &Occurrence) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM job_runs WHERE job = ?1 AND occurrence = ?2 AND cause != 'manual')
             OR EXISTS (SELECT 1 FROM job_runs WHERE job = ?1 AND cause = 'manual' AND outcome = 'ok' AND started_at >= ?3)",
        params![job.as_str(), o.key(), rfc3339(o.instant())],
        |r| r.get(0),
    )
    .context("reading the job runs")
}

/// Since when the daemon follows the schedule of `job` (`None`: it does
/// not, or has never).
pub fn since(conn: &Connection, job: Job) -> Result<Option<DateTime<Utc>>> {
    let t: Option<String> = conn
        .query_row("SELECT since FROM job_schedules WHERE job = ?1", [job.as_str()], |r| {
            r.get(0)
        })
        .optional()
        .context("reading the job schedules")?;
    Ok(t.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Takes up `schedules`: a job newly scheduled, or whose expression
/// changed, is followed from `now` on (nothing from before is owed); a
/// disabled one is no longer followed. Returns the jobs whose schedule
/// changed, with their new expression (`None`: disabled).
pub fn follow(conn: &Connection, schedules: &Schedules, now: DateTime<Utc>) -> Result<Vec<(Job, Option<String>)>> {
    let mut changed = Vec::new();
    for job in Job::ALL {
        let want = schedules.get(job).map(|s| s.expr().to_string());
        let have: Option<String> = conn
            .query_row(
                "SELECT schedule FROM job_schedules WHERE job = ?1",
                [job.as_str()],
                |r| r.get(0),
            )
            .optional()
            .context("reading the job schedules")?;
        if want == have {
            continue;
        }
        match &want {
            Some(expr) => conn.execute(
                "INSERT INTO job_schedules (job, schedule, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job) DO UPDATE SET schedule = excluded.schedule, since = excluded.since",
                params![job.as_str(), expr, rfc3339(now)],
            ),
            None => conn.execute("DELETE FROM job_schedules WHERE job = ?1", [job.as_str()]),
        }
        .context("recording the job schedules")?;
        changed.push((job, want));
    }
    Ok(changed)
}

/// At the daemon's start, before anything runs: takes up the schedules
/// ([`follow`]) and settles the runs a stop of the process interrupted.
/// Returns the occurrences to run again (once: a run interrupted twice is
/// recorded as failed). An interrupted run is not run again when a later
/// occurrence of its job is owed (its catch-up does the work), when its
/// job is no longer scheduled, or when it was a run by hand.
pub fn take_up(conn: &mut Connection, clock: &Clock, schedules: &Schedules) -> Result<Vec<(Job, Occurrence)>> {
    let now = clock.now();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .context("taking up the job schedules")?;
    for (job, expr) in follow(&tx, schedules, now)? {
        match expr {
            Some(e) => tracing::info!(
                job = job.as_str(),
                schedule = e,
                "job schedule taken up: runs from now on"
            ),
            None => tracing::info!(job = job.as_str(), "job no longer scheduled"),
        }
    }
    let unfinished: Vec<RunRecord> = tx
        .prepare(&format!(
            "SELECT {} FROM job_runs WHERE finished_at IS NULL ORDER BY id",
            RunRecord::COLUMNS
        ))?
        .query_map([], RunRecord::from_row)?
        .collect::<rusqlite::Result<_>>()
        .context("reading the job runs")?;
    let mut retry = Vec::new();
    for rec in unfinished {
        let job = Job::parse(&rec.job);
        let occurrence = Occurrence::parse(&rec.occurrence);
        let verdict = match (job, occurrence) {
            (Some(job), Some(o)) if rec.cause != "manual" => match schedules.get(job) {
                None => Err("interrompue par un arrêt du processus ; la tâche n'est plus planifiée".to_string()),
                Some(s) => {
                    let since = since(&tx, job)?.unwrap_or(now);
                    match schedule::owed(s, since, now, |l| has_run(&tx, job, l).unwrap_or(true)) {
                        Some(later) if later.instant() > o.instant() => Err(format!(
                            "interrompue par un arrêt du processus ; l'échéance {later}, due depuis, la remplace"
                        )),
                        _ if rec.attempts >= 2 => {
                            Err("interrompue deux fois par un arrêt du processus ; pas de nouvelle reprise".to_string())
                        }
                        _ => Ok((job, o)),
                    }
                }
            },
            _ => Err("interrompue par un arrêt du processus ; à relancer à la main si besoin".to_string()),
        };
        match verdict {
            Ok((job, o)) => {
                tracing::warn!(
                    job = job.as_str(),
                    occurrence = rec.occurrence,
                    "job run interrupted by a stop of the process: run again once now"
                );
                retry.push((job, o));
            }
            Err(why) => {
                tracing::warn!(
                    job = rec.job,
                    occurrence = rec.occurrence,
                    why,
                    "interrupted job run closed as failed"
                );
                tx.execute(
                    "UPDATE job_runs SET finished_at = ?2, outcome = 'error', summary = ?3 WHERE id = ?1",
                    params![rec.id, rfc3339(now), why],
                )?;
                let closed = run_by_id(&tx, rec.id)?;
                let application = job.map_or("aide-a-domicile", Job::application);
                let comment = match job {
                    Some(j) => history_comment(j, &closed),
                    None => format!("{} ({}) : échec — {why}", rec.job, rec.occurrence),
                };
                history::record(
                    &tx,
                    now,
                    &Entry {
                        kind: "job",
                        application,
                        interface: "jobs",
                        comment,
                        ..Default::default()
                    },
                )?;
            }
        }
    }
    tx.commit().context("taking up the job schedules")?;
    Ok(retry)
}

/// A job's line in `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStatus {
    pub job: &'static str,
    /// The cron expression (Europe/Paris), `None` when not scheduled.
    pub schedule: Option<String>,
    /// How it runs when it has no expression.
    pub note: Option<String>,
    pub last_run: Option<RunRecord>,
    /// The next occurrence (Paris wall clock) and the Paris time it runs at
    /// (they differ in the spring gap).
    pub next_occurrence: Option<String>,
    pub next_run_at: Option<String>,
    /// An occurrence due with no run: what the daemon runs at once (or at
    /// its next start).
    pub owed: Option<String>,
}

/// Every job's status at `now`.
pub fn status(conn: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Vec<JobStatus>> {
    let schedules = Schedules::from_config(&cfg.jobs)?;
    let mut out = Vec::new();
    for job in Job::ALL {
        let s = schedules.get(job);
        let next = s.and_then(|s| s.next_due(now));
        let owed = match s {
            Some(s) => match since(conn, job)? {
                Some(since) => schedule::owed(s, since, now, |o| has_run(conn, job, o).unwrap_or(true)),
                None => None,
            },
            None => None,
        };
        out.push(JobStatus {
            job: job.as_str(),
            schedule: s.map(|s| s.expr().to_string()),
            note: match (job, s) {
                (Job::Mail, _) => Some(format!(
                    "mail worker, every {} s ([mail] poll_secs)",
                    cfg.mail.poll_secs
                )),
                (_, None) => Some("disabled ([jobs] is empty for it)".to_string()),
                _ => None,
            },
            last_run: last_run(conn, job)?,
            next_occurrence: next.map(|o| o.key()),
            next_run_at: next.map(|o| paris_minute(o.instant())),
            owed: owed.map(|o| o.key()),
        });
    }
    Ok(out)
}

/// An instant as Paris wall-clock time to the minute.
fn paris_minute(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).format("%Y-%m-%d %H:%M").to_string()
}

/// Beats the heartbeat while the job works in SQLite (every few thousand
/// virtual-machine steps), for as long as it is installed.
struct Heartbeat {
    db: *mut rusqlite::ffi::sqlite3,
    progress: Box<Progress>,
}

/// How many SQLite virtual-machine instructions between two beats.
const BEAT_EVERY: std::ffi::c_int = 100_000;

extern "C" fn on_progress(p: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: `p` is the `Progress` boxed in the `Heartbeat` that installed
    // this handler; the handler is removed before that box is dropped.
    let progress = unsafe { &*(p as *const Progress) };
    progress.beat();
    0
}

impl Heartbeat {
    fn install(conn: &Connection, progress: &Progress) -> Heartbeat {
        let progress = Box::new(progress.clone());
        // SAFETY: the raw handle of a connection that outlives this guard
        // (the guard lives inside the caller's borrow of it); the handler's
        // argument points into a box this guard keeps alive until the
        // handler is removed in `drop`.
        unsafe {
            let db = conn.handle();
            rusqlite::ffi::sqlite3_progress_handler(
                db,
                BEAT_EVERY,
                Some(on_progress),
                &*progress as *const Progress as *mut std::ffi::c_void,
            );
            Heartbeat { db, progress }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        // SAFETY: the handle installed on in `install`; removing the handler
        // before `progress` is freed.
        unsafe { rusqlite::ffi::sqlite3_progress_handler(self.db, 0, None, std::ptr::null_mut()) };
        let _ = &self.progress;
    }
}

#[cfg(test)]
mod tests;
