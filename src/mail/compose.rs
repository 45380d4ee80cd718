//! Turns a queued row into an RFC 5322 message (with lettre's builder: UTF-8
//! subjects are RFC 2047-encoded, bodies quoted-printable or base64 as
//! needed), and names it.
//!
//! Everything that identifies a message derives from its queue row, never
//! from randomness: the `Message-ID` header and the `.eml` file name are the
//! same at every attempt. A message sent twice after a crash (see
//! [`super::deliver`]) therefore carries the same `Message-ID` both times,
//! which mail clients use to show it once.

use std::time::SystemTime;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use sha2::{Digest, Sha256};

/// One row of `mail_queue`, as the worker reads it. Its `Debug` leaves out
/// a secret body.
#[derive(Clone)]
pub struct Queued {
    pub id: i64,
    pub dedup_key: String,
    pub created_at: String,
    /// Comma-separated addresses.
    pub recipients: String,
    pub subject: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    /// The body holds a secret (a password): wiped once delivered.
    pub secret: bool,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("id", &self.id)
            .field("dedup_key", &self.dedup_key)
            .field("created_at", &self.created_at)
            .field("recipients", &self.recipients)
            .field("subject", &self.subject)
            .field("body", &super::body_for_debug(&self.body, self.secret))
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("secret", &self.secret)
            .finish()
    }
}

impl Queued {
    /// Recipients as listed (empty entries dropped).
    pub fn recipient_list(&self) -> Vec<&str> {
        self.recipients
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// 16 hex digits of SHA-256 over the dedup key and creation time: ties
    /// the message id and file name to this row even if the database is ever
    /// recreated and row ids start again from 1.
    fn tag(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.dedup_key.as_bytes());
        h.update([0]);
        h.update(self.created_at.as_bytes());
        hex::encode(&h.finalize()[..8])
    }

    /// `<ppas-42-0123456789abcdef@domain>`, domain of the sender address.
    pub fn message_id(&self, from: &str) -> String {
        let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
        format!("<ppas-{}-{}@{}>", self.id, self.tag(), domain)
    }

    /// File name in `<spool>/mail/`: `00000042-0123456789abcdef.eml`.
    pub fn eml_name(&self) -> String {
        format!("{:08}-{}.eml", self.id, self.tag())
    }
}

/// Why a row cannot become a message at all (retrying will not help).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unbuildable(pub String);

/// Builds the message, dated `now` (the worker's clock).
pub fn build(q: &Queued, from: &str, now: DateTime<Utc>) -> Result<lettre::Message> {
    let from_box: Mailbox = from
        .parse()
        .map_err(|e| Unbuildable(format!("sender {from:?} is not an address: {e}")))?;
    let mut b = lettre::Message::builder()
        .from(from_box)
        .subject(q.subject.as_str())
        .date(SystemTime::from(now))
        .message_id(Some(q.message_id(from)))
        .header(ContentType::TEXT_PLAIN)
        // RFC 3834: an automatic notice; vacation responders stay quiet.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_string(),
        ));
    let recipients = q.recipient_list();
    if recipients.is_empty() {
        return Err(Unbuildable("no recipient".into()).into());
    }
    for r in recipients {
        let to: Mailbox = r
            .parse()
            .map_err(|e| Unbuildable(format!("recipient {r:?} is not an address: {e}")))?;
        b = b.to(to);
    }
    let m = b
        .body(q.body.clone())
        .map_err(|e| Unbuildable(format!("cannot build the message: {e}")))
        .with_context(|| format!("mail {} ({})", q.id, q.dedup_key))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row() -> Queued {
        Queued {
            id: 42,
            dedup_key: "report:7".into(),
            created_at: "2026-11-25T09:00:00Z".into(),
            recipients: "a@example.org, b@example.org,".into(),
            subject: "Compte rendu : fichier rejeté (été)".into(),
            body: "Bonjour,\nvotre fichier a été rejeté.\n".into(),
            attempts: 0,
            next_attempt_at: "2026-11-25T09:00:00Z".into(),
            secret: false,
        }
    }

    #[test]
    fn names_are_stable_and_tied_to_the_row() {
        let q = row();
        assert_eq!(q.eml_name(), row().eml_name());
        assert!(q.eml_name().starts_with("00000042-") && q.eml_name().ends_with(".eml"));
        assert!(q.message_id("gw@caisse.fr").ends_with("@caisse.fr>"));
        let mut other = row();
        other.dedup_key = "report:8".into();
        assert_ne!(q.eml_name(), other.eml_name());
    }

    #[test]
    fn utf8_subject_is_encoded_and_headers_are_set() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = build(&row(), "ppas-gateway@localhost", now).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("Subject: Compte rendu : fichier =?utf-8?b?"), "{text}");
        assert!(!text.contains("rejeté"), "raw 8-bit text in {text}");
        assert!(text.contains("Date: Wed, 25 Nov 2026 10:00:00 +0000"), "{text}");
        assert!(text.contains("To: a@example.org, b@example.org"), "{text}");
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
        assert!(text.contains("\r\n\r\n"), "{text}");
        assert_eq!(m.envelope().to().len(), 2);
    }

    #[test]
    fn a_bad_address_is_unbuildable() {
        let mut q = row();
        q.recipients = "not an address".into();
        let e = build(&q, "gw@localhost", Utc::now()).unwrap_err();
        assert!(e.downcast_ref::<Unbuildable>().is_some(), "{e:#}");
        q.recipients = String::new();
        assert!(build(&q, "gw@localhost", Utc::now()).is_err());
    }
}
