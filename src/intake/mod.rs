//! Drop-folder intake: which files are complete and may be taken.
//!
//! In: file-system events from `notify` (hints only) and periodic listings.
//! Out: paths of complete files for the processor. Events (closed after
//! writing, renamed in) and listings say when to look at a file; [`Settle`]
//! says whether it is complete, by a rule that holds whoever writes it.
//! Temp names of spec §2 are never taken. NFS/CIFS give no events: the
//! rescan alone covers them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::spool::is_temp_name;

/// Whether an event says a file is complete: closed after writing, or
/// renamed into the folder.
pub fn completes(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
}

/// Whether an event is a file renamed into a watched folder (complete by
/// the writer's convention), rather than closed after writing.
pub fn renamed_in(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
}

/// The paths an event names as worth a look (the destination of a rename).
pub fn ready_paths(ev: &Event) -> Vec<PathBuf> {
    if !completes(&ev.kind) {
        return Vec::new();
    }
    let paths: Vec<&PathBuf> = match ev.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1).into_iter().collect(),
        _ => ev.paths.iter().collect(),
    };
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| !is_temp_name(&n.to_string_lossy())) && !p.is_dir())
        .cloned()
        .collect()
}

/// Folders an event says were created or renamed in. The watch on such a
/// folder starts only once its creation is seen, so a file put there in
/// between sends no event of its own: the folder must be listed.
pub fn new_folders(ev: &Event) -> Vec<PathBuf> {
    let paths: Vec<&PathBuf> = match ev.kind {
        EventKind::Create(CreateKind::Folder) => ev.paths.iter().collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => ev.paths.iter().collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => ev.paths.get(1).into_iter().collect(),
        _ => return Vec::new(),
    };
    paths.into_iter().filter(|p| p.is_dir()).cloned().collect()
}

/// The files of a folder that may be taken now: regular files, not temp
/// names (whether still open for writing is the caller's check).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && !is_temp_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Starts watching `dirs` (recursively); events are handed to `on_event`.
/// `Err` when the platform refuses (the rescan then does all the work).
pub fn watch(
    dirs: &[PathBuf],
    on_event: impl Fn(notify::Result<Event>) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    let mut w = notify::recommended_watcher(on_event)?;
    for d in dirs {
        w.watch(d, RecursiveMode::Recursive)?;
    }
    Ok(w)
}

/// What changes when anyone writes a file: size, modification time, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    len: u64,
    mtime: Option<SystemTime>,
    ino: u64,
}

/// Whether a dropped file may be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Complete: take it.
    Ready,
    /// Maybe still being written: look again after this long.
    Wait(Duration),
    /// No longer there (taken, renamed away) or not a regular file.
    Gone,
}

/// Tells complete dropped files from files still being written, whoever
/// writes them (spec §2, `[intake] settle_ms`).
///
/// A file is complete when nobody holds it open for writing *and* its size,
/// modification time and inode have stayed unchanged for the quiet period:
/// either the gateway has seen them unchanged that long, or the file's own
/// modification time is that old. Open-for-writing is asked of the kernel
/// with a read lease ([`crate::pipeline::open_for_writing`]), which only
/// answers for files the gateway's user owns (or with CAP_LEASE); for the
/// others (a caisse script under its own account, `cp` as root) the quiet
/// period alone decides. Events (close after writing, rename in) only say
/// when to look; they never make a file complete by themselves, since a
/// writer that appends in several opens closes the file each time.
///
/// A writer that may pause longer than the quiet period in the middle of a
/// file must write under a temporary name and rename it when done.
///
/// One shortcut, for the XML files (billing, attestations) only: a file
/// whose document is visibly whole — its last bytes close the root element
/// its first bytes open — and that nobody holds open for writing (where the
/// kernel can tell) is taken without waiting for the quiet period. A file
/// written in chunks is not whole until its last chunk (the root is closed
/// last), so the shortcut only spares the wait to files already complete,
/// copied in at once. A CSV has no such mark: it always waits.
#[derive(Debug)]
pub struct Settle {
    quiet: Duration,
    seen: HashMap<PathBuf, (Signature, Instant)>,
}

impl Settle {
    pub fn new(quiet: Duration) -> Settle {
        Settle {
            quiet,
            seen: HashMap::new(),
        }
    }

    /// Changes the quiet period (a reloaded configuration).
    pub fn set_quiet(&mut self, quiet: Duration) {
        self.quiet = quiet;
    }

    pub fn quiet(&self) -> Duration {
        self.quiet
    }

    /// Looks at `path` now.
    pub fn check(&mut self, path: &Path) -> Readiness {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => m,
            _ => {
                self.seen.remove(path);
                return Readiness::Gone;
            }
        };
        let sig = Signature {
            len: meta.len(),
            mtime: meta.modified().ok(),
            ino: std::os::unix::fs::MetadataExt::ino(&meta),
        };
        let now = Instant::now();
        let entry = self.seen.entry(path.to_path_buf()).or_insert((sig, now));
        if entry.0 != sig {
            *entry = (sig, now);
        }
        // A modification time in the future (another host's clock) counts as now.
        let age = sig
            .mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        let quiet_for = age.max(now.duration_since(entry.1));
        if quiet_for < self.quiet && !(xml_document_whole(path) && writer_known_absent(path)) {
            return Readiness::Wait(self.quiet - quiet_for);
        }
        if crate::pipeline::open_for_writing(path) {
            // Its writer is idle but still there: its close will come as an
            // event, or the next look sees it again.
            entry.1 = now;
            return Readiness::Wait(self.quiet.max(Duration::from_millis(200)));
        }
        self.seen.remove(path);
        Readiness::Ready
    }

    /// Forgets a file (taken, or handled another way).
    pub fn forget(&mut self, p: &Path) {
        self.seen.remove(p);
    }

    /// Forgets files not seen by the latest listing (a bounded memory).
    pub fn retain(&mut self, listed: &[PathBuf]) {
        let keep: std::collections::HashSet<&PathBuf> = listed.iter().collect();
        self.seen.retain(|p, _| keep.contains(p));
    }
}

/// Whether the kernel can tell, and tells, that nobody holds `path` open
/// for writing (a read lease granted: the file's owner, or CAP_LEASE).
fn writer_known_absent(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else { return false };
    // SAFETY: fcntl on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    if rc == 0 {
        // SAFETY: as above; releases the lease just taken.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
    rc == 0
}

/// Whether the XML document in `path` is whole: the root element named in
/// its first bytes is closed by its last non-blank bytes (`</factbord>`).
/// ASCII-compatible encodings only (UTF-16 files wait the quiet period).
pub fn xml_document_whole(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = vec![0u8; 4096];
    let Ok(n) = f.read(&mut head) else { return false };
    head.truncate(n);
    let Some(root) = crate::xml::sniff::root_in_prefix(&head) else {
        return false;
    };
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    let back = len.min(1024);
    let mut tail = vec![0u8; back as usize];
    if f.seek(SeekFrom::Start(len - back)).is_err() || f.read_exact(&mut tail).is_err() {
        return false;
    }
    let end = tail.iter().rposition(|b| !b" \t\r\n".contains(b)).map_or(0, |i| i + 1);
    let close = format!("</{root}>");
    tail[..end].ends_with(close.as_bytes()) || {
        // `</factbord >`: blanks are allowed before the `>`.
        let t = &tail[..end];
        t.ends_with(b">") && {
            let body = t[..t.len() - 1].trim_ascii_end();
            body.ends_with(format!("</{root}").as_bytes())
        }
    }
}

/// Files to look at again, each at its own time.
#[derive(Debug, Default)]
pub struct Recheck {
    due: HashMap<PathBuf, Instant>,
}

impl Recheck {
    /// Looks at `path` again after `wait` (the earlier time wins).
    pub fn after(&mut self, path: PathBuf, wait: Duration) {
        let at = Instant::now() + wait;
        self.due.entry(path).and_modify(|t| *t = (*t).min(at)).or_insert(at);
    }

    /// How long until the next file is due (`None`: none waits).
    pub fn next_in(&self) -> Option<Duration> {
        self.due
            .values()
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// The files due now, oldest due first.
    pub fn take_due(&mut self) -> Vec<PathBuf> {
        let now = Instant::now();
        let mut due: Vec<(Instant, PathBuf)> = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, t)| (*t, p.clone()))
            .collect();
        due.sort();
        for (_, p) in &due {
            self.due.remove(p);
        }
        due.into_iter().map(|(_, p)| p).collect()
    }

    /// Every file still scheduled, whenever due (sorted by path).
    pub fn drain_all(&mut self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = self.due.drain().map(|(p, _)| p).collect();
        all.sort();
        all
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_close_write_and_rename_in_complete_a_file() {
        let mk = |kind| Event {
            kind,
            paths: vec![PathBuf::from("/s/inbound/p/a.xml")],
            attrs: Default::default(),
        };
        assert_eq!(
            ready_paths(&mk(EventKind::Access(AccessKind::Close(AccessMode::Write)))).len(),
            1
        );
        assert!(ready_paths(&mk(EventKind::Create(notify::event::CreateKind::File))).is_empty());
        assert!(ready_paths(&mk(EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)))).is_empty());
        let both = Event {
            kind: EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            paths: vec![
                PathBuf::from("/s/inbound/p/a.xml.part"),
                PathBuf::from("/s/inbound/p/a.xml"),
            ],
            attrs: Default::default(),
        };
        assert_eq!(ready_paths(&both), vec![PathBuf::from("/s/inbound/p/a.xml")]);
        let tmp = Event {
            kind: EventKind::Access(AccessKind::Close(AccessMode::Write)),
            paths: vec![PathBuf::from("/s/inbound/p/a.xml.part")],
            attrs: Default::default(),
        };
        assert!(ready_paths(&tmp).is_empty());
    }

    #[test]
    fn a_new_folder_is_listed_and_never_taken_as_a_file() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("p");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a.xml"), b"x").unwrap();
        std::fs::write(sub.join("a.xml.part"), b"x").unwrap();
        std::fs::create_dir(sub.join("nested")).unwrap();
        let created = Event {
            kind: EventKind::Create(CreateKind::Folder),
            paths: vec![sub.clone()],
            attrs: Default::default(),
        };
        assert_eq!(new_folders(&created), vec![sub.clone()]);
        let renamed = Event {
            kind: EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            paths: vec![sub.clone()],
            attrs: Default::default(),
        };
        assert_eq!(new_folders(&renamed), vec![sub.clone()]);
        assert!(
            ready_paths(&renamed).is_empty(),
            "a folder renamed in is not a complete file"
        );
        let file = Event {
            kind: EventKind::Create(CreateKind::File),
            paths: vec![sub.join("a.xml")],
            attrs: Default::default(),
        };
        assert!(new_folders(&file).is_empty());
        assert_eq!(files_in(&sub), vec![sub.join("a.xml")]);
    }

    #[test]
    fn a_file_is_ready_once_unchanged_for_the_quiet_period() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.xml");
        std::fs::write(&f, b"<a").unwrap();
        let mut s = Settle::new(Duration::from_secs(3600));
        assert!(matches!(s.check(&f), Readiness::Wait(w) if w > Duration::from_secs(3500)));
        // Its own modification time an hour old: quiet for long enough.
        let old = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(s.check(&f), Readiness::Ready);
        // Written again: the quiet period starts over.
        std::fs::write(&f, b"<a/>").unwrap();
        assert!(matches!(s.check(&f), Readiness::Wait(_)));
        assert_eq!(s.check(&d.path().join("gone.xml")), Readiness::Gone);
        assert_eq!(s.check(d.path()), Readiness::Gone, "a folder is never a drop");
        let mut zero = Settle::new(Duration::ZERO);
        assert_eq!(zero.check(&f), Readiness::Ready);
    }

    #[test]
    fn a_whole_xml_document_is_taken_at_once_a_cut_one_waits() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.xml");
        let whole = "<?xml version=\"1.0\"?>\n<factbord>\n <rf-borfact>x</rf-borfact>\n</factbord>\n\n";
        let mut s = Settle::new(Duration::from_secs(3600));
        for (text, ready) in [
            (whole, true),
            ("<factbord>\n <rf-borfact>x</rf-borfact>\n", false),
            ("<factbord><a>x</a></factbord >", true),
            ("<attvisites><attvisite/></attvisites>", true),
            ("<attvisites><attvisite/></factbord>", false),
            ("not xml at all", false),
        ] {
            std::fs::write(&f, text).unwrap();
            s.forget(&f);
            assert_eq!(s.check(&f) == Readiness::Ready, ready, "{text:?}");
        }
        // Whole, but its writer still holds it open: waits.
        std::fs::write(&f, whole).unwrap();
        let w = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        s.forget(&f);
        assert!(matches!(s.check(&f), Readiness::Wait(_)));
        drop(w);
        // A CSV has no end mark: it waits the quiet period.
        let c = d.path().join("a.csv");
        std::fs::write(&c, "a;b\n1;2\n").unwrap();
        assert!(matches!(s.check(&c), Readiness::Wait(_)));
    }

    #[test]
    fn a_file_held_open_for_writing_waits_even_when_quiet() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.csv");
        let w = std::fs::File::create(&f).unwrap();
        let mut s = Settle::new(Duration::ZERO);
        assert!(matches!(s.check(&f), Readiness::Wait(_)));
        drop(w);
        assert_eq!(s.check(&f), Readiness::Ready);
    }

    #[test]
    fn rechecks_come_due_in_order() {
        let mut r = Recheck::default();
        assert_eq!(r.next_in(), None);
        r.after(PathBuf::from("b"), Duration::ZERO);
        r.after(PathBuf::from("a"), Duration::from_secs(3600));
        r.after(PathBuf::from("c"), Duration::from_secs(3600));
        r.after(PathBuf::from("a"), Duration::ZERO);
        assert_eq!(r.next_in(), Some(Duration::ZERO));
        // In the order first scheduled, whatever their due times.
        assert_eq!(r.take_due(), [PathBuf::from("b"), PathBuf::from("a")]);
        assert!(!r.is_empty());
        assert!(r.take_due().is_empty(), "c is not due yet");
    }
}
