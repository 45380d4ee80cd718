//! Step 4 of the pipeline: brings every file in flight to its end, at every
//! start and every rescan.
//!
//! In: the spool after whatever happened (a kill, a power loss, a disk
//! error). Out: temp files of dead writers removed (but the staged outbox
//! files whose rename is still owed), files moved into `work/` by a taker
//! that died before recording them recorded now, and every received file
//! that is not done and not quarantined attempted once more.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::quarantine::Attempt;
use super::received::ReceivedFile;
use super::{subdirs, Channel, Pipeline};
use crate::fsutil;

impl Pipeline {
    /// Returns (files finished, files that failed and stay in flight or
    /// were quarantined). `startup`: the first recovery of this process,
    /// which counts the files it finds in flight as interrupted attempts.
    pub fn recover(&mut self, startup: bool) -> Result<(usize, usize)> {
        self.recover_with(startup, |_| {})
    }

    /// [`Pipeline::recover`], handing each attempt's outcome to `seen`.
    pub(super) fn recover_with(&mut self, startup: bool, mut seen: impl FnMut(&Attempt)) -> Result<(usize, usize)> {
        self.progress.beat();
        self.remove_stale_temps()?;
        self.record_orphans()?;
        if startup {
            self.count_interrupted()?;
            // An invoice committed but not delivered when the last process
            // stopped goes out now, by the same deliver-once protocol.
            let now_cfg = self.cfg.clone();
            if let Err(e) = crate::invoicing::deliver_pending(&mut self.conn, &now_cfg, &self.clock) {
                tracing::error!(
                    error = format!("{e:#}"),
                    "invoices owed to the payment chain not all delivered"
                );
                self.note_error("invoicing", &format!("{e:#}"));
            }
        }
        let pending = ReceivedFile::select(&self.conn, "state != 'done' AND quarantined_at IS NULL")?;
        // One file that cannot be finished (its work copy deleted by hand,
        // a disk error) must not keep every other file waiting: it is
        // logged, counted for `status`, and retried at the next pass.
        let mut done = 0;
        for f in &pending {
            let a = self.attempt(f.id);
            if let Attempt::Finished(_) = a {
                done += 1;
            }
            seen(&a);
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

    /// Temp files left by dead writers in the output folders and the mail
    /// folder; a staged outbox file (its rename still owed: a received
    /// file's, an invoice's) is kept.
    fn remove_stale_temps(&self) -> Result<()> {
        let staged: Vec<PathBuf> = self
            .conn
            .prepare(
                "SELECT staged_path FROM outputs WHERE staged_path IS NOT NULL AND done_at IS NULL
                 UNION ALL
                 SELECT staged_path FROM invoices WHERE staged_path IS NOT NULL AND delivered_at IS NULL",
            )?
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|r| r.map(|rel| self.spool.abs(&rel)))
            .collect::<rusqlite::Result<_>>()?;
        let root = self.spool.root().to_path_buf();
        for top in ["outbox", "outbound"] {
            for dir in subdirs(&root.join(top))? {
                fsutil::remove_stale_temps_except(&dir, &staged)?;
                for sub in subdirs(&dir)? {
                    fsutil::remove_stale_temps_except(&sub, &staged)?;
                }
            }
        }
        remove_stale_mail_temps(&self.spool.mail())?;
        Ok(())
    }

    /// Files moved into `work/` by a taker killed before it recorded them.
    fn record_orphans(&mut self) -> Result<()> {
        let mut orphans = Vec::new();
        for dir in subdirs(&self.spool.root().join("work"))? {
            let provider = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for f in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
                let path = f.with_context(|| format!("cannot list {}", dir.display()))?.path();
                let Some(rel) = self.spool.rel(&path) else { continue };
                let known: bool = self
                    .conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM received_files WHERE work_path = ?1)")?
                    .query_row([&rel], |r| r.get(0))?;
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
        Ok(())
    }
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
