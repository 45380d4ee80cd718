//! Files that keep failing (spec §2, §9): every attempt to finish a
//! received file is counted; after `[intake] max_attempts` failed or
//! interrupted attempts the file is quarantined: its copy moved from
//! `work/<provider>/` to `quarantine/<provider>/`, the mark recorded,
//! logged once, shown by `status`, and no longer retried by rescans.
//! `ppas-gateway retry FILE|--all` clears the mark; the processor then moves
//! the file back to `work/` and resumes it where it stopped.
//!
//! What counts as an attempt: an error or a panic while finishing the file
//! (caught here, whoever calls: start-up recovery, rescans, new files,
//! `process --once`), and a process that died while handling it (a file
//! that kills the process at every try — an abort, the watchdog — is
//! quarantined too). The file in hand is named in `state/in-hand` for the
//! length of each attempt (a plain write, no flush: it only has to outlive
//! the process, not the machine); the next start counts an attempt for the
//! file it names, and only for that one, so that kills landing elsewhere
//! never push an innocent file towards quarantine. An anomaly of the file
//! is not a failure: it is a verdict.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use super::received::ReceivedFile;
use super::{rfc3339, Pipeline};
use crate::billing::Verdict;
use crate::fsutil;

/// How one attempt to finish a received file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Finished(Verdict),
    /// Failed; retried at the next pass. The error, for the log.
    Failed(String),
    /// Failed once too often: quarantined.
    Quarantined(String),
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

impl Pipeline {
    /// One attempt to finish received file `id` (decide if not yet, then
    /// publish). Never panics and never returns an error: a failure is
    /// logged, counted, noted for `status`, and quarantines the file once
    /// it has failed `[intake] max_attempts` times.
    pub fn attempt(&mut self, id: i64) -> Attempt {
        self.progress.set_busy(true);
        self.in_hand(Some(id));
        let r = catch_unwind(AssertUnwindSafe(|| {
            self.resume_from_quarantine(id)?;
            self.finish(id)
        }));
        let a = match r {
            Ok(Ok(v)) => Attempt::Finished(v),
            Ok(Err(e)) => self.failed(id, &format!("{e:#}")),
            Err(payload) => self.failed(id, &format!("internal error (panic): {}", panic_text(payload.as_ref()))),
        };
        self.in_hand(None);
        self.progress.beat();
        a
    }

    fn in_hand_path(&self) -> std::path::PathBuf {
        self.spool.root().join("state/in-hand")
    }

    /// Names the file in hand (or none) in `state/in-hand`.
    fn in_hand(&self, id: Option<i64>) {
        let text = id.map(|i| i.to_string()).unwrap_or_default();
        if let Err(e) = std::fs::write(self.in_hand_path(), text) {
            tracing::warn!(error = %e, "cannot note the file in hand; a crash while handling it would not be counted");
        }
    }

    /// Counts a failed attempt; quarantines the file at the limit.
    fn failed(&mut self, id: i64, error: &str) -> Attempt {
        let counted = self.conn.query_row(
            "UPDATE received_files SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1 RETURNING attempts, name",
            params![id, error],
            |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)),
        );
        let (attempts, name) = match counted {
            Ok(x) => x,
            // The database itself fails: nothing more can be recorded.
            Err(e) => {
                tracing::error!(id, error, db_error = %e, "received file not finished, and the failure could not be recorded");
                return Attempt::Failed(error.to_string());
            }
        };
        if attempts >= self.cfg.intake.max_attempts {
            match self.quarantine(id) {
                Ok(()) => {
                    tracing::error!(
                        id,
                        file = name,
                        attempts,
                        error,
                        "received file quarantined after failing again and again; `ppas-gateway retry` puts it back"
                    );
                    self.note_error(
                        "pipeline",
                        &format!("{name} (received file {id}) quarantined after {attempts} attempts: {error}"),
                    );
                    return Attempt::Quarantined(error.to_string());
                }
                Err(e) => tracing::error!(id, file = name, error = format!("{e:#}"), "cannot quarantine the file"),
            }
        }
        tracing::error!(
            id,
            file = name,
            attempts,
            max = self.cfg.intake.max_attempts,
            error,
            "received file not finished; retried at the next pass"
        );
        self.note_error(
            "pipeline",
            &format!("{name} (received file {id}), attempt {attempts}: {error}"),
        );
        Attempt::Failed(error.to_string())
    }

    /// Moves the copy of file `id` (if still in `work/`) to
    /// `quarantine/<provider>/` and marks it.
    pub fn quarantine(&mut self, id: i64) -> Result<()> {
        let f = ReceivedFile::get(&self.conn, id)?;
        let from = self.spool.abs(&f.work_path);
        if f.work_path.starts_with("work/") && from.exists() {
            let base = from
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.name.clone());
            let rel = format!("quarantine/{}/{base}", f.provider);
            let to = self.spool.abs(&rel);
            let dir = to.parent().expect("quarantine path has a folder");
            fsutil::create_dir_all(dir)?;
            // Recorded first: a file in quarantine/ is never an orphan of work/.
            self.conn.execute(
                "UPDATE received_files SET work_path = ?2 WHERE id = ?1",
                params![id, rel],
            )?;
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
            fsutil::sync_dir(dir)?;
        }
        self.conn.execute(
            "UPDATE received_files SET quarantined_at = ?2 WHERE id = ?1",
            params![id, rfc3339(self.clock.now())],
        )?;
        Ok(())
    }

    /// A retried file still in `quarantine/` goes back to `work/` before
    /// it is resumed (the processor does it: no other process moves files
    /// the pipeline is handling).
    fn resume_from_quarantine(&mut self, id: i64) -> Result<()> {
        let f = ReceivedFile::get(&self.conn, id)?;
        if !f.work_path.starts_with("quarantine/") {
            return Ok(());
        }
        let from = self.spool.abs(&f.work_path);
        let base = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| f.name.clone());
        let rel = format!("work/{}/{base}", f.provider);
        let to = self.spool.abs(&rel);
        if from.exists() {
            let dir = to.parent().expect("work path has a folder");
            fsutil::create_dir_all(dir)?;
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
            fsutil::sync_dir(dir)?;
        }
        self.conn.execute(
            "UPDATE received_files SET work_path = ?2 WHERE id = ?1",
            params![id, rel],
        )?;
        Ok(())
    }

    /// At start-up: the file the previous process had in hand when it died
    /// (named in `state/in-hand`) counts an attempt; at the limit it is
    /// quarantined before anything else is tried. Returns how many files
    /// were quarantined.
    pub(super) fn count_interrupted(&mut self) -> Result<usize> {
        let text = std::fs::read_to_string(self.in_hand_path()).unwrap_or_default();
        self.in_hand(None);
        let Ok(id) = text.trim().parse::<i64>() else {
            return Ok(0);
        };
        let n = self.conn.execute(
            "UPDATE received_files SET attempts = attempts + 1,
                    last_error = 'interrupted: the process stopped while handling it'
             WHERE id = ?1 AND state != 'done' AND quarantined_at IS NULL",
            [id],
        )?;
        if n == 0 {
            return Ok(0);
        }
        tracing::warn!(
            id,
            "the previous process stopped while handling this received file: counted as an attempt"
        );
        let max = self.cfg.intake.max_attempts;
        let over = ReceivedFile::select(
            &self.conn,
            &format!("id = {id} AND state != 'done' AND quarantined_at IS NULL AND attempts >= {max}"),
        )?;
        for f in &over {
            self.quarantine(f.id)?;
            let error = f.last_error.as_deref().unwrap_or("interrupted");
            tracing::error!(
                id = f.id,
                file = f.name,
                attempts = f.attempts,
                error,
                "received file quarantined: the process stopped again and again while handling it"
            );
            self.note_error(
                "pipeline",
                &format!(
                    "{} (received file {}) quarantined after {} attempts: {error}",
                    f.name, f.id, f.attempts
                ),
            );
        }
        Ok(over.len())
    }
}

/// The quarantined files, oldest first.
pub fn quarantined(conn: &Connection) -> Result<Vec<ReceivedFile>> {
    ReceivedFile::select(conn, "quarantined_at IS NOT NULL")
}

/// `retry`: clears the quarantine mark of the files `what` names (`None`:
/// every quarantined file) so that the next pass resumes them. `what` is a
/// received-file id, a file name as delivered, `<provider>/<name>`, or the
/// file's path under `quarantine/`. Returns the files put back.
pub fn retry(conn: &mut Connection, what: Option<&str>) -> Result<Vec<ReceivedFile>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let all = quarantined(&tx)?;
    let chosen: Vec<ReceivedFile> = match what {
        None => all,
        Some(w) => {
            let w = w.trim();
            let base = std::path::Path::new(w)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            all.into_iter()
                .filter(|f| {
                    w.parse::<i64>().ok() == Some(f.id)
                        || f.name == w
                        || format!("{}/{}", f.provider, f.name) == w
                        || f.work_path == w
                        || w.ends_with(&format!("/{}", f.work_path))
                        || (!base.is_empty() && f.work_path.ends_with(&format!("/{base}")))
                })
                .collect()
        }
    };
    for f in &chosen {
        tx.execute(
            "UPDATE received_files SET quarantined_at = NULL, attempts = 0 WHERE id = ?1",
            params![f.id],
        )?;
    }
    tx.commit()?;
    Ok(chosen)
}
