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

/// A message to queue. Its `Debug` leaves out a secret body.
#[derive(Clone)]
pub struct Message {
    /// Unique key of the cause (e.g. `report:<file-id>`): queued at most once.
    pub dedup_key: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub body: String,
    /// The body holds a secret (a password): wiped from the state once delivered.
    pub secret: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("dedup_key", &self.dedup_key)
            .field("recipients", &self.recipients)
            .field("subject", &self.subject)
            .field("body", &body_for_debug(&self.body, self.secret))
            .field("secret", &self.secret)
            .finish()
    }
}

/// A body as `Debug` shows it: a secret one only by its length.
pub(crate) fn body_for_debug(body: &str, secret: bool) -> std::borrow::Cow<'_, str> {
    if secret {
        format!("<secret, {} bytes>", body.len()).into()
    } else {
        body.into()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_a_secret_body_out() {
        let mut m = Message {
            dedup_key: "user:alice:password".into(),
            recipients: vec!["alice@example.org".into()],
            subject: "Votre mot de passe".into(),
            body: "Mot de passe : Zq8-secret".into(),
            secret: true,
        };
        let shown = format!("{m:?}");
        assert!(
            !shown.contains("Zq8-secret") && shown.contains("<secret, 25 bytes>"),
            "{shown}"
        );
        m.secret = false;
        assert!(format!("{m:?}").contains("Zq8-secret"));
        let q = compose::Queued {
            id: 1,
            dedup_key: m.dedup_key.clone(),
            created_at: String::new(),
            recipients: String::new(),
            subject: m.subject.clone(),
            body: m.body.clone(),
            attempts: 0,
            next_attempt_at: String::new(),
            secret: true,
        };
        assert!(!format!("{q:?}").contains("Zq8-secret"));
    }
}
