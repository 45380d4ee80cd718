//! `status [--json]`: what the gateway holds right now, for the caisse IT team.
//!
//! In: the spool folders and the state database. Out: one screen (or one
//! JSON object) with the files waiting in the drop folders, the files in
//! flight, the outputs owed but not yet written, the mail queue, the last
//! files processed and the last errors, the database path and schema
//! version, whether a daemon is processing this spool, the quarantined
//! files and the e-mails that failed, each with its error, the files
//! decided over the last 24 hours by kind and verdict, and every job
//! with its schedule, last run and next occurrence (the numbers of
//! `/metrics`, read the same way). Everything is
//! read in one read transaction so the counts agree with each other. A
//! missing database is an error saying where it was looked for: `status`
//! never creates state.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::Connection;
use serde::Serialize;

use super::{Ctx, Outcome};

/// How many recent files and errors are shown.
const RECENT: i64 = 5;

#[derive(Debug, Serialize)]
pub struct Status {
    pub database: String,
    /// Whether a processing instance (`serve` or `process --once`) holds
    /// this spool's lock right now.
    pub daemon_running: bool,
    /// Free and total bytes of the spool's file system: below
    /// [`crate::spool::DiskSpace::LOW`] files wait in `inbound/` and
    /// outputs stay owed until space is freed (then all is finished).
    pub spool_space: Option<crate::spool::DiskSpace>,
    pub schema_version: i64,
    pub schema_version_known: i64,
    /// Files waiting in `inbound/<provider>/`, per provider (temporary names excluded).
    pub inbound: BTreeMap<String, usize>,
    pub inbound_total: usize,
    /// Received files not yet done: `received` (taken, no verdict) and `decided`.
    pub in_flight_received: i64,
    pub in_flight_decided: i64,
    /// Outputs owed (outbox file, reports) not yet written.
    pub outputs_owed: i64,
    /// Unsent e-mails still tried, and those that reached `[mail] max_attempts`
    /// (same definitions as the mail worker: [`crate::mail::queue::status`]).
    pub mail_pending: u64,
    pub mail_failed: u64,
    /// When the next pending e-mail is tried (Paris time).
    pub mail_next_attempt_at: Option<String>,
    /// E-mails that failed after their last attempt, with their error
    /// (`ppas-gateway mail retry` re-queues them).
    pub mail_failures: Vec<crate::mail::queue::Failure>,
    /// Files that failed again and again (`ppas-gateway retry` puts them back).
    pub quarantined: Vec<QuarantineLine>,
    /// Files decided in the 24 hours before now, per kind (both kinds
    /// always listed).
    pub last_24h: Vec<DecidedCounts>,
    pub last_files: Vec<FileLine>,
    pub last_errors: Vec<ErrorLine>,
    /// Every job (`ppas-gateway run JOB` names): its schedule (a cron
    /// expression in Europe/Paris time, or how it runs without one), its
    /// last run (times in Paris time) and its next occurrence.
    pub jobs: Vec<crate::jobs::runs::JobStatus>,
}

#[derive(Debug, Default, Serialize)]
pub struct DecidedCounts {
    pub kind: String,
    pub accepted: i64,
    pub partial: i64,
    pub rejected: i64,
}

#[derive(Debug, Serialize)]
pub struct FileLine {
    pub decided_at: Option<String>,
    pub provider: String,
    pub name: String,
    pub verdict: Option<String>,
    pub lines: Option<i64>,
    pub accepted_lines: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct QuarantineLine {
    pub id: i64,
    pub provider: String,
    pub name: String,
    /// Where its copy is kept (spool-relative).
    pub path: String,
    pub attempts: u32,
    pub quarantined_at: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ErrorLine {
    pub at: String,
    pub worker: String,
    pub message: String,
}

pub fn run(ctx: &Ctx, json: bool) -> Result<Outcome> {
    let mut conn = crate::store::open_existing(&ctx.cfg.paths.database)?;
    let s = gather(&mut conn, ctx)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&s)?)?;
    } else {
        write_human(&mut out, &s)?;
    }
    Ok(Outcome::Ok)
}

/// Collects every figure of the status.
pub fn gather(conn: &mut Connection, ctx: &Ctx) -> Result<Status> {
    let inbound = crate::spool::Spool::new(&ctx.cfg.paths.spool).inbound_counts()?;
    let tx = conn.transaction().context("cannot read the database")?;
    let count = |sql: &str| -> Result<i64> {
        tx.query_row(sql, [], |r| r.get(0))
            .with_context(|| format!("status query {sql:?}"))
    };
    let schema_version = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let in_flight_received =
        count("SELECT COUNT(*) FROM received_files WHERE state = 'received' AND quarantined_at IS NULL")?;
    let in_flight_decided =
        count("SELECT COUNT(*) FROM received_files WHERE state = 'decided' AND quarantined_at IS NULL")?;
    let quarantined = crate::pipeline::quarantine::quarantined(&tx)?
        .into_iter()
        .map(|f| QuarantineLine {
            id: f.id,
            provider: f.provider,
            name: f.name,
            path: f.work_path,
            attempts: f.attempts,
            quarantined_at: f.quarantined_at.map(|t| paris(&crate::pipeline::rfc3339(t))),
            last_error: f.last_error,
        })
        .collect();
    let outputs_owed = count("SELECT COUNT(*) FROM outputs WHERE done_at IS NULL")?;
    let mail = crate::mail::queue::status(&tx, &ctx.cfg, ctx.clock.now()).context("cannot read the mail queue")?;

    let since = crate::pipeline::rfc3339(ctx.clock.now() - chrono::Duration::hours(24));
    let last_24h = decided_since(&tx, &since)?;
    let mut stmt = tx.prepare(
        "SELECT decided_at, provider, name, verdict, lines, accepted_lines FROM received_files
         WHERE decided_at IS NOT NULL ORDER BY decided_at DESC, id DESC LIMIT ?1",
    )?;
    let last_files = stmt
        .query_map([RECENT], |r| {
            Ok(FileLine {
                decided_at: r.get::<_, Option<String>>(0)?.map(|t| paris(&t)),
                provider: r.get(1)?,
                name: r.get(2)?,
                verdict: r.get(3)?,
                lines: r.get(4)?,
                accepted_lines: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read the last files")?;
    drop(stmt);
    // Most recently recorded first: the id is the recording order even when
    // a replay clock makes `at` go backwards.
    let mut stmt = tx.prepare("SELECT at, worker, message FROM errors ORDER BY id DESC LIMIT ?1")?;
    let last_errors = stmt
        .query_map([RECENT], |r| {
            Ok(ErrorLine {
                at: paris(&r.get::<_, String>(0)?),
                worker: r.get(1)?,
                message: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read the last errors")?;
    drop(stmt);
    let mut jobs = crate::jobs::runs::status(&tx, &ctx.cfg, ctx.clock.now()).context("cannot read the job runs")?;
    for j in &mut jobs {
        if let Some(r) = &mut j.last_run {
            r.started_at = paris(&r.started_at);
            r.finished_at = r.finished_at.as_deref().map(paris);
            r.due_at = r.due_at.as_deref().map(paris);
        }
    }
    tx.finish()?;

    Ok(Status {
        database: ctx.cfg.paths.database.display().to_string(),
        daemon_running: crate::pipeline::SpoolLock::is_held(&ctx.cfg),
        spool_space: crate::spool::DiskSpace::of(&ctx.cfg.paths.spool),
        schema_version,
        schema_version_known: crate::store::SCHEMA_VERSION,
        inbound_total: inbound.values().sum(),
        inbound,
        in_flight_received,
        in_flight_decided,
        outputs_owed,
        mail_pending: mail.pending,
        mail_failed: mail.failed,
        mail_next_attempt_at: mail.next_attempt_at.as_deref().map(paris),
        mail_failures: mail.failed_messages,
        quarantined,
        last_24h,
        last_files,
        last_errors,
        jobs,
    })
}

/// Files decided at `since` (RFC 3339, UTC) or later, by kind and verdict.
fn decided_since(conn: &Connection, since: &str) -> Result<Vec<DecidedCounts>> {
    let mut out: Vec<DecidedCounts> = [
        crate::anomaly::FileKind::Billing,
        crate::anomaly::FileKind::Attestations,
    ]
    .into_iter()
    .map(|k| DecidedCounts {
        kind: k.as_str().to_string(),
        ..Default::default()
    })
    .collect();
    let mut stmt = conn.prepare(
        "SELECT kind, verdict, COUNT(*) FROM received_files
         WHERE decided_at >= ?1 AND verdict IS NOT NULL GROUP BY kind, verdict",
    )?;
    let rows = stmt
        .query_map([since], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot count the files decided over the last 24 hours")?;
    for (kind, verdict, n) in rows {
        let Some(c) = out.iter_mut().find(|c| c.kind == kind) else {
            continue;
        };
        match verdict.as_str() {
            "accepted" => c.accepted += n,
            "partial" => c.partial += n,
            _ => c.rejected += n,
        }
    }
    Ok(out)
}

/// A stored RFC 3339 instant shown in Europe/Paris; anything else as stored.
fn paris(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&Utc)
                .with_timezone(&Paris)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// The screen an operator reads.
pub fn write_human(out: &mut impl Write, s: &Status) -> std::io::Result<()> {
    let clean = |t: &str| {
        t.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
    };
    writeln!(
        out,
        "database        {} (schema version {}, this binary knows {})",
        s.database, s.schema_version, s.schema_version_known
    )?;
    writeln!(
        out,
        "daemon          {}",
        if s.daemon_running {
            "running on this spool"
        } else {
            "not running on this spool"
        }
    )?;
    if let Some(d) = s.spool_space {
        use crate::spool::human_bytes;
        writeln!(
            out,
            "spool space     {} free of {}{}",
            human_bytes(d.free),
            human_bytes(d.total),
            if d.is_low() {
                " — FULL: files wait and outputs stay owed until space is freed, then all is finished"
            } else {
                ""
            }
        )?;
    }
    writeln!(out, "inbound waiting {}", s.inbound_total)?;
    for (provider, n) in s.inbound.iter().filter(|(_, n)| **n > 0) {
        writeln!(out, "  {:<24} {n}", clean(provider))?;
    }
    writeln!(
        out,
        "in flight       {} ({} received, {} decided)",
        s.in_flight_received + s.in_flight_decided,
        s.in_flight_received,
        s.in_flight_decided
    )?;
    writeln!(out, "outputs owed    {}", s.outputs_owed)?;
    let next = s
        .mail_next_attempt_at
        .as_deref()
        .map(|t| format!(" (next attempt {t})"))
        .unwrap_or_default();
    writeln!(
        out,
        "mail            {} pending, {} failed{next}",
        s.mail_pending, s.mail_failed
    )?;
    for m in &s.mail_failures {
        writeln!(
            out,
            "  failed #{} after {} attempt(s){}: {} ({}) — `ppas-gateway mail retry {}` queues it again",
            m.id,
            m.attempts,
            m.failed_at
                .as_deref()
                .map(|t| format!(", {}", paris(t)))
                .unwrap_or_default(),
            clean(&m.subject),
            clean(&m.last_error),
            m.id
        )?;
    }
    writeln!(out, "quarantined     {}", s.quarantined.len())?;
    for q in &s.quarantined {
        writeln!(
            out,
            "  #{}  {}/{}  {} attempt(s), since {}: {}",
            q.id,
            clean(&q.provider),
            clean(&q.name),
            q.attempts,
            q.quarantined_at.as_deref().unwrap_or("-"),
            clean(q.last_error.as_deref().unwrap_or("-"))
        )?;
    }
    let day: Vec<String> = s
        .last_24h
        .iter()
        .map(|c| {
            format!(
                "{} {} accepted, {} partial, {} rejected",
                c.kind, c.accepted, c.partial, c.rejected
            )
        })
        .collect();
    writeln!(out, "last 24 hours   {}", day.join("; "))?;
    writeln!(out, "last files processed")?;
    if s.last_files.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for f in &s.last_files {
        let lines = match (f.accepted_lines, f.lines) {
            (Some(a), Some(l)) => format!("  ({a}/{l} lines accepted)"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {}  {:<8}  {}/{}{lines}",
            f.decided_at.as_deref().unwrap_or("-"),
            f.verdict.as_deref().unwrap_or("-"),
            clean(&f.provider),
            clean(&f.name),
        )?;
    }
    writeln!(out, "last errors")?;
    if s.last_errors.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for e in &s.last_errors {
        writeln!(out, "  {}  {}: {}", e.at, clean(&e.worker), clean(&e.message))?;
    }
    writeln!(out, "jobs (Europe/Paris time)")?;
    for j in &s.jobs {
        let how = match (&j.schedule, &j.note) {
            (Some(e), _) => format!("\"{e}\""),
            (None, Some(n)) => n.clone(),
            (None, None) => "-".into(),
        };
        let next = match (&j.next_occurrence, &j.next_run_at) {
            (Some(o), Some(at)) if !o.replace('T', " ").starts_with(at.as_str()) => {
                format!("  next {at} (occurrence {o})")
            }
            (_, Some(at)) => format!("  next {at}"),
            _ => String::new(),
        };
        writeln!(out, "  {:<18} {how}{next}", j.job)?;
        match &j.last_run {
            None => writeln!(out, "      last run  (none)")?,
            Some(r) => {
                let why = match r.cause.as_str() {
                    "manual" => "by hand".to_string(),
                    "catch-up" => format!("catch-up of {}", r.occurrence),
                    _ => format!("occurrence {}", r.occurrence),
                };
                let outcome = r.outcome.as_deref().unwrap_or("in hand or interrupted");
                let summary = r
                    .summary
                    .as_deref()
                    .map(|t| format!(": {}", clean(t)))
                    .unwrap_or_default();
                writeln!(out, "      last run  {} ({why}) {outcome}{summary}", r.started_at)?;
            }
        }
        if let Some(o) = &j.owed {
            let when = if s.daemon_running {
                "the daemon runs it now"
            } else {
                "run at the daemon's next start"
            };
            writeln!(out, "      due       {o} without a run: {when}")?;
        }
    }
    Ok(())
}
