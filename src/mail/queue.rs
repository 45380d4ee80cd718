//! The mail queue seen from outside the worker: what `status` shows
//! (pending, due, failed, the failed messages with their errors) and how an
//! operator queues failed messages again once the cause is fixed
//! (`ppas-gateway mail retry`).
//!
//! A message is in one of three states:
//!
//! - **sent**: `sent_at` set;
//! - **failed**: `failed_at` set by the worker when its last allowed attempt
//!   failed (or it cannot be built); also, until the worker's next pass
//!   marks it, a message left at `attempts >= [mail] max_attempts` without
//!   the mark (a database from before the column, or a lowered limit);
//! - **pending**: neither; tried when `next_attempt_at` comes.
//!
//! A failed message stays failed whatever the configuration says later:
//! only [`retry`] gives it another chance.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::config::Config;

/// The SQL condition of a failed message (`?1`: `max_attempts`).
const FAILED: &str = "sent_at IS NULL AND (failed_at IS NOT NULL OR attempts >= ?1)";
/// The SQL condition of a pending message (`?1`: `max_attempts`).
const PENDING: &str = "sent_at IS NULL AND failed_at IS NULL AND attempts < ?1";

/// How many failed messages [`status`] lists (the count covers them all).
pub const FAILED_LISTED: i64 = 50;
/// How many pending messages with a failed attempt [`status`] lists.
pub const RETRYING_LISTED: i64 = 10;

/// Counts of the queue, the failed messages and the latest failed attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// Unsent and still to be tried (now or later).
    pub pending: u64,
    /// Of those, due now.
    pub due: u64,
    /// Unsent and no longer tried until `mail retry`.
    pub failed: u64,
    pub sent: u64,
    /// When the next pending message is due.
    pub next_attempt_at: Option<String>,
    /// Creation time of the oldest unsent message (pending or failed).
    pub oldest_unsent_since: Option<String>,
    /// The failed messages, most recently failed first (at most
    /// [`FAILED_LISTED`]), each with its last error.
    pub failed_messages: Vec<Failure>,
    /// Pending messages whose last attempt failed (they will be tried
    /// again), latest first (at most [`RETRYING_LISTED`]).
    pub retrying: Vec<Failure>,
}

/// A message that failed (for good, or its last attempt so far).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The id `mail retry ID` takes.
    pub id: i64,
    pub dedup_key: String,
    pub subject: String,
    pub attempts: u32,
    /// When it was marked failed (RFC 3339, UTC). `None` for a pending
    /// message, and for a message at the limit the worker has not marked yet.
    pub failed_at: Option<String>,
    /// When it is tried next; `None` for a failed message.
    pub next_attempt_at: Option<String>,
    pub last_error: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Pending and failed messages only, through the index on `sent_at`: the
/// cheap read of the metrics and of the service status line.
pub fn counts(conn: &Connection, cfg: &Config) -> Result<(u64, u64)> {
    let max = cfg.mail.max_attempts.max(1);
    let (pending, failed): (i64, i64) = conn.query_row(
        &format!(
            "SELECT COALESCE(SUM({PENDING}), 0), COALESCE(SUM({FAILED}), 0)
             FROM mail_queue WHERE sent_at IS NULL"
        ),
        [max],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((pending as u64, failed as u64))
}

pub fn status(conn: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<QueueStatus> {
    let max = cfg.mail.max_attempts.max(1);
    let (pending, due, failed, sent): (i64, i64, i64, i64) = conn.query_row(
        &format!(
            "SELECT
                COALESCE(SUM({PENDING}), 0),
                COALESCE(SUM({PENDING} AND next_attempt_at <= ?2), 0),
                COALESCE(SUM({FAILED}), 0),
                COALESCE(SUM(sent_at IS NOT NULL), 0)
             FROM mail_queue"
        ),
        params![max, ts(now)],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let next_attempt_at = conn.query_row(
        &format!("SELECT MIN(next_attempt_at) FROM mail_queue WHERE {PENDING}"),
        [max],
        |r| r.get(0),
    )?;
    let oldest_unsent_since = conn.query_row(
        "SELECT MIN(created_at) FROM mail_queue WHERE sent_at IS NULL",
        [],
        |r| r.get(0),
    )?;
    let list = |sql: &str, limit: i64, is_failed: bool| -> Result<Vec<Failure>> {
        let mut st = conn.prepare(sql)?;
        let rows = st
            .query_map(params![max, limit], |r| {
                Ok(Failure {
                    id: r.get(0)?,
                    dedup_key: r.get(1)?,
                    subject: r.get(2)?,
                    attempts: r.get(3)?,
                    failed_at: r.get(4)?,
                    next_attempt_at: if is_failed { None } else { r.get(5)? },
                    last_error: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    };
    let failed_messages = list(
        &format!(
            "SELECT id, dedup_key, subject, attempts, failed_at, next_attempt_at, last_error
             FROM mail_queue WHERE {FAILED}
             ORDER BY COALESCE(failed_at, next_attempt_at) DESC, id DESC LIMIT ?2"
        ),
        FAILED_LISTED,
        true,
    )?;
    // next_attempt_at - backoff = time of the failure; ordering by it is
    // close enough and needs no extra column: the latest failures have the
    // latest retry times.
    let retrying = list(
        &format!(
            "SELECT id, dedup_key, subject, attempts, failed_at, next_attempt_at, last_error
             FROM mail_queue WHERE {PENDING} AND last_error IS NOT NULL
             ORDER BY next_attempt_at DESC, id DESC LIMIT ?2"
        ),
        RETRYING_LISTED,
        false,
    )?;
    Ok(QueueStatus {
        pending: pending as u64,
        due: due as u64,
        failed: failed as u64,
        sent: sent as u64,
        next_attempt_at,
        oldest_unsent_since,
        failed_messages,
        retrying,
    })
}

/// Which failed messages [`retry`] queues again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    All,
    One(i64),
}

/// Queues failed messages again (`mail retry`): attempts back to 0, the
/// failure mark cleared, due now; the last error stays until the next
/// attempt. Returns how many. One short IMMEDIATE transaction: safe while
/// the daemon's worker runs (it only takes a message it has claimed, and a
/// failed message is never claimed).
///
/// `Retry::One` of an unknown id, or of a message that is not failed (sent,
/// or still being tried), is an error that says which.
pub fn retry(conn: &mut Connection, cfg: &Config, now: DateTime<Utc>, which: Retry) -> Result<usize> {
    let max = cfg.mail.max_attempts.max(1);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("cannot write to the database")?;
    let n = match which {
        Retry::All => tx.execute(
            &format!("UPDATE mail_queue SET attempts = 0, failed_at = NULL, next_attempt_at = ?2 WHERE {FAILED}"),
            params![max, ts(now)],
        )?,
        Retry::One(id) => {
            let row: Option<(Option<String>, Option<String>, u32, String)> = tx
                .query_row(
                    "SELECT sent_at, failed_at, attempts, next_attempt_at FROM mail_queue WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            match row {
                None => bail!("no e-mail {id} in the queue (`ppas-gateway status` lists the failed ones)"),
                Some((Some(sent), _, _, _)) => bail!("e-mail {id} was sent at {sent}: nothing to retry"),
                Some((None, None, attempts, next)) if attempts < max => bail!(
                    "e-mail {id} has not failed: it is still being tried ({attempts} attempt{} of {max} so far, \
                     next at {next})",
                    if attempts > 1 { "s" } else { "" }
                ),
                Some(_) => tx.execute(
                    "UPDATE mail_queue SET attempts = 0, failed_at = NULL, next_attempt_at = ?2 WHERE id = ?1",
                    params![id, ts(now)],
                )?,
            }
        }
    };
    tx.commit()?;
    if n > 0 {
        tracing::info!(messages = n, "failed e-mails queued again");
    }
    Ok(n)
}
