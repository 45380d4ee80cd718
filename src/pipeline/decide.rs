//! Step 2 of the pipeline: the verdict and everything it owes, committed
//! in one transaction (transactional outbox). Also the dry run of
//! `validate`, which runs the same controls in a transaction it rolls back.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::rules::{duplicate_of, reject_with, StateRules};
use super::{rfc3339, Pipeline};
use crate::billing::check::{check_file_as, CheckOptions};
use crate::billing::{Anomaly, Code, FileVerdict, Verdict};
use crate::history::{self, Entry};
use crate::store::reference::to_hundredths;

/// Runs every control on a file against the state of `conn`. Accepted lines
/// are recorded under `record_as` when given (the caller's transaction
/// decides whether they stay).
fn controls(
    conn: &Connection,
    pipeline_cfg: &crate::config::Config,
    opts: &CheckOptions,
    path: &Path,
    name: &str,
    provider: &str,
    sha256: &str,
    record_as: Option<i64>,
) -> Result<(FileVerdict, Option<(i64, i64)>)> {
    let mut rules = StateRules::new(conn, pipeline_cfg, provider, record_as);
    let mut v = check_file_as(path, name, opts, &mut rules)?;
    rules
        .finish()
        .with_context(|| format!("reading the state for {}", path.display()))?;
    if let Some(first) = duplicate_of(conn, sha256, record_as)? {
        reject_with(
            &mut v,
            Anomaly::file(
                Code::F09,
                None,
                None,
                format!("contenu identique à un fichier déjà reçu ({first})"),
            ),
        );
    }
    Ok((v, rules.recorded))
}

/// `validate`: every control against the current state; changes nothing.
/// `provider`: the account the file would come from (default: the owner of
/// the header's site, so that F12 is only raised when asked for).
pub fn validate_path(
    conn: &mut Connection,
    cfg: &crate::config::Config,
    clock: &crate::clock::Clock,
    path: &Path,
    provider: Option<&str>,
) -> Result<FileVerdict> {
    let (sha, _) = super::hash_file(path)?;
    let opts = CheckOptions::new(cfg, clock.today());
    let provider = match provider {
        Some(p) => p.to_string(),
        None => site_owner_of(path)
            .and_then(|site| {
                crate::store::reference::site_owner(conn, &site)
                    .ok()
                    .flatten()
                    .map(|o| o.provider)
            })
            .unwrap_or_default(),
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (v, _) = controls(&tx, cfg, &opts, path, &name, &provider, &sha, None)?;
    tx.rollback()?;
    Ok(v)
}

/// The `id-site` of a billing file's header, read cheaply (first 4 KiB).
fn site_owner_of(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = vec![0; 4096];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let start = text.find("<id-site>")? + "<id-site>".len();
    let end = text[start..].find("</id-site>")? + start;
    Some(text[start..end].to_string())
}

/// Decides received file `id` (no-op when already decided) and returns its verdict.
pub fn decide(p: &mut Pipeline, id: i64) -> Result<Verdict> {
    let row: Option<(String, String, String, String, String, String, Option<String>)> = p
        .conn
        .query_row(
            "SELECT provider, name, sha256, work_path, state, received_at, verdict FROM received_files WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    let Some((provider, name, sha, work_path, state, received_at, verdict)) = row else {
        anyhow::bail!("received file {id} does not exist");
    };
    if state != "received" {
        return Ok(match verdict.as_deref() {
            Some("accepted") => Verdict::Accepted,
            Some("partial") => Verdict::Partial,
            _ => Verdict::Rejected,
        });
    }
    let now = p.clock.now();
    // L03 compares with the day of receipt, not of the decision: a file
    // decided after a restart on a later day gets the verdict it would have
    // had at once (and a re-decision is always the same).
    let receipt_day = chrono::DateTime::parse_from_rfc3339(&received_at)
        .map(|t| crate::clock::paris_day(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| p.clock.today());
    let opts = CheckOptions::new(&p.cfg, receipt_day);
    let work = p.spool.abs(&work_path);
    let cfg = p.cfg.clone();
    let tx = p.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("SAVEPOINT lines")?;
    let (v, recorded) = controls(&tx, &cfg, &opts, &work, &name, &provider, &sha, Some(id))
        .with_context(|| format!("file {name} from {provider}"))?;
    if v.verdict == Verdict::Rejected {
        // Rejected lines consume nothing and block no period.
        tx.execute_batch("ROLLBACK TO lines")?;
    }
    tx.execute_batch("RELEASE lines")?;

    // The first report counter still free for this provider. Counting files
    // of the same name is not enough: `X.xml`, `X.XML` and `X` share the
    // report stem `X`, and a taken path would fail the whole decision.
    let occurrence: i64 = tx.query_row(
        "SELECT COUNT(*) FROM received_files WHERE provider = ?1 AND name = ?2 AND id <= ?3",
        params![provider, name, id],
        |r| r.get(0),
    )?;
    let mut occurrence = occurrence.max(1) as u32;
    let [rx, rc, rp] = loop {
        let names = crate::report::report_file_names(&name, occurrence);
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM outputs WHERE path = ?1)")?
            .query_row([format!("outbound/{provider}/reports/{}", names[0])], |r| r.get(0))?;
        if !taken {
            break names;
        }
        occurrence += 1;
    };
    let h = &v.header;
    tx.execute(
        "UPDATE received_files SET state = 'decided', verdict = ?2, lines = ?3, accepted_lines = ?4,
            accepted_hours = ?5, rf_borfact = ?6, log_fact = ?7, id_cram = ?8, id_site = ?9, rf_prstpap = ?10,
            decided_at = ?11, report_stem = ?12, lines_from = ?13, lines_to = ?14
         WHERE id = ?1",
        params![
            id,
            v.verdict.as_str(),
            v.lines,
            v.accepted_lines,
            to_hundredths(v.accepted_hours).unwrap_or(0),
            h.rf_borfact,
            h.log_fact,
            h.id_cram,
            h.id_site,
            h.rf_prstpap,
            rfc3339(now),
            rx.trim_end_matches(".xml"),
            recorded.filter(|_| v.verdict != Verdict::Rejected).map(|r| r.0),
            recorded.filter(|_| v.verdict != Verdict::Rejected).map(|r| r.1),
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
    let mut owed: Vec<(&str, String)> = Vec::new();
    if v.accepted_lines > 0 && crate::spool::is_safe_component(&h.id_cram) {
        owed.push(("outbox", format!("outbox/{}/{name}", h.id_cram)));
    }
    for (kind, file) in [("report-xml", rx), ("report-csv", rc), ("report-pdf", rp)] {
        owed.push((kind, format!("outbound/{provider}/reports/{file}")));
    }
    for (kind, path) in &owed {
        tx.execute(
            "INSERT INTO outputs (file_id, kind, path) VALUES (?1, ?2, ?3)",
            params![id, kind, path],
        )?;
    }
    if !v.anomalies.is_empty() {
        let recipients = crate::accounts::recipients(&tx, &provider)?;
        let empty = recipients.is_empty();
        let mut m = notice(&v, &provider, &owed);
        m.recipients = recipients;
        crate::mail::enqueue(&tx, now, &m)?;
        if empty {
            tracing::warn!(provider, "no e-mail address for the provider: notice not sent");
        }
    }
    let convention = convention_of(&tx, &provider, &h.id_cram, &h.id_site)?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "processed",
            id_cram: Some(h.id_cram.as_str()).filter(|s| !s.is_empty()),
            convention: convention.as_deref(),
            application: "aide-a-domicile",
            interface: "facturation",
            provider: Some(&provider),
            comment: format!(
                "fichier {name} (bordereau {}) : {}, {} ligne(s) sur {} transmise(s), {} anomalie(s)",
                h.rf_borfact,
                v.verdict.label_fr(),
                v.accepted_lines,
                v.lines,
                v.anomalies.len()
            ),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    tracing::info!(
        file = name,
        provider,
        verdict = v.verdict.as_str(),
        lines = v.lines,
        accepted = v.accepted_lines,
        anomalies = v.anomalies.len(),
        "file decided"
    );
    Ok(v.verdict)
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
fn notice(v: &FileVerdict, provider: &str, owed: &[(&str, String)]) -> crate::mail::Message {
    let reports: Vec<String> = owed
        .iter()
        .filter(|(k, _)| k.starts_with("report"))
        .map(|(_, p)| format!("  /out/reports/{}", p.rsplit('/').next().unwrap_or(p)))
        .collect();
    let mut body = format!(
        "Bonjour,\n\nLe fichier {} a été traité : {}.\n{} ligne(s) reçue(s), {} transmise(s) à la chaîne de paiement, {} anomalie(s).\n\n",
        v.file,
        v.verdict.label_fr(),
        v.lines,
        v.accepted_lines,
        v.anomalies.len()
    );
    for a in v.anomalies.iter().take(30) {
        let at = a.line.map(|l| format!(" ligne {l}")).unwrap_or_default();
        body.push_str(&format!("- {}{at} : {}\n", a.code, a.message));
    }
    if v.anomalies.len() > 30 {
        body.push_str(&format!("- … et {} autre(s) anomalie(s)\n", v.anomalies.len() - 30));
    }
    body.push_str(&format!(
        "\nLe compte rendu complet est disponible par SFTP :\n{}\n\nppas-gateway\n",
        reports.join("\n")
    ));
    crate::mail::Message {
        dedup_key: format!(
            "report:{provider}:{}",
            owed.iter()
                .find(|(k, _)| *k == "report-xml")
                .map(|(_, p)| p.as_str())
                .unwrap_or(&v.file)
        ),
        recipients: Vec::new(),
        subject: format!("Compte rendu du fichier {} : {}", v.file, v.verdict.label_fr()),
        body,
        secret: false,
    }
}
