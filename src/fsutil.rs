//! File-system helpers with context: every error names its path.
//!
//! [`write_atomic`] is how the gateway publishes every file: written under a
//! hidden temporary name in the destination folder, flushed, renamed into
//! place, then the folder itself is flushed. A reader (a provider's SFTP
//! client, the payment chain) never sees a half-written file, and a crash
//! leaves at worst a hidden temporary file that [`remove_stale_temps`] clears.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Prefix of the temporary files the gateway writes (hidden: starts with `.`).
pub const TEMP_PREFIX: &str = ".ppas-tmp-";

pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create folder {}", path.display()))
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Flushes a folder so that a rename inside it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).with_context(|| format!("cannot open folder {}", dir.display()))?;
    d.sync_all()
        .with_context(|| format!("cannot flush folder {}", dir.display()))
}

/// Writes `data` to `path` atomically and durably (temp file, fsync, rename,
/// fsync of the folder). Missing parent folders are created.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(data))
}

/// Like [`write_atomic`], with a writer callback (for streamed content).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic_unsynced(path, fill)?;
    sync_dir(folder_of(path))
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Like [`write_atomic_with`] but leaves the folder unflushed: the content
/// is on disk, the rename becomes durable at the caller's [`sync_dir`] (one
/// flush for several files of the same folder).
pub fn write_atomic_unsynced(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = write_temp(path, fill)?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
}

/// Writes the content meant for `path` to a new hidden temporary file in
/// the same folder (created if missing), flushed to disk, and returns its
/// path; the caller renames it into place. On error nothing is left.
pub fn write_temp(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<PathBuf> {
    write_temp_mode(path, None, fill)
}

/// [`write_temp`], the file created with exactly `mode` (whatever the
/// umask) when given.
fn write_temp_mode(
    path: &Path,
    mode: Option<u32>,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let staged = Staged::create_mode(path, mode)?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &staged.file);
        fill(&mut w).with_context(|| format!("cannot write {}", staged.tmp.display()))?;
        w.flush()
            .with_context(|| format!("cannot write {}", staged.tmp.display()))?;
    }
    staged.finish()
}

/// A file being written for `dest` under a hidden temporary name in the
/// same folder: [`Staged::install`] flushes it and renames it into place;
/// dropped before that, it is removed. Several can be filled at once (two
/// forms of a listing written in one pass over the database).
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    file: File,
    writer: Option<std::io::BufWriter<File>>,
    done: bool,
}

impl Staged {
    pub fn create(dest: &Path) -> Result<Staged> {
        Staged::create_mode(dest, None)
    }

    fn create_mode(dest: &Path, mode: Option<u32>) -> Result<Staged> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = folder_of(dest);
        create_dir_all(dir)?;
        let name = dest
            .file_name()
            .with_context(|| format!("{} has no file name", dest.display()))?;
        let tmp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}-{}",
            std::process::id(),
            unique(),
            name.to_string_lossy()
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        if let Some(m) = mode {
            options.mode(m);
        }
        let file = options
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let staged = Staged {
            tmp,
            dest: dest.to_path_buf(),
            writer: None,
            file,
            done: false,
        };
        if let Some(m) = mode {
            // The umask only takes bits away: set exactly `m` all the same.
            staged
                .file
                .set_permissions(fs::Permissions::from_mode(m))
                .with_context(|| format!("cannot set the mode of {}", staged.tmp.display()))?;
        }
        Ok(staged)
    }

    /// A buffered writer of the content.
    pub fn writer(&mut self) -> Result<&mut std::io::BufWriter<File>> {
        if self.writer.is_none() {
            let f = self
                .file
                .try_clone()
                .with_context(|| format!("cannot write {}", self.tmp.display()))?;
            self.writer = Some(std::io::BufWriter::with_capacity(1 << 16, f));
        }
        Ok(self.writer.as_mut().expect("set above"))
    }

    /// Flushes the content to disk; returns the temporary path, which the
    /// caller now owns (it is no longer removed on drop).
    fn finish(mut self) -> Result<PathBuf> {
        if let Some(mut w) = self.writer.take() {
            w.flush()
                .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        }
        self.file
            .sync_all()
            .with_context(|| format!("cannot flush {}", self.tmp.display()))?;
        self.done = true;
        Ok(self.tmp.clone())
    }

    /// Flushes the content and renames it into place; the folder is flushed
    /// by the caller ([`sync_dir`]), once for several files.
    pub fn install(self) -> Result<()> {
        let dest = self.dest.clone();
        let tmp = self.finish()?;
        fs::rename(&tmp, &dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// How a file written by [`write_private`] takes its final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    /// Replaces whatever is there (rename).
    Replace,
    /// Fails if a file is already there (a key another process created
    /// meanwhile is never replaced).
    KeepExisting,
}

/// Writes a secret (a host key, a message carrying a password): readable by
/// its owner only (mode 0600 from the first byte, whatever the umask),
/// atomically and durably like [`write_atomic`].
pub fn write_private(path: &Path, data: &[u8], install: Install) -> Result<()> {
    let tmp = write_temp_mode(path, Some(0o600), |w| w.write_all(data))?;
    let placed = match install {
        Install::Replace => fs::rename(&tmp, path),
        Install::KeepExisting => fs::hard_link(&tmp, path).and_then(|()| fs::remove_file(&tmp)),
    };
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot install {}", path.display()));
    }
    sync_dir(folder_of(path))
}

/// Removes the temporary files a crash may have left in `dir` (not recursive).
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    remove_stale_temps_except(dir, &[])
}

/// Like [`remove_stale_temps`], keeping the temporary files listed in
/// `keep` (staged outbox files whose rename is still owed; paths built
/// from the same spool root as `dir`).
pub fn remove_stale_temps_except(dir: &Path, keep: &[PathBuf]) -> Result<usize> {
    let mut n = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let p: PathBuf = entry.path();
            if keep.contains(&p) {
                continue;
            }
            fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_parents_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c.txt");
        write_atomic(&p, b"hello").unwrap();
        write_atomic(&p, b"again").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"again");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_staged_temp_file_is_kept_until_renamed() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out/a.xml");
        let staged = write_temp(&dest, |w| w.write_all(b"data")).unwrap();
        assert!(staged.file_name().unwrap().to_string_lossy().starts_with(TEMP_PREFIX));
        assert!(!dest.exists());
        fs::write(d.path().join(format!("out/{TEMP_PREFIX}1-2-b.xml")), b"").unwrap();
        assert_eq!(
            remove_stale_temps_except(&d.path().join("out"), std::slice::from_ref(&staged)).unwrap(),
            1
        );
        assert_eq!(fs::read(&staged).unwrap(), b"data");
        assert_eq!(remove_stale_temps(&d.path().join("out")).unwrap(), 1);
        assert!(!staged.exists());
    }

    #[test]
    fn private_files_are_0600_whatever_the_umask_and_may_refuse_to_replace() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s/secret");
        // SAFETY: umask only changes this process's file creation mask.
        let old = unsafe { libc::umask(0) };
        write_private(&p, b"one", Install::Replace).unwrap();
        unsafe { libc::umask(old) };
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        write_private(&p, b"two", Install::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert!(write_private(&p, b"three", Install::KeepExisting).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "a temp file was left"
        );
    }

    #[test]
    fn staged_files_appear_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("l/a.csv"), d.path().join("l/a.xml"));
        let mut sa = Staged::create(&a).unwrap();
        let mut sb = Staged::create(&b).unwrap();
        sa.writer().unwrap().write_all(b"csv").unwrap();
        sb.writer().unwrap().write_all(b"xml").unwrap();
        assert!(!a.exists() && !b.exists());
        sa.install().unwrap();
        drop(sb);
        assert_eq!(fs::read(&a).unwrap(), b"csv");
        assert!(!b.exists());
        assert_eq!(
            fs::read_dir(d.path().join("l")).unwrap().count(),
            1,
            "the abandoned temp file stays"
        );
    }

    #[test]
    fn stale_temps_are_removed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(format!("{TEMP_PREFIX}1-2-x")), b"").unwrap();
        fs::write(d.path().join("keep.xml"), b"").unwrap();
        assert_eq!(remove_stale_temps(d.path()).unwrap(), 1);
        assert!(d.path().join("keep.xml").exists());
    }
}
