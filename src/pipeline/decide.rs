//! Step 2 of the pipeline: the verdict and everything it owes, committed
//! in one transaction (transactional outbox). Also the dry run of
//! `validate`, which runs the same controls in a transaction it rolls back.
//!
//! A file whose content was already received gets a short verdict, F09
//! alone, naming the earlier file, its date and its report (spec §3): its
//! lines are not read, since line codes computed against its own earlier
//! acceptance (L07, L08) would tell the provider the wrong thing.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use rust_decimal::Decimal;

use super::progress::Progress;
use super::received::{FileState, OutputKind, ReceivedFile};
use super::rules::StateRules;
use super::{rfc3339, Pipeline};
use crate::billing::check::{check_file_as, CheckOptions, LineRules};
use crate::billing::{Anomaly, Code, FileVerdict, Footer, Header, Line, Verdict};
use crate::history::{self, Entry};
use crate::store::reference::to_hundredths;

/// The file the controls run on, and who sent it.
struct Subject<'a> {
    path: &'a Path,
    name: &'a str,
    provider: &'a str,
    sha256: &'a str,
    /// The received file's id when processing (accepted lines are recorded
    /// under it); `None` for `validate`.
    id: Option<i64>,
}

/// The earliest file received with the same content.
struct EarlierCopy {
    provider: String,
    name: String,
    received_at: String,
    lines: Option<i64>,
    report_stem: Option<String>,
    header: Header,
}

/// Runs every control on a file against the state of `conn`. Accepted lines
/// are recorded under `s.id` when given (the caller's transaction decides
/// whether they stay). Returns the verdict and the rowids of the recorded
/// lines.
fn controls(
    conn: &Connection,
    cfg: &crate::config::Config,
    opts: &CheckOptions,
    s: &Subject<'_>,
    progress: Option<&Progress>,
) -> Result<(FileVerdict, Option<(i64, i64)>)> {
    if let Some(first) = earlier_copy(conn, s.sha256, s.id)? {
        return Ok((duplicate_verdict(s, &first), None));
    }
    let mut rules = StateRules::new(conn, cfg, s.provider, s.id);
    let v = match progress {
        Some(progress) => check_file_as(
            s.path,
            s.name,
            opts,
            &mut Ticking {
                inner: &mut rules,
                progress,
                n: 0,
            },
        )?,
        None => check_file_as(s.path, s.name, opts, &mut rules)?,
    };
    rules
        .finish()
        .with_context(|| format!("reading the state for {}", s.path.display()))?;
    Ok((v, rules.recorded))
}

/// A [`LineRules`] hook that beats the processor's heartbeat every few
/// thousand lines, so that a long file never looks like a stuck daemon.
struct Ticking<'a, R: LineRules> {
    inner: &'a mut R,
    progress: &'a Progress,
    n: u32,
}

impl<R: LineRules> LineRules for Ticking<'_, R> {
    fn header(&mut self, header: &Header, out: &mut Vec<Anomaly>) {
        self.inner.header(header, out);
    }

    fn line(&mut self, header: &Header, line: &Line, out: &mut Vec<Anomaly>) {
        self.n = self.n.wrapping_add(1);
        if self.n % 4096 == 0 {
            self.progress.beat();
        }
        self.inner.line(header, line, out);
    }
}

/// The earliest file received before `before` (any, for `validate`) with
/// this content.
fn earlier_copy(conn: &Connection, sha256: &str, before: Option<i64>) -> Result<Option<EarlierCopy>> {
    Ok(conn
        .prepare_cached(
            "SELECT provider, name, received_at, lines, report_stem, COALESCE(rf_borfact, ''), COALESCE(log_fact, ''),
                    COALESCE(id_cram, ''), COALESCE(id_site, ''), COALESCE(rf_prstpap, '')
             FROM received_files WHERE sha256 = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id LIMIT 1",
        )?
        .query_row(params![sha256, before], |r| {
            Ok(EarlierCopy {
                provider: r.get(0)?,
                name: r.get(1)?,
                received_at: r.get(2)?,
                lines: r.get(3)?,
                report_stem: r.get(4)?,
                header: Header {
                    rf_borfact: r.get(5)?,
                    log_fact: r.get(6)?,
                    id_cram: r.get(7)?,
                    id_site: r.get(8)?,
                    rf_prstpap: r.get(9)?,
                },
            })
        })
        .optional()?)
}

/// The short verdict of a file identical to `first`: F09 alone.
fn duplicate_verdict(s: &Subject<'_>, first: &EarlierCopy) -> FileVerdict {
    let when = DateTime::parse_from_rfc3339(&first.received_at)
        .map(|t| {
            t.with_timezone(&Utc)
                .with_timezone(&chrono_tz::Europe::Paris)
                .format("%d/%m/%Y à %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| first.received_at.clone());
    let mut message = format!("contenu identique au fichier {} reçu le {when}", first.name);
    // Another provider's reports are not this provider's to read.
    match &first.report_stem {
        Some(stem) if first.provider == s.provider => message.push_str(&format!(
            " ; son compte rendu : /out/reports/{stem}.pdf (et .xml, .csv)"
        )),
        _ => {}
    }
    message.push_str(" ; ce fichier n'est pas traité une seconde fois");
    FileVerdict {
        file: s.name.to_string(),
        verdict: Verdict::Rejected,
        lines: first.lines.unwrap_or(0).max(0) as u32,
        accepted_lines: 0,
        accepted_hours: Decimal::ZERO,
        header: first.header.clone(),
        footer: Footer::default(),
        anomalies: vec![Anomaly::file(Code::F09, None, None, message)],
    }
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
    let subject = Subject {
        path,
        name: &name,
        provider: &provider,
        sha256: &sha,
        id: None,
    };
    let (v, _) = controls(&tx, cfg, &opts, &subject, None)?;
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

/// Decides received file `f` (no-op when already decided) and returns its verdict.
pub fn decide(p: &mut Pipeline, f: &ReceivedFile) -> Result<Verdict> {
    if f.state != FileState::Received {
        return Ok(f.verdict.unwrap_or(Verdict::Rejected));
    }
    let id = f.id;
    crate::fault::hit("decide", &f.name);
    let now = p.clock.now();
    // L03 compares with the day of receipt, not of the decision: a file
    // decided after a restart on a later day gets the verdict it would have
    // had at once (and a re-decision is always the same).
    let opts = CheckOptions::new(&p.cfg, crate::clock::paris_day(f.received_at));
    let work = p.spool.abs(&f.work_path);
    let cfg = p.cfg.clone();
    let progress = p.progress.clone();
    let tx = p.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("SAVEPOINT lines")?;
    let subject = Subject {
        path: &work,
        name: &f.name,
        provider: &f.provider,
        sha256: &f.sha256,
        id: Some(id),
    };
    let (v, recorded) = controls(&tx, &cfg, &opts, &subject, Some(&progress))
        .with_context(|| format!("file {} from {}", f.name, f.provider))?;
    if v.verdict == Verdict::Rejected {
        // Rejected lines consume nothing and block no period.
        tx.execute_batch("ROLLBACK TO lines")?;
    }
    tx.execute_batch("RELEASE lines")?;
    progress.beat();

    let [rx, rc, rp] = report_names(&tx, f)?;
    let h = &v.header;
    let lines_range = recorded.filter(|_| v.verdict != Verdict::Rejected);
    tx.execute(
        "UPDATE received_files SET state = ?15, verdict = ?2, lines = ?3, accepted_lines = ?4,
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
            lines_range.map(|r| r.0),
            lines_range.map(|r| r.1),
            FileState::Decided,
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
    if v.accepted_lines > 0 && crate::spool::is_safe_component(&h.id_cram) {
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
        let recipients = crate::accounts::recipients(&tx, &f.provider)?;
        let empty = recipients.is_empty();
        let mut m = notice(&v, &f.provider, &owed);
        m.recipients = recipients;
        crate::mail::enqueue(&tx, now, &m)?;
        if empty {
            tracing::warn!(
                provider = f.provider,
                "no e-mail address for the provider: notice not sent"
            );
        }
    }
    let convention = convention_of(&tx, &f.provider, &h.id_cram, &h.id_site)?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "processed",
            id_cram: Some(h.id_cram.as_str()).filter(|s| !s.is_empty()),
            convention: convention.as_deref(),
            application: "aide-a-domicile",
            interface: "facturation",
            provider: Some(&f.provider),
            comment: format!(
                "fichier {} (bordereau {}) : {}, {} ligne(s) sur {} transmise(s), {} anomalie(s)",
                f.name,
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
        file = f.name,
        provider = f.provider,
        verdict = v.verdict.as_str(),
        lines = v.lines,
        accepted = v.accepted_lines,
        anomalies = v.anomalies.len(),
        "file decided"
    );
    Ok(v.verdict)
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
fn notice(v: &FileVerdict, provider: &str, owed: &[(OutputKind, String)]) -> crate::mail::Message {
    let reports: Vec<String> = owed
        .iter()
        .filter(|(k, _)| k.is_report())
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
