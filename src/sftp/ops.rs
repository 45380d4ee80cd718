//! The SFTP operations of one session: decoded requests in, results or
//! [`Fail`] statuses out, over the provider's [`Space`].
//!
//! Rules: `/` lists `in` and `out`; `/in` accepts uploads, listing, removal
//! and renames of its own files; `/out` is read-only all the way down.
//! mkdir/rmdir/symlink/readlink are refused; setstat/fsetstat succeed
//! without effect (WinSCP and FileZilla send them after an upload and
//! report an error otherwise). Symlinks, sockets and the server's
//! temporary files are simply not part of the tree. Every disk access runs
//! on a blocking thread.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use russh_sftp::protocol::{File, FileAttributes, OpenFlags};

use super::space::{blocking, Fail, Space};
use super::upload::Upload;
use super::vfs::{self, Area, Target};

/// Largest READ answered (OpenSSH's own limit; announced by `limits@openssh.com`).
pub const MAX_READ: u32 = 255 * 1024;
/// Open handles allowed per session.
pub const MAX_HANDLES: usize = 256;
/// Entries per READDIR answer.
const DIR_BATCH: usize = 128;
/// Bytes before the data in an SSH_FXP_DATA packet: length, type, id, data length.
const DATA_HEADER: usize = 13;
const SSH_FXP_DATA: u8 = 103;

/// A download of a file of `/in` or `/out`.
struct Download {
    area: Area,
    rel: String,
    file: Arc<std::fs::File>,
    /// How far the client has read (for the download notice).
    read_to: u64,
    reported: bool,
}

enum Open {
    Up(Upload),
    Down(Download),
    List(VecDeque<File>),
}

pub struct Ops {
    space: Arc<Space>,
    handles: HashMap<String, Open>,
    next: u64,
}

impl Ops {
    pub fn new(space: Arc<Space>) -> Ops {
        Ops {
            space,
            handles: HashMap::new(),
            next: 0,
        }
    }

    fn add(&mut self, open: Open) -> Result<String, Fail> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Fail::failure("too many open files in this session"));
        }
        self.next += 1;
        let h = format!("{:x}", self.next);
        self.handles.insert(h.clone(), open);
        Ok(h)
    }

    /// SSH_FXP_OPEN.
    pub async fn open(&mut self, path: &str, flags: OpenFlags) -> Result<String, Fail> {
        let target = vfs::resolve(path)?;
        let writes = flags.intersects(OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE);
        let space = self.space.clone();
        let open = match target {
            Target::Root | Target::AreaRoot(_) => return Err(Fail::failure("is a folder")),
            Target::Entry(Area::Out, _) if writes => return Err(Fail::denied("/out is read-only")),
            Target::Entry(Area::In, name) if writes => {
                let up = blocking(move || Upload::start(&space, &name, flags)).await?;
                Open::Up(up)
            }
            Target::Entry(area, rel) => {
                blocking(move || {
                    let dir = space.dir(area);
                    let meta = dir.symlink_metadata(&rel)?;
                    if meta.is_dir() {
                        return Err(Fail::failure("is a folder"));
                    }
                    if !meta.is_file() {
                        return Err(Fail::no_such("no such file"));
                    }
                    let file = dir.open(&rel)?.into_std();
                    Ok(Open::Down(Download {
                        area,
                        rel,
                        file: Arc::new(file),
                        read_to: 0,
                        reported: false,
                    }))
                })
                .await?
            }
        };
        if let Open::Up(up) = &open {
            tracing::debug!(login = %self.space.login, name = %up.name, "upload started");
        }
        match self.add(open) {
            Ok(h) => Ok(h),
            Err(e) => Err(e),
        }
    }

    /// SSH_FXP_CLOSE.
    pub async fn close(&mut self, handle: &str) -> Result<(), Fail> {
        match self.handles.remove(handle) {
            None => Err(Fail::bad_handle()),
            Some(Open::Up(up)) => up.finish(self.space.clone()).await,
            Some(Open::Down(mut d)) => {
                self.report(&mut d).await;
                Ok(())
            }
            Some(Open::List(_)) => Ok(()),
        }
    }

    /// Tells the daemon a file of `/out` was read (once per handle).
    async fn report(&self, d: &mut Download) {
        if d.area != Area::Out || d.read_to == 0 || d.reported {
            return;
        }
        d.reported = true;
        let space = self.space.clone();
        let rel = d.rel.clone();
        let bytes = d.read_to;
        tracing::info!(login = %space.login, provider = %space.provider, file = %rel, bytes, "download");
        let _ = blocking(move || {
            space.events.downloaded(&space.login, &space.provider, &rel, bytes);
            Ok(())
        })
        .await;
    }

    /// SSH_FXP_READ: answers a complete SSH_FXP_DATA packet, read straight
    /// into the reply buffer.
    pub async fn read(&mut self, id: u32, handle: &str, offset: u64, len: u32) -> Result<Bytes, Fail> {
        let d = match self.handles.get_mut(handle) {
            Some(Open::Down(d)) => d,
            Some(Open::Up(_)) => return Err(Fail::denied("file opened for writing")),
            Some(Open::List(_)) => return Err(Fail::failure("is a folder")),
            None => return Err(Fail::bad_handle()),
        };
        let file = d.file.clone();
        let want = len.min(MAX_READ) as usize;
        let (mut buf, n) = blocking(move || {
            let mut buf = vec![0u8; DATA_HEADER + want];
            let mut filled = 0;
            while filled < want {
                match file.read_at(&mut buf[DATA_HEADER + filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Fail::io(&e)),
                }
            }
            Ok((buf, filled))
        })
        .await?;
        if n == 0 {
            return Err(Fail::eof());
        }
        d.read_to = d.read_to.max(offset + n as u64);
        let n32 = n as u32;
        buf.truncate(DATA_HEADER + n);
        buf[0..4].copy_from_slice(&(9 + n32).to_be_bytes());
        buf[4] = SSH_FXP_DATA;
        buf[5..9].copy_from_slice(&id.to_be_bytes());
        buf[9..13].copy_from_slice(&n32.to_be_bytes());
        Ok(Bytes::from(buf))
    }

    /// SSH_FXP_WRITE.
    pub async fn write(&mut self, handle: &str, offset: u64, data: Bytes) -> Result<(), Fail> {
        match self.handles.get_mut(handle) {
            Some(Open::Up(up)) => up.write(&self.space, offset, data).await,
            Some(_) => Err(Fail::denied("file opened for reading only")),
            None => Err(Fail::bad_handle()),
        }
    }

    /// `fsync@openssh.com`.
    pub async fn fsync(&mut self, handle: &str) -> Result<(), Fail> {
        match self.handles.get_mut(handle) {
            Some(Open::Up(up)) => up.fsync().await,
            Some(_) => Ok(()),
            None => Err(Fail::bad_handle()),
        }
    }

    /// SSH_FXP_STAT / SSH_FXP_LSTAT (the same: links are not part of the tree).
    pub async fn stat(&self, path: &str) -> Result<FileAttributes, Fail> {
        let target = vfs::resolve(path)?;
        let space = self.space.clone();
        blocking(move || stat_target(&space, &target)).await
    }

    /// SSH_FXP_FSTAT.
    pub async fn fstat(&self, handle: &str) -> Result<FileAttributes, Fail> {
        match self.handles.get(handle) {
            None => Err(Fail::bad_handle()),
            Some(Open::Up(up)) => Ok(vfs::file_attrs(up.size(), true, Some(SystemTime::now()))),
            Some(Open::List(_)) => Ok(vfs::dir_attrs(false, None)),
            Some(Open::Down(d)) => {
                let file = d.file.clone();
                let writable = d.area == Area::In;
                blocking(move || {
                    let m = file.metadata()?;
                    Ok(vfs::file_attrs(m.len(), writable, m.modified().ok()))
                })
                .await
            }
        }
    }

    /// SSH_FXP_SETSTAT: accepted without effect on an existing path.
    pub async fn setstat(&self, path: &str) -> Result<(), Fail> {
        self.stat(path).await.map(|_| ())
    }

    /// SSH_FXP_FSETSTAT: accepted without effect on an open handle.
    pub fn fsetstat(&self, handle: &str) -> Result<(), Fail> {
        if self.handles.contains_key(handle) {
            Ok(())
        } else {
            Err(Fail::bad_handle())
        }
    }

    /// SSH_FXP_OPENDIR: the listing is read at once and handed out in batches.
    pub async fn opendir(&mut self, path: &str) -> Result<String, Fail> {
        let target = vfs::resolve(path)?;
        let space = self.space.clone();
        let entries = blocking(move || list(&space, &target, SystemTime::now())).await?;
        self.add(Open::List(entries.into()))
    }

    /// SSH_FXP_READDIR: a batch, then EOF (paramiko waits for it).
    pub fn readdir(&mut self, handle: &str) -> Result<Vec<File>, Fail> {
        match self.handles.get_mut(handle) {
            Some(Open::List(entries)) => {
                if entries.is_empty() {
                    return Err(Fail::eof());
                }
                let n = entries.len().min(DIR_BATCH);
                Ok(entries.drain(..n).collect())
            }
            Some(_) => Err(Fail::failure("not a folder")),
            None => Err(Fail::bad_handle()),
        }
    }

    /// SSH_FXP_REMOVE: only files of `/in`.
    pub async fn remove(&self, path: &str) -> Result<(), Fail> {
        match vfs::resolve(path)? {
            Target::Entry(Area::In, name) => {
                let space = self.space.clone();
                blocking(move || {
                    let m = space.inbound.symlink_metadata(&name)?;
                    if !m.is_file() {
                        return Err(Fail::no_such("no such file"));
                    }
                    space.inbound.remove_file(&name)?;
                    tracing::info!(login = %space.login, provider = %space.provider, %name, "removed by the provider");
                    Ok(())
                })
                .await
            }
            Target::Entry(Area::Out, _) | Target::AreaRoot(Area::Out) => Err(Fail::denied("/out is read-only")),
            _ => Err(Fail::denied("permission denied")),
        }
    }

    /// SSH_FXP_RENAME (`overwrite` false: refuses an existing target, as
    /// SFTP v3 says) and `posix-rename@openssh.com` (`overwrite` true).
    /// Only inside `/in`; a rename to a name the intake takes announces it.
    pub async fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<(), Fail> {
        let (from, to) = match (vfs::resolve(from)?, vfs::resolve(to)?) {
            (Target::Entry(Area::In, a), Target::Entry(Area::In, b)) => (a, b),
            (Target::Entry(Area::Out, _), _) | (_, Target::Entry(Area::Out, _)) => {
                return Err(Fail::denied("/out is read-only"))
            }
            _ => return Err(Fail::denied("permission denied")),
        };
        if from == to {
            return Ok(());
        }
        let space = self.space.clone();
        blocking(move || {
            let dir = &space.inbound;
            let m = dir.symlink_metadata(&from)?;
            if !m.is_file() {
                return Err(Fail::no_such("no such file"));
            }
            if vfs::intake_visible(&to) {
                space
                    .events
                    .upload_arriving(&space.provider, &space.inbound_path.join(&to));
            }
            if overwrite {
                dir.rename(&from, dir, &to)?;
            } else {
                match dir.hard_link(&from, dir, &to) {
                    Ok(()) => dir.remove_file(&from)?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Fail::failure("file exists")),
                    // File systems without hard links: check, then rename.
                    Err(_) => {
                        if dir.symlink_metadata(&to).is_ok() {
                            return Err(Fail::failure("file exists"));
                        }
                        dir.rename(&from, dir, &to)?;
                    }
                }
            }
            if space.limits.fsync() {
                space.sync_inbound();
            }
            tracing::info!(login = %space.login, provider = %space.provider, %from, %to, "renamed by the provider");
            if vfs::intake_visible(&to) {
                space
                    .events
                    .upload_complete(&space.provider, &space.inbound_path.join(&to));
            }
            Ok(())
        })
        .await
    }

    /// SSH_FXP_REALPATH: purely lexical, the working directory is `/`.
    pub fn realpath(&self, path: &str) -> Result<String, Fail> {
        Ok(vfs::resolve(path)?.virtual_path())
    }

    /// Session end: uploads still open are discarded (never renamed into
    /// place), downloads that were read are reported.
    pub async fn finish(&mut self) {
        let handles: Vec<Open> = self.handles.drain().map(|(_, o)| o).collect();
        let mut ups = Vec::new();
        for open in handles {
            match open {
                Open::Up(up) => ups.push(up),
                Open::Down(mut d) => self.report(&mut d).await,
                Open::List(_) => {}
            }
        }
        if !ups.is_empty() {
            let space = self.space.clone();
            let n = ups.len();
            let _ = blocking(move || {
                for mut up in ups {
                    up.discard(&space);
                }
                Ok(())
            })
            .await;
            tracing::info!(login = %self.space.login, "{n} unfinished upload(s) discarded");
        }
    }
}

impl Drop for Ops {
    /// Last resort when the session task ends without [`Ops::finish`]
    /// (aborted): unlinking the temporary files is quick enough to do here.
    fn drop(&mut self) {
        for (_, open) in self.handles.drain() {
            if let Open::Up(mut up) = open {
                up.discard(&self.space);
            }
        }
    }
}

fn stat_target(space: &Space, target: &Target) -> Result<FileAttributes, Fail> {
    match target {
        Target::Root => Ok(vfs::dir_attrs(false, None)),
        Target::AreaRoot(area) => {
            let m = space.dir(*area).dir_metadata()?;
            Ok(vfs::dir_attrs(
                *area == Area::In,
                m.modified().ok().map(|t| t.into_std()),
            ))
        }
        Target::Entry(area, rel) => {
            let m = space.dir(*area).symlink_metadata(rel)?;
            match vfs::attrs_of(&m, *area) {
                // `/in` is flat: a folder someone made there is not shown.
                Some(a) if !(*area == Area::In && m.is_dir()) => Ok(a),
                _ => Err(Fail::no_such("no such file or folder")),
            }
        }
    }
}

/// The entries of a folder of the virtual tree, sorted by name.
fn list(space: &Space, target: &Target, now: SystemTime) -> Result<Vec<File>, Fail> {
    let (user, group) = (space.login.as_str(), space.provider.as_str());
    let (area, entries) = match target {
        Target::Root => {
            let mut out = Vec::new();
            for area in [Area::In, Area::Out] {
                let attrs = stat_target(space, &Target::AreaRoot(area))?;
                out.push(vfs::entry(area.name(), attrs, user, group, now));
            }
            return Ok(out);
        }
        Target::AreaRoot(area) => (*area, space.dir(*area).entries()?),
        Target::Entry(Area::In, _) => return Err(Fail::failure("not a folder")),
        Target::Entry(Area::Out, rel) => {
            let m = space.outbound.symlink_metadata(rel)?;
            if !m.is_dir() {
                return Err(Fail::failure("not a folder"));
            }
            (Area::Out, space.outbound.read_dir(rel)?)
        }
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        // Only what the client could address: no temporary files, no
        // names the path rules refuse.
        if vfs::is_temporary(&name) || vfs::resolve(&format!("/{}/{name}", area.name())).is_err() {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_symlink() || (area == Area::In && ft.is_dir()) {
            continue;
        }
        let meta = match e.metadata() {
            Ok(m) => m,
            // Removed meanwhile (taken by the intake): not listed.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(Fail::io(&err)),
        };
        if let Some(attrs) = vfs::attrs_of(&meta, area) {
            out.push(vfs::entry(&name, attrs, user, group, now));
        }
    }
    out.sort_by(|a, b| a.filename.cmp(&b.filename));
    Ok(out)
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
