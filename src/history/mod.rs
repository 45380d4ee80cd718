//! Exchange history (spec §7): every exchange leaves an entry, written in
//! the same transaction as the change it records.

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection};

/// One history entry. `application` is `aide-a-domicile` or `habitat`.
#[derive(Debug, Clone, Default)]
pub struct Entry<'a> {
    pub kind: &'a str,
    pub regime: Option<&'a str>,
    pub id_cram: Option<&'a str>,
    pub application: &'a str,
    pub interface: &'a str,
    pub provider: Option<&'a str>,
    pub convention: Option<&'a str>,
    pub comment: String,
}

/// Appends an entry (call it inside the transaction of the change).
pub fn record(conn: &Connection, at: DateTime<Utc>, e: &Entry<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO history (at, kind, regime, id_cram, application, interface, provider, convention, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            e.kind,
            e.regime,
            e.id_cram,
            e.application,
            e.interface,
            e.provider,
            e.convention,
            e.comment
        ],
    )?;
    Ok(())
}
