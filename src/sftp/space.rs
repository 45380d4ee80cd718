//! One provider's confined folders for one SFTP session, and the error type
//! every SFTP operation answers with.
//!
//! [`Space::open`] is the only place a real path is built from the provider
//! name (checked to be plain ASCII letters and digits first); it yields two
//! `cap_std::fs::Dir` capabilities, `<spool>/inbound/<provider>` and
//! `<spool>/outbound/<provider>`, and every later file operation goes
//! through them, so the kernel refuses whatever would resolve outside.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use russh_sftp::protocol::StatusCode;

use super::vfs::{Area, PathError, TEMP_PREFIX};
use super::SftpEvents;

/// What a session may touch, shared with its blocking tasks.
pub struct Space {
    pub login: String,
    pub provider: String,
    pub inbound: Dir,
    pub outbound: Dir,
    /// Real path of the inbound folder, only to tell the intake where a
    /// completed upload is (never used to operate on files).
    pub inbound_path: PathBuf,
    /// Size limit and flushing, as they stand when an upload starts.
    pub limits: Arc<UploadLimits>,
    pub events: Arc<dyn SftpEvents>,
    /// Set when the server shuts down: uploads still open are discarded.
    pub closing: Arc<AtomicBool>,
}

/// The upload settings (`[limits] max_file_size`, `[sftp] fsync_uploads`),
/// shared by the server and every session: a configuration reload changes
/// them for the uploads that start afterwards.
#[derive(Debug)]
pub struct UploadLimits {
    max_file_size: AtomicU64,
    fsync: AtomicBool,
}

impl UploadLimits {
    pub fn new(max_file_size: u64, fsync: bool) -> UploadLimits {
        UploadLimits {
            max_file_size: AtomicU64::new(max_file_size),
            fsync: AtomicBool::new(fsync),
        }
    }

    /// Largest upload accepted, in bytes.
    pub fn max_file_size(&self) -> u64 {
        self.max_file_size.load(Ordering::SeqCst)
    }

    /// Whether uploads are flushed to disk before they are renamed into `/in`.
    pub fn fsync(&self) -> bool {
        self.fsync.load(Ordering::SeqCst)
    }

    pub fn set(&self, max_file_size: u64, fsync: bool) {
        self.max_file_size.store(max_file_size, Ordering::SeqCst);
        self.fsync.store(fsync, Ordering::SeqCst);
    }
}

/// Settings a [`Space`] takes from the server.
pub struct SpaceConfig<'a> {
    pub spool: &'a Path,
    pub limits: Arc<UploadLimits>,
    pub events: Arc<dyn SftpEvents>,
    pub closing: Arc<AtomicBool>,
}

/// A provider name that may become a folder name.
pub fn valid_provider(provider: &str) -> bool {
    !provider.is_empty() && provider.len() <= 64 && provider.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Space {
    /// Creates the provider's folders if needed and opens them. Blocking.
    pub fn open(cfg: SpaceConfig<'_>, login: &str, provider: &str) -> Result<Space> {
        if !valid_provider(provider) {
            bail!("provider name {provider:?} of login {login:?} is not plain letters and digits");
        }
        let inbound_path = cfg.spool.join("inbound").join(provider);
        let outbound_path = cfg.spool.join("outbound").join(provider);
        let open = |p: &Path| -> Result<Dir> {
            crate::fsutil::create_dir_all(p)?;
            Dir::open_ambient_dir(p, ambient_authority()).with_context(|| format!("cannot open folder {}", p.display()))
        };
        Ok(Space {
            login: login.to_string(),
            provider: provider.to_string(),
            inbound: open(&inbound_path)?,
            outbound: open(&outbound_path)?,
            inbound_path,
            limits: cfg.limits,
            events: cfg.events,
            closing: cfg.closing,
        })
    }

    pub fn dir(&self, area: Area) -> &Dir {
        match area {
            Area::In => &self.inbound,
            Area::Out => &self.outbound,
        }
    }

    /// Flushes the inbound folder so that a rename in it survives a crash.
    /// (The `Dir` capability is an `O_PATH` handle, which cannot be
    /// flushed; the folder is opened read-only for this alone.) A failure
    /// is logged, not returned: the rename itself has happened.
    pub fn sync_inbound(&self) {
        if let Err(e) = crate::fsutil::sync_dir(&self.inbound_path) {
            tracing::warn!(provider = %self.provider, "{e:#}");
        }
    }
}

/// Removes the server's temporary upload files left in every provider's
/// inbound folder (a crash or a kill during an upload). Returns how many.
pub fn remove_stale_uploads(spool: &Path) -> Result<usize> {
    let root = spool.join("inbound");
    let providers = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.display())),
    };
    let mut n = 0;
    for p in providers {
        let p = p.with_context(|| format!("cannot list {}", root.display()))?;
        if !p.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let dir = p.path();
        let entries = std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = e.path();
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// An SFTP status other than OK, with the message the client shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub code: StatusCode,
    pub msg: String,
}

impl Fail {
    pub fn new(code: StatusCode, msg: impl Into<String>) -> Fail {
        Fail { code, msg: msg.into() }
    }
    pub fn eof() -> Fail {
        Fail::new(StatusCode::Eof, "end of file")
    }
    pub fn no_such(msg: impl Into<String>) -> Fail {
        Fail::new(StatusCode::NoSuchFile, msg)
    }
    pub fn denied(msg: impl Into<String>) -> Fail {
        Fail::new(StatusCode::PermissionDenied, msg)
    }
    pub fn failure(msg: impl Into<String>) -> Fail {
        Fail::new(StatusCode::Failure, msg)
    }
    pub fn unsupported(msg: impl Into<String>) -> Fail {
        Fail::new(StatusCode::OpUnsupported, msg)
    }
    pub fn bad_handle() -> Fail {
        Fail::failure("invalid handle")
    }

    /// Maps a file-system error without revealing real paths.
    pub fn io(e: &io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::NotFound => Fail::no_such("no such file or folder"),
            io::ErrorKind::PermissionDenied => Fail::denied("permission denied"),
            io::ErrorKind::AlreadyExists => Fail::failure("file exists"),
            io::ErrorKind::IsADirectory => Fail::failure("is a folder"),
            io::ErrorKind::NotADirectory => Fail::no_such("no such file or folder"),
            io::ErrorKind::StorageFull => Fail::failure("no space left on the server"),
            _ => {
                tracing::warn!("SFTP file operation failed: {e}");
                Fail::failure("operation failed on the server")
            }
        }
    }
}

impl From<PathError> for Fail {
    fn from(e: PathError) -> Fail {
        match e {
            PathError::Invalid(why) => Fail::failure(format!("invalid path: {why}")),
            PathError::NotFound => Fail::no_such("no such file or folder"),
        }
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::io(&e)
    }
}

/// Runs file-system work on a blocking thread (the SSH loop must not wait
/// on a disk).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Fail> + Send + 'static) -> Result<T, Fail> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("SFTP file task failed: {e}");
            Err(Fail::failure("internal error on the server"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_plain() {
        assert!(valid_provider("saad42"));
        for bad in ["", "../x", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(!valid_provider(bad), "{bad:?}");
        }
    }

    #[test]
    fn stale_uploads_are_removed_only_in_inbound_provider_folders() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inbound/p1");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join(".sftp-0123"), b"x").unwrap();
        std::fs::write(p.join("keep.xml"), b"x").unwrap();
        std::fs::write(d.path().join("inbound/.sftp-top"), b"x").unwrap();
        assert_eq!(remove_stale_uploads(d.path()).unwrap(), 1);
        assert!(p.join("keep.xml").exists());
        assert_eq!(remove_stale_uploads(&d.path().join("nowhere")).unwrap(), 0);
    }

    #[test]
    fn io_errors_keep_real_paths_out() {
        let e = io::Error::other("/srv/spool/inbound/p1 exploded");
        assert!(!Fail::io(&e).msg.contains("/srv"));
    }
}
