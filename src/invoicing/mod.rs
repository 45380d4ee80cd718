//! Invoicing (spec §6): invoice lines due 48 hours after their attestation's
//! transmission become global invoices per convention, written to
//! `outbox/<id-cram>/invoices/` and delivered once.
//!
//! In: the invoice lines (one per accepted T attestation, created by the
//! attestation pipeline with their due time) and the one clock. Out: for
//! each convention whose due lines qualify, one invoice of all of them:
//!
//! - [`Mode::Threshold`] (the hourly check): a convention with
//!   [`THRESHOLD_LINES`] (50) due lines or more; the others wait;
//! - [`Mode::Weekly`]: every convention with at least one due line.
//!
//! A convention here is what a line carries: caisse (`id-cram`), convention
//! code and provider. A line is due from the instant `due_at` (48 hours
//! after its transmission); a line not yet due is never invoiced.
//!
//! Each invoice is made in **one transaction**: the lines still without an
//! invoice are read (and, in threshold mode, counted) inside it, the invoice
//! row inserted, every line marked with it (`invoice_lines.invoice_id`), its
//! history entry and its e-mail notice (dedup key `invoice:<reference>`)
//! queued. A line is therefore invoiced once: a second run, or a run of the
//! other mode, finds it taken (and a trigger refuses to change an invoice
//! once set). Then its file is **delivered once** to the payment chain
//! ([`crate::outbox::deliver::deliver_once`], `docs/outbox.md`): rendered
//! from the database into a hidden temporary file, that name committed
//! (`invoices.staged_path`), renamed into place, and the delivery committed
//! at once in its own transaction (`delivered_at`, an "outbox" history
//! entry).
//!
//! Recovery: an invoice committed but not delivered (a crash between the two
//! commits, a disk error) is delivered by [`deliver_pending`], which every
//! run of either mode calls first, and which the daemon can call at start.
//! Its staged file, if any, is kept by the pipeline's recovery
//! (`src/pipeline/recover.rs`) and renamed now; a staged file gone means the
//! rename had happened (the payment chain may have taken the file): it is
//! recorded as delivered and never written again. An invoice committed
//! before anything was written is rendered from the database: the same
//! bytes.
//!
//! The file format is `schema/facture.xsd`, described in
//! `docs/formats/invoices.md` ([`render`]).

pub mod render;

use std::fmt;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::clock::Clock;
use crate::config::Config;
use crate::habitat::InvoiceLine;
use crate::history::{self, Entry};
use crate::outbox::deliver::{deliver_once, Delivered};
use crate::spool::Spool;

pub use render::render;

/// Due lines from which a convention's invoice is made at the hourly check.
pub const THRESHOLD_LINES: usize = 50;

/// Order references named in an invoice's e-mail (the rest are counted).
const MAIL_REFS_MAX: usize = 50;

/// Which run: the hourly 50-line check, or the weekly run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Threshold,
    Weekly,
}

impl Mode {
    /// As stored (`invoices.mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Threshold => "threshold",
            Mode::Weekly => "weekly",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        [Mode::Threshold, Mode::Weekly].into_iter().find(|m| m.as_str() == s)
    }

    /// As the invoice file says it (`<mode>`).
    pub fn code_fr(self) -> &'static str {
        match self {
            Mode::Threshold => "seuil",
            Mode::Weekly => "hebdomadaire",
        }
    }

    /// The fewest due lines a convention needs to be invoiced in this mode.
    pub fn min_lines(self) -> usize {
        match self {
            Mode::Threshold => THRESHOLD_LINES,
            Mode::Weekly => 1,
        }
    }

    /// Why the invoice was made, for the history and the e-mail.
    fn why_fr(self) -> String {
        match self {
            Mode::Threshold => format!("{THRESHOLD_LINES} lignes dues ou plus"),
            Mode::Weekly => "facturation hebdomadaire".to_string(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceSummary {
    /// Invoices made by this run.
    pub invoices: usize,
    /// Lines they took.
    pub lines: usize,
    /// Their total, in hundredths of euro.
    pub amount: i64,
    /// Due lines left for the weekly run (threshold mode: conventions under
    /// the threshold).
    pub waiting: usize,
    /// Invoices of an earlier, interrupted run delivered by this one.
    pub recovered: usize,
}

impl fmt::Display for InvoiceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} facture(s), {} ligne(s) facturée(s)", self.invoices, self.lines)?;
        if self.invoices > 0 {
            write!(f, " pour {} €", amount_fr(self.amount))?;
        }
        if self.waiting > 0 {
            write!(
                f,
                " ; {} ligne(s) due(s) sous le seuil de {THRESHOLD_LINES} par convention, laissée(s) à la facturation hebdomadaire",
                self.waiting
            )?;
        }
        if self.recovered > 0 {
            write!(f, " ; {} facture(s) d'un passage interrompu déposée(s)", self.recovered)?;
        }
        Ok(())
    }
}

/// One invoice, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: i64,
    /// `F<id-cram>-<code-convention>-<YYYYMMDD>-<id>`, never reused.
    pub reference: String,
    pub id_cram: String,
    pub code_convention: String,
    pub provider: String,
    pub mode: Mode,
    pub lines: i64,
    /// Hundredths of euro.
    pub amount: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Spool-relative: `outbox/<id-cram>/invoices/<reference>.xml`.
    pub path: String,
    /// Spool-relative temporary name, once written.
    pub staged_path: Option<String>,
    /// RFC 3339 UTC, once renamed into place.
    pub delivered_at: Option<String>,
}

const INVOICE_COLUMNS: &str =
    "id, reference, id_cram, code_convention, provider, mode, lines, amount, created_at, path,
    staged_path, delivered_at";

impl Invoice {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invoice> {
        let mode: String = r.get(5)?;
        Ok(Invoice {
            id: r.get(0)?,
            reference: r.get(1)?,
            id_cram: r.get(2)?,
            code_convention: r.get(3)?,
            provider: r.get(4)?,
            mode: Mode::parse(&mode).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    5,
                    rusqlite::types::Type::Text,
                    format!("unknown invoice mode {mode:?}").into(),
                )
            })?,
            lines: r.get(6)?,
            amount: r.get(7)?,
            created_at: r.get(8)?,
            path: r.get(9)?,
            staged_path: r.get(10)?,
            delivered_at: r.get(11)?,
        })
    }

    /// Invoice `id`, if it exists.
    pub fn load(conn: &Connection, id: i64) -> Result<Option<Invoice>> {
        conn.prepare_cached(&format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = ?1"))?
            .query_row([id], Invoice::from_row)
            .optional()
            .with_context(|| format!("reading invoice {id}"))
    }

    /// The invoices committed but not yet delivered, oldest first.
    pub fn undelivered(conn: &Connection) -> Result<Vec<Invoice>> {
        conn.prepare_cached(&format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE delivered_at IS NULL ORDER BY id"
        ))?
        .query_map([], Invoice::from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the invoices not yet delivered")
    }
}

/// The lines of one invoice share these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    id_cram: String,
    code_convention: String,
    provider: String,
}

/// Runs invoicing in `mode` at the clock's instant (see the module header):
/// first delivers what an earlier run left undelivered, then makes and
/// delivers the invoices due. An invoice whose delivery fails stays
/// committed and is delivered by the next run; the error then names it,
/// after every other invoice was made.
pub fn run(conn: &mut Connection, cfg: &Config, clock: &Clock, mode: Mode) -> Result<InvoiceSummary> {
    let spool = Spool::new(&cfg.paths.spool);
    let now = clock.now();
    let mut summary = InvoiceSummary::default();
    let mut failures: Vec<String> = Vec::new();
    for inv in Invoice::undelivered(conn)? {
        match deliver(conn, &spool, &inv, now) {
            Ok(()) => summary.recovered += 1,
            Err(e) => failures.push(undelivered(&inv, &e)),
        }
    }
    for (g, count) in due_groups(conn, now)? {
        if count < mode.min_lines() {
            summary.waiting += count;
            continue;
        }
        let Some(inv) = create(conn, &g, mode, now)? else {
            continue;
        };
        summary.invoices += 1;
        summary.lines += inv.lines as usize;
        summary.amount += inv.amount;
        if let Err(e) = deliver(conn, &spool, &inv, now) {
            failures.push(undelivered(&inv, &e));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} ; {} facture(s) non déposée(s), déposée(s) au prochain passage : {}",
            summary,
            failures.len(),
            failures.join(" ; ")
        );
    }
    Ok(summary)
}

/// Delivers every invoice committed but not yet delivered (see the module
/// header); returns how many. Every run of either mode does this first; the
/// daemon may call it at start so that an interrupted delivery does not
/// wait for the next hourly check. Errors after trying every invoice.
pub fn deliver_pending(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<usize> {
    let spool = Spool::new(&cfg.paths.spool);
    let now = clock.now();
    let mut done = 0;
    let mut failures: Vec<String> = Vec::new();
    for inv in Invoice::undelivered(conn)? {
        match deliver(conn, &spool, &inv, now) {
            Ok(()) => done += 1,
            Err(e) => failures.push(undelivered(&inv, &e)),
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} facture(s) non déposée(s), déposée(s) au prochain passage : {}",
            failures.len(),
            failures.join(" ; ")
        );
    }
    Ok(done)
}

/// An invoice whose delivery failed, logged and named in the run's error.
fn undelivered(inv: &Invoice, e: &anyhow::Error) -> String {
    tracing::warn!(
        invoice = inv.reference,
        provider = inv.provider,
        outbox = inv.path,
        error = format!("{e:#}"),
        "invoice committed but not delivered; delivered at the next run"
    );
    format!("{} ({e:#})", inv.reference)
}

/// RFC 3339 UTC with whole seconds, as every instant is stored.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every (caisse, convention, provider) with lines due at `now` not yet
/// invoiced, with their number, in a fixed order.
fn due_groups(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<(Group, usize)>> {
    conn.prepare_cached(
        "SELECT id_cram, code_convention, provider, COUNT(*) FROM invoice_lines
         WHERE invoice_id IS NULL AND due_at <= ?1
         GROUP BY id_cram, code_convention, provider
         ORDER BY id_cram, code_convention, provider",
    )?
    .query_map([stamp(now)], |r| {
        Ok((
            Group {
                id_cram: r.get(0)?,
                code_convention: r.get(1)?,
                provider: r.get(2)?,
            },
            r.get::<_, i64>(3)? as usize,
        ))
    })?
    .collect::<rusqlite::Result<Vec<_>>>()
    .context("counting the invoice lines due")
}

/// The lines of `g` due at `now` and not yet invoiced, in creation order.
fn due_lines_of(conn: &Connection, g: &Group, now: &str) -> Result<Vec<InvoiceLine>> {
    conn.prepare_cached(
        "SELECT id, attestation_id, rf_commande, id_cram, code_convention, provider, nir_per, amount, created_at, due_at
         FROM invoice_lines
         WHERE invoice_id IS NULL AND code_convention = ?2 AND due_at <= ?1 AND id_cram = ?3 AND provider = ?4
         ORDER BY id",
    )?
    .query_map(params![now, g.code_convention, g.id_cram, g.provider], |r| {
        Ok(InvoiceLine {
            id: r.get(0)?,
            attestation_id: r.get(1)?,
            rf_commande: r.get(2)?,
            id_cram: r.get(3)?,
            code_convention: r.get(4)?,
            provider: r.get(5)?,
            nir_per: r.get(6)?,
            amount: r.get(7)?,
            created_at: r.get(8)?,
            due_at: r.get(9)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()
    .with_context(|| {
        format!(
            "reading the invoice lines due of convention {} (caisse {})",
            g.code_convention, g.id_cram
        )
    })
}

/// Makes the invoice of `g`'s due lines, in one transaction (see the module
/// header). `None` when they no longer qualify for `mode` (counted again
/// inside the transaction).
fn create(conn: &mut Connection, g: &Group, mode: Mode, now: DateTime<Utc>) -> Result<Option<Invoice>> {
    for part in [&g.id_cram, &g.code_convention] {
        if !crate::spool::is_safe_component(part) {
            bail!(
                "invoice lines of convention {:?} of caisse {:?}: not a file name",
                g.code_convention,
                g.id_cram
            );
        }
    }
    let at = stamp(now);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let lines = due_lines_of(&tx, g, &at)?;
    if lines.is_empty() || lines.len() < mode.min_lines() {
        return Ok(None);
    }
    let amount = lines
        .iter()
        .try_fold(0i64, |sum, l| sum.checked_add(l.amount))
        .with_context(|| format!("total of convention {} overflows", g.code_convention))?;
    // AUTOINCREMENT: the next id is one past the largest ever used, which
    // this transaction (IMMEDIATE: the only writer) alone can take.
    let id: i64 = tx.query_row(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'invoices'), 0) + 1",
        [],
        |r| r.get(0),
    )?;
    let reference = format!(
        "F{}-{}-{}-{id}",
        g.id_cram,
        g.code_convention,
        crate::clock::paris_day(now).format("%Y%m%d")
    );
    let path = format!("outbox/{}/invoices/{reference}.xml", g.id_cram);
    tx.execute(
        "INSERT INTO invoices (id, reference, id_cram, code_convention, provider, mode, lines, amount, created_at, path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            reference,
            g.id_cram,
            g.code_convention,
            g.provider,
            mode.as_str(),
            lines.len() as i64,
            amount,
            at,
            path
        ],
    )
    .with_context(|| format!("recording invoice {reference}"))?;
    let marked = tx.execute(
        "UPDATE invoice_lines SET invoice_id = ?1
         WHERE invoice_id IS NULL AND code_convention = ?3 AND due_at <= ?2 AND id_cram = ?4 AND provider = ?5",
        params![id, at, g.code_convention, g.id_cram, g.provider],
    )?;
    if marked != lines.len() {
        bail!(
            "invoice {reference}: {marked} line(s) marked for {} read in the same transaction",
            lines.len()
        );
    }
    let inv = Invoice {
        id,
        reference,
        id_cram: g.id_cram.clone(),
        code_convention: g.code_convention.clone(),
        provider: g.provider.clone(),
        mode,
        lines: lines.len() as i64,
        amount,
        created_at: at,
        path,
        staged_path: None,
        delivered_at: None,
    };
    history::record(
        &tx,
        now,
        &Entry {
            kind: "job",
            id_cram: Some(&inv.id_cram),
            application: "habitat",
            interface: "facturation",
            provider: Some(&inv.provider),
            convention: Some(&inv.code_convention),
            comment: format!(
                "facture globale {} établie ({}) : {} ligne(s) de facture, {} €",
                inv.reference,
                mode.why_fr(),
                inv.lines,
                amount_dot(inv.amount)
            ),
            ..Default::default()
        },
    )?;
    let mut m = mail(&inv, &lines, now);
    m.recipients = crate::accounts::recipients(&tx, &inv.provider)?;
    crate::mail::enqueue(&tx, now, &m)?;
    tx.commit()
        .with_context(|| format!("committing invoice {}", inv.reference))?;
    tracing::info!(
        invoice = inv.reference,
        provider = inv.provider,
        convention = inv.code_convention,
        lines = inv.lines,
        mode = mode.as_str(),
        "invoice made"
    );
    Ok(Some(inv))
}

/// Delivers `inv` once to the payment chain and commits the delivery.
fn deliver(conn: &mut Connection, spool: &Spool, inv: &Invoice, now: DateTime<Utc>) -> Result<()> {
    let c: &Connection = conn;
    let delivered = deliver_once(
        spool,
        &inv.path,
        inv.staged_path.as_deref(),
        |w| render(c, inv.id, w).map_err(std::io::Error::other),
        |rel| {
            c.execute(
                "UPDATE invoices SET staged_path = ?2 WHERE id = ?1 AND delivered_at IS NULL",
                params![inv.id, rel],
            )
            .with_context(|| format!("recording the staged file of invoice {}", inv.reference))?;
            Ok(())
        },
    )
    .with_context(|| format!("delivering invoice {} to {}", inv.reference, inv.path))?;
    if delivered == Delivered::Earlier {
        tracing::warn!(
            invoice = inv.reference,
            outbox = inv.path,
            "invoice file was renamed into place before an interruption: recorded as delivered, not written again"
        );
    }
    let tx = conn.transaction()?;
    let n = tx.execute(
        "UPDATE invoices SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
        params![inv.id, stamp(now)],
    )?;
    if n == 1 {
        history::record(
            &tx,
            now,
            &Entry {
                kind: "outbox",
                id_cram: Some(&inv.id_cram),
                application: "habitat",
                interface: "chaine-de-paiement",
                provider: Some(&inv.provider),
                convention: Some(&inv.code_convention),
                comment: format!("facture globale {} déposée dans {}", inv.reference, inv.path),
                ..Default::default()
            },
        )?;
    }
    tx.commit()
        .with_context(|| format!("recording the delivery of invoice {}", inv.reference))?;
    tracing::info!(
        invoice = inv.reference,
        provider = inv.provider,
        outbox = inv.path,
        "invoice delivered"
    );
    Ok(())
}

/// The e-mail of one invoice to its provider: reference, convention, count,
/// total and the orders invoiced (no person named).
fn mail(inv: &Invoice, lines: &[InvoiceLine], now: DateTime<Utc>) -> crate::mail::Message {
    let refs: Vec<&str> = lines
        .iter()
        .take(MAIL_REFS_MAX)
        .map(|l| l.rf_commande.as_str())
        .collect();
    let more = lines.len().saturating_sub(MAIL_REFS_MAX);
    crate::mail::Message {
        dedup_key: format!("invoice:{}", inv.reference),
        recipients: Vec::new(),
        subject: format!(
            "PPAS : facture globale {} (convention {})",
            inv.reference, inv.code_convention
        ),
        body: format!(
            "Bonjour,\n\n\
             La facture globale {reference} de votre convention {conv} (caisse {cram}) a été établie le {day} \
             ({why}) : {n} ligne(s) de facture, une par attestation de visite transmise, pour un montant \
             total de {total} €.\n\n\
             Commandes facturées : {refs}{more}.\n\n\
             Elle est transmise à la caisse pour paiement ; le bordereau de paiement sera publié dans \
             /out/bordereaux/ après le paiement.\n\n\
             Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
            reference = inv.reference,
            conv = inv.code_convention,
            cram = inv.id_cram,
            day = crate::clock::paris_day(now).format("%d/%m/%Y"),
            why = inv.mode.why_fr(),
            n = inv.lines,
            total = amount_fr(inv.amount),
            refs = refs.join(", "),
            more = if more > 0 {
                format!(" et {more} autre(s)")
            } else {
                String::new()
            },
        ),
        secret: false,
    }
}

/// Hundredths of euro as the invoice file writes them: `1234.50`.
pub fn amount_dot(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// Hundredths of euro as a French reader writes them: `1 234,50`.
fn amount_fr(h: i64) -> String {
    let sign = if h < 0 { "-" } else { "" };
    let a = h.unsigned_abs();
    let units = (a / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped},{:02}", a % 100)
}

#[cfg(test)]
mod tests;
