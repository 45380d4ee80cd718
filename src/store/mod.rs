//! The state: one SQLite database (WAL, foreign keys, versioned migrations).
//!
//! In: the `[paths] database` path. Out: an open [`rusqlite::Connection`]
//! at the newest schema version. Migrations are plain SQL files applied in
//! order, each in its own transaction, and recorded in `PRAGMA user_version`;
//! a database newer than this binary is refused rather than misread.
//!
//! Durability: `synchronous = FULL`. A verdict committed here is the
//! gateway's promise that the file's outputs will be written (transactional
//! outbox), so a commit must survive a power loss, not only a crash.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

pub mod reference;

/// The schema, one SQL file a version. Append only: never edit a released one.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_core", include_str!("migrations/0001_core.sql")),
    ("0002_reference", include_str!("migrations/0002_reference.sql")),
    ("0003_billing", include_str!("migrations/0003_billing.sql")),
    ("0004_history_index", include_str!("migrations/0004_history_index.sql")),
];

/// The newest schema version this binary knows (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database and brings it to the newest schema.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::create_dir_all(dir)?;
    }
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    configure(&conn).with_context(|| format!("database {}", path.display()))?;
    migrate(&mut conn).with_context(|| format!("database {}", path.display()))?;
    Ok(conn)
}

/// An in-memory database at the newest schema (tests).
pub fn open_in_memory() -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let newest = MIGRATIONS.len() as i64;
    if current > newest {
        bail!("schema version {current} is newer than this binary knows ({newest}): upgrade the gateway");
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql).with_context(|| format!("migration {name}"))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(migration = name, "schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/g.db");
        drop(open(&p).unwrap());
        let c = open(&p).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
