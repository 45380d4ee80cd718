//! The billing pipeline: a dropped file goes through four steps, each
//! leaving the state consistent so that a kill at any instant loses and
//! doubles nothing (spec §9).
//!
//! 1. **take** ([`Pipeline::take`]): renamed from `inbound/<provider>/` into
//!    `work/<provider>/` (atomic; only one taker wins), then recorded with
//!    its SHA-256 in `received_files` (state `received`) before anything
//!    else is done with it.
//! 2. **decide** ([`decide`]): every control against the state, then in one
//!    transaction: verdict, anomalies, accepted lines, the outputs owed,
//!    the e-mail notice queued, history (state `decided`).
//! 3. **publish** ([`publish`]): the payment chain's file delivered once, in
//!    a commit of its own; the reports rendered from the database and
//!    written atomically; the original moved to `archive/` (state `done`).
//! 4. **recover** ([`Pipeline::recover`]) at every start and rescan: clears
//!    temp files, records files found in `work/` without a record, and
//!    finishes every file left `received` or `decided`.
//!
//! Every attempt to finish a file goes through [`Pipeline::attempt`]: an
//! error or a panic is caught and counted, and a file that keeps failing is
//! quarantined ([`quarantine`]) instead of being retried blindly.

mod attest;
mod billing;
mod caisse;
mod decide;
pub mod progress;
mod publish;
pub mod quarantine;
pub mod received;
mod recover;
pub mod rules;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::billing::Verdict;
use crate::clock::Clock;
use crate::config::Config;
use crate::fsutil;
use crate::history::{self, Entry};
use crate::intake::{Readiness, Settle};
use crate::spool::{is_safe_component, is_temp_name, Spool};

pub use caisse::import_drops as import_caisse_drops;
pub use decide::{decide, kind_of, validate_path, Decision, Validated};
pub use progress::Progress;
pub use publish::publish;
pub use quarantine::Attempt;
pub use received::{FileKind, FileState, OutputKind, ReceivedFile};

/// How a file came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Sftp,
    Depot,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sftp => "sftp",
            Channel::Depot => "depot",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Sftp, Channel::Depot].into_iter().find(|c| c.as_str() == s)
    }
}

/// What a pass over the inbound folders did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Files finished in this pass (new ones and resumed ones), by verdict.
    pub processed: usize,
    pub accepted: usize,
    pub partial: usize,
    pub rejected: usize,
    /// Of those, files resumed (in flight from an earlier pass, or retried).
    pub recovered: usize,
    pub imports_applied: usize,
    pub imports_refused: usize,
    /// Files taken but not finished, new or resumed (an error was logged;
    /// retried at the next pass, or quarantined).
    pub failed: usize,
    /// Of those, files quarantined by this pass.
    pub quarantined: usize,
    /// Files left in the drop folders because they were still being written.
    pub still_written: usize,
}

impl Summary {
    pub fn all_accepted(&self) -> bool {
        self.partial == 0 && self.rejected == 0 && self.imports_refused == 0 && self.failed == 0
    }

    fn count(&mut self, v: Verdict) {
        self.processed += 1;
        match v {
            Verdict::Accepted => self.accepted += 1,
            Verdict::Partial => self.partial += 1,
            Verdict::Rejected => self.rejected += 1,
        }
    }

    fn count_attempt(&mut self, a: &Attempt) {
        match a {
            Attempt::Finished(v) => self.count(*v),
            Attempt::Failed(_) => self.failed += 1,
            Attempt::Quarantined(_) => {
                self.failed += 1;
                self.quarantined += 1;
            }
        }
    }
}

/// The pipeline with its state: one writer connection, used from one thread.
pub struct Pipeline {
    pub cfg: Config,
    pub clock: Clock,
    pub spool: Spool,
    pub conn: Connection,
    /// The heartbeat the watchdog reads (beaten at every step).
    pub progress: Progress,
    /// Copies the WAL into the database off the writer's path (declared
    /// after `conn`: dropped last, its connection runs the final checkpoint).
    checkpointer: crate::store::Checkpointer,
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

impl Pipeline {
    pub fn open(cfg: Config, clock: Clock) -> Result<Pipeline> {
        let spool = Spool::new(&cfg.paths.spool);
        spool.create()?;
        let conn = crate::store::open(&cfg.paths.database)?;
        // Statement journals (a multi-row INSERT of accepted lines keeps one
        // of a few hundred KiB) in memory rather than in a temp file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let checkpointer = crate::store::Checkpointer::start(&cfg.paths.database, &conn)?;
        Ok(Pipeline {
            cfg,
            clock,
            spool,
            conn,
            progress: Progress::new(),
            checkpointer,
        })
    }

    /// The quiet period after which a dropped file is taken.
    pub fn settle_period(&self) -> Duration {
        Duration::from_millis(self.cfg.intake.settle_ms)
    }

    /// Files waiting in `inbound/<provider>/`, oldest first (name order for
    /// equal times, so a replay processes them in the same order).
    pub fn waiting(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let inbound = self.spool.inbound();
        for dir in subdirs(&inbound)? {
            let safe = dir
                .file_name()
                .map(|n| is_safe_component(&n.to_string_lossy()))
                .unwrap_or(false);
            if !safe {
                continue;
            }
            for f in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let f = f.with_context(|| format!("cannot list {}", dir.display()))?;
                let name = f.file_name().to_string_lossy().into_owned();
                if is_temp_name(&name) || !f.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    continue;
                }
                let mtime = f.metadata().and_then(|m| m.modified()).ok();
                files.push((mtime, f.path()));
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, p)| p).collect())
    }

    /// Step 1: takes a complete file from an inbound folder. `Ok(None)` when
    /// it is no longer there (another taker won) or is not a billing drop.
    pub fn take(&mut self, path: &Path, channel: Channel) -> Result<Option<i64>> {
        let (Some(name), Some(provider)) = (
            path.file_name().map(|n| n.to_string_lossy().into_owned()),
            path.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        ) else {
            return Ok(None);
        };
        if is_temp_name(&name) || !is_safe_component(&provider) || name.contains('/') {
            return Ok(None);
        }
        // Only a regular file directly in `inbound/<provider>/`: a folder
        // renamed into the inbound tree, a nested folder or a symbolic link
        // is never moved away as if it were a billing file.
        let in_inbound = path.parent().and_then(|d| d.parent()).is_some_and(|d| {
            d == self.spool.inbound() || fs::canonicalize(d).ok() == fs::canonicalize(self.spool.inbound()).ok()
        });
        let regular = fs::symlink_metadata(path)
            .map(|m| m.file_type().is_file())
            .unwrap_or(false);
        if !in_inbound || !regular {
            return Ok(None);
        }
        self.progress.beat();
        let now = self.clock.now();
        let work_dir = self.spool.work_of(&provider);
        fsutil::create_dir_all(&work_dir)?;
        let unique = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let work = work_dir.join(format!("{unique}-{name}"));
        match fs::rename(path, &work) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot move {} to {}", path.display(), work.display())),
        }
        fsutil::sync_dir(&work_dir)?;
        if let Some(parent) = path.parent() {
            fsutil::sync_dir(parent)?;
        }
        self.record(&provider, &name, &work, channel, now).map(Some)
    }

    /// Records a file already in `work/` (the durable record of reception).
    fn record(
        &mut self,
        provider: &str,
        name: &str,
        work: &Path,
        channel: Channel,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64> {
        let (sha, size) = hash_file(work)?;
        let rel = self
            .spool
            .rel(work)
            .with_context(|| format!("{} is outside the spool", work.display()))?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                provider,
                name,
                channel.as_str(),
                sha,
                size as i64,
                rfc3339(now),
                rel,
                FileState::Received
            ],
        )?;
        let id = tx.last_insert_rowid();
        history::record(
            &tx,
            now,
            &Entry {
                kind: "received",
                application: "aide-a-domicile",
                interface: if channel == Channel::Sftp { "sftp" } else { "depot" },
                provider: Some(provider),
                comment: format!("fichier {name} reçu ({size} octets, sha256 {sha})"),
                ..Default::default()
            },
        )?;
        tx.commit()?;
        tracing::info!(
            event = "file.received",
            file = name,
            provider,
            id,
            size,
            "file received"
        );
        // Counted once recorded; the kind is its root element's (what the
        // decision will read; an unreadable file is read as billing).
        crate::metrics::global().file_received(decide::kind_of(work).unwrap_or(FileKind::Billing), channel);
        Ok(id)
    }

    /// Takes a complete dropped file and finishes it. `None` when it was
    /// not taken (gone, not a drop).
    pub fn process_file(&mut self, path: &Path, channel: Channel) -> Result<Option<Attempt>> {
        let Some(id) = self.take(path, channel)? else {
            return Ok(None);
        };
        Ok(Some(self.attempt(id)))
    }

    /// Decides (if not yet) and publishes received file `id`. Callers go
    /// through [`Pipeline::attempt`], which counts failures.
    fn finish(&mut self, id: i64) -> Result<Verdict> {
        let f = ReceivedFile::get(&self.conn, id)?;
        self.progress.beat();
        let started = std::time::Instant::now();
        let decided = decide(self, &f)?;
        // The decision's pages are copied into the database while the outputs are written.
        self.checkpointer.request();
        publish(self, id)?;
        self.progress.beat();
        if let Some(kind) = decided.kind {
            // Decided and finished here: the processing time of the file.
            crate::metrics::global().file_processed(kind, started.elapsed());
        }
        Ok(decided.verdict)
    }

    /// One pass: recovery, the caisse's reference data, then every waiting
    /// billing file that is complete, oldest first. Files not yet quiet for
    /// the settle period are looked at once more after it; those still
    /// changing then are left for the next pass.
    pub fn process_once(&mut self) -> Result<Summary> {
        let (recovered, failed) = self.recover(true)?;
        let mut s = Summary {
            recovered,
            failed,
            ..Summary::default()
        };
        let mut settle = Settle::new(self.settle_period());
        let mut caisse_wait = caisse::import_drops(self, &mut settle, &mut s)?;
        self.checkpointer.request();
        let listed = self.waiting()?;
        let mut wait = caisse_wait.unwrap_or_default();
        for path in &listed {
            if let Readiness::Wait(w) = settle.check(path) {
                wait = wait.max(w);
            }
        }
        if !wait.is_zero() {
            // At most one settle period (and a margin for the clock's grain).
            std::thread::sleep(wait.min(self.settle_period()) + Duration::from_millis(20));
            if caisse_wait.is_some() {
                caisse_wait = caisse::import_drops(self, &mut settle, &mut s)?;
            }
        }
        // In listing order, so that a replay processes them in the same order.
        for path in listed {
            match settle.check(&path) {
                Readiness::Gone => {}
                Readiness::Wait(_) => {
                    tracing::info!(file = %path.display(), "file still being written: left for the next pass");
                    s.still_written += 1;
                }
                Readiness::Ready => {
                    if let Some(id) = self.take(&path, Channel::Depot)? {
                        let a = self.attempt(id);
                        s.count_attempt(&a);
                    }
                }
            }
        }
        if caisse_wait.is_some() {
            s.still_written += 1;
            tracing::info!("a caisse file still being written: left for the next pass");
        }
        self.publish_outbound();
        Ok(s)
    }

    /// Writes the documents and listings owed to providers' outbound
    /// folders ([`crate::outbound`]): the listings a decision marked (an
    /// order answered, plans consumed). Called once a burst of files is
    /// done (the end of a pass, an idle processor), not after each file:
    /// a listing of 100 000 plans is rewritten once for the burst. A
    /// failure is logged and noted for `status`; it is the publisher's to
    /// retry, never a file's: what failed stays owed for the next call.
    pub fn publish_outbound(&mut self) {
        self.progress.beat();
        let now = self.clock.now();
        if let Err(e) = crate::outbound::publish_due(&mut self.conn, &self.cfg, now) {
            tracing::error!(
                error = format!("{e:#}"),
                "outbound documents or listings not all published"
            );
            self.note_error("outbound", &format!("{e:#}"));
        }
        self.progress.beat();
    }

    /// Records an error met by a worker, for `status`.
    pub fn note_error(&self, worker: &str, message: &str) {
        note_error(&self.conn, &self.clock, worker, message);
    }
}

/// Records an error met by a worker in `errors`, for `status` (best effort:
/// the error is in the log in any case).
pub fn note_error(conn: &Connection, clock: &Clock, worker: &str, message: &str) {
    let _ = conn.execute(
        "INSERT INTO errors (at, worker, message) VALUES (?1, ?2, ?3)",
        params![rfc3339(clock.now()), worker, message],
    );
}

/// Whether some process holds `path` open for writing, so that a drop
/// folder never takes a file still being written in place. Linux refuses a
/// read lease on a file open for writing by anyone (EAGAIN): an exact answer
/// at the cost of two system calls. Where no lease can be taken (a file of
/// another owner without CAP_LEASE, NFS), `false`: the quiet period of
/// [`Settle`] decides alone.
pub fn open_for_writing(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = fs::File::open(path) else { return false };
    // SAFETY: fcntl on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    if rc == 0 {
        // SAFETY: as above; releases the lease just taken.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// Sub-folders of `dir` (none when it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Holds the spool lock: one processing instance (daemon or `process
/// --once`) at a time, so that two never take the same file in flight.
pub struct SpoolLock(#[allow(dead_code)] fs::File);

impl SpoolLock {
    pub fn acquire(cfg: &Config) -> Result<SpoolLock> {
        let dir = cfg.paths.spool.join("state");
        fsutil::create_dir_all(&dir)?;
        // `status` takes the lock for an instant to see whether it is held:
        // a start at that very instant waits for it rather than failing.
        for _ in 0..20 {
            if let Some(lock) = SpoolLock::try_acquire(&dir.join("gateway.lock"))? {
                return Ok(lock);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SpoolLock::try_acquire(&dir.join("gateway.lock"))?.ok_or_else(|| {
            anyhow::anyhow!(
                "another ppas-gateway instance is processing this spool (lock {} is held)",
                dir.join("gateway.lock").display()
            )
        })
    }

    /// The lock at `path` if nobody holds it (`None` when held).
    pub fn try_acquire(path: &Path) -> Result<Option<SpoolLock>> {
        use std::os::fd::AsRawFd;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        Ok((rc == 0).then_some(SpoolLock(f)))
    }

    /// Whether a processing instance holds the lock of the spool of `cfg`
    /// (without creating anything when the spool does not exist).
    pub fn is_held(cfg: &Config) -> bool {
        let path = cfg.paths.spool.join("state/gateway.lock");
        if !path.exists() {
            return false;
        }
        matches!(SpoolLock::try_acquire(&path), Ok(None))
    }
}

#[cfg(test)]
mod tests;
