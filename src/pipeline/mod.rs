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
//! 3. **publish** ([`publish`]): each owed output rendered from the database
//!    and written atomically, marked done one by one; the original moved to
//!    `archive/` (state `done`). Rendering is deterministic, so writing an
//!    output twice after a crash gives the same file under the same name.
//! 4. **recover** ([`Pipeline::recover`]) at every start: clears temp files,
//!    records files found in `work/` without a record, and finishes every
//!    file left `received` or `decided`.

mod caisse;
mod decide;
mod publish;
pub mod rules;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use crate::billing::Verdict;
use crate::clock::Clock;
use crate::config::Config;
use crate::fsutil;
use crate::history::{self, Entry};
use crate::spool::{is_safe_component, is_temp_name, Spool};

pub use caisse::import_drops as import_caisse_drops;
pub use decide::{decide, validate_path};
pub use publish::publish;

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
}

/// What a pass over the inbound folders did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub processed: usize,
    pub accepted: usize,
    pub partial: usize,
    pub rejected: usize,
    pub recovered: usize,
    pub imports_applied: usize,
    pub imports_refused: usize,
    /// Files taken but not finished (an error was logged; retried at the
    /// next pass).
    pub failed: usize,
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
}

/// The pipeline with its state: one writer connection, used from one thread.
pub struct Pipeline {
    pub cfg: Config,
    pub clock: Clock,
    pub spool: Spool,
    pub conn: Connection,
    /// Copies the WAL into the database off the writer's path (declared
    /// after `conn`: dropped last, its connection runs the final checkpoint).
    checkpointer: crate::store::Checkpointer,
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
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
            checkpointer,
        })
    }

    /// Files waiting in `inbound/<provider>/`, oldest first (name order for
    /// equal times, so a replay processes them in the same order).
    pub fn waiting(&self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let inbound = self.spool.inbound();
        let providers = match fs::read_dir(&inbound) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", inbound.display())),
        };
        for p in providers {
            let p = p.with_context(|| format!("cannot list {}", inbound.display()))?;
            let pname = p.file_name().to_string_lossy().into_owned();
            if !p.file_type().map(|t| t.is_dir()).unwrap_or(false) || !is_safe_component(&pname) {
                continue;
            }
            let dir = p.path();
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received')",
            params![provider, name, channel.as_str(), sha, size as i64, rfc3339(now), rel],
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
        tracing::info!(file = name, provider, id, "file received");
        Ok(id)
    }

    /// Takes, decides and publishes one dropped file.
    pub fn process_file(&mut self, path: &Path, channel: Channel) -> Result<Option<Verdict>> {
        let Some(id) = self.take(path, channel)? else {
            return Ok(None);
        };
        self.finish(id).map(Some)
    }

    /// Decides (if not yet) and publishes received file `id`.
    pub fn finish(&mut self, id: i64) -> Result<Verdict> {
        let verdict = decide(self, id)?;
        // The decision's pages are copied into the database while the outputs are written.
        self.checkpointer.request();
        publish(self, id)?;
        Ok(verdict)
    }

    /// Step 4: brings every file in flight to its end. Run at every start,
    /// before taking new files.
    /// Returns (files finished, files that failed and stay in flight).
    pub fn recover(&mut self) -> Result<(usize, usize)> {
        let root = self.spool.root().to_path_buf();
        for top in ["outbox", "outbound"] {
            for dir in subdirs(&root.join(top))? {
                fsutil::remove_stale_temps(&dir)?;
                for sub in subdirs(&dir)? {
                    fsutil::remove_stale_temps(&sub)?;
                }
            }
        }
        remove_stale_mail_temps(&self.spool.mail())?;
        // Files moved into work/ by a taker killed before it recorded them.
        let mut orphans = Vec::new();
        for dir in subdirs(&root.join("work"))? {
            let provider = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for f in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let path = f.with_context(|| format!("cannot list {}", dir.display()))?.path();
                let Some(rel) = self.spool.rel(&path) else { continue };
                let known: bool = self.conn.query_row(
                    "SELECT COUNT(*) FROM received_files WHERE work_path = ?1",
                    [&rel],
                    |r| r.get::<_, i64>(0),
                )? > 0;
                if !known {
                    orphans.push((provider.clone(), path));
                }
            }
        }
        for (provider, path) in orphans {
            let fname = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // work names are `<unique>-<name>`.
            let name = fname.split_once('-').map(|(_, n)| n.to_string()).unwrap_or(fname);
            let now = self.clock.now();
            self.record(&provider, &name, &path, Channel::Depot, now)?;
        }
        let pending: Vec<i64> = self
            .conn
            .prepare("SELECT id FROM received_files WHERE state != 'done' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        // One file that cannot be finished (its work copy deleted by hand,
        // a disk error) must not keep every other file waiting: it is
        // logged, counted for `status`, and retried at the next pass.
        let mut done = 0;
        for &id in &pending {
            match self.finish(id) {
                Ok(_) => done += 1,
                Err(e) => self.fail(id, &e),
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                files = done,
                failed = pending.len() - done,
                "files in flight brought to their end"
            );
        }
        Ok((done, pending.len() - done))
    }

    /// One pass: recovery, the caisse's reference data, then every waiting
    /// billing file.
    pub fn process_once(&mut self) -> Result<Summary> {
        let (recovered, failed) = self.recover()?;
        let mut s = Summary {
            recovered,
            failed,
            ..Summary::default()
        };
        let (applied, refused) = caisse::import_drops(self)?;
        s.imports_applied = applied;
        s.imports_refused = refused;
        self.checkpointer.request();
        for path in self.waiting()? {
            // Being written in place right now: the next pass takes it.
            if open_for_writing(&path) {
                tracing::info!(file = %path.display(), "file still being written: left for the next pass");
                continue;
            }
            let Some(id) = self.take(&path, Channel::Depot)? else {
                continue;
            };
            match self.finish(id) {
                Ok(v) => s.count(v),
                Err(e) => {
                    self.fail(id, &e);
                    s.failed += 1;
                }
            }
        }
        Ok(s)
    }

    /// A received file that could not be finished: logged with its cause,
    /// noted for `status`; it stays in flight for the next recovery.
    fn fail(&self, id: i64, e: &anyhow::Error) {
        tracing::error!(
            id,
            error = format!("{e:#}"),
            "received file not finished; retried at the next pass"
        );
        self.note_error("pipeline", &format!("received file {id}: {e:#}"));
    }

    /// Records an error met by a worker, for `status`.
    pub fn note_error(&self, worker: &str, message: &str) {
        let _ = self.conn.execute(
            "INSERT INTO errors (at, worker, message) VALUES (?1, ?2, ?3)",
            params![rfc3339(self.clock.now()), worker, message],
        );
    }
}

/// Whether some process holds `path` open for writing, so that a drop
/// folder never takes a file still being written in place (spec §2: taken
/// when closed after writing or renamed in). Linux refuses a read lease on
/// a file open for writing by anyone (EAGAIN): an exact answer at the cost
/// of two system calls. Where no lease can be taken (a file of another
/// owner without CAP_LEASE, NFS), `false`: the caller's other rules decide.
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

/// Temp files a dead process left in the mail folder. In `serve` the mail
/// worker writes there while the processor recovers (at every rescan): the
/// temp files of this process belong to a write in progress, not to a crash.
fn remove_stale_mail_temps(dir: &Path) -> Result<usize> {
    let own = format!("{}{}-", fsutil::TEMP_PREFIX, std::process::id());
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(fsutil::TEMP_PREFIX) && !name.starts_with(&own) {
            let p = entry.path();
            match fs::remove_file(&p) {
                Ok(()) => n += 1,
                // Renamed into place meanwhile by its writer.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
            }
        }
    }
    Ok(n)
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
        use std::os::fd::AsRawFd;
        let dir = cfg.paths.spool.join("state");
        fsutil::create_dir_all(&dir)?;
        let path = dir.join("gateway.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            anyhow::bail!(
                "another ppas-gateway instance is processing this spool (lock {} is held)",
                path.display()
            );
        }
        Ok(SpoolLock(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(dir: &Path) -> Pipeline {
        let mut cfg = Config::default();
        cfg.paths.spool = dir.join("spool");
        cfg.paths.database = dir.join("spool/state/gateway.db");
        Pipeline::open(cfg, Clock::Fixed(chrono::Utc::now())).unwrap()
    }

    #[test]
    fn a_file_open_for_writing_is_seen_as_such() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.xml");
        let w = fs::File::create(&p).unwrap();
        assert!(open_for_writing(&p));
        drop(w);
        assert!(!open_for_writing(&p));
        let _r = fs::File::open(&p).unwrap();
        assert!(!open_for_writing(&p), "a reader is not a writer");
        assert!(!open_for_writing(&d.path().join("absent.xml")));
    }

    fn at(t: &str) -> Clock {
        Clock::Fixed(
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    }

    fn drop_fixture(p: &Pipeline, provider: &str, name: &str) -> PathBuf {
        let dir = p.spool.inbound().join(provider);
        fs::create_dir_all(&dir).unwrap();
        let to = dir.join(name);
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/billing/03_150521_100_21999000.xml");
        fs::copy(from, &to).unwrap();
        to
    }

    fn codes(p: &Pipeline, id: i64) -> Vec<String> {
        p.conn
            .prepare("SELECT code FROM anomalies WHERE file_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn l03_compares_with_the_day_of_receipt_not_of_the_decision() {
        // Codes of the fixture received at `received`, decided at `decided`.
        let codes_when = |received: &str, decided: &str| {
            let d = tempfile::tempdir().unwrap();
            let mut p = pipeline(d.path());
            let path = drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
            p.clock = at(received);
            let id = p.take(&path, Channel::Depot).unwrap().unwrap();
            p.clock = at(decided);
            p.finish(id).unwrap();
            codes(&p, id)
        };
        // The fixture's last line ends on 2021-04-30. Received on the 29th
        // (Paris), decided after a restart on 1 May: still after receipt.
        let c = codes_when("2021-04-29T23:30:00+02:00", "2021-05-01T10:00:00+02:00");
        assert!(c.iter().any(|c| c == "L03"), "{c:?}");
        // Received on 30 April itself: the same line is not late.
        let c = codes_when("2021-04-30T00:30:00+02:00", "2021-04-28T10:00:00+02:00");
        assert!(!c.iter().any(|c| c == "L03"), "{c:?}");
    }

    #[test]
    fn only_regular_files_of_a_provider_folder_are_taken() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let inbound = p.spool.inbound();
        let provider_dir = inbound.join("saad1");
        fs::create_dir_all(provider_dir.join("nested")).unwrap();
        fs::write(provider_dir.join("nested/a.xml"), b"x").unwrap();
        let elsewhere = d.path().join("secret.xml");
        fs::write(&elsewhere, b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, provider_dir.join("link.xml")).unwrap();
        for path in [
            provider_dir.join("nested"),
            provider_dir.clone(),
            provider_dir.join("link.xml"),
            provider_dir.join("nested/a.xml"),
        ] {
            assert_eq!(p.take(&path, Channel::Depot).unwrap(), None, "{}", path.display());
        }
        assert!(
            provider_dir.join("nested/a.xml").exists() && provider_dir.join("link.xml").exists() && elsewhere.exists()
        );
        let n: i64 = p
            .conn
            .query_row("SELECT COUNT(*) FROM received_files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
        // The same folder named another way is still the inbound folder.
        let dotted = d.path().join("spool/./inbound/saad1/03_150521_100_21999000.xml");
        drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
        assert!(p.take(&dotted, Channel::Depot).unwrap().is_some());
    }

    #[test]
    fn a_file_that_cannot_be_finished_does_not_hold_up_the_others() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        p.clock = at("2021-05-20T10:00:00+02:00");
        let first = drop_fixture(&p, "saad1", "03_150521_100_21999000.xml");
        let id = p.take(&first, Channel::Depot).unwrap().unwrap();
        // Its work copy deleted by hand before the decision.
        let work: String = p
            .conn
            .query_row("SELECT work_path FROM received_files WHERE id = ?1", [id], |r| r.get(0))
            .unwrap();
        fs::remove_file(p.spool.abs(&work)).unwrap();
        drop_fixture(&p, "saad2", "03_150521_100_21999000.xml");
        let s = p.process_once().unwrap();
        assert_eq!((s.processed, s.failed), (1, 1), "{s:?}");
        assert!(!s.all_accepted());
        let errors: i64 = p
            .conn
            .query_row("SELECT COUNT(*) FROM errors", [], |r| r.get(0))
            .unwrap();
        assert_eq!(errors, 1);
        let states: Vec<String> = p
            .conn
            .prepare("SELECT state FROM received_files ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(states, ["received", "done"]);
    }

    #[test]
    fn recovery_keeps_the_mail_temp_files_of_this_process() {
        let d = tempfile::tempdir().unwrap();
        let mut p = pipeline(d.path());
        let mail = p.spool.mail();
        // A write in progress by this process's mail worker, and one left by a dead process.
        let mine = mail.join(format!(
            "{}{}-7-00000001-ab.eml",
            fsutil::TEMP_PREFIX,
            std::process::id()
        ));
        let dead = mail.join(format!("{}{}-7-00000002-cd.eml", fsutil::TEMP_PREFIX, u32::MAX));
        fs::write(&mine, b"half").unwrap();
        fs::write(&dead, b"half").unwrap();
        p.recover().unwrap();
        assert!(mine.exists(), "the live writer's temp file was removed");
        assert!(!dead.exists(), "a dead writer's temp file was kept");
    }
}
