//! One upload into `/in`: client writes in, a complete file renamed into
//! the provider's inbound folder out.
//!
//! The data goes to a hidden temporary file in the same folder
//! (`.sftp-<random>`), never to the final name: the intake, which ignores
//! dot-files, only ever sees complete files, and the rename on CLOSE is
//! atomic. The size limit is enforced on every write (the temporary file is
//! removed at the first write past it). Writes are plain buffered writes on
//! a blocking thread; no hashing or copying on the way.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use cap_std::fs::OpenOptions;
use russh_sftp::protocol::OpenFlags;

use super::space::{blocking, Fail, Space};
use super::vfs::{intake_visible, TEMP_PREFIX};

/// Buffer between client writes and the disk.
const WRITE_BUFFER: usize = 256 * 1024;

pub struct Upload {
    /// Final name in `/in`.
    pub name: String,
    /// Temporary name in the same folder; `None` once removed or renamed.
    temp: Option<String>,
    /// `None` while a blocking write holds it, or after a failure.
    file: Option<BufWriter<File>>,
    /// Where the writer stands (buffered bytes included).
    pos: u64,
    /// Bytes in the file so far.
    size: u64,
    append: bool,
    /// `[limits] max_file_size` and `[sftp] fsync_uploads` when the upload
    /// started (a reload does not change an upload under way).
    max: u64,
    fsync: bool,
    /// Set by the first refused write: the reason every later call repeats.
    failed: Option<String>,
}

fn too_large(max: u64) -> String {
    format!("file too large: the limit is {max} bytes; upload refused")
}

impl Upload {
    /// Opens an upload of `name`. Blocking: run it on a blocking thread.
    pub fn start(space: &Space, name: &str, flags: OpenFlags) -> Result<Upload, Fail> {
        let dir = &space.inbound;
        let existing = match dir.symlink_metadata(name) {
            Ok(m) if m.is_file() => Some(m.len()),
            Ok(_) => return Err(Fail::failure("not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Fail::io(&e)),
        };
        if flags.contains(OpenFlags::EXCLUDE) && existing.is_some() {
            return Err(Fail::failure("file exists"));
        }
        if !flags.contains(OpenFlags::CREATE) && existing.is_none() {
            return Err(Fail::no_such("no such file"));
        }
        let (max, fsync) = (space.limits.max_file_size(), space.limits.fsync());
        let temp = format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>());
        let file = dir
            .open_with(&temp, OpenOptions::new().write(true).create_new(true))?
            .into_std();
        let mut up = Upload {
            name: name.to_string(),
            temp: Some(temp),
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            pos: 0,
            size: 0,
            append: flags.contains(OpenFlags::APPEND),
            max,
            fsync,
            failed: None,
        };
        // Without TRUNCATE the client writes over (or after) what is there:
        // start from a copy so that the rename keeps the untouched parts.
        if let (Some(len), false) = (existing, flags.contains(OpenFlags::TRUNCATE)) {
            if len > max {
                up.discard(space);
                return Err(Fail::failure(too_large(max)));
            }
            let copied = (|| -> io::Result<u64> {
                let mut src = dir.open(name)?.into_std();
                let w = up.file.as_mut().ok_or_else(|| io::Error::other("no writer"))?;
                io::copy(&mut src, w)
            })();
            match copied {
                Ok(n) => {
                    up.pos = n;
                    up.size = n;
                }
                Err(e) => {
                    up.discard(space);
                    return Err(Fail::io(&e));
                }
            }
        }
        Ok(up)
    }

    /// Size of the file so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `data` at `offset` (at the end in append mode).
    pub async fn write(&mut self, space: &Arc<Space>, offset: u64, data: Bytes) -> Result<(), Fail> {
        if let Some(why) = &self.failed {
            return Err(Fail::failure(why.clone()));
        }
        let at = if self.append { self.size } else { offset };
        let end = at.saturating_add(data.len() as u64);
        if end > self.max {
            let why = too_large(self.max);
            tracing::warn!(
                login = %space.login,
                name = %self.name,
                "upload refused: larger than {} bytes",
                self.max
            );
            self.fail(space, why.clone()).await;
            return Err(Fail::failure(why));
        }
        let Some(mut w) = self.file.take() else {
            return Err(Fail::failure("upload is not writable"));
        };
        let pos = self.pos;
        let (w, result) = tokio::task::spawn_blocking(move || {
            let r = (|| -> io::Result<()> {
                if at != pos {
                    w.seek(SeekFrom::Start(at))?;
                }
                w.write_all(&data)
            })();
            (w, r)
        })
        .await
        .map_err(|e| Fail::failure(format!("internal error on the server: {e}")))?;
        match result {
            Ok(()) => {
                self.file = Some(w);
                self.pos = end;
                self.size = self.size.max(end);
                Ok(())
            }
            Err(e) => {
                self.file = Some(w);
                let f = Fail::io(&e);
                // A full disk, say: the client is told, the partial file
                // removed, and the operator reads why.
                tracing::warn!(
                    login = %space.login,
                    name = %self.name,
                    error = %e,
                    "upload failed: partial file removed, the client may send it again"
                );
                self.fail(space, f.msg.clone()).await;
                Err(f)
            }
        }
    }

    /// `fsync@openssh.com`: the data written so far reaches the disk.
    pub async fn fsync(&mut self) -> Result<(), Fail> {
        if let Some(why) = &self.failed {
            return Err(Fail::failure(why.clone()));
        }
        let Some(mut w) = self.file.take() else {
            return Err(Fail::failure("upload is not writable"));
        };
        let (w, r) = tokio::task::spawn_blocking(move || {
            let r = w.flush().and_then(|_| w.get_ref().sync_data());
            (w, r)
        })
        .await
        .map_err(|e| Fail::failure(format!("internal error on the server: {e}")))?;
        self.file = Some(w);
        r.map_err(|e| Fail::io(&e))
    }

    /// CLOSE: flush, rename into place, announce. A refused or failed
    /// upload only removes its temporary file.
    pub async fn finish(mut self, space: Arc<Space>) -> Result<(), Fail> {
        if let Some(why) = self.failed.take() {
            return Err(Fail::failure(why));
        }
        let (Some(w), Some(temp)) = (self.file.take(), self.temp.take()) else {
            return Err(Fail::failure("upload is not writable"));
        };
        let name = std::mem::take(&mut self.name);
        let size = self.size;
        let fsync = self.fsync;
        blocking(move || {
            let done = (|| -> Result<(), Fail> {
                let f = w.into_inner().map_err(|e| Fail::io(e.error()))?;
                if fsync {
                    f.sync_all()?;
                }
                drop(f);
                if space.closing.load(Ordering::SeqCst) {
                    return Err(Fail::failure("server shutting down: upload discarded, send it again"));
                }
                if intake_visible(&name) {
                    space
                        .events
                        .upload_arriving(&space.provider, &space.inbound_path.join(&name));
                }
                space.inbound.rename(&temp, &space.inbound, &name)?;
                Ok(())
            })();
            if let Err(e) = done {
                let _ = space.inbound.remove_file(&temp);
                tracing::warn!(
                    login = %space.login,
                    %name,
                    error = %e.msg,
                    "upload failed at close: partial file removed, the client may send it again"
                );
                return Err(e);
            }
            if fsync {
                space.sync_inbound();
            }
            tracing::info!(login = %space.login, provider = %space.provider, %name, size, "upload complete");
            if intake_visible(&name) {
                space
                    .events
                    .upload_complete(&space.provider, &space.inbound_path.join(&name));
            }
            Ok(())
        })
        .await
    }

    /// Marks the upload failed and removes its temporary file.
    async fn fail(&mut self, space: &Arc<Space>, why: String) {
        self.failed = Some(why);
        let file = self.file.take();
        if let Some(temp) = self.temp.take() {
            let space = space.clone();
            let _ = blocking(move || {
                drop(file);
                let _ = space.inbound.remove_file(&temp);
                Ok(())
            })
            .await;
        }
    }

    /// Drops the data and removes the temporary file. Blocking (one unlink).
    pub fn discard(&mut self, space: &Space) {
        self.file = None;
        if let Some(temp) = self.temp.take() {
            if let Err(e) = space.inbound.remove_file(&temp) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(login = %space.login, "cannot remove temporary upload file: {e}");
                }
            }
        }
    }
}
