//! The visit-attestation kind of the pipeline (spec §4): each `attvisite`
//! of a received `attvisites` file is checked against the orders, accepted
//! or rejected on its own, and an accepted one changes its order for good,
//! inside the decision's transaction:
//!
//! - the attestation is recorded (it can never be changed, cancelled,
//!   re-sent or deleted: a second one for the order is A03);
//! - T (visit done): the order becomes `transmise` and one invoice line is
//!   created for its convention, of the caisse's visit fee
//!   (`[habitat] visit_fee`/`visit_fees`), due 48 hours after the
//!   transmission;
//! - S (sans suite): the order becomes `sans_suite`, its case closed;
//! - the ergothérapeute's order listing is marked as owed.
//!
//! The transmission time is the file's durable record of reception (not the
//! moment of the decision), so that a file decided after a restart gets the
//! same dates, and "in the future" (A04) compares with the day of receipt.
//!
//! In: the work copy of a received file, the caller's transaction. Out: a
//! [`Decided`] for the generic step, the attestation's verdict for
//! `validate`.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::decide::Decided;
use super::progress::Progress;
use super::received::ReceivedFile;
use super::rfc3339;
use crate::anomaly::{Anomaly, Code, Level};
use crate::attestation::{check_file, AttestationVerdict, Item, ItemRules, Options};
use crate::billing::{FileVerdict, Footer, Header};
use crate::habitat::{mark_listing, Listing, Order, OrderState};

/// An invoice line becomes due this long after its attestation's transmission.
pub const INVOICE_DELAY: chrono::Duration = chrono::Duration::hours(48);

/// The stateful controls of attestations (A02, A03, A04 before the order
/// date, A07, A08), recording each accepted attestation when asked.
struct AttestationRules<'c> {
    conn: &'c Connection,
    cfg: &'c crate::config::Config,
    provider: &'c str,
    /// `(file id, transmission time)`: record accepted attestations.
    record: Option<(i64, DateTime<Utc>)>,
    /// Orders answered earlier in this file (A03 within one file).
    answered: HashSet<String>,
    progress: Option<&'c Progress>,
    error: Option<anyhow::Error>,
}

impl ItemRules for AttestationRules<'_> {
    fn item(&mut self, it: &Item, out: &mut Vec<Anomaly>) {
        if let Some(p) = self.progress {
            if it.index % 1024 == 0 {
                p.beat();
            }
        }
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.check(it, out) {
            self.error = Some(e.context(format!("attestation {} (order {})", it.index, it.rf_commande)));
        }
    }
}

impl AttestationRules<'_> {
    fn check(&mut self, it: &Item, out: &mut Vec<Anomaly>) -> Result<()> {
        let rf = it.rf_commande.trim();
        let anomaly = |code, field, message: String| Anomaly::line(code, it.index, it.xml_line, field, message);
        match Order::load(self.conn, rf)? {
            // Another provider's order is as unknown as a missing one: the
            // answer never tells a provider what another one holds.
            Some(o)
                if o.provider == self.provider
                    && o.code_convention == it.code_convention.trim()
                    && o.id_cram == it.id_cram.trim() =>
            {
                if o.nir_per != it.nir_per.trim() {
                    out.push(anomaly(
                        Code::A07,
                        "nir-per",
                        format!("le NIR ne correspond pas à celui de la commande {rf}"),
                    ));
                }
                if o.state.has_attestation() || self.answered.contains(rf) || self.has_attestation(rf)? {
                    out.push(anomaly(
                        Code::A03,
                        "rf-commande",
                        format!(
                            "une attestation a déjà été transmise pour la commande {rf} : elle ne peut être ni \
                             modifiée, ni annulée, ni transmise de nouveau (une rectification se fait par courrier \
                             à la caisse)"
                        ),
                    ));
                }
                if o.state.is_closed() {
                    out.push(anomaly(
                        Code::A08,
                        "rf-commande",
                        format!("le dossier de la commande {rf} est clos ({})", o.state.label_fr()),
                    ));
                }
                if it.statut.trim() == "T" {
                    let ordered = chrono::NaiveDate::parse_from_str(&o.dt_commande, "%Y-%m-%d").ok();
                    if let (Some(visit), Some(ordered)) = (it.dt_visite, ordered) {
                        if visit < ordered {
                            out.push(anomaly(
                                Code::A04,
                                "dt-visite",
                                format!(
                                    "la date de visite {} est antérieure à la date de la commande ({})",
                                    visit.format("%d/%m/%Y"),
                                    ordered.format("%d/%m/%Y")
                                ),
                            ));
                        }
                    }
                }
                if !out.iter().any(|a| a.code.level() == Level::Line) {
                    self.answered.insert(rf.to_string());
                    if let Some((file_id, at)) = self.record {
                        self.accept(it, &o, file_id, at)?;
                    }
                }
            }
            _ => out.push(anomaly(
                Code::A02,
                "rf-commande",
                format!(
                    "commande {rf} inconnue pour la convention {} de la caisse {}",
                    it.code_convention.trim(),
                    it.id_cram.trim()
                ),
            )),
        }
        Ok(())
    }

    fn has_attestation(&self, rf: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM attestations WHERE rf_commande = ?1")?
            .query_row([rf], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Records an accepted attestation and what it changes.
    fn accept(&self, it: &Item, o: &Order, file_id: i64, at: DateTime<Utc>) -> Result<()> {
        let statut = it.statut.trim();
        let at_s = rfc3339(at);
        self.conn
            .prepare_cached(
                "INSERT INTO attestations (file_id, item, rf_commande, statut, dt_visite, motif, commentaire, transmitted_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                file_id,
                it.index,
                o.rf_commande,
                statut,
                it.dt_visite.filter(|_| statut == "T").map(|d| d.format("%Y-%m-%d").to_string()),
                Some(it.motif.trim()).filter(|m| statut == "S" && !m.is_empty()),
                it.commentaire.trim(),
                at_s,
            ])?;
        let attestation = self.conn.last_insert_rowid();
        let (state, closed) = if statut == "T" {
            (OrderState::Transmise, None)
        } else {
            (OrderState::SansSuite, Some(&at_s))
        };
        self.conn
            .prepare_cached(
                "UPDATE orders SET state = ?2, transmitted_at = ?3, closed_at = COALESCE(?4, closed_at), updated_at = ?3
                 WHERE rf_commande = ?1",
            )?
            .execute(params![o.rf_commande, state, at_s, closed])?;
        if statut == "T" {
            let fee = self.cfg.habitat.fee_for(&o.id_cram);
            let amount = crate::store::reference::to_hundredths(fee)
                .with_context(|| format!("visit fee {fee} of caisse {}", o.id_cram))?;
            self.conn
                .prepare_cached(
                    "INSERT INTO invoice_lines (attestation_id, rf_commande, id_cram, code_convention, provider, nir_per,
                         amount, created_at, due_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    attestation,
                    o.rf_commande,
                    o.id_cram,
                    o.code_convention,
                    o.provider,
                    o.nir_per,
                    amount,
                    at_s,
                    rfc3339(at + INVOICE_DELAY),
                ])?;
        }
        mark_listing(self.conn, &o.provider, Listing::Commandes)
    }
}

/// The attestation file the controls run on, and who sent it when.
struct Subject<'a> {
    path: &'a Path,
    name: &'a str,
    provider: &'a str,
    received_at: DateTime<Utc>,
    /// The received file's id when processing (accepted attestations are
    /// recorded under it); `None` for `validate`.
    record: Option<i64>,
}

/// Runs the reader and the stateful controls on one attestation file.
fn controls(
    tx: &Connection,
    cfg: &crate::config::Config,
    s: &Subject<'_>,
    progress: Option<&Progress>,
) -> Result<AttestationVerdict> {
    let (path, received_at) = (s.path, s.received_at);
    let opts = Options::new(cfg, crate::clock::paris_day(received_at));
    let mut rules = AttestationRules {
        conn: tx,
        cfg,
        provider: s.provider,
        record: s.record.map(|id| (id, received_at)),
        answered: HashSet::new(),
        progress,
        error: None,
    };
    let v = check_file(path, s.name, &opts, &mut rules)?;
    if let Some(e) = rules.error {
        return Err(e).with_context(|| format!("reading the state for {}", path.display()));
    }
    Ok(v)
}

/// Decides attestation file `f` in transaction `tx` (accepted attestations
/// recorded there; the caller rolls them back if the file ends rejected).
pub(super) fn decide_in(
    tx: &Connection,
    cfg: &crate::config::Config,
    f: &ReceivedFile,
    work: &Path,
    progress: &Progress,
) -> Result<Decided> {
    let subject = Subject {
        path: work,
        name: &f.name,
        provider: &f.provider,
        received_at: f.received_at,
        record: Some(f.id),
    };
    let v = controls(tx, cfg, &subject, Some(progress))?;
    Ok(Decided {
        v: as_file_verdict(v),
        lines_range: None,
    })
}

/// `validate` of an attestation file from `provider`, in the caller's
/// transaction (which it rolls back), as if received `now`.
pub(super) fn validate_in(
    tx: &Connection,
    cfg: &crate::config::Config,
    now: DateTime<Utc>,
    path: &Path,
    provider: &str,
) -> Result<AttestationVerdict> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    controls(
        tx,
        cfg,
        &Subject {
            path,
            name: &name,
            provider,
            received_at: now,
            record: None,
        },
        None,
    )
}

/// The provider holding the convention of the first attestation of a file
/// (read cheaply from its first 8 KiB): whom `validate` takes as sender
/// when not told.
pub(super) fn convention_owner_of(conn: &Connection, path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let mut head = vec![0; 8192];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return Ok(None),
    };
    let text = String::from_utf8_lossy(&head[..n]);
    let field = |tag: &str| -> Option<String> {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{tag}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    let (Some(cram), Some(convention)) = (field("id-cram"), field("code-convention")) else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT provider FROM conventions WHERE id_cram = ?1 AND code_convention = ?2 LIMIT 1")?
        .query_row(params![cram, convention], |r| r.get(0))
        .optional()?)
}

/// An attestation verdict in the shape every report shows: an item is an
/// `attvisite`; no header, no hours.
fn as_file_verdict(v: AttestationVerdict) -> FileVerdict {
    FileVerdict {
        file: v.file,
        verdict: v.verdict,
        lines: v.items,
        accepted_lines: v.accepted,
        accepted_hours: Default::default(),
        header: Header::default(),
        footer: Footer::default(),
        anomalies: v.anomalies,
    }
}

/// The reverse of [`as_file_verdict`] (a refusal decided before reading).
pub(super) fn as_attestation_verdict(v: FileVerdict) -> AttestationVerdict {
    AttestationVerdict {
        file: v.file,
        verdict: v.verdict,
        items: v.lines,
        accepted: v.accepted_lines,
        anomalies: v.anomalies,
    }
}
