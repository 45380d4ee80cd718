//! What the payment chain returns, routed to the providers (spec §6):
//!
//! - payment statements ("bordereaux de paiement"): the imported payments
//!   (`import payments`) grouped per convention and payment reference, each
//!   published by the `bordereaux` job ([`run`]) 48 hours after its payment
//!   date in `outbound/<provider>/bordereaux/` as PDF, XML and CSV
//!   ([`statement`]; layout in `docs/formats/bordereaux.md`, schema
//!   `schema/bordereau.xsd`), the provider's users e-mailed;
//! - reports of anomalies ("anomalies de report"): lines the payment chain
//!   rejected after receipt (`import report-anomalies`), written into
//!   `outbound/<provider>/reports/` by the outbound publisher
//!   ([`anomalies`]; `docs/formats/anomalies-report.md`,
//!   `schema/anomalies-report.xsd`).
//!
//! A statement is due at its payment date, 00:00 in Europe/Paris, plus 48
//! hours ([`due_at`]). [`run`] publishes every statement due at the
//! clock's instant whose latest revision is not published yet:
//!
//! 1. one read snapshot gives the statement, its lines and the edition to
//!    publish (1, or the next one when the statement changed since its
//!    last publication), and the three forms are rendered from it;
//! 2. each file is written under a hidden temporary name, flushed and
//!    renamed into place (`<stem>.pdf`, `.xml`, `.csv`), then the folder is
//!    flushed;
//! 3. one transaction records the edition published, its "chargement"
//!    history entry and the e-mail (dedup key per statement and edition).
//!
//! A crash before step 3 only means the same files are written again with
//! the same bytes at the next run (rendering reads the database alone,
//! never the clock); once recorded, an edition's files are never written
//! again and its e-mail never queued again. A later edition takes new
//! names (`<stem>.2.pdf`, …): a published file is never replaced.

pub mod anomalies;
pub mod statement;

use std::fmt;
use std::io::Write;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::clock::Clock;
use crate::config::Config;
use crate::fsutil;
use crate::history::{self, Entry};
use crate::spool::Spool;
use statement::Statement;

/// Hours between the payment date (00:00, Europe/Paris) and the statement's
/// publication.
pub const DELAY_HOURS: i64 = 48;

/// Statements named in the history entry of a run (the rest are counted).
const HISTORY_REFS_MAX: usize = 50;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BordereauxSummary {
    /// Statement editions published by this run.
    pub published: usize,
    /// E-mails newly queued.
    pub mails: usize,
}

impl fmt::Display for BordereauxSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bordereau(x) publié(s), {} e-mail(s) mis en file",
            self.published, self.mails
        )
    }
}

/// When a statement paid on `day` is published: `day` at 00:00 in
/// Europe/Paris, plus 48 hours (elapsed time: across a change of the
/// clocks it is 01:00 or 23:00 local time two days later).
pub fn due_at(day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("00:00 exists");
    // Europe/Paris changes its clocks at 02:00 or 03:00: midnight is unique.
    let local = Paris
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight));
    local + Duration::hours(DELAY_HOURS)
}

/// Publishes every statement due at the clock's instant and not yet
/// published in its latest revision (see the module header), then records
/// the run in the history. One statement that fails (a full disk) does not
/// hold up the others: it stays owed, and the error returned after the
/// rest names it.
pub fn run(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<BordereauxSummary> {
    let now = clock.now();
    let spool = Spool::new(&cfg.paths.spool);
    let owed = owed(conn, now)?;
    let mut summary = BordereauxSummary::default();
    let mut published: Vec<String> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for id in owed {
        match publish(conn, cfg, &spool, id, now) {
            Ok(Some(p)) => {
                summary.published += 1;
                if p.mailed {
                    summary.mails += 1;
                }
                tracing::info!(provider = p.provider, bordereau = p.stem, "payment statement published");
                published.push(p.stem);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(
                    statement = id,
                    error = format!("{e:#}"),
                    "payment statement not published; retried at the next run"
                );
                failures.push(format!("statement {id}: {e:#}"));
            }
        }
    }
    let more = published.len().saturating_sub(HISTORY_REFS_MAX);
    let mut comment = format!(
        "bordereaux : {} bordereau{} publié{}",
        summary.published,
        if summary.published > 1 { "x" } else { "" },
        if summary.published > 1 { "s" } else { "" }
    );
    if !published.is_empty() {
        comment.push_str(" : ");
        comment.push_str(&published[..published.len().min(HISTORY_REFS_MAX)].join(", "));
        if more > 0 {
            comment.push_str(&format!(" et {more} autre(s)"));
        }
    }
    if !failures.is_empty() {
        comment.push_str(&format!(" ; {} en erreur, repris au prochain passage", failures.len()));
    }
    history::record(
        conn,
        now,
        &Entry {
            kind: "job",
            application: "aide-a-domicile",
            interface: "bordereaux",
            comment,
            ..Default::default()
        },
    )?;
    if !failures.is_empty() {
        bail!(
            "{} payment statement(s) not published (left owed, retried at the next run): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(summary)
}

/// Ids of the statements due at `now` whose latest revision is unpublished,
/// oldest due first.
fn owed(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM statements WHERE published_revision < revision AND due_at <= ?1 ORDER BY due_at, id",
    )?;
    let ids = stmt
        .query_map([now.to_rfc3339_opts(SecondsFormat::Secs, true)], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .context("reading the payment statements due")?;
    Ok(ids)
}

/// One edition published.
struct Done {
    provider: String,
    stem: String,
    mailed: bool,
}

/// Publishes statement `id` if still owed (see the module header).
fn publish(conn: &mut Connection, cfg: &Config, spool: &Spool, id: i64, now: DateTime<Utc>) -> Result<Option<Done>> {
    // 1. One snapshot: what to publish, rendered.
    let (st, rendered) = {
        let tx = conn.transaction()?;
        let Some(st) = Statement::load(&tx, cfg, id)? else {
            return Ok(None);
        };
        let rendered = st.render().with_context(|| format!("rendering {}", st.stem))?;
        tx.commit()?;
        (st, rendered)
    };
    // 2. The files, each atomically; the folder flushed once.
    let dir = spool.outbound_of(&st.provider).join("bordereaux");
    for (ext, bytes) in [("pdf", &rendered.pdf), ("xml", &rendered.xml), ("csv", &rendered.csv)] {
        let path = dir.join(format!("{}.{ext}", st.stem));
        fsutil::write_atomic_unsynced(&path, |w| w.write_all(bytes))?;
    }
    fsutil::sync_dir(&dir)?;
    // A stop between the files and their record, on demand (debug builds).
    crate::fault::hit("bordereau", &st.stem);
    // 3. The record, the history entry and the e-mail, together.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let already: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM statement_editions WHERE statement_id = ?1 AND edition = ?2)",
            params![st.id, st.edition],
            |r| r.get(0),
        )
        .context("reading the editions published")?;
    if already {
        // Another publisher recorded it meanwhile (same bytes, same names).
        return Ok(None);
    }
    let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    tx.execute(
        "INSERT INTO statement_editions (statement_id, edition, revision, provider, stem, lines, mt_paye, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            st.id,
            st.edition,
            st.revision,
            st.provider,
            st.stem,
            st.lines.len() as i64,
            st.total_paid(),
            at
        ],
    )?;
    tx.execute(
        "UPDATE statements SET published_revision = MAX(published_revision, ?2), published_at = ?3, name = ?4
         WHERE id = ?1",
        params![st.id, st.revision, at, st.base],
    )?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "chargement",
            id_cram: Some(&st.id_cram),
            application: st.application(),
            interface: "bordereaux",
            provider: Some(&st.provider),
            convention: Some(&st.code_convention),
            comment: format!(
                "bordereau de paiement {} du {} publié : {}.pdf, {}.xml, {}.csv ({} ligne(s), {})",
                st.rf_paiement,
                st.dt_paiement.format("%d/%m/%Y"),
                st.stem,
                st.stem,
                st.stem,
                st.lines.len(),
                statement::euros(st.total_paid()).replace('\u{a0}', " ")
            ),
            ..Default::default()
        },
    )?;
    let mut m = st.mail();
    m.recipients = crate::accounts::recipients(&tx, &st.provider)?;
    let mailed = crate::mail::enqueue(&tx, now, &m)?;
    tx.commit()?;
    Ok(Some(Done {
        provider: st.provider,
        stem: st.stem,
        mailed,
    }))
}

/// `rf` as a part of a file name: its ASCII letters, digits, `-` and `_`
/// kept, anything else (a `/`, a `.`, a space, an accented letter) made `_`,
/// so that no reference can make a path, a second extension or a name the
/// provider's software would not open.
pub(crate) fn file_part(rf: &str) -> String {
    rf.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The base stem of a statement's files (`bordereau-<code>-<rf-paiement>`,
/// the reference through [`file_part`]):
/// the one it was first published under, else the first one no other
/// statement of its provider holds (a provider holding the same convention
/// code with two caisses gets the caisse's code in the second name).
pub(crate) fn base_stem(
    conn: &Connection,
    id: i64,
    provider: &str,
    id_cram: &str,
    code: &str,
    rf: &str,
    name: Option<String>,
) -> Result<String> {
    if let Some(n) = name {
        return Ok(n);
    }
    let rf = file_part(rf);
    for candidate in [
        format!("bordereau-{code}-{rf}"),
        format!("bordereau-{id_cram}-{code}-{rf}"),
        format!("bordereau-{id_cram}-{code}-{rf}-{id}"),
    ] {
        let taken: Option<i64> = conn
            .query_row(
                "SELECT id FROM statements WHERE provider = ?1 AND name = ?2 AND id <> ?3 LIMIT 1",
                params![provider, candidate, id],
                |r| r.get(0),
            )
            .optional()?;
        if taken.is_none() {
            return Ok(candidate);
        }
    }
    bail!("no free file name for payment statement {id}")
}

#[cfg(test)]
mod tests;
