//! Delivery to the payment chain, once (`docs/outbox.md`): the protocol
//! every file of `outbox/` goes through — a billing file's accepted lines,
//! an invoice.
//!
//! 1. the content is written to a hidden temporary file beside the
//!    destination and flushed, with its folder;
//! 2. the caller commits that temporary name (`stage`);
//! 3. it is renamed into place and the folder flushed;
//! 4. the caller commits the delivery, in its own transaction, before
//!    anything else can fail.
//!
//! After an interruption between 2 and 4 the caller calls again with the
//! staged name it committed: still there, the rename had not happened and is
//! done now; gone, the rename had happened (and the payment chain may have
//! taken the file already): it is delivered, never written again. Recovery
//! must keep staged files (`fsutil::remove_stale_temps_except`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsutil;
use crate::spool::Spool;

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Renamed into place now.
    Now,
    /// The staged file was renamed before an interruption: delivered then.
    Earlier,
}

/// Delivers `dest` (spool-relative) once. `staged`: the temporary name an
/// earlier call committed, if any. `render` writes the content (called only
/// when nothing is staged); `stage` commits the temporary name (spool-
/// relative) before the rename. The caller commits the delivery after.
pub fn deliver_once(
    spool: &Spool,
    dest: &str,
    staged: Option<&str>,
    render: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
    stage: impl FnOnce(&str) -> Result<()>,
) -> Result<Delivered> {
    let dest_abs = spool.abs(dest);
    let dir = dest_abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = match staged {
        Some(rel) => spool.abs(rel),
        None => {
            let tmp = fsutil::write_temp(&dest_abs, render)?;
            // The temporary file must outlive a power loss before its name is
            // committed: a missing staged file reads as "renamed".
            fsutil::sync_dir(&dir)?;
            let rel = spool
                .rel(&tmp)
                .with_context(|| format!("{} is outside the spool", tmp.display()))?;
            stage(&rel)?;
            tmp
        }
    };
    match std::fs::rename(&tmp, &dest_abs) {
        Ok(()) => {
            fsutil::sync_dir(&dir)?;
            Ok(Delivered::Now)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && staged.is_some() => Ok(Delivered::Earlier),
        Err(e) => Err(e).with_context(|| format!("cannot rename {} to {}", tmp.display(), dest_abs.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn staged_then_renamed_once_and_never_written_again() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path());
        let mut committed = None;
        let got = deliver_once(
            &spool,
            "outbox/03/a.xml",
            None,
            |w| w.write_all(b"<factbord/>"),
            |rel| {
                committed = Some(rel.to_string());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, Delivered::Now);
        assert_eq!(std::fs::read(d.path().join("outbox/03/a.xml")).unwrap(), b"<factbord/>");
        let staged = committed.unwrap();
        // The payment chain takes it; a call with the committed name (an
        // interruption before the delivery was recorded) never writes it again.
        std::fs::remove_file(d.path().join("outbox/03/a.xml")).unwrap();
        let again = deliver_once(
            &spool,
            "outbox/03/a.xml",
            Some(&staged),
            |_| panic!("rendered again"),
            |_| panic!("staged again"),
        )
        .unwrap();
        assert_eq!(again, Delivered::Earlier);
        assert!(!d.path().join("outbox/03/a.xml").exists());
    }

    #[test]
    fn a_staged_file_left_before_its_rename_is_renamed_then() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path());
        std::fs::create_dir_all(d.path().join("outbox/03")).unwrap();
        std::fs::write(d.path().join("outbox/03/.ppas-tmp-1-1-a.xml"), b"content").unwrap();
        let got = deliver_once(
            &spool,
            "outbox/03/a.xml",
            Some("outbox/03/.ppas-tmp-1-1-a.xml"),
            |_| panic!(),
            |_| panic!(),
        )
        .unwrap();
        assert_eq!(got, Delivered::Now);
        assert_eq!(std::fs::read(d.path().join("outbox/03/a.xml")).unwrap(), b"content");
    }
}
