//! The mail queue seen from outside the worker: what `status` shows
//! (pending, due, abandoned, the latest errors) and how an operator gives
//! abandoned messages another chance once the cause is fixed.
//!
//! "Abandoned" is not a column: it is `sent_at IS NULL AND attempts >=
//! [mail] max_attempts`. Raising `max_attempts` therefore also resumes them,
//! and the meaning stays in one place.

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::config::Config;

/// Counts and latest errors of the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Unsent and still to be tried (now or later).
    pub pending: u64,
    /// Of those, due now.
    pub due: u64,
    /// Unsent and no longer tried (reached `max_attempts`).
    pub abandoned: u64,
    pub sent: u64,
    /// When the next pending message is due.
    pub next_attempt_at: Option<String>,
    /// Creation time of the oldest unsent message (pending or abandoned).
    pub oldest_unsent_since: Option<String>,
    /// The unsent messages that failed most recently, newest first (≤ 10).
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub id: i64,
    pub dedup_key: String,
    pub subject: String,
    pub attempts: u32,
    pub abandoned: bool,
    pub next_attempt_at: String,
    pub last_error: String,
}

pub fn status(conn: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<QueueStatus> {
    let max = cfg.mail.max_attempts.max(1);
    let now = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let (pending, due, abandoned, sent): (i64, i64, i64, i64) = conn.query_row(
        "SELECT
            COALESCE(SUM(sent_at IS NULL AND attempts < ?1), 0),
            COALESCE(SUM(sent_at IS NULL AND attempts < ?1 AND next_attempt_at <= ?2), 0),
            COALESCE(SUM(sent_at IS NULL AND attempts >= ?1), 0),
            COALESCE(SUM(sent_at IS NOT NULL), 0)
         FROM mail_queue",
        params![max, now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let next_attempt_at = conn.query_row(
        "SELECT MIN(next_attempt_at) FROM mail_queue WHERE sent_at IS NULL AND attempts < ?1",
        [max],
        |r| r.get(0),
    )?;
    let oldest_unsent_since = conn.query_row(
        "SELECT MIN(created_at) FROM mail_queue WHERE sent_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    // next_attempt_at - backoff = time of the failure; ordering by it is
    // close enough and needs no extra column: the latest failures have the
    // latest retry times.
    let mut st = conn.prepare(
        "SELECT id, dedup_key, subject, attempts, next_attempt_at, last_error FROM mail_queue
         WHERE sent_at IS NULL AND last_error IS NOT NULL
         ORDER BY next_attempt_at DESC, id DESC LIMIT 10",
    )?;
    let failures = st
        .query_map([], |r| {
            let attempts: u32 = r.get(3)?;
            Ok(Failure {
                id: r.get(0)?,
                dedup_key: r.get(1)?,
                subject: r.get(2)?,
                attempts,
                abandoned: attempts >= max,
                next_attempt_at: r.get(4)?,
                last_error: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(QueueStatus {
        pending: pending as u64,
        due: due as u64,
        abandoned: abandoned as u64,
        sent: sent as u64,
        next_attempt_at,
        oldest_unsent_since,
        failures,
    })
}

/// Gives every abandoned message a fresh start (attempts 0, due now).
/// Returns how many.
pub fn requeue_abandoned(conn: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<usize> {
    let max = cfg.mail.max_attempts.max(1);
    Ok(conn.execute(
        "UPDATE mail_queue SET attempts = 0, next_attempt_at = ?2
         WHERE sent_at IS NULL AND attempts >= ?1",
        params![max, now.to_rfc3339_opts(SecondsFormat::Secs, true)],
    )?)
}
