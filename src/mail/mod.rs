//! E-mail: every message is queued in the database first (in the same
//! transaction as its cause, under a dedup key so a cause mails once), then
//! delivered by the mail worker, with back-off while the relay is down.
//!
//! - [`enqueue`] (here): queue a message, once per cause.
//! - [`deliver`]: the worker — one pass over the due messages, SMTP or `.eml`.
//! - [`compose`]: a queued row as an RFC 5322 message, its id and file name.
//! - [`queue`]: counts and failed messages for `status`; `mail retry`.
//! - [`smtp_url`]: `[mail] smtp_url`, a URL whose password never shows.

pub mod compose;
pub mod deliver;
pub mod queue;
pub mod smtp_url;

pub use smtp_url::SmtpUrl;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection};

/// A message to queue.
#[derive(Debug, Clone)]
pub struct Message {
    /// Unique key of the cause (e.g. `report:<file-id>`): queued at most once.
    pub dedup_key: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The body holds a secret (a password): wiped from the state once delivered.
    pub secret: bool,
}

/// Queues a message; a second message with the same dedup key is ignored.
/// Returns whether it was newly queued.
pub fn enqueue(conn: &Connection, now: DateTime<Utc>, m: &Message) -> Result<bool> {
    if m.recipients.is_empty() {
        return Ok(false);
    }
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let n = conn.execute(
        "INSERT INTO mail_queue (dedup_key, created_at, recipients, subject, body, next_attempt_at, secret)
         VALUES (?1, ?2, ?3, ?4, ?5, ?2, ?6)
         ON CONFLICT(dedup_key) DO NOTHING",
        params![m.dedup_key, at, m.recipients.join(","), m.subject, m.body, m.secret],
    )?;
    Ok(n == 1)
}
