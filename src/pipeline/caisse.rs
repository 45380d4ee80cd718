//! Reference data dropped by the caisse into `caisse/inbound/<kind>/`
//! (spec §5): each file is imported whole or refused whole.
//!
//! An applied file is moved to `archive/caisse/<kind>/`; a refused one to
//! `caisse/inbound/<kind>/rejected/` with `<name>.errors.txt` beside it,
//! naming every bad row, for the caisse IT team to correct and drop again.
//! A database failure leaves the file in place for the next pass.

use std::fs;

use anyhow::{Context, Result};
use rusqlite::params;

use super::{rfc3339, Pipeline};
use crate::fsutil;
use crate::import::{self, ImportError, Kind};
use crate::spool::is_temp_name;

/// Imports every complete file waiting in the caisse folders. Returns
/// (applied, refused).
pub fn import_drops(p: &mut Pipeline) -> Result<(usize, usize)> {
    let (mut applied, mut refused) = (0, 0);
    // Providers first: beneficiaries refer to their sites.
    for kind in Kind::ALL {
        let dir = p.spool.caisse_inbound(kind.as_str());
        let mut files: Vec<_> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.path())
                .filter(|path| path.file_name().is_some_and(|n| !is_temp_name(&n.to_string_lossy())))
                // Still being written in place: a prefix cut at a row end
                // would be a valid file, applied in part.
                .filter(|path| !super::open_for_writing(path))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        files.sort();
        for path in files {
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
                    applied += 1;
                    tracing::info!(kind = kind.as_str(), file = name, "{summary}");
                    (
                        "applied",
                        summary.to_string(),
                        p.spool.root().join("archive/caisse").join(kind.as_str()),
                    )
                }
                Err(ImportError::Other(e)) => return Err(e.context(format!("importing {}", path.display()))),
                Err(e) => {
                    refused += 1;
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
            fs::rename(&path, &dest)
                .with_context(|| format!("cannot move {} to {}", path.display(), dest.display()))?;
            p.conn.execute(
                "INSERT INTO caisse_imports (kind, name, sha256, received_at, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![kind.as_str(), name, sha, rfc3339(now), state, detail],
            )?;
        }
    }
    Ok((applied, refused))
}
