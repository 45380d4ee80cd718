//! The mail worker: one pass over the due messages of `mail_queue`
//! (spec §6: "every e-mail is queued in the database first and retried with
//! back-off; none is lost while the relay is down").
//!
//! In: the queue, the configuration, the clock. Out: messages handed to the
//! SMTP relay (`[mail] smtp_url`) or written as `.eml` files under
//! `<spool>/mail/` when no relay is set; each row marked sent (with a
//! history entry of kind `mail`) or rescheduled.
//!
//! # Delivery guarantee, honestly
//!
//! Sending and marking cannot be one atomic step: the relay is not in our
//! database. Each message goes through, one at a time:
//!
//! 1. *claim*: its `next_attempt_at` is pushed [`LEASE`] ahead in a short
//!    transaction that only succeeds if nobody else changed the row, so two
//!    workers (the daemon and a `run mail` by hand) never send it both;
//! 2. *send* (or write the `.eml` file), outside any transaction;
//! 3. *mark*: `sent_at` and the history entry, in one transaction.
//!
//! A message marked sent is never sent again. A crash between 2 and 3
//! resends that one message once the lease has expired — at most one message
//! per crash, with the same `Message-ID` (see [`super::compose`]). In `.eml`
//! mode not even that: the file name derives from the row, and a file
//! already there is taken as the proof of the earlier write. A crash
//! between 1 and 2 only delays the message by the lease.
//!
//! # Failures
//!
//! A failed attempt increments `attempts`, stores `last_error` and sets
//! `next_attempt_at` to now + 1 min, doubling at each attempt, capped at 1 h
//! ([`backoff`]). When the attempt that fails is the `[mail] max_attempts`-th,
//! the message is marked **failed**: `failed_at` set, kept with its last
//! error, no longer tried. Marking it is one transaction with a row in the
//! `errors` table (worker `mail`: the message's id, subject, cause and
//! error; never its body nor its recipients), and one error line in the log:
//! a message is never given up silently, and never reported twice.
//! [`super::queue::status`] lists the failed messages;
//! [`super::queue::retry`] (`ppas-gateway mail retry`) queues them again.
//! A message that can never be built (an invalid address) fails at once.
//!
//! A message left unsent with `attempts` already at the limit but not marked
//! (a database from before `failed_at` existed, or `max_attempts` lowered
//! since) is marked failed, the same way, at the start of the next pass,
//! without another attempt.
//!
//! # Secrets
//!
//! A message whose body holds a password (`secret`, spec §5 and §9) keeps it
//! only until delivered: the transaction that marks it sent replaces the
//! body by [`WIPED_BODY`]. Every connection runs with `secure_delete`
//! (see [`crate::store`]), so the old bytes are overwritten in the page, not
//! left in free space; then the pass empties the WAL (a TRUNCATE checkpoint,
//! see [`WalScrub`]) so that the page versions that held the clear text do
//! not stay in the `-wal` file either. That checkpoint waits at most
//! [`SCRUB_WAIT`] for readers and writers: when the database is busy it is
//! tried again at the next pass, never holding the pass up. An `.eml` file
//! (the delivery itself when no relay is set) is written mode 0600,
//! readable by the service's user only.
//!
//! When the relay cannot be reached at all (connection refused, TLS,
//! timeout), the pass stops after charging the message it was trying: the
//! others were not attempted, so they are not charged, and the next pass
//! tries again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use lettre::Transport;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::compose::{self, Queued, Unbuildable};
use crate::clock::Clock;
use crate::config::Config;

/// How long a claimed message is reserved for the worker sending it. Longer
/// than the SMTP timeout, so a slow send is not taken over by another worker.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(10);

/// SMTP connection and command timeout.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows read per batch (a pass loops until nothing is due).
const BATCH: i64 = 200;

/// What the body of a delivered secret message becomes.
pub const WIPED_BODY: &str = "[contenu effacé après envoi : il contenait un mot de passe]";

/// Longest wait of the WAL checkpoint that follows a wipe for readers and
/// writers to let go; busy beyond it, it is tried again at the next pass.
pub const SCRUB_WAIT: Duration = Duration::from_millis(100);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliverySummary {
    /// Messages handed to the relay or written as `.eml` and marked sent.
    pub sent: usize,
    /// Failed attempts rescheduled with back-off.
    pub retried: usize,
    /// Messages marked failed in this pass (their last attempt failed, they
    /// cannot be built, or they were found at the limit).
    pub failed: usize,
    /// Due messages left for a later pass (relay unreachable, or taken by
    /// another worker).
    pub deferred: usize,
}

/// Delay before the next attempt after `attempts` failed ones: 1 min,
/// 2, 4, 8, 16, 32, then 60 min.
pub fn backoff(attempts: u32) -> chrono::Duration {
    let exp = attempts.saturating_sub(1).min(6);
    chrono::Duration::minutes((1i64 << exp).min(60))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where `.eml` files go.
pub fn eml_dir(cfg: &Config) -> PathBuf {
    cfg.paths.spool.join("mail")
}

enum Sink {
    Eml(PathBuf),
    Smtp(Box<lettre::SmtpTransport>),
}

/// How an attempt went.
enum Attempt {
    Sent,
    /// The message itself failed (the relay answered with an error).
    Failed(String),
    /// Retrying cannot help.
    Unbuildable(String),
    /// The relay or the spool is unusable: stop the pass.
    Unreachable(String),
}

/// One pass over the due messages (`sent_at` unset, `next_attempt_at` ≤ now,
/// fewer than `max_attempts` attempts), oldest first; then the WAL is
/// emptied if a secret was ever wiped (see [`WalScrub`]).
pub fn run_once(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<DeliverySummary> {
    pass(conn, cfg, clock, &mut WalScrub::default())
}

/// [`run_once`] for a worker that keeps its [`WalScrub`] across passes.
fn pass(conn: &mut Connection, cfg: &Config, clock: &Clock, scrub: &mut WalScrub) -> Result<DeliverySummary> {
    let max = cfg.mail.max_attempts.max(1);
    wipe_delivered_secrets(conn)?;
    let marked = fail_exhausted(conn, clock.now(), max)?;
    // Whatever became of the delivery (a relay URL refused, a disk error),
    // the WAL is emptied of wiped secrets.
    let sum = deliver_due(conn, cfg, clock, max, marked);
    scrub.after_pass(conn)?;
    sum
}

fn deliver_due(conn: &mut Connection, cfg: &Config, clock: &Clock, max: u32, marked: usize) -> Result<DeliverySummary> {
    let sink = match &cfg.mail.smtp_url {
        None => Sink::Eml(eml_dir(cfg)),
        Some(url) => Sink::Smtp(Box::new(url.transport(SMTP_TIMEOUT)?)),
    };
    let mut sum = DeliverySummary {
        failed: marked,
        ..Default::default()
    };
    // Rows this pass already handled (or skipped): never twice in one pass.
    let mut after_id = 0i64;
    'pass: loop {
        let now = clock.now();
        let batch = due(conn, now, max, after_id)?;
        if batch.is_empty() {
            break;
        }
        for q in &batch {
            after_id = after_id.max(q.id);
            let now = clock.now();
            if !claim(conn, q, now)? {
                sum.deferred += 1;
                continue;
            }
            let outcome = attempt(&sink, q, cfg, now);
            let now = clock.now();
            match outcome {
                Attempt::Sent => {
                    mark_sent(conn, q, now)?;
                    sum.sent += 1;
                    tracing::info!(
                        event = "mail.sent",
                        id = q.id,
                        key = %q.dedup_key,
                        recipients = q.recipient_list().len(),
                        attempts = q.attempts + 1,
                        via = if matches!(sink, Sink::Eml(_)) { "eml" } else { "smtp" },
                        "e-mail sent"
                    );
                }
                Attempt::Failed(err) => {
                    if fail(conn, q, now, &err, max, false)? {
                        sum.failed += 1;
                    } else {
                        sum.retried += 1;
                    }
                }
                Attempt::Unbuildable(err) => {
                    fail(conn, q, now, &err, max, true)?;
                    sum.failed += 1;
                }
                Attempt::Unreachable(err) => {
                    if fail(conn, q, now, &err, max, false)? {
                        sum.failed += 1;
                    } else {
                        sum.retried += 1;
                    }
                    // Every due message after this one waits for the next pass.
                    sum.deferred += count_due(conn, now, max, q.id)?;
                    tracing::warn!(error = %err, "mail relay unreachable; delivery paused until the next pass");
                    break 'pass;
                }
            }
        }
    }
    if sum != DeliverySummary::default() {
        tracing::info!(
            sent = sum.sent,
            retried = sum.retried,
            failed = sum.failed,
            deferred = sum.deferred,
            "mail pass"
        );
    }
    Ok(sum)
}

/// Opens the database of `cfg` and runs one pass: what `run mail` does.
pub fn run_job(cfg: &Config, clock: &Clock) -> Result<DeliverySummary> {
    run_job_scrubbing(cfg, clock, &mut WalScrub::default())
}

fn run_job_scrubbing(cfg: &Config, clock: &Clock, scrub: &mut WalScrub) -> Result<DeliverySummary> {
    let mut conn = crate::store::open(&cfg.paths.database)?;
    pass(&mut conn, cfg, clock, scrub)
}

/// [`run_job`] off the async loop (SMTP and SQLite block), for the daemon.
pub async fn run_job_async(cfg: Arc<Config>, clock: Clock) -> Result<DeliverySummary> {
    tokio::task::spawn_blocking(move || run_job(&cfg, &clock))
        .await
        .context("mail worker task")?
}

/// The daemon's mail loop: a pass, then a wait of `[mail] poll_secs`, until
/// `shutdown` turns true. A failed pass is logged and retried after the wait.
///
/// Each pass reads the latest configuration `cfg` holds (the daemon sends
/// the reloaded one on SIGHUP): `[mail] smtp_url`, `from` and `max_attempts`
/// apply from the next pass on, a new `poll_secs` after the wait in progress.
/// `[paths]` stay those the worker started with: the daemon applies them
/// only at a restart, and the queue must not move to another database
/// behind its back.
pub async fn worker(
    cfg: tokio::sync::watch::Receiver<Arc<Config>>,
    clock: Clock,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    worker_with(cfg, clock, shutdown, tokio::time::sleep).await
}

/// [`worker`] with its wait given (tests drive it without a clock).
async fn worker_with<W, F>(
    mut cfg: tokio::sync::watch::Receiver<Arc<Config>>,
    clock: Clock,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut wait: W,
) where
    W: FnMut(Duration) -> F,
    F: std::future::Future<Output = ()>,
{
    let paths = cfg.borrow().paths.clone();
    let mut current: Arc<Config> = cfg.borrow_and_update().clone();
    let mut scrub = WalScrub::default();
    loop {
        if cfg.has_changed().unwrap_or(false) {
            let mut next = (**cfg.borrow_and_update()).clone();
            next.paths = paths.clone();
            current = Arc::new(next);
            tracing::info!("mail worker: configuration reloaded");
        }
        let job = current.clone();
        let taken = std::mem::take(&mut scrub);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut scrub = taken;
            let r = run_job_scrubbing(&job, &clock, &mut scrub);
            (r, scrub)
        })
        .await;
        match outcome {
            Ok((r, kept)) => {
                scrub = kept;
                if let Err(e) = r {
                    tracing::error!(error = format!("{e:#}"), "mail pass failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "mail pass failed"),
        }
        tokio::select! {
            _ = wait(Duration::from_secs(current.mail.poll_secs)) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

fn due(conn: &Connection, now: DateTime<Utc>, max: u32, after_id: i64) -> Result<Vec<Queued>> {
    let mut st = conn.prepare_cached(
        "SELECT id, dedup_key, created_at, recipients, subject, body, attempts, next_attempt_at, secret
         FROM mail_queue
         WHERE sent_at IS NULL AND failed_at IS NULL AND attempts < ?1 AND next_attempt_at <= ?2 AND id > ?3
         ORDER BY id LIMIT ?4",
    )?;
    let rows = st
        .query_map(params![max, ts(now), after_id, BATCH], |r| {
            Ok(Queued {
                id: r.get(0)?,
                dedup_key: r.get(1)?,
                created_at: r.get(2)?,
                recipients: r.get(3)?,
                subject: r.get(4)?,
                body: r.get(5)?,
                attempts: r.get(6)?,
                next_attempt_at: r.get(7)?,
                secret: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read the mail queue")?;
    Ok(rows)
}

fn count_due(conn: &Connection, now: DateTime<Utc>, max: u32, after_id: i64) -> Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM mail_queue
         WHERE sent_at IS NULL AND failed_at IS NULL AND attempts < ?1 AND next_attempt_at <= ?2 AND id > ?3",
        params![max, ts(now), after_id],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Reserves the row for this worker; false when another worker (or a
/// concurrent change) got there first.
fn claim(conn: &mut Connection, q: &Queued, now: DateTime<Utc>) -> Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE mail_queue SET next_attempt_at = ?1
         WHERE id = ?2 AND sent_at IS NULL AND failed_at IS NULL AND attempts = ?3 AND next_attempt_at = ?4",
        params![ts(now + LEASE), q.id, q.attempts, q.next_attempt_at],
    )?;
    tx.commit()?;
    Ok(n == 1)
}

fn attempt(sink: &Sink, q: &Queued, cfg: &Config, now: DateTime<Utc>) -> Attempt {
    let msg = match compose::build(q, &cfg.mail.from, now) {
        Ok(m) => m,
        Err(e) if e.downcast_ref::<Unbuildable>().is_some() => return Attempt::Unbuildable(format!("{e:#}")),
        Err(e) => return Attempt::Failed(format!("{e:#}")),
    };
    match sink {
        Sink::Eml(dir) => match write_eml(dir, q, &msg) {
            Ok(()) => Attempt::Sent,
            Err(e) => Attempt::Unreachable(format!("{e:#}")),
        },
        Sink::Smtp(t) => match t.send(&msg) {
            Ok(_) => Attempt::Sent,
            // The relay answered: this message was refused (or deferred).
            Err(e) if e.is_transient() || e.is_permanent() => Attempt::Failed(smtp_error(&e)),
            Err(e) => Attempt::Unreachable(smtp_error(&e)),
        },
    }
}

fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Writes the `.eml` file unless an earlier attempt already did (the name
/// derives from the row, so a re-run after a crash never writes twice).
fn write_eml(dir: &Path, q: &Queued, msg: &lettre::Message) -> Result<()> {
    let path = dir.join(q.eml_name());
    if path
        .try_exists()
        .with_context(|| format!("cannot check {}", path.display()))?
    {
        return Ok(());
    }
    crate::fsutil::write_private(&path, &msg.formatted(), crate::fsutil::Install::Replace)
}

/// Marks the message sent, with its history entry; a secret body is wiped
/// in the same transaction.
fn mark_sent(conn: &mut Connection, q: &Queued, now: DateTime<Utc>) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE mail_queue SET sent_at = ?1, last_error = NULL, failed_at = NULL,
             body = CASE WHEN secret THEN ?3 ELSE body END
         WHERE id = ?2",
        params![ts(now), q.id, WIPED_BODY],
    )?;
    let recipients = q.recipient_list();
    crate::history::record(
        &tx,
        now,
        &crate::history::Entry {
            kind: "mail",
            application: application_for(&q.dedup_key),
            interface: "messagerie",
            comment: format!(
                "e-mail « {} » envoyé à {} ({} destinataire{}) ; message {}, cause {}",
                q.subject,
                recipients.join(", "),
                recipients.len(),
                if recipients.len() > 1 { "s" } else { "" },
                q.id,
                q.dedup_key
            ),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// Wipes the body of every delivered secret message still holding it (one
/// sent by a version that did not wipe). Returns how many.
fn wipe_delivered_secrets(conn: &Connection) -> Result<usize> {
    // Read first: a pass with nothing to wipe takes no write lock.
    let left: i64 = conn.query_row(
        "SELECT COUNT(*) FROM mail_queue WHERE secret AND sent_at IS NOT NULL AND body <> ?1",
        [WIPED_BODY],
        |r| r.get(0),
    )?;
    if left == 0 {
        return Ok(0);
    }
    let n = conn.execute(
        "UPDATE mail_queue SET body = ?1 WHERE secret AND sent_at IS NOT NULL AND body <> ?1",
        [WIPED_BODY],
    )?;
    if n > 0 {
        tracing::info!(messages = n, "bodies of delivered e-mails holding a password wiped");
    }
    Ok(n)
}

/// Empties the WAL once secret bodies were wiped, so that the page versions
/// that held them leave the `-wal` file (the database file itself was
/// cleaned by `secure_delete` and the checkpoint's copy).
///
/// It remembers how many delivered secret messages the database held when
/// the WAL was last emptied: a new one, wiped by this worker or by another
/// process (`run mail`, `process --once`), calls for another checkpoint.
/// A fresh one (each [`run_once`]) empties the WAL if any was ever wiped.
#[derive(Debug, Default)]
pub struct WalScrub {
    clean_at: Option<i64>,
}

impl WalScrub {
    fn after_pass(&mut self, conn: &Connection) -> Result<()> {
        let wiped: i64 = conn.query_row(
            "SELECT COUNT(*) FROM mail_queue WHERE secret AND sent_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        if wiped == 0 || self.clean_at == Some(wiped) {
            return Ok(());
        }
        match truncate_wal(conn) {
            Ok(true) => self.clean_at = Some(wiped),
            Ok(false) => tracing::debug!("database busy: the WAL is emptied at a later pass"),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "WAL checkpoint failed; tried again at the next pass"
            ),
        }
        Ok(())
    }
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` on a connection of its own that waits
/// at most [`SCRUB_WAIT`]: copies every WAL frame into the database and
/// truncates the WAL to zero bytes. Returns false when readers or a writer
/// kept it from finishing.
fn truncate_wal(conn: &Connection) -> Result<bool> {
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(true);
    };
    let c = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {path}"))?;
    c.busy_timeout(SCRUB_WAIT)?;
    match c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => Ok(busy == 0),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => Ok(false),
        Err(e) => Err(e).context("WAL checkpoint"),
    }
}

/// Records a failed attempt; returns whether the message is now failed
/// (its last attempt, or `give_up`: it can never be built).
fn fail(conn: &mut Connection, q: &Queued, now: DateTime<Utc>, err: &str, max: u32, give_up: bool) -> Result<bool> {
    let attempts = q.attempts + 1;
    if give_up || attempts >= max {
        return mark_failed(conn, q.id, &q.dedup_key, &q.subject, attempts, now, err);
    }
    let next = now + backoff(attempts);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "UPDATE mail_queue SET attempts = ?1, last_error = ?2, next_attempt_at = ?3
         WHERE id = ?4 AND sent_at IS NULL AND failed_at IS NULL",
        params![attempts, truncate(err, 2000), ts(next), q.id],
    )?;
    tx.commit()?;
    tracing::warn!(id = q.id, key = %q.dedup_key, attempts, next = %ts(next), error = %err, "e-mail not delivered; will retry");
    Ok(false)
}

/// Marks a message failed with its last error, and reports it once: in the
/// same transaction a row in `errors` (what `status` shows), then one error
/// line in the log. Nothing happens (false) when the message was meanwhile
/// sent or already marked.
fn mark_failed(
    conn: &mut Connection,
    id: i64,
    dedup_key: &str,
    subject: &str,
    attempts: u32,
    now: DateTime<Utc>,
    err: &str,
) -> Result<bool> {
    let err = truncate(err, 2000);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE mail_queue SET attempts = ?1, last_error = ?2, failed_at = ?3, next_attempt_at = ?3
         WHERE id = ?4 AND sent_at IS NULL AND failed_at IS NULL",
        params![attempts, err, ts(now), id],
    )?;
    if n == 1 {
        tx.execute(
            "INSERT INTO errors (at, worker, message) VALUES (?1, 'mail', ?2)",
            params![ts(now), failure_note(id, dedup_key, subject, attempts, err)],
        )?;
    }
    tx.commit()?;
    if n == 1 {
        tracing::error!(
            id,
            key = %dedup_key,
            attempts,
            error = %err,
            "e-mail failed: no further attempt until `ppas-gateway mail retry`"
        );
    }
    Ok(n == 1)
}

/// The `errors` line of a failed message: what it was (id, subject, cause)
/// and why it failed; never its body.
fn failure_note(id: i64, dedup_key: &str, subject: &str, attempts: u32, err: &str) -> String {
    format!(
        "e-mail {id} \"{}\" ({dedup_key}) failed after {attempts} attempt{}; \
         `ppas-gateway mail retry {id}` queues it again: {}",
        truncate(subject, 200),
        if attempts > 1 { "s" } else { "" },
        truncate(err, 500)
    )
}

/// Marks failed, without another attempt, the unsent messages already at
/// the limit but not marked (a database from before `failed_at`, or a
/// lowered `max_attempts`). Returns how many.
fn fail_exhausted(conn: &mut Connection, now: DateTime<Utc>, max: u32) -> Result<usize> {
    let rows: Vec<(i64, String, String, u32, Option<String>)> = conn
        .prepare_cached(
            "SELECT id, dedup_key, subject, attempts, last_error FROM mail_queue
             WHERE sent_at IS NULL AND failed_at IS NULL AND attempts >= ?1 ORDER BY id",
        )?
        .query_map([max], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()
        .context("cannot read the mail queue")?;
    let mut n = 0;
    for (id, key, subject, attempts, err) in rows {
        let err = err.unwrap_or_else(|| format!("no attempt left ([mail] max_attempts = {max})"));
        if mark_failed(conn, id, &key, &subject, attempts, now, &err)? {
            n += 1;
        }
    }
    Ok(n)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// History application of a message, from its cause (the first segment of
/// the dedup key): the occupational-therapy side (`habitat`) sends
/// attestation, order, relance, decision, evaluation and invoice notices;
/// everything else belongs to home help (`aide-a-domicile`).
pub fn application_for(dedup_key: &str) -> &'static str {
    let cause = dedup_key.split([':', '/']).next().unwrap_or("").to_ascii_lowercase();
    const HABITAT: &[&str] = &[
        "habitat",
        "attestation",
        "attestations",
        "order",
        "orders",
        "commande",
        "commandes",
        "relance",
        "relances",
        "decision",
        "decisions",
        "evaluation",
        "evaluations",
        "invoice",
        "invoices",
        "facture",
        "factures",
    ];
    if HABITAT.contains(&cause.as_str()) {
        "habitat"
    } else {
        "aide-a-domicile"
    }
}

/// Where one message stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MailState {
    pub id: i64,
    pub sent_at: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Set when the message failed for good (see [`super::queue::retry`]).
    pub failed_at: Option<String>,
}

/// Looks a message up by its dedup key.
pub fn state_of(conn: &Connection, dedup_key: &str) -> Result<Option<MailState>> {
    Ok(conn
        .query_row(
            "SELECT id, sent_at, attempts, last_error, failed_at FROM mail_queue WHERE dedup_key = ?1",
            [dedup_key],
            |r| {
                Ok(MailState {
                    id: r.get(0)?,
                    sent_at: r.get(1)?,
                    attempts: r.get(2)?,
                    last_error: r.get(3)?,
                    failed_at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
