//! The billing kind of the pipeline: the controls of spec §3 run on a
//! received `factbord` against the state, inside the decision's
//! transaction (accepted lines recorded as they are accepted), and the
//! short answer to a file whose content was already received.
//!
//! In: the work copy of a received file and the caller's transaction. Out:
//! a [`Decided`] for the generic decision step ([`super::decide`]).

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use rust_decimal::Decimal;

use super::decide::Decided;
use super::progress::Progress;
use super::received::ReceivedFile;
use super::rules::StateRules;
use crate::billing::check::{check_file_as, CheckOptions, LineRules};
use crate::billing::{Anomaly, Code, FileVerdict, Footer, Header, Line, Verdict};

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

/// Decides billing file `f` in transaction `tx`: its accepted lines are
/// recorded there (the caller rolls them back if the file ends rejected).
pub(super) fn decide_in(
    tx: &Connection,
    cfg: &crate::config::Config,
    f: &ReceivedFile,
    work: &Path,
    progress: &Progress,
) -> Result<Decided> {
    // L03 compares with the day of receipt, not of the decision: a file
    // decided after a restart on a later day gets the verdict it would have
    // had at once (and a re-decision is always the same).
    let opts = CheckOptions::new(cfg, crate::clock::paris_day(f.received_at));
    let subject = Subject {
        path: work,
        name: &f.name,
        provider: &f.provider,
        sha256: &f.sha256,
        id: Some(f.id),
    };
    let (v, recorded) = controls(tx, cfg, &opts, &subject, Some(progress))?;
    if v.accepted_lines > 0 && v.verdict != Verdict::Rejected {
        // What the provider checks before billing changed.
        crate::habitat::mark_listing(tx, &f.provider, crate::habitat::Listing::Beneficiaires)?;
    }
    Ok(Decided {
        lines_range: recorded.filter(|_| v.verdict != Verdict::Rejected),
        v,
    })
}

/// `validate` of a billing file: every control against the current state,
/// in the caller's transaction (which it rolls back). `provider`: the
/// account the file would come from (default: the owner of the header's
/// site, so that F12 is only raised when asked for).
pub(super) fn validate_in(
    tx: &Connection,
    cfg: &crate::config::Config,
    today: chrono::NaiveDate,
    path: &Path,
    sha: &str,
    provider: Option<&str>,
) -> Result<FileVerdict> {
    let opts = CheckOptions::new(cfg, today);
    let provider = match provider {
        Some(p) => p.to_string(),
        None => site_owner_of(path)
            .and_then(|site| {
                crate::store::reference::site_owner(tx, &site)
                    .ok()
                    .flatten()
                    .map(|o| o.provider)
            })
            .unwrap_or_default(),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let subject = Subject {
        path,
        name: &name,
        provider: &provider,
        sha256: sha,
        id: None,
    };
    Ok(controls(tx, cfg, &opts, &subject, None)?.0)
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
