//! Step 2 of the pipeline: the verdict and everything it owes, committed
//! in one transaction (transactional outbox). Also the dry run of
//! `validate`, which runs the same controls in a transaction it rolls back.
//!
//! The kind of a received file is read from its root element (`factbord`:
//! billing, [`super::billing`]; `attvisites`: visit attestations,
//! [`super::attest`]); a kind the sending provider does not send is refused
//! as a whole file without being read (F14: an ergothérapeute's
//! `factbord`; A09: attestations from a home-care provider). Each kind
//! decides inside the transaction and hands back a [`Decided`]; this step
//! then records, the same way for every kind: the verdict and the kind,
//! the anomalies, the outputs owed (the reports; the payment chain's file
//! for accepted billing lines), the e-mail notice, the history entry.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::received::{FileKind, FileState, OutputKind, ReceivedFile};
use super::{rfc3339, Pipeline};
use crate::billing::{Anomaly, Code, FileVerdict, Footer, Header, Verdict};
use crate::history::{self, Entry};
use crate::store::reference::to_hundredths;

/// What a kind hands back to the generic decision step.
pub(super) struct Decided {
    /// The verdict in the shape every report shows (for attestations: an
    /// item is an `attvisite`, no header, no hours).
    pub v: FileVerdict,
    /// Rowids of the accepted billing lines, when there are some.
    pub lines_range: Option<(i64, i64)>,
}

/// The provider type of an account (`saad`, `ergo`), `None` when unknown.
fn provider_type(conn: &Connection, provider: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT type FROM providers WHERE provider = ?1")?
        .query_row([provider], |r| r.get(0))
        .optional()?)
}

/// The kind of the file at `path`, read from its root element.
pub fn kind_of(path: &Path) -> Result<FileKind> {
    Ok(FileKind::of_root(crate::xml::sniff::root_element(path)?.as_deref()))
}

/// A file refused whole, unread, because its sender does not send its kind.
fn refused(name: &str, code: Code, message: String) -> Decided {
    Decided {
        v: FileVerdict {
            file: name.to_string(),
            verdict: Verdict::Rejected,
            lines: 0,
            accepted_lines: 0,
            accepted_hours: Default::default(),
            header: Header::default(),
            footer: Footer::default(),
            anomalies: vec![Anomaly::file(code, None, None, message)],
        },
        lines_range: None,
    }
}

/// The refusal of a kind its sender does not send, if it is one.
fn wrong_sender(kind: FileKind, sender: Option<&str>, name: &str) -> Option<Decided> {
    match (kind, sender) {
        (FileKind::Billing, Some("ergo")) => Some(refused(
            name,
            Code::F14,
            "ce prestataire est un ergothérapeute : il ne facture pas par fichier factbord \
             (ses factures naissent des attestations de visite transmises)"
                .into(),
        )),
        (FileKind::Attestations, s) if s != Some("ergo") => Some(refused(
            name,
            Code::A09,
            "ce prestataire n'est pas un ergothérapeute : il n'envoie pas d'attestations de visite".into(),
        )),
        _ => None,
    }
}

/// What `validate` says of one file, in the shape of its kind.
pub enum Validated {
    Billing(FileVerdict),
    Attestations(crate::attestation::AttestationVerdict),
}

impl Validated {
    pub fn verdict(&self) -> Verdict {
        match self {
            Validated::Billing(v) => v.verdict,
            Validated::Attestations(v) => v.verdict,
        }
    }

    pub fn anomalies(&self) -> &[Anomaly] {
        match self {
            Validated::Billing(v) => &v.anomalies,
            Validated::Attestations(v) => &v.anomalies,
        }
    }
}

/// `validate`: every control against the current state; changes nothing.
/// `provider`: the account the file would come from (default: the owner of
/// the header's site for a billing file, of the first attestation's
/// convention for an attestation file).
pub fn validate_path(
    conn: &mut Connection,
    cfg: &crate::config::Config,
    clock: &crate::clock::Clock,
    path: &Path,
    provider: Option<&str>,
) -> Result<Validated> {
    let (sha, _) = super::hash_file(path)?;
    let kind = kind_of(path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let v = match kind {
        FileKind::Billing => Validated::Billing(super::billing::validate_in(
            &tx,
            cfg,
            clock.today(),
            path,
            &sha,
            provider,
        )?),
        FileKind::Attestations => {
            let provider = match provider {
                Some(p) => Some(p.to_string()),
                None => super::attest::convention_owner_of(&tx, path)?,
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sender = match &provider {
                Some(p) => provider_type(&tx, p)?,
                None => None,
            };
            match wrong_sender(kind, sender.as_deref(), &name) {
                Some(d) => Validated::Attestations(super::attest::as_attestation_verdict(d.v)),
                None => Validated::Attestations(super::attest::validate_in(
                    &tx,
                    cfg,
                    clock.now(),
                    path,
                    provider.as_deref().unwrap_or_default(),
                )?),
            }
        }
    };
    tx.rollback()?;
    Ok(v)
}

/// What [`decide`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The file's kind when this call decided it (`None`: already decided).
    pub kind: Option<FileKind>,
}

/// Decides received file `f` (no-op when already decided) and returns its verdict.
pub fn decide(p: &mut Pipeline, f: &ReceivedFile) -> Result<Decision> {
    if f.state != FileState::Received {
        return Ok(Decision {
            verdict: f.verdict.unwrap_or(Verdict::Rejected),
            kind: None,
        });
    }
    crate::fault::hit("decide", &f.name);
    let now = p.clock.now();
    let work = p.spool.abs(&f.work_path);
    let kind = kind_of(&work).with_context(|| format!("file {} from {}", f.name, f.provider))?;
    let cfg = p.cfg.clone();
    let progress = p.progress.clone();
    let tx = p.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sender = provider_type(&tx, &f.provider)?;
    tx.execute_batch("SAVEPOINT items")?;
    let d = match wrong_sender(kind, sender.as_deref(), &f.name) {
        Some(d) => d,
        None => match kind {
            FileKind::Billing => super::billing::decide_in(&tx, &cfg, f, &work, &progress),
            FileKind::Attestations => super::attest::decide_in(&tx, &cfg, f, &work, &progress),
        }
        .with_context(|| format!("file {} from {}", f.name, f.provider))?,
    };
    if d.v.verdict == Verdict::Rejected {
        // Rejected items consume nothing, block nothing, change no order.
        tx.execute_batch("ROLLBACK TO items")?;
    }
    tx.execute_batch("RELEASE items")?;
    progress.beat();
    record_decision(&tx, f, kind, &d, now)?;
    tx.commit()?;
    let v = &d.v;
    let codes: Vec<Code> = v.anomalies.iter().map(|a| a.code).collect();
    crate::metrics::global().file_decided(kind, v.verdict, &codes, v.lines.into(), v.accepted_lines.into());
    tracing::info!(
        event = "file.processed",
        id = f.id,
        file = f.name,
        provider = f.provider,
        kind = kind.as_str(),
        verdict = v.verdict.as_str(),
        lines = v.lines,
        accepted = v.accepted_lines,
        anomalies = v.anomalies.len(),
        "file decided"
    );
    Ok(Decision {
        verdict: v.verdict,
        kind: Some(kind),
    })
}

/// Records the decision of `f`, the same way for every kind: verdict,
/// anomalies, outputs owed, notice, history.
fn record_decision(
    tx: &Connection,
    f: &ReceivedFile,
    kind: FileKind,
    d: &Decided,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let (v, id) = (&d.v, f.id);
    let [rx, rc, rp] = report_names(tx, f)?;
    let h = &v.header;
    // A billing header as read; an attestation file has none.
    let header = |s: &str| (kind == FileKind::Billing).then(|| s.to_string());
    tx.execute(
        "UPDATE received_files SET state = ?15, verdict = ?2, lines = ?3, accepted_lines = ?4,
            accepted_hours = ?5, rf_borfact = ?6, log_fact = ?7, id_cram = ?8, id_site = ?9, rf_prstpap = ?10,
            decided_at = ?11, report_stem = ?12, lines_from = ?13, lines_to = ?14, kind = ?16
         WHERE id = ?1",
        params![
            id,
            v.verdict.as_str(),
            v.lines,
            v.accepted_lines,
            to_hundredths(v.accepted_hours).unwrap_or(0),
            header(&h.rf_borfact),
            header(&h.log_fact),
            header(&h.id_cram),
            header(&h.id_site),
            header(&h.rf_prstpap),
            rfc3339(now),
            rx.trim_end_matches(".xml"),
            d.lines_range.map(|r| r.0),
            d.lines_range.map(|r| r.1),
            FileState::Decided,
            kind,
        ],
    )?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO anomalies (file_id, seq, code, line, xml_line, field, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (i, a) in v.anomalies.iter().enumerate() {
            st.execute(params![
                id,
                i as i64,
                a.code.as_str(),
                a.line,
                a.xml_line.map(|x| x as i64),
                a.field,
                a.message
            ])?;
        }
    }
    let mut owed: Vec<(OutputKind, String)> = Vec::new();
    if kind == FileKind::Billing && v.accepted_lines > 0 && crate::spool::is_safe_component(&h.id_cram) {
        owed.push((OutputKind::Outbox, format!("outbox/{}/{}", h.id_cram, f.name)));
    }
    for (kind, file) in OutputKind::REPORTS.into_iter().zip([rx, rc, rp]) {
        owed.push((kind, format!("outbound/{}/reports/{file}", f.provider)));
    }
    for (kind, path) in &owed {
        tx.execute(
            "INSERT INTO outputs (file_id, kind, path) VALUES (?1, ?2, ?3)",
            params![id, kind, path],
        )?;
    }
    if !v.anomalies.is_empty() {
        let recipients = crate::accounts::recipients(tx, &f.provider)?;
        let empty = recipients.is_empty();
        let mut m = notice(v, kind, &f.provider, &owed);
        m.recipients = recipients;
        crate::mail::enqueue(tx, now, &m)?;
        if empty {
            tracing::warn!(
                provider = f.provider,
                "no e-mail address for the provider: notice not sent"
            );
        }
    }
    let (convention, comment) = match kind {
        FileKind::Billing => (
            convention_of(tx, &f.provider, &h.id_cram, &h.id_site)?,
            format!(
                "fichier {} (bordereau {}) : {}, {} ligne(s) sur {} transmise(s), {} anomalie(s)",
                f.name,
                h.rf_borfact,
                v.verdict.label_fr(),
                v.accepted_lines,
                v.lines,
                v.anomalies.len()
            ),
        ),
        FileKind::Attestations => (
            None,
            format!(
                "fichier d'attestations {} : {}, {} attestation(s) sur {} transmise(s), {} anomalie(s)",
                f.name,
                v.verdict.label_fr(),
                v.accepted_lines,
                v.lines,
                v.anomalies.len()
            ),
        ),
    };
    history::record(
        tx,
        now,
        &Entry {
            kind: "processed",
            id_cram: Some(h.id_cram.as_str()).filter(|s| !s.is_empty()),
            convention: convention.as_deref(),
            application: kind.application(),
            interface: kind.interface(),
            provider: Some(&f.provider),
            comment,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// The report names of `f`: the first counter still free for its provider.
/// Counting files of the same name is not enough: `X.xml`, `X.XML` and `X`
/// share the report stem `X`, and a taken path would fail the decision.
fn report_names(tx: &Connection, f: &ReceivedFile) -> Result<[String; 3]> {
    let occurrence: i64 = tx.query_row(
        "SELECT COUNT(*) FROM received_files WHERE provider = ?1 AND name = ?2 AND id <= ?3",
        params![f.provider, f.name, f.id],
        |r| r.get(0),
    )?;
    let mut occurrence = occurrence.max(1) as u32;
    loop {
        let names = crate::report::report_file_names(&f.name, occurrence);
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM outputs WHERE path = ?1)")?
            .query_row([format!("outbound/{}/reports/{}", f.provider, names[0])], |r| r.get(0))?;
        if !taken {
            return Ok(names);
        }
        occurrence += 1;
    }
}

/// The provider's validated convention with the caisse for the site of a
/// file's header, for its history entries (spec §7); `None` when the
/// header names none (F05, F06, F12).
pub(super) fn convention_of(conn: &Connection, provider: &str, id_cram: &str, id_site: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT code_convention FROM conventions
             WHERE provider = ?1 AND id_cram = ?2 AND id_site = ?3 AND validated = 1
             ORDER BY code_convention LIMIT 1",
        )?
        .query_row(params![provider, id_cram, id_site], |r| r.get(0))
        .optional()?)
}

/// The e-mail notice of a report with anomalies (queued with the verdict).
fn notice(v: &FileVerdict, kind: FileKind, provider: &str, owed: &[(OutputKind, String)]) -> crate::mail::Message {
    let (items, sent_to) = match kind {
        FileKind::Billing => ("ligne(s)", "transmise(s) à la chaîne de paiement"),
        FileKind::Attestations => ("attestation(s)", "transmise(s) à la caisse"),
    };
    let reports: Vec<String> = owed
        .iter()
        .filter(|(k, _)| k.is_report())
        .map(|(_, p)| format!("  /out/reports/{}", p.rsplit('/').next().unwrap_or(p)))
        .collect();
    let mut body = format!(
        "Bonjour,\n\nLe fichier {} a été traité : {}.\n{} {items} reçue(s), {} {sent_to}, {} anomalie(s).\n\n",
        v.file,
        v.verdict.label_fr(),
        v.lines,
        v.accepted_lines,
        v.anomalies.len()
    );
    let item = if kind == FileKind::Billing {
        "ligne"
    } else {
        "attestation"
    };
    for a in v.anomalies.iter().take(30) {
        let at = a.line.map(|l| format!(" {item} {l}")).unwrap_or_default();
        body.push_str(&format!("- {}{at} : {}\n", a.code, a.message));
    }
    if v.anomalies.len() > 30 {
        body.push_str(&format!("- … et {} autre(s) anomalie(s)\n", v.anomalies.len() - 30));
    }
    body.push_str(&format!(
        "\nLe compte rendu complet est disponible par SFTP :\n{}\n\nppas-gateway\n",
        reports.join("\n")
    ));
    let report_xml = owed
        .iter()
        .find(|(k, _)| *k == OutputKind::ReportXml)
        .map(|(_, p)| p.as_str())
        .unwrap_or(&v.file);
    crate::mail::Message {
        dedup_key: format!("report:{provider}:{report_xml}"),
        recipients: Vec::new(),
        subject: format!("Compte rendu du fichier {} : {}", v.file, v.verdict.label_fr()),
        body,
        secret: false,
    }
}
