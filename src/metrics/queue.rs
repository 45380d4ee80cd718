//! The queue as the database and the drop folders hold it right now: what
//! the gauges of `/metrics` and the service's `STATUS=` line show.
//!
//! In: the configuration (database path, spool, `[mail] max_attempts`).
//! Out: a [`Queue`], read on a **read-only** connection of its own opened
//! for the read (never the processor's: a scrape never waits for a
//! decision, and a database that cannot be opened any more is seen as
//! such), through indexed counts only, so it can be read every second.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::config::Config;

/// How long a read waits for a lock (a read in WAL mode normally never
/// waits; a checkpoint restarting the WAL can hold it an instant).
const BUSY: Duration = Duration::from_millis(500);

/// Files, outputs and e-mails waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Queue {
    /// Regular files in `inbound/<provider>/`, not yet taken.
    pub inbound: u64,
    /// Taken, recorded, without a verdict (quarantined ones excluded).
    pub received: u64,
    /// Decided, outputs not all written (quarantined ones excluded).
    pub decided: u64,
    /// Outputs committed and not yet written.
    pub outputs_owed: u64,
    pub quarantined: u64,
    /// E-mails still tried, and those no longer tried.
    pub mail_pending: u64,
    pub mail_failed: u64,
}

impl Queue {
    /// Files waiting to be finished: in the drop folders and in flight.
    pub fn files(&self) -> u64 {
        self.inbound + self.received + self.decided
    }

    /// The service's status line (`systemctl status`), in French.
    pub fn status_line(&self) -> String {
        let mut s = format!(
            "en attente : {} fichier(s), {} e-mail(s) ; quarantaine : {}",
            self.files(),
            self.mail_pending,
            self.quarantined
        );
        if self.mail_failed > 0 {
            s.push_str(&format!(" ; e-mails en échec : {}", self.mail_failed));
        }
        s
    }
}

/// Opens `path` read-only (never creating it), for one read.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    crate::store::tune_sqlite();
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    conn.busy_timeout(BUSY)
        .with_context(|| format!("database {}", path.display()))?;
    Ok(conn)
}

/// Reads the queue: the database's counts in one read transaction, the
/// drop folders listed.
pub fn read(cfg: &Config) -> Result<Queue> {
    let inbound = crate::spool::Spool::new(&cfg.paths.spool)
        .inbound_counts()?
        .values()
        .map(|n| *n as u64)
        .sum();
    let mut conn = open_read_only(&cfg.paths.database)?;
    let mut q = read_db(&mut conn, cfg).with_context(|| format!("database {}", cfg.paths.database.display()))?;
    q.inbound = inbound;
    Ok(q)
}

/// The database's part of the queue (`inbound` left at 0).
pub fn read_db(conn: &mut Connection, cfg: &Config) -> Result<Queue> {
    let tx = conn.transaction().context("cannot read the database")?;
    let count = |sql: &str| -> Result<u64> {
        let n: i64 = tx
            .query_row(sql, [], |r| r.get(0))
            .with_context(|| format!("queue query {sql:?}"))?;
        Ok(n as u64)
    };
    let in_flight =
        |state: &str| format!("SELECT COUNT(*) FROM received_files WHERE state = '{state}' AND quarantined_at IS NULL");
    let received = count(&in_flight("received"))?;
    let decided = count(&in_flight("decided"))?;
    let quarantined = count("SELECT COUNT(*) FROM received_files WHERE quarantined_at IS NOT NULL")?;
    let outputs_owed = count("SELECT COUNT(*) FROM outputs WHERE done_at IS NULL")?;
    let (mail_pending, mail_failed) = crate::mail::queue::counts(&tx, cfg).context("cannot read the mail queue")?;
    tx.finish()?;
    Ok(Queue {
        inbound: 0,
        received,
        decided,
        outputs_owed,
        quarantined,
        mail_pending,
        mail_failed,
    })
}
