//! The spool layout of spec §2, in one place: every path the gateway reads
//! or writes under `[paths] spool` is built here.
//!
//! ```text
//! inbound/<provider>/          drops (SFTP /in or local)
//! outbound/<provider>/         reports/, bordereaux/, … (SFTP /out)
//! caisse/inbound/<kind>/       reference data dropped by the caisse
//! outbox/<id-cram>/            accepted lines for the payment chain
//! work/<provider>/             files taken, being processed
//! archive/<provider>/<YYYY-MM>/ originals kept
//! quarantine/<provider>/       files that failed again and again (until `retry`)
//! state/                       database, host key
//! mail/                        .eml files when no relay is configured
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsutil;

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
}

/// Names a drop folder never takes: hidden, editor and upload temp files
/// (spec §2). They are picked up once renamed.
pub fn is_temp_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || lower.ends_with(".part")
        || lower.ends_with(".tmp")
        || lower.ends_with(".filepart")
}

/// A provider or kind folder name the gateway accepts: ASCII letters,
/// digits, `-` and `_` (no dot, no separator: never a path).
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Spool {
    pub fn new(root: impl Into<PathBuf>) -> Spool {
        Spool { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the fixed folders (not the per-provider ones).
    pub fn create(&self) -> Result<()> {
        for dir in [
            "inbound",
            "outbound",
            "caisse/inbound",
            "outbox",
            "work",
            "archive",
            "state",
            "mail",
        ] {
            fsutil::create_dir_all(&self.root.join(dir))?;
        }
        for kind in crate::import::Kind::ALL {
            fsutil::create_dir_all(&self.caisse_inbound(kind.as_str()))?;
        }
        Ok(())
    }

    pub fn inbound(&self) -> PathBuf {
        self.root.join("inbound")
    }

    pub fn inbound_of(&self, provider: &str) -> PathBuf {
        self.root.join("inbound").join(provider)
    }

    pub fn outbound_of(&self, provider: &str) -> PathBuf {
        self.root.join("outbound").join(provider)
    }

    pub fn caisse_inbound(&self, kind: &str) -> PathBuf {
        self.root.join("caisse/inbound").join(kind)
    }

    pub fn work_of(&self, provider: &str) -> PathBuf {
        self.root.join("work").join(provider)
    }

    pub fn mail(&self) -> PathBuf {
        self.root.join("mail")
    }

    /// Absolute (or working-directory relative) path of a spool-relative one.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Regular files waiting in each `inbound/<provider>/`, temporary names
    /// excluded (a missing folder, or one removed while listed: none).
    pub fn inbound_counts(&self) -> Result<BTreeMap<String, usize>> {
        let inbound = self.inbound();
        let mut counts = BTreeMap::new();
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let providers = match std::fs::read_dir(&inbound) {
            Ok(d) => d,
            Err(e) if gone(&e) => return Ok(counts),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", inbound.display())),
        };
        for p in providers {
            let p = p.with_context(|| format!("cannot list {}", inbound.display()))?;
            let name = p.file_name().to_string_lossy().into_owned();
            if is_temp_name(&name) || !p.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = p.path();
            let files = match std::fs::read_dir(&dir) {
                Ok(d) => d,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
            };
            let mut n = 0;
            for f in files {
                let f = f.with_context(|| format!("cannot list {}", dir.display()))?;
                // A file taken while listed is simply not counted.
                if f.file_type().is_ok_and(|t| t.is_file()) && !is_temp_name(&f.file_name().to_string_lossy()) {
                    n += 1;
                }
            }
            counts.insert(name, n);
        }
        Ok(counts)
    }

    /// The spool-relative form of a path under the spool.
    pub fn rel(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.root)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

/// Free and total bytes of the file system holding a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer can still use.
    pub free: u64,
    pub total: u64,
}

impl DiskSpace {
    /// Below this, the spool is reported full: a billing file, its reports
    /// and the database pages they need no longer fit for sure.
    pub const LOW: u64 = 1024 * 1024;

    /// The file system of `dir` (or of its nearest existing parent).
    pub fn of(dir: &Path) -> Option<DiskSpace> {
        let mut at = dir;
        loop {
            match rustix::fs::statvfs(at) {
                Ok(v) => {
                    return Some(DiskSpace {
                        free: v.f_bavail.saturating_mul(v.f_frsize),
                        total: v.f_blocks.saturating_mul(v.f_frsize),
                    })
                }
                Err(_) => at = at.parent()?,
            }
        }
    }

    pub fn is_low(&self) -> bool {
        self.free < Self::LOW
    }
}

/// `n` bytes for a reader: `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_ignored() {
        for n in [".hidden.xml", "~lock.xml", "a.xml.part", "a.XML.TMP", "a.xml.filepart"] {
            assert!(is_temp_name(n), "{n}");
        }
        assert!(!is_temp_name("03_150521_100_21999000.xml"));
    }

    #[test]
    fn components() {
        assert!(is_safe_component("saad42"));
        assert!(!is_safe_component(".."));
        assert!(!is_safe_component("a/b"));
        assert!(!is_safe_component(""));
    }

    #[test]
    fn disk_space_of_a_folder_or_its_nearest_parent() {
        let dir = tempfile::tempdir().unwrap();
        let here = DiskSpace::of(dir.path()).unwrap();
        assert!(here.total > 0 && here.free <= here.total);
        let below = DiskSpace::of(&dir.path().join("not/yet/made")).unwrap();
        assert_eq!(below.total, here.total);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
