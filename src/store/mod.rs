//! The state: one SQLite database (WAL, foreign keys, versioned migrations).
//!
//! In: the `[paths] database` path. Out: an open [`rusqlite::Connection`]
//! at the newest schema version. Migrations are plain SQL files applied in
//! order, each in its own transaction, and recorded in `PRAGMA user_version`;
//! a database newer than this binary is refused rather than misread.
//!
//! Durability: `synchronous = FULL`. A verdict committed here is the
//! gateway's promise that the file's outputs will be written (transactional
//! outbox), so a commit must survive a power loss, not only a crash. In WAL
//! mode that means one fsync of the WAL per commit; copying the WAL back
//! into the database (a checkpoint) is not needed for durability, so the
//! pipeline's writer leaves it to a [`Checkpointer`] thread instead of
//! doing it inside its commits.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags};

pub mod dates;
pub mod raw;
pub mod reference;

/// The schema, one SQL file a version. Append only: never edit a released one.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_core", include_str!("migrations/0001_core.sql")),
    ("0002_reference", include_str!("migrations/0002_reference.sql")),
    ("0003_billing", include_str!("migrations/0003_billing.sql")),
    ("0004_history_index", include_str!("migrations/0004_history_index.sql")),
    ("0005_overlap_index", include_str!("migrations/0005_overlap_index.sql")),
    (
        "0006_accepted_dates",
        include_str!("migrations/0006_accepted_dates.sql"),
    ),
    ("0007_hardening", include_str!("migrations/0007_hardening.sql")),
    (
        "0008_accepted_periods",
        include_str!("migrations/0008_accepted_periods.sql"),
    ),
    ("0009_habitat", include_str!("migrations/0009_habitat.sql")),
    ("0010_jobs", include_str!("migrations/0010_jobs.sql")),
    ("0011_invoicing", include_str!("migrations/0011_invoicing.sql")),
    ("0012_payments", include_str!("migrations/0012_payments.sql")),
    ("0013_retention", include_str!("migrations/0013_retention.sql")),
];

/// The newest schema version this binary knows (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Turns SQLite's global memory statistics off, once, before its first use.
///
/// With them on (the default), every allocation SQLite makes takes a global
/// mutex to update counters nobody here reads: 7 % of the CPU time of
/// `process --once` on a 100 000-line file went to locking and unlocking
/// it. Must run before SQLite initialises; a later call is refused by
/// SQLite (SQLITE_MISUSE) and changes nothing, which is harmless.
pub fn tune_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with an int argument, as SQLITE_CONFIG_MEMSTATUS
        // takes; called once, before any connection of this process exists
        // (from `open`, or earlier from `main`).
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
        }
    });
}

/// Opens (creating if needed) the database and brings it to the newest schema.
pub fn open(path: &Path) -> Result<Connection> {
    tune_sqlite();
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::create_dir_all(dir)?;
    }
    let mut conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
    configure(&conn).with_context(|| format!("database {}", path.display()))?;
    migrate(&mut conn).with_context(|| format!("database {}", path.display()))?;
    Ok(conn)
}

/// Opens a database that must already exist, without creating nor migrating
/// it: for the commands that never create a spool or a database (spec §8:
/// `status`, `validate`, `history`, `config check`, `mail retry`).
///
/// Refused, with a message that says where it looked and what to do: a
/// missing file (nothing is created, not even its folder), a file that is
/// not a database, a schema older than this binary's (migrating is the job
/// of `serve`, `process`, `import` and `user`), a schema newer than it.
pub fn open_existing(path: &Path) -> Result<Connection> {
    tune_sqlite();
    let shown = || match std::path::absolute(path) {
        Ok(abs) if abs != path => format!("{} ({})", path.display(), abs.display()),
        _ => path.display().to_string(),
    };
    match path.try_exists() {
        Ok(true) => {}
        Ok(false) => bail!(
            "no database at {}: nothing was created; check [paths] database in the configuration \
             (`serve`, `process --once`, `import` and `user` create it)",
            shown()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot look for the database {}", shown())),
    }
    // SQLITE_OPEN_CREATE left out: SQLite itself refuses to create the file
    // should it disappear between the check above and this call.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {}", shown()))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .with_context(|| format!("{} is not a readable SQLite database", shown()))?;
    if version == 0 {
        bail!("{} is not a ppas-gateway database (no schema)", shown());
    }
    if version < SCHEMA_VERSION {
        bail!(
            "database {} has schema version {version}, this binary needs {SCHEMA_VERSION}: \
             run `ppas-gateway process --once` (or start the service) once to migrate it",
            shown()
        );
    }
    if version > SCHEMA_VERSION {
        bail!(
            "database {} has schema version {version}, newer than this binary knows ({SCHEMA_VERSION}): \
             upgrade the gateway",
            shown()
        );
    }
    configure(&conn).with_context(|| format!("database {}", shown()))?;
    Ok(conn)
}

/// An in-memory database at the newest schema (tests).
pub fn open_in_memory() -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// The settings of every connection.
///
/// `secure_delete`: content deleted or overwritten (a mail body wiped once
/// delivered because it held a password) is overwritten with zeros in its
/// page instead of lingering in free space; a checkpoint then carries the
/// cleaned page into the database file (see [`crate::mail::deliver`]).
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Checkpoints the WAL on a thread of its own, with a connection of its own.
///
/// A large transaction (a file of 100 000 accepted lines writes some 17 MB
/// of pages to the WAL) would otherwise be copied into the database file,
/// and the file flushed, inside the commit that crosses the
/// `wal_autocheckpoint` threshold, delaying everything after it. The
/// writer turns automatic checkpoints off ([`Checkpointer::start`]) and
/// asks for one after its large commits ([`Checkpointer::request`]); the
/// copy then overlaps the writer's next work. A checkpoint never changes
/// what a reader sees and is crash-safe at any instant (SQLite replays or
/// ignores the WAL), so neither durability nor the recovery depend on it.
/// When this thread stops, its connection closes last and runs the final
/// checkpoint, which also removes the WAL.
pub struct Checkpointer {
    tx: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread and turns automatic checkpoints off on `writer`
    /// (left on when the thread cannot start).
    pub fn start(path: &Path, writer: &Connection) -> Result<Checkpointer> {
        let conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let (tx, rx) = mpsc::channel::<()>();
        let db: PathBuf = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    while rx.try_recv().is_ok() {}
                    // PASSIVE: copies what no reader still needs, never waits for the writer.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(database = %db.display(), error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .context("cannot start the checkpoint thread")?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Checkpointer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint (returns at once; requests made while one runs
    /// are merged into the next).
    pub fn request(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(());
        }
    }
}

impl Drop for Checkpointer {
    /// Runs the pending checkpoint, if any, and waits for the thread.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    fn a_read_only_open_never_creates_a_database() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/g.db");
        let e = open_existing(&p).unwrap_err();
        assert!(format!("{e:#}").contains(&p.display().to_string()), "{e:#}");
        assert!(!d.path().join("state").exists(), "a folder was created");
        drop(open(&p).unwrap());
        open_existing(&p).unwrap();
        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", 1)
            .unwrap();
        let e = open_existing(&p).unwrap_err();
        assert!(format!("{e:#}").contains(&format!("needs {SCHEMA_VERSION}")), "{e:#}");
    }

    #[test]
    fn migrations_apply_once_and_reopen() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/g.db");
        drop(open(&p).unwrap());
        let c = open(&p).unwrap();
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn every_connection_overwrites_deleted_content() {
        let d = tempfile::tempdir().unwrap();
        for c in [open(&d.path().join("g.db")).unwrap(), open_in_memory().unwrap()] {
            let on: i64 = c.pragma_query_value(None, "secure_delete", |r| r.get(0)).unwrap();
            assert_eq!(on, 1);
        }
    }

    #[test]
    fn open_existing_creates_nothing_and_refuses_other_schemas() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/g.db");
        let e = format!("{:#}", open_existing(&p).unwrap_err());
        assert!(
            e.contains("no database at") && e.contains(&p.display().to_string()),
            "{e}"
        );
        assert!(!d.path().join("state").exists(), "nothing created");

        drop(open(&p).unwrap());
        let c = open_existing(&p).unwrap();
        let on: i64 = c.pragma_query_value(None, "secure_delete", |r| r.get(0)).unwrap();
        assert_eq!(on, 1);
        c.pragma_update(None, "user_version", SCHEMA_VERSION - 1).unwrap();
        drop(c);
        let e = format!("{:#}", open_existing(&p).unwrap_err());
        assert!(e.contains(&format!("schema version {}", SCHEMA_VERSION - 1)), "{e}");
        let v: i64 = Connection::open(&p)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION - 1, "not migrated");

        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = format!("{:#}", open_existing(&p).unwrap_err());
        assert!(e.contains("newer than this binary"), "{e}");

        let empty = d.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let e = format!("{:#}", open_existing(&empty).unwrap_err());
        assert!(e.contains("not a ppas-gateway database"), "{e}");
        let junk = d.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(open_existing(&junk).is_err());
    }

    #[test]
    fn accepted_dates_become_integers_keeping_rows_and_rowids() {
        let c = Connection::open_in_memory().unwrap();
        configure(&c).unwrap();
        for (_, sql) in &MIGRATIONS[..5] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 5).unwrap();
        c.execute_batch(
            "INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state)
                 VALUES (7, 'p', 'f.xml', 'sftp', 'ab', 10, '2026-11-02T08:00:00Z', 'p/f.xml', 'done');
             INSERT INTO accepted_lines (id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per, rf_prstpap,
                 id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
                 VALUES (41, 7, 1, NULL, '03', '1', 'N', 'P', 'X', 'S', '2026-10-01', '2026-10-31', 100, 200, 0, 'F', 20000),
                        (42, 7, 2, NULL, '03', '1', 'N', 'P', 'X', 'S', '2026-11-01', '2026-11-15', 100, 200, 0, 'F', 20000);",
        )
        .unwrap();
        c.execute_batch(MIGRATIONS[5].1).unwrap();
        let rows: Vec<(i64, i64, i64, String)> = c
            .prepare("SELECT id, dtd, dtf, typeof(dtd) || typeof(dtf) FROM accepted_lines ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (41, 20261001, 20261031, "integerinteger".to_string()),
                (42, 20261101, 20261115, "integerinteger".to_string())
            ]
        );
        let plan: String = c
            .query_row(
                "EXPLAIN QUERY PLAN SELECT 1 FROM accepted_lines WHERE nir_per = '1' AND rf_prstpap = 'X' AND dtd <= 20261120 AND dtf >= 20261110",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("COVERING INDEX accepted_overlap"), "{plan}");
    }

    /// The query plan of `sql`, its steps joined.
    fn query_plan(c: &Connection, sql: &str) -> String {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ")
    }

    #[test]
    fn accepted_periods_take_the_periods_keeping_lines_and_rowids() {
        let mut c = Connection::open_in_memory().unwrap();
        configure(&c).unwrap();
        for (_, sql) in &MIGRATIONS[..7] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 7).unwrap();
        c.execute_batch(
            "INSERT INTO plans (id, id_cram, id_site, nir_per, nom_per, pn_per, rf_prstpap, dt_debut, dt_fin,
                 mt_total, mt_consomme, updated_at)
                 VALUES (5, '03', 'S', '2', 'N', 'P', 'X', '2026-01-01', '2026-12-31', 100, 0, 't');
             INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state)
                 VALUES (7, 'p', 'f.xml', 'sftp', 'ab', 10, '2026-11-02T08:00:00Z', 'p/f.xml', 'done');
             INSERT INTO accepted_lines (id, file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per, rf_prstpap,
                 id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
                 VALUES (41, 7, 1, 5, '03', '2', 'N', 'P', 'X', 'S', 20261001, 20261031, 100, 200, 0, 'F', 20000),
                        (42, 7, 2, NULL, '03', '1', 'M', 'Q', 'X', 'S', 20261101, 20261115, 150, 100, 0, 'F', 15000),
                        (43, 7, 3, 5, '03', '2', 'N', 'P', 'X', 'S', 20260901, 20260930, 50, 100, 0, 'F', 5000);",
        )
        .unwrap();
        let lines = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT id || '|' || file_id || '|' || line_no || '|' || quote(plan_id) || '|' || nir_per || '|' || nom_per
                           || '|' || dtd || '|' || dtf || '|' || nb_quant || '|' || amount_e4 FROM accepted_lines ORDER BY id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let before = lines(&c);
        migrate(&mut c).unwrap();
        assert_eq!(lines(&c), before);
        let periods: Vec<(String, i64, i64, i64, Option<i64>, i64)> = c
            .prepare("SELECT nir_per, dtd, dtf, line_id, plan_id, amount_e4 FROM accepted_periods")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let p = |n: &str, d, f, id, plan, a| (n.to_string(), d, f, id, plan, a);
        assert_eq!(
            periods,
            [
                p("1", 20261101, 20261115, 42, None, 15000),
                p("2", 20260901, 20260930, 43, Some(5), 5000),
                p("2", 20261001, 20261031, 41, Some(5), 20000)
            ]
        );
        // accepted_lines: no index left, only the key to received_files.
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'accepted_lines'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
        let parents: Vec<String> = c
            .prepare("SELECT \"table\" FROM pragma_foreign_key_list('accepted_lines')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(parents, ["received_files"]);
        // The overlap check and the preload read key ranges, index only.
        let overlap = query_plan(
            &c,
            "SELECT 1 FROM accepted_periods WHERE nir_per = '1' AND rf_prstpap = 'X' AND dtd <= 20261120 AND dtf >= 20261110",
        );
        assert!(
            overlap.contains("USING PRIMARY KEY (nir_per=? AND rf_prstpap=? AND dtd<?)"),
            "{overlap}"
        );
        let preload = |more: &str| {
            query_plan(
                &c,
                &format!(
                    "SELECT p.id, p.nir_per, p.rf_prstpap, p.dt_debut, p.dt_fin, p.mt_total, p.mt_consomme FROM plans p
                     WHERE p.id_cram = '03' AND p.id_site IN (SELECT id_site FROM conventions WHERE provider = 'p'){more}"
                ),
            )
        };
        for (more, range) in [
            ("", "(id_cram=? AND id_site=?)"),
            (" AND p.rf_prstpap = 'X'", "(id_cram=? AND id_site=? AND rf_prstpap=?)"),
            (
                " AND p.rf_prstpap = 'X' AND p.nir_per = '2'",
                "(id_cram=? AND id_site=? AND rf_prstpap=? AND nir_per=?)",
            ),
        ] {
            let plan = preload(more);
            assert!(
                plan.contains(&format!("COVERING INDEX plans_preload {range}")),
                "{plan}"
            );
        }
    }

    #[test]
    fn retention_rebuilds_the_listings_keeping_their_rows_and_owes_every_historique() {
        let mut c = Connection::open_in_memory().unwrap();
        configure(&c).unwrap();
        let at = MIGRATIONS.iter().position(|(n, _)| *n == "0013_retention").unwrap();
        for (_, sql) in &MIGRATIONS[..at] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", at as i64).unwrap();
        c.execute_batch(
            "INSERT INTO providers VALUES ('ergo62', 'E', '44306184100047', 'e@x.example', '03 21 00 00 01', 'ergo', 'x');
             INSERT INTO listings (provider, kind, wanted, written) VALUES ('ergo62', 'commandes', 7, 5),
                 ('saad21', 'beneficiaires', 2, 2);
             INSERT INTO history (at, kind, application, interface, provider) VALUES
                 ('2026-11-02T09:00:00Z', 'received', 'aide-a-domicile', 'sftp', 'saad21'),
                 ('2026-11-02T09:00:00Z', 'job', 'habitat', 'relances', NULL);",
        )
        .unwrap();
        assert!(c
            .execute("INSERT INTO listings (provider, kind) VALUES ('x', 'historique')", [])
            .is_err());
        migrate(&mut c).unwrap();
        let rows: Vec<String> = c
            .prepare("SELECT provider || '|' || kind || '|' || wanted || '|' || written FROM listings ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                "ergo62|commandes|7|5",
                "ergo62|historique|1|0",
                "saad21|beneficiaires|2|2",
                "saad21|historique|1|0"
            ]
        );
        assert!(c
            .execute("INSERT INTO listings (provider, kind) VALUES ('x', 'other')", [])
            .is_err());
        let archived = query_plan(
            &c,
            "SELECT id FROM received_files WHERE archive_path IS NOT NULL AND archive_removed_at IS NULL
             AND done_at < 'x'",
        );
        assert!(archived.contains("received_archived"), "{archived}");
    }

    #[test]
    fn the_checkpointer_empties_the_wal_and_removes_it_at_the_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("g.db");
        let conn = open(&p).unwrap();
        let cp = Checkpointer::start(&p, &conn).unwrap();
        let auto: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 0);
        conn.execute_batch("CREATE TABLE u (x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO u SELECT printf('%050d', i) FROM n;").unwrap();
        assert!(d.path().join("g.db-wal").metadata().unwrap().len() > 1 << 20);
        cp.request();
        drop(conn);
        drop(cp);
        assert!(
            !d.path().join("g.db-wal").exists(),
            "the last connection to close checkpoints and removes the WAL"
        );
        let c = open(&p).unwrap();
        let n: i64 = c.query_row("SELECT COUNT(*) FROM u", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 20000);
    }
}
