//! The relances job (spec §6; seed, chapter 3.5): an order still without a
//! transmitted attestation 60 days after its date is flagged "relance" and
//! its provider's users are e-mailed, once.
//!
//! In: the orders in state `a_faire` and the one clock. Out, in one
//! transaction: each such order whose date is 60 days or more before today
//! (Europe/Paris: `dt_commande + 60 days <= today`) becomes `relance` with
//! `relance_at`; one e-mail per order is queued under the key
//! `relance:<rf-commande>`; the `commandes` listing of each provider
//! concerned is marked; one history entry names how many orders were
//! flagged. Then the outbound files are written ([`publish_due`]).
//!
//! Once per order, whatever happens: a flagged order is no longer
//! `a_faire`, so a later run does not see it, and its mail key is taken
//! for good. An order whose attestation was accepted (`transmise`,
//! `sans_suite`) or whose case is closed is never flagged.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use chrono::{Days, NaiveDate};
use rusqlite::{params, Connection};

use super::{mark_listing, Listing, Order, OrderState, ORDER_COLUMNS};
use crate::clock::Clock;
use crate::config::Config;
use crate::history::{self, Entry};
use crate::outbound::{publish_due, Published};

/// Days after its date at which an order without attestation is flagged.
pub const RELANCE_DAYS: u64 = 60;

/// References named in the history entry of a run (the rest are counted).
const HISTORY_REFS_MAX: usize = 50;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelanceSummary {
    /// Orders flagged by this run.
    pub flagged: usize,
    /// Providers whose listing changed.
    pub providers: usize,
    /// E-mails newly queued.
    pub mails: usize,
    /// What the publication after the run wrote.
    pub published: Published,
}

/// The latest order date flagged on `today`: `today − 60 days`.
pub fn due_on_or_before(today: NaiveDate) -> NaiveDate {
    today
        .checked_sub_days(Days::new(RELANCE_DAYS))
        .unwrap_or(NaiveDate::MIN)
}

/// Flags the orders due (see the module header), then publishes what is
/// owed. The flags are committed before the publication: an error of the
/// publication leaves them (the files are written at the next one).
pub fn run(conn: &mut Connection, cfg: &Config, clock: &Clock) -> Result<RelanceSummary> {
    let now = clock.now();
    let limit = due_on_or_before(clock.today());
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let due: Vec<Order> = tx
        .prepare(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE state = ?1 AND dt_commande <= ?2 ORDER BY rf_commande"
        ))?
        .query_map(
            params![OrderState::AFaire, limit.format("%Y-%m-%d").to_string()],
            Order::from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the orders due for a relance")?;
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut providers: BTreeSet<&str> = BTreeSet::new();
    let mut summary = RelanceSummary::default();
    for o in &due {
        let n = tx.execute(
            "UPDATE orders SET state = ?2, relance_at = ?3, updated_at = ?3 WHERE rf_commande = ?1 AND state = ?4",
            params![o.rf_commande, OrderState::Relance, at, OrderState::AFaire],
        )?;
        if n == 0 {
            continue;
        }
        summary.flagged += 1;
        providers.insert(&o.provider);
        let mut m = mail(o);
        m.recipients = crate::accounts::recipients(&tx, &o.provider)?;
        if crate::mail::enqueue(&tx, now, &m)? {
            summary.mails += 1;
        }
    }
    for p in &providers {
        mark_listing(&tx, p, Listing::Commandes)?;
    }
    summary.providers = providers.len();
    let provider = if providers.len() == 1 {
        providers.iter().next().copied()
    } else {
        None
    };
    let refs: Vec<&str> = due
        .iter()
        .take(HISTORY_REFS_MAX)
        .map(|o| o.rf_commande.as_str())
        .collect();
    let more = due.len().saturating_sub(HISTORY_REFS_MAX);
    history::record(
        &tx,
        now,
        &Entry {
            kind: "job",
            application: "habitat",
            interface: "relances",
            provider,
            comment: format!(
                "relances : {} commande{} sans attestation transmise {RELANCE_DAYS} jours après sa date signalée{} en relance (commandes datées du {} ou avant){}",
                summary.flagged,
                if summary.flagged <= 1 { "" } else { "s" },
                if summary.flagged <= 1 { "" } else { "s" },
                limit.format("%d/%m/%Y"),
                match (refs.is_empty(), more) {
                    (true, _) => String::new(),
                    (false, 0) => format!(" : {}", refs.join(", ")),
                    (false, n) => format!(" : {} et {n} autre(s)", refs.join(", ")),
                }
            ),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    if summary.flagged > 0 {
        tracing::info!(
            flagged = summary.flagged,
            providers = summary.providers,
            "orders flagged for a relance"
        );
    }
    summary.published = publish_due(conn, cfg, now).with_context(|| {
        format!(
            "{} order(s) flagged for a relance, but the outbound files were not all written",
            summary.flagged
        )
    })?;
    Ok(summary)
}

/// The e-mail of one flagged order (its reference, date and convention:
/// the person is in the listing, not in the mail).
fn mail(o: &Order) -> crate::mail::Message {
    let date = NaiveDate::parse_from_str(&o.dt_commande, "%Y-%m-%d")
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_else(|_| o.dt_commande.clone());
    crate::mail::Message {
        dedup_key: format!("relance:{}", o.rf_commande),
        recipients: Vec::new(),
        subject: format!("PPAS : relance de la commande d'intervention {}", o.rf_commande),
        body: format!(
            "Bonjour,\n\n\
             La commande d'intervention {rf} du {date} (caisse {cram}, convention {conv}) n'a reçu \
             aucune attestation de visite {RELANCE_DAYS} jours après sa date : elle est signalée en relance.\n\n\
             Merci de transmettre l'attestation de visite (statut T, avec la date de la visite) ou, si \
             la commande est sans suite, une attestation de statut S avec son motif, en déposant le \
             fichier dans le dossier /in.\n\n\
             La liste de vos commandes et de leur état est disponible par SFTP : /out/commandes.csv \
             (tableur) et /out/commandes.xml.\n\n\
             Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
            rf = o.rf_commande,
            cram = o.id_cram,
            conv = o.code_convention,
        ),
        secret: false,
    }
}

#[cfg(test)]
mod tests;
