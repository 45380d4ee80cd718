//! The files the purge removes: what `outbound/<provider>/` holds past its
//! publication period, the archived originals of received files and the
//! caisse's files under `archive/caisse/` past theirs (see the rules in
//! [`super`]).
//!
//! In: the state (records of publication, what is still owed), the spool
//! and a [`Limit`]. Out: files removed, counted; what could not be removed
//! noted in `failures` (left for the next run), never an early return that
//! would hold up the rest.

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{parse_instant, stamp, Limit, BATCH};
use crate::habitat::Listing;
use crate::spool::{is_safe_component, Spool};

/// When a file was published, as far as the state knows.
enum Dated {
    /// Owed, not recorded as published yet: never removed.
    Owed,
    /// Published (or written) at this instant.
    At(DateTime<Utc>),
    /// A record of publication that cannot be read: kept.
    Unknown,
}

/// Removes the files of `outbound/<provider>/` published before the limit.
pub(super) fn purge_outbound(
    conn: &Connection,
    spool: &Spool,
    limit: &Limit,
    failures: &mut Vec<String>,
) -> Result<usize> {
    let root = spool.root().join("outbound");
    let listings: HashSet<&str> = Listing::ALL
        .iter()
        .flat_map(|l| l.file_names().iter().copied())
        .collect();
    let mut w = Walk {
        conn,
        limit,
        listings,
        failures,
        removed: 0,
    };
    for (name, path) in subdirectories(&root, w.failures) {
        w.walk(&path, &format!("outbound/{name}"), 0)?;
    }
    Ok(w.removed)
}

/// The folders directly in `dir` whose names could be a provider or a kind
/// (never a link), by name.
fn subdirectories(dir: &Path, failures: &mut Vec<String>) -> Vec<(String, PathBuf)> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            failures.push(format!("cannot list {}: {e}", dir.display()));
            return Vec::new();
        }
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            is_safe_component(&name).then(|| (name, e.path()))
        })
        .collect();
    out.sort();
    out
}

struct Walk<'a> {
    conn: &'a Connection,
    limit: &'a Limit,
    /// Names of the listings at the root of a provider's folder.
    listings: HashSet<&'a str>,
    failures: &'a mut Vec<String>,
    removed: usize,
}

impl Walk<'_> {
    /// Walks `dir` (spool-relative `rel`, `depth` 0 for the provider's
    /// folder); returns how many files it removed in it. A folder below
    /// the first level (`reports/`, `documents/`, `bordereaux/` stay) that
    /// this run emptied is removed too.
    fn walk(&mut self, dir: &Path, rel: &str, depth: usize) -> Result<usize> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                self.failures.push(format!("cannot list {}: {e}", dir.display()));
                return Ok(0);
            }
        };
        let mut entries: Vec<std::fs::DirEntry> = rd.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        let mut removed = 0;
        for e in entries {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // The gateway's own temporary files (a write under way).
            if name.starts_with('.') {
                continue;
            }
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            let child = format!("{rel}/{name}");
            if kind.is_dir() {
                let n = self.walk(&path, &child, depth + 1)?;
                removed += n;
                if n > 0 && depth >= 1 {
                    // Fails harmlessly when something is left in it.
                    let _ = std::fs::remove_dir(&path);
                }
                continue;
            }
            if !kind.is_file() || (depth == 0 && self.listings.contains(name.as_ref())) {
                continue;
            }
            let dated = self.dated(&child, &path)?;
            match dated {
                Dated::At(t) if self.limit.expired(t) => {
                    if remove(&path, self.failures) {
                        removed += 1;
                        self.removed += 1;
                        tracing::debug!(file = child, "published file past its keeping period removed");
                    }
                }
                Dated::Unknown => {
                    tracing::warn!(file = child, "unreadable record of publication: file kept");
                }
                Dated::At(_) | Dated::Owed => {}
            }
        }
        Ok(removed)
    }

    /// The record of publication of spool-relative `rel`, else its
    /// modification time.
    fn dated(&self, rel: &str, path: &Path) -> Result<Dated> {
        for sql in [
            "SELECT done_at FROM outputs WHERE path = ?1",
            "SELECT done_at FROM documents WHERE path = ?1 ORDER BY id LIMIT 1",
        ] {
            let row: Option<Option<String>> = self
                .conn
                .prepare_cached(sql)?
                .query_row([rel], |r| r.get(0))
                .optional()
                .with_context(|| format!("reading the record of {rel}"))?;
            match row {
                None => continue,
                Some(None) => return Ok(Dated::Owed),
                Some(Some(t)) => return Ok(parse_instant(&t).map_or(Dated::Unknown, Dated::At)),
            }
        }
        // Payment statements and reports of anomalies are recorded by
        // provider and stem (`outbound/<provider>/<folder>/<stem>.<ext>`).
        let parts: Vec<&str> = rel.split('/').collect();
        if let ["outbound", provider, folder, file] = parts[..] {
            let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
            let sql = match folder {
                "bordereaux" => "SELECT published_at FROM statement_editions WHERE provider = ?1 AND stem = ?2",
                "reports" => "SELECT done_at FROM anomaly_reports WHERE provider = ?1 AND stem = ?2",
                _ => "",
            };
            if !sql.is_empty() {
                let row: Option<Option<String>> = self
                    .conn
                    .prepare_cached(sql)?
                    .query_row([provider, stem], |r| r.get(0))
                    .optional()
                    .with_context(|| format!("reading the record of {rel}"))?;
                match row {
                    None => {}
                    Some(None) => return Ok(Dated::Owed),
                    Some(Some(t)) => return Ok(parse_instant(&t).map_or(Dated::Unknown, Dated::At)),
                }
            }
        }
        Ok(modified(path).map_or(Dated::Unknown, Dated::At))
    }
}

/// A file's modification time.
fn modified(path: &Path) -> Option<DateTime<Utc>> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from)
}

/// Removes a file; false (and a failure noted) when it could not be, false
/// too when it was already gone.
fn remove(path: &Path, failures: &mut Vec<String>) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "file past its keeping period not removed");
            failures.push(format!("cannot remove {}: {e}", path.display()));
            false
        }
    }
}

/// Whether a spool-relative path recorded in the state lies under
/// `archive/` without leaving it (a damaged row never points the purge
/// elsewhere).
fn under_archive(rel: &str) -> bool {
    let p = Path::new(rel);
    p.starts_with("archive") && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Removes the archived originals of the received files done before the
/// limit, and records each removal (`archive_removed_at`); the rows stay.
pub(super) fn purge_archived(
    conn: &mut Connection,
    spool: &Spool,
    limit: &Limit,
    now: DateTime<Utc>,
    failures: &mut Vec<String>,
) -> Result<usize> {
    let due: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, archive_path FROM received_files
             WHERE archive_path IS NOT NULL AND archive_removed_at IS NULL AND done_at < ?1
               AND state = 'done' AND quarantined_at IS NULL
             ORDER BY done_at, id",
        )?
        .query_map([limit.stored()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the archived originals past their keeping period")?;
    let mut removed = 0;
    let mut folders: BTreeSet<PathBuf> = BTreeSet::new();
    for chunk in due.chunks(BATCH) {
        let mut gone: Vec<i64> = Vec::with_capacity(chunk.len());
        for (id, rel) in chunk {
            if !under_archive(rel) {
                failures.push(format!(
                    "received file {id}: archive path {rel:?} is not under archive/"
                ));
                continue;
            }
            let path = spool.abs(rel);
            let before = failures.len();
            if remove(&path, failures) {
                removed += 1;
                if let Some(dir) = path.parent() {
                    folders.insert(dir.to_path_buf());
                }
            }
            if failures.len() == before {
                gone.push(*id);
            }
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE received_files SET archive_removed_at = ?2 WHERE id = ?1 AND archive_removed_at IS NULL",
            )?;
            for id in gone {
                st.execute(params![id, stamp(now)])?;
            }
        }
        tx.commit()?;
    }
    // archive/<provider>/<YYYY-MM>/ left empty: removed (fails harmlessly
    // when something is left in it).
    for dir in folders {
        if dir.starts_with(spool.root().join("archive")) && dir != spool.root().join("archive") {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(removed)
}

/// When the caisse's file `name` was imported, from the stamp the caisse
/// drop folders put before it (`20261120T090000-beneficiaires.csv`, UTC).
fn import_stamp(name: &str) -> Option<DateTime<Utc>> {
    let (stamp, rest) = name.split_at_checked(15)?;
    if !rest.starts_with('-') {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S")
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

/// Removes the caisse's files kept under `archive/caisse/<kind>/` past the
/// limit, but the kept source of a document not yet published.
pub(super) fn purge_caisse_archive(
    conn: &Connection,
    spool: &Spool,
    limit: &Limit,
    failures: &mut Vec<String>,
) -> Result<usize> {
    let owed: HashSet<String> = conn
        .prepare_cached("SELECT source_path FROM documents WHERE done_at IS NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the documents owed")?;
    let mut removed = 0;
    for (kind, dir) in subdirectories(&spool.root().join("archive/caisse"), failures) {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                failures.push(format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        let mut files: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        files.sort();
        for (name, path) in files {
            if owed.contains(&format!("archive/caisse/{kind}/{name}")) {
                continue;
            }
            let Some(t) = import_stamp(&name).or_else(|| modified(&path)) else {
                continue;
            };
            if limit.expired(t) && remove(&path, failures) {
                removed += 1;
                tracing::debug!(kind, file = name, "caisse file past its keeping period removed");
            }
        }
    }
    Ok(removed)
}
