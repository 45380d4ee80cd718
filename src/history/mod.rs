//! Exchange history (spec §7): every exchange leaves an entry, written in
//! the same transaction as the change it records ([`record`]), and read back
//! for a period by `ppas-gateway history` ([`query`], [`format`]).
//!
//! Entries are append-only: the only thing that ever deletes them is the
//! retention purge. Reading never writes (see [`query::open_read_only`]).

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection};

pub mod format;
pub mod query;

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
///
/// `at` is stored as RFC 3339 UTC with whole seconds (`2026-11-02T09:00:00Z`):
/// one fixed-width form, so that a period query compares text and uses the
/// index on `at`.
///
/// An entry of a provider also marks that provider's `historique` listing
/// owed (one upsert, in the same transaction): the outbound publisher
/// rewrites `outbound/<provider>/historique.csv` at its next call. Called
/// outside a transaction (a download recorded by the SFTP server), both
/// writes are made one.
pub fn record(conn: &Connection, at: DateTime<Utc>, e: &Entry<'_>) -> Result<()> {
    let provider = e.provider.filter(|p| !p.is_empty());
    let tx = match provider {
        Some(_) if conn.is_autocommit() => Some(conn.unchecked_transaction()?),
        _ => None,
    };
    insert(conn, at, e)?;
    if let Some(p) = provider {
        crate::habitat::mark_listing(conn, p, crate::habitat::Listing::Historique)?;
    }
    if let Some(tx) = tx {
        tx.commit()?;
    }
    Ok(())
}

fn insert(conn: &Connection, at: DateTime<Utc>, e: &Entry<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO history (at, kind, regime, id_cram, application, interface, provider, convention, comment)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        e.kind,
        e.regime,
        e.id_cram,
        e.application,
        e.interface,
        e.provider,
        e.convention,
        e.comment
    ])?;
    Ok(())
}

/// The régime a caisse belongs to, from its `id-cram` (billing specification,
/// table of caisse codes): used when an entry was recorded without one.
pub fn regime_of(id_cram: &str) -> Option<&'static str> {
    let n: u32 = match id_cram.as_bytes() {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => u32::from(a - b'0') * 10 + u32::from(b - b'0'),
        _ => return None,
    };
    match n {
        1..=16 | 20..=23 => Some("Régime général"),
        26 => Some("CAVIMAC"),
        27 => Some("Fonction publique d'État"),
        66 => Some("CNRACL"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regime_follows_the_caisse_code_table() {
        for id in ["01", "09", "16", "20", "23"] {
            assert_eq!(regime_of(id), Some("Régime général"), "{id}");
        }
        assert_eq!(regime_of("26"), Some("CAVIMAC"));
        assert_eq!(regime_of("27"), Some("Fonction publique d'État"));
        assert_eq!(regime_of("66"), Some("CNRACL"));
        for id in ["00", "17", "19", "24", "25", "28", "99", "1", "001", "", "a1", "٠١"] {
            assert_eq!(regime_of(id), None, "{id:?}");
        }
    }
}
