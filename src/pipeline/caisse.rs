//! Reference data dropped by the caisse into `caisse/inbound/<kind>/`
//! (spec §5): each file is imported whole or refused whole.
//!
//! An applied file is moved to `archive/caisse/<kind>/`; a refused one to
//! `caisse/inbound/<kind>/rejected/` with `<name>.errors.txt` beside it,
//! naming every bad row, for the caisse IT team to correct and drop again.
//! A database failure leaves the file in place for the next pass. An
//! applied document (evaluation, decision) is kept by the import itself
//! under `archive/caisse/<kind>/`, so the dropped copy is removed. What the
//! imports made owed to providers (listings, documents) is then written
//! ([`crate::outbound::publish_due`]).
//!
//! A file is imported only once complete, by the same rule as billing
//! drops ([`Settle`]): a CSV cut at a row boundary is a valid file, and
//! importing it would apply part of the caisse's data.

use std::fs;

use anyhow::{Context, Result};
use rusqlite::params;

use super::{rfc3339, Pipeline, Summary};
use crate::fsutil;
use crate::import::{self, ImportError, Kind};
use crate::intake::{Readiness, Settle};
use crate::spool::is_temp_name;

/// Imports every complete file waiting in the caisse folders, counting them
/// in `s`. Returns how long until a file still being written should be
/// looked at again (`None`: none is).
pub fn import_drops(p: &mut Pipeline, settle: &mut Settle, s: &mut Summary) -> Result<Option<std::time::Duration>> {
    let mut wait: Option<std::time::Duration> = None;
    let applied_before = s.imports_applied;
    // Providers first: beneficiaries refer to their sites.
    for kind in Kind::ALL {
        let dir = p.spool.caisse_inbound(kind.as_str());
        let mut files: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.path())
                .filter(|path| path.file_name().is_some_and(|n| !is_temp_name(&n.to_string_lossy())))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        files.sort();
        for path in files {
            match settle.check(&path) {
                Readiness::Ready => {}
                Readiness::Gone => continue,
                Readiness::Wait(w) => {
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                    continue;
                }
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = fsutil::read(&path)?;
            let (sha, _) = super::hash_file(&path)?;
            let now = p.clock.now();
            let outcome = import::import_file(&mut p.conn, &p.cfg, kind, &name, &bytes, now);
            let (state, detail, dest_dir) = match outcome {
                Ok(summary) => {
                    s.imports_applied += 1;
                    tracing::info!(kind = kind.as_str(), file = name, "{summary}");
                    (
                        "applied",
                        summary.to_string(),
                        p.spool.root().join("archive/caisse").join(kind.as_str()),
                    )
                }
                Err(ImportError::Other(e)) => return Err(e.context(format!("importing {}", path.display()))),
                Err(e) => {
                    s.imports_refused += 1;
                    let text = e.to_string();
                    tracing::warn!(kind = kind.as_str(), file = name, "reference file refused");
                    let rejected = dir.join("rejected");
                    fsutil::write_atomic(
                        &rejected.join(format!("{name}.errors.txt")),
                        format!("{text}\n").as_bytes(),
                    )?;
                    ("refused", text, rejected)
                }
            };
            fsutil::create_dir_all(&dest_dir)?;
            let stamp = now.format("%Y%m%dT%H%M%S");
            let dest = dest_dir.join(if state == "applied" {
                format!("{stamp}-{name}")
            } else {
                name.clone()
            });
            if state == "applied" && kind.is_document() {
                // The import kept its bytes under archive/caisse/<kind>/ (named by content).
                fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            } else {
                fs::rename(&path, &dest)
                    .with_context(|| format!("cannot move {} to {}", path.display(), dest.display()))?;
            }
            p.conn.execute(
                "INSERT INTO caisse_imports (kind, name, sha256, received_at, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind.as_str(), name, sha, rfc3339(now), state, detail],
            )?;
        }
    }
    if s.imports_applied > applied_before {
        p.publish_outbound();
    }
    Ok(wait)
}
