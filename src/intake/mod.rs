//! Drop-folder intake: which files are complete and may be taken.
//!
//! In: file-system events from `notify` (hints only) and periodic listings.
//! Out: paths of complete files for the processor. A file is complete when
//! it was closed after writing or renamed in (the events that say so), or,
//! for a file only a rescan saw, when its size and modification time have
//! not changed over a settle period. Temp names of spec §2 are never taken.
//! NFS/CIFS give no events: the rescan alone covers them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

/// The paths an event makes ready (the destination of a rename).
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

/// Remembers what each rescan saw, to tell a settled file from one still
/// being written.
#[derive(Debug, Default)]
pub struct Settle {
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
}

impl Settle {
    /// Of `candidates`, those complete: unchanged since the previous rescan,
    /// or not modified for `quiet`.
    pub fn settled(&mut self, candidates: Vec<PathBuf>, quiet: Duration) -> Vec<PathBuf> {
        let now = SystemTime::now();
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for p in candidates {
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            let sig = (meta.len(), meta.modified().ok());
            let old_enough = sig
                .1
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= quiet);
            if old_enough || self.seen.get(&p) == Some(&sig) {
                out.push(p);
            } else {
                next.insert(p, sig);
            }
        }
        self.seen = next;
        out
    }

    pub fn forget(&mut self, p: &Path) {
        self.seen.remove(p);
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
    fn a_file_still_growing_is_not_settled() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.xml");
        std::fs::write(&f, b"<a").unwrap();
        let mut s = Settle::default();
        assert!(s.settled(vec![f.clone()], Duration::from_secs(3600)).is_empty());
        assert_eq!(s.settled(vec![f.clone()], Duration::from_secs(3600)), vec![f.clone()]);
        std::fs::write(&f, b"<a/>").unwrap();
        s.forget(&f);
        assert!(s.settled(vec![f.clone()], Duration::from_secs(3600)).is_empty());
    }
}
