//! Retention (spec §6, the `purge` job): what is past its keeping period is
//! removed, never what is still owed.
//!
//! In: the state, the spool, `[retention]` and the one clock. Out: files and
//! rows removed, one history entry (kind `job`, interface `purge`) with the
//! counts, every provider's `historique` listing marked and the outbound
//! files owed written ([`publish_due`]).
//!
//! Periods are in months (`0`: kept for ever) and run in whole days of
//! Europe/Paris, like every business date: on day T, what dates from a day
//! before `T − period` ([`keep_from`]) goes; what dates from that day or
//! later stays. A report published on 25/11/2025 is there until 25/11/2026
//! included and gone from the purge of 26/11/2026.
//!
//! | what | dated by | period |
//! |---|---|---|
//! | files under `outbound/<provider>/` (reports, bordereaux, documents), not the listings at its root | their record of publication (`outputs.done_at`, `documents.done_at`), else the file's modification time | `outbound_months` (12) |
//! | originals of received files under `archive/` (`received_files.archive_path`; the row stays, `archive_removed_at` set) | `received_files.done_at` | `archive_months` (12) |
//! | the caisse's files under `archive/caisse/<kind>/` | the import stamp of the name (`YYYYMMDDTHHMMSS-…`, UTC), else the modification time | `archive_months` (12) |
//! | exchange-history entries | `history.at` | `history_months` (6) |
//! | delivered e-mails (`mail_queue` rows) | `sent_at` | `mail_months` (6) |
//!
//! Never removed, whatever their age: an output not recorded done, a
//! document not published (nor the kept source it is copied from), the
//! original of a received file not done or quarantined, an unsent e-mail
//! (pending or failed), the listings (rewritten, not removed), the gateway's
//! temporary files (names starting with `.`), anything a symbolic link
//! points to. A file whose record of publication cannot be read is kept.
//!
//! Idempotent: a second run at the same instant finds nothing more to
//! remove. A file that cannot be removed (permissions) does not hold up the
//! rest: it is logged, left, named in the error returned after everything
//! else (the run's history entry included), and tried again at the next run.
//!
//! The caller holds the spool lock (`run purge`) or is the daemon's
//! processor: nothing else writes the outbound folders meanwhile.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::clock::{paris_day, Clock};
use crate::config::Config;
use crate::habitat::Listing;
use crate::history::{self, Entry};
use crate::outbound::{publish_due, Published};
use crate::spool::{is_safe_component, Spool};

/// Rows deleted or marked per transaction: the daemon's other work waits
/// at most one batch.
const BATCH: usize = 2000;

/// What a run removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeSummary {
    /// Files removed from `outbound/<provider>/`.
    pub outbound_files: usize,
    /// Originals of received files removed from `archive/`.
    pub archived_originals: usize,
    /// The caisse's files removed from `archive/caisse/`.
    pub caisse_files: usize,
    /// History entries deleted.
    pub history: usize,
    /// Delivered e-mails deleted from the queue.
    pub mails: usize,
    /// What the publication after the run wrote (the `historique` listings).
    pub published: Published,
}

impl PurgeSummary {
    /// Files removed, all places together.
    pub fn files(&self) -> usize {
        self.outbound_files + self.archived_originals + self.caisse_files
    }
}

impl fmt::Display for PurgeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "purge : {} fichier(s) publié(s) supprimé(s) de outbound, {} original(aux) de fichiers reçus et \
             {} fichier(s) de la caisse supprimé(s) de archive, {} entrée(s) d'historique et {} e-mail(s) \
             envoyé(s) supprimé(s) ; {} liste(s) réécrite(s)",
            self.outbound_files,
            self.archived_originals,
            self.caisse_files,
            self.history,
            self.mails,
            self.published.listings
        )
    }
}

/// The first day kept on `today` by a period of `months`: `today − months`
/// (Europe/Paris days; the 31st becomes the last day of a shorter month).
pub fn keep_from(today: NaiveDate, months: u32) -> NaiveDate {
    today.checked_sub_months(Months::new(months)).unwrap_or(NaiveDate::MIN)
}

/// Midnight starting `day` in Europe/Paris, as a UTC instant (midnight
/// always exists there: the clocks change at 02:00 and 03:00).
fn paris_midnight(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    Paris
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// One rule on one day: what dates from before [`Limit::keep_from`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub months: u32,
    /// The first day kept (Europe/Paris).
    pub keep_from: NaiveDate,
    /// Midnight starting that day: an instant before it has expired.
    pub before: DateTime<Utc>,
}

impl Limit {
    /// The limit of a period of `months` on `today`; `None` for 0 (for ever).
    pub fn on(today: NaiveDate, months: u32) -> Option<Limit> {
        (months > 0).then(|| {
            let keep_from = keep_from(today, months);
            Limit {
                months,
                keep_from,
                before: paris_midnight(keep_from),
            }
        })
    }

    /// Whether something dated `t` has expired (its Paris day is before
    /// the first day kept).
    pub fn expired(&self, t: DateTime<Utc>) -> bool {
        t < self.before
    }

    /// [`Limit::before`] in the stored form of instants (RFC 3339 UTC,
    /// whole seconds): compared as text with the columns.
    fn stored(&self) -> String {
        stamp(self.before)
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Removes what is past its keeping period (see the module header), records
/// the run, marks every provider's `historique` listing and writes what is
/// owed to the outbound folders.
pub fn purge(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<PurgeSummary> {
    let now = clock.now();
    let today = paris_day(now);
    let r = &cfg.retention;
    let spool = Spool::new(&cfg.paths.spool);
    let mut s = PurgeSummary::default();
    let mut failures: Vec<String> = Vec::new();

    let outbound = Limit::on(today, r.outbound_months);
    let archive = Limit::on(today, r.archive_months);
    let hist = Limit::on(today, r.history_months);
    let mail = Limit::on(today, r.mail_months);

    if let Some(l) = &outbound {
        s.outbound_files = purge_outbound(conn, &spool, l, &mut failures)?;
    }
    if let Some(l) = &archive {
        s.archived_originals = purge_archived(conn, &spool, l, now, &mut failures)?;
        s.caisse_files = purge_caisse_archive(conn, &spool, l, &mut failures)?;
    }
    if let Some(l) = &hist {
        s.history = delete_batched(
            conn,
            "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE at < ?1 ORDER BY at LIMIT ?2)",
            &l.stored(),
        )
        .context("purging the history")?;
    }
    if let Some(l) = &mail {
        s.mails = delete_batched(
            conn,
            "DELETE FROM mail_queue WHERE id IN
                 (SELECT id FROM mail_queue WHERE sent_at IS NOT NULL AND sent_at < ?1 ORDER BY sent_at LIMIT ?2)",
            &l.stored(),
        )
        .context("purging the mail queue")?;
    }

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "job",
            application: "aide-a-domicile",
            interface: "purge",
            comment: comment(&s, &outbound, &archive, &hist, &mail, failures.len()),
            ..Default::default()
        },
    )?;
    mark_every_historique(&tx)?;
    tx.commit()?;
    tracing::info!(
        outbound = s.outbound_files,
        archived = s.archived_originals,
        caisse = s.caisse_files,
        history = s.history,
        mails = s.mails,
        not_removed = failures.len(),
        "purge done"
    );

    s.published = publish_due(conn, cfg, now)
        .with_context(|| format!("{s}, but the outbound files owed were not all written"))?;
    if !failures.is_empty() {
        anyhow::bail!(
            "{s}; {} item(s) could not be removed (left, tried again at the next purge): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(s)
}

/// The comment of the run's history entry: counts and the first day kept
/// by each rule (never a name, let alone a NIR).
fn comment(
    s: &PurgeSummary,
    outbound: &Option<Limit>,
    archive: &Option<Limit>,
    hist: &Option<Limit>,
    mail: &Option<Limit>,
    failures: usize,
) -> String {
    let rule = |l: &Option<Limit>| match l {
        Some(l) => format!(
            "{} mois, conservé depuis le {}",
            l.months,
            l.keep_from.format("%d/%m/%Y")
        ),
        None => "conservé sans limite".to_string(),
    };
    let mut c = format!(
        "purge : {} fichier(s) publié(s) supprimé(s) de outbound ({}) ; {} original(aux) de fichiers reçus et {} \
         fichier(s) de la caisse supprimé(s) de archive ({}) ; {} entrée(s) d'historique supprimée(s) ({}) ; \
         {} e-mail(s) envoyé(s) supprimé(s) de la file ({})",
        s.outbound_files,
        rule(outbound),
        s.archived_originals,
        s.caisse_files,
        rule(archive),
        s.history,
        rule(hist),
        s.mails,
        rule(mail)
    );
    if failures > 0 {
        c.push_str(&format!(
            " ; {failures} élément(s) non supprimé(s), réessayé(s) à la prochaine purge"
        ));
    }
    c
}

/// Runs a `DELETE … LIMIT ?2` with `?1` = `limit` until it deletes nothing,
/// one transaction a batch; returns the rows deleted.
fn delete_batched(conn: &mut Connection, sql: &str, limit: &str) -> Result<usize> {
    let mut total = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.prepare_cached(sql)?.execute(params![limit, BATCH as i64])?;
        tx.commit()?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Marks the `historique` listing of every registered provider and of every
/// provider that has one (entries age out every day).
fn mark_every_historique(conn: &Connection) -> Result<usize> {
    conn.execute(
        "INSERT INTO listings (provider, kind, wanted)
         SELECT provider, ?1, 1 FROM (
             SELECT provider FROM providers
             UNION
             SELECT provider FROM listings WHERE kind = ?1
         ) WHERE true
         ON CONFLICT (provider, kind) DO UPDATE SET wanted = wanted + 1",
        [Listing::Historique.as_str()],
    )
    .context("marking the historique listings")
}

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
fn purge_outbound(conn: &Connection, spool: &Spool, limit: &Limit, failures: &mut Vec<String>) -> Result<usize> {
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
fn purge_archived(
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
fn purge_caisse_archive(conn: &Connection, spool: &Spool, limit: &Limit, failures: &mut Vec<String>) -> Result<usize> {
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

#[cfg(test)]
mod tests;
