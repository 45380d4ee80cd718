//! Retention (spec §6, the `purge` job): what is past its keeping period is
//! removed, never what is still owed.
//!
//! In: the state, the spool, `[retention]` and the one clock. Out: files and
//! rows removed, delivered e-mails emptied, every provider's `historique`
//! listing marked and the outbound files owed written ([`publish_due`]),
//! and a [`PurgeSummary`]: the counts and the first day each rule kept,
//! which the caller logs and records as the run's result (`run purge` and
//! the scheduler go through [`crate::jobs::runs::execute`]: the run's row in
//! `job_runs` and its history entry, kind `job`, carry that line).
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
//! | finished job runs (`job_runs`), but each job's latest and latest scheduled | `finished_at` | `history_months` (6) |
//! | bodies of delivered e-mails (`mail_queue.body` emptied: the row and its dedup key stay, so that a message is never queued twice for one cause) | `sent_at` | `mail_months` (6) |
//!
//! Never removed, whatever their age: an output not recorded done, a
//! document not published (nor the kept source it is copied from), the
//! original of a received file not done or quarantined, an unsent e-mail
//! (pending or failed), the listings (rewritten, not removed), the gateway's
//! temporary files (names starting with `.`), anything a symbolic link
//! points to, a job run not finished (the daemon's start takes it up).
//! Nothing under `outbox/` (the payment chain's files and the global
//! invoices, delivered or still owed), `work/`, `quarantine/` or `state/`
//! is looked at, and no row of the billing state (received files, accepted
//! lines, invoices, orders, plans) is deleted. A file whose record of
//! publication cannot be read is kept.
//!
//! Idempotent: a second run at the same instant finds nothing more to
//! remove. A file that cannot be removed (permissions) does not hold up the
//! rest: it is logged, left, named in the error returned after everything
//! else (that error carries the counts, so the run's record still says what
//! was removed), and tried again at the next run.
//!
//! The caller holds the spool lock (`run purge`) or is the daemon's
//! processor: nothing else writes the outbound folders meanwhile.

use std::fmt;

use anyhow::{Context, Result};
use chrono::{DateTime, Months, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::{params, Connection, TransactionBehavior};

use crate::clock::{paris_day, Clock};
use crate::config::Config;
use crate::habitat::Listing;
use crate::outbound::{publish_due, Published};
use crate::spool::Spool;

mod files;

/// Rows deleted or marked per transaction: the daemon's other work waits
/// at most one batch.
const BATCH: usize = 2000;

/// What the body of a delivered e-mail becomes once past `mail_months`.
pub const PURGED_BODY: &str = "[contenu supprimé : durée de conservation écoulée]";

/// The rule of each kind on the day of a run (`None`: kept for ever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    pub outbound: Option<Limit>,
    pub archive: Option<Limit>,
    pub history: Option<Limit>,
    pub mail: Option<Limit>,
}

impl Rules {
    /// The rules of `cfg` on `today` (Europe/Paris).
    pub fn on(today: NaiveDate, cfg: &crate::config::Retention) -> Rules {
        Rules {
            outbound: Limit::on(today, cfg.outbound_months),
            archive: Limit::on(today, cfg.archive_months),
            history: Limit::on(today, cfg.history_months),
            mail: Limit::on(today, cfg.mail_months),
        }
    }
}

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
    /// Finished job runs deleted.
    pub job_runs: usize,
    /// Delivered e-mails whose body was emptied.
    pub mails: usize,
    /// What the publication after the run wrote (the `historique` listings).
    pub published: Published,
    /// The rules applied.
    pub rules: Rules,
}

impl PurgeSummary {
    /// Files removed, all places together.
    pub fn files(&self) -> usize {
        self.outbound_files + self.archived_originals + self.caisse_files
    }
}

/// `12 mois, conservé depuis le 21/11/2026`, or `conservé sans limite`.
fn rule(l: &Option<Limit>) -> String {
    match l {
        Some(l) => format!(
            "{} mois, conservé depuis le {}",
            l.months,
            l.keep_from.format("%d/%m/%Y")
        ),
        None => "conservé sans limite".to_string(),
    }
}

/// One line: the counts and the first day kept by each rule (never a
/// name, let alone a NIR). What `run purge` prints after `purge : `, and
/// what the run's record and history entry say.
impl fmt::Display for PurgeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fichier(s) publié(s) supprimé(s) de outbound ({}) ; {} original(aux) de fichiers reçus et {} \
             fichier(s) de la caisse supprimé(s) de archive ({}) ; {} entrée(s) d'historique et {} exécution(s) \
             de tâche supprimée(s) ({}) ; {} e-mail(s) envoyé(s) vidé(s) de leur contenu ({}) ; {} liste(s) \
             réécrite(s)",
            self.outbound_files,
            rule(&self.rules.outbound),
            self.archived_originals,
            self.caisse_files,
            rule(&self.rules.archive),
            self.history,
            self.job_runs,
            rule(&self.rules.history),
            self.mails,
            rule(&self.rules.mail),
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

/// Removes what is past its keeping period (see the module header), marks
/// every provider's `historique` listing, writes what is owed to the
/// outbound folders and says what it did (the caller records it).
pub fn purge(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<PurgeSummary> {
    let now = clock.now();
    let spool = Spool::new(&cfg.paths.spool);
    let rules = Rules::on(paris_day(now), &cfg.retention);
    let mut s = PurgeSummary {
        rules,
        ..Default::default()
    };
    let mut failures: Vec<String> = Vec::new();

    if let Some(l) = &rules.outbound {
        s.outbound_files = files::purge_outbound(conn, &spool, l, &mut failures)?;
    }
    if let Some(l) = &rules.archive {
        s.archived_originals = files::purge_archived(conn, &spool, l, now, &mut failures)?;
        s.caisse_files = files::purge_caisse_archive(conn, &spool, l, &mut failures)?;
    }
    if let Some(l) = &rules.history {
        s.history = batched(
            conn,
            "DELETE FROM history WHERE id IN (SELECT id FROM history WHERE at < ?1 ORDER BY at LIMIT ?2)",
            params![l.stored(), BATCH as i64],
        )
        .context("purging the history")?;
        // Each job's latest run (`status` shows it) and latest scheduled
        // run (what tells the scheduler its latest occurrence ran) stay,
        // and so does a run not finished.
        s.job_runs = batched(
            conn,
            "DELETE FROM job_runs WHERE id IN (
                 SELECT id FROM job_runs
                 WHERE finished_at IS NOT NULL AND finished_at < ?1
                   AND id NOT IN (SELECT MAX(id) FROM job_runs GROUP BY job)
                   AND id NOT IN (SELECT MAX(id) FROM job_runs WHERE cause != 'manual' GROUP BY job)
                 ORDER BY id LIMIT ?2)",
            params![l.stored(), BATCH as i64],
        )
        .context("purging the job runs")?;
    }
    if let Some(l) = &rules.mail {
        s.mails = batched(
            conn,
            "UPDATE mail_queue SET body = ?3 WHERE id IN (
                 SELECT id FROM mail_queue
                 WHERE sent_at IS NOT NULL AND sent_at < ?1 AND body NOT IN (?3, ?4)
                 ORDER BY sent_at LIMIT ?2)",
            params![l.stored(), BATCH as i64, PURGED_BODY, crate::mail::deliver::WIPED_BODY],
        )
        .context("purging the bodies of delivered e-mails")?;
    }

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    mark_every_historique(&tx)?;
    tx.commit()?;
    tracing::info!(
        outbound = s.outbound_files,
        archived = s.archived_originals,
        caisse = s.caisse_files,
        history = s.history,
        job_runs = s.job_runs,
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

/// Runs a statement whose `?2` is a `LIMIT` of [`BATCH`] until it changes
/// fewer rows, one transaction a batch; returns the rows changed.
fn batched(conn: &mut Connection, sql: &str, p: impl rusqlite::Params + Clone) -> Result<usize> {
    let mut total = 0;
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.prepare_cached(sql)?.execute(p.clone())?;
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

#[cfg(test)]
mod tests;
