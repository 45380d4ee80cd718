//! Step 3 of the pipeline: writes the outputs a decided file owes, from the
//! database, then archives the original and marks the file done.
//!
//! The payment chain's file comes first and is **delivered once**
//! ([`deliver_outbox`]): the payment chain consumes `outbox/<id-cram>/` by
//! moving files away, so a file written twice is paid twice. Its content is
//! written to a hidden temporary file, flushed with its folder, and that
//! temporary name is committed (`outputs.staged_path`); then it is renamed
//! into place, the folder flushed, and the delivery committed at once, in
//! its own transaction, before anything else can fail. Whatever happens
//! afterwards (a report folder that cannot be written, a kill), recovery
//! never writes it again: an output recorded as done is never pending, and
//! a staged file whose temporary name is gone was renamed before the
//! interruption.
//!
//! The reports follow, each atomically (temp file, fsync, rename), every
//! folder flushed once; then the original is moved to `archive/`, and one
//! transaction marks the reports done, with their history entries, and the
//! file done. A crash before that commit only means the same report bytes
//! are written again under the same names.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use super::received::{pending_outputs, FileState, Output, OutputKind, ReceivedFile};
use super::{rfc3339, Pipeline};
use crate::billing::{Anomaly, Code, FileVerdict, Footer, Header, Verdict};
use crate::fsutil;
use crate::history::{self, Entry};
use crate::report::{self, ReportMeta};
use crate::store::reference::from_hundredths;

/// The verdict of a decided file, rebuilt from the database.
pub fn load_verdict(conn: &Connection, id: i64) -> Result<FileVerdict> {
    let (name, verdict, lines, accepted, hours, header) = conn.query_row(
        "SELECT name, verdict, lines, accepted_lines, accepted_hours,
                COALESCE(rf_borfact,''), COALESCE(log_fact,''), COALESCE(id_cram,''), COALESCE(id_site,''), COALESCE(rf_prstpap,'')
         FROM received_files WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                Header {
                    rf_borfact: r.get(5)?,
                    log_fact: r.get(6)?,
                    id_cram: r.get(7)?,
                    id_site: r.get(8)?,
                    rf_prstpap: r.get(9)?,
                },
            ))
        },
    )?;
    let mut st = conn
        .prepare_cached("SELECT code, line, xml_line, field, message FROM anomalies WHERE file_id = ?1 ORDER BY seq")?;
    let anomalies = st
        .query_map([id], |r| {
            let code: String = r.get(0)?;
            Ok(Anomaly {
                code: Code::parse(&code).unwrap_or(Code::F01),
                line: r.get::<_, Option<i64>>(1)?.map(|l| l as u32),
                xml_line: r.get::<_, Option<i64>>(2)?.map(|l| l as u64),
                field: r.get(3)?,
                message: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(FileVerdict {
        file: name,
        verdict: Verdict::parse(&verdict).unwrap_or(Verdict::Rejected),
        lines: lines as u32,
        accepted_lines: accepted as u32,
        accepted_hours: from_hundredths(hours),
        header,
        footer: Footer::default(),
        anomalies,
    })
}

/// Writes what file `id` still owes, then archives it. Idempotent.
pub fn publish(p: &mut Pipeline, id: i64) -> Result<()> {
    let f = ReceivedFile::get(&p.conn, id)?;
    if f.state == FileState::Done {
        return Ok(());
    }
    let pending = pending_outputs(&p.conn, id)?;
    let convention = match (&f.id_cram, &f.id_site) {
        (Some(c), Some(s)) => super::decide::convention_of(&p.conn, &f.provider, c, s)?,
        _ => None,
    };
    for o in pending.iter().filter(|o| o.kind == OutputKind::Outbox) {
        deliver_outbox(p, &f, o, convention.as_deref())?;
        p.progress.beat();
    }
    let reports: Vec<&Output> = pending.iter().filter(|o| o.kind.is_report()).collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if !reports.is_empty() {
        let rendered = render_reports(p, &f)?;
        for o in &reports {
            let path = p.spool.abs(&o.path);
            if let Some(dir) = path.parent() {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
            }
            let bytes = match o.kind {
                OutputKind::ReportXml => &rendered.xml,
                OutputKind::ReportCsv => &rendered.csv,
                _ => &rendered.pdf,
            };
            fsutil::write_atomic_unsynced(&path, |w| w.write_all(bytes))?;
        }
    }
    // The renames above are durable once their folders are flushed: one
    // flush a folder, not one an output.
    for dir in &dirs {
        fsutil::sync_dir(dir)?;
    }
    p.progress.beat();
    let rel_archive = archive(p, &f)?;
    let now = p.clock.now();
    let tx = p.conn.transaction()?;
    for o in &reports {
        record_written(&tx, now, &f, o, convention.as_deref())?;
    }
    tx.execute(
        "UPDATE received_files SET state = ?2, done_at = ?3, archive_path = ?4 WHERE id = ?1",
        params![id, FileState::Done, rfc3339(now), rel_archive],
    )?;
    tx.commit()?;
    if let Some(first) = reports.first() {
        let xml = reports
            .iter()
            .find(|o| o.kind == OutputKind::ReportXml)
            .unwrap_or(first);
        tracing::info!(
            event = "report.published",
            id = f.id,
            file = f.name,
            provider = f.provider,
            report = xml.path,
            forms = reports.len(),
            "processing report published"
        );
    }
    Ok(())
}

/// Records output `o` of file `f` as written, with its history entry
/// ("outbox" for the payment chain's file, "chargement" for a report).
fn record_written(
    tx: &Connection,
    now: chrono::DateTime<chrono::Utc>,
    f: &ReceivedFile,
    o: &Output,
    convention: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE outputs SET done_at = ?2, staged_path = NULL WHERE id = ?1",
        params![o.id, rfc3339(now)],
    )?;
    let (kind, interface, comment) = match o.kind {
        OutputKind::Outbox => (
            "outbox",
            "chaine-de-paiement",
            format!("lignes acceptées du fichier {} déposées dans {}", f.name, o.path),
        ),
        _ => (
            "chargement",
            f.kind.interface(),
            format!(
                "compte rendu du fichier {} publié : {}",
                f.name,
                o.path.rsplit('/').next().unwrap_or(&o.path)
            ),
        ),
    };
    history::record(
        tx,
        now,
        &Entry {
            kind,
            id_cram: f.id_cram.as_deref(),
            application: f.kind.application(),
            interface,
            provider: Some(&f.provider),
            convention,
            comment,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Renders the three forms of the processing report of file `f`.
fn render_reports(p: &Pipeline, f: &ReceivedFile) -> Result<report::Rendered> {
    let v = load_verdict(&p.conn, f.id)?;
    let caisse = p.cfg.billing.caisses.get(&v.header.id_cram).cloned();
    let meta = ReportMeta {
        kind: f.kind,
        provider: &f.provider,
        received_at: f.received_at,
        processed_at: f.decided_at.unwrap_or(f.received_at),
        channel: if f.channel == super::Channel::Sftp {
            "sftp"
        } else {
            "dépôt"
        },
        sha256: &f.sha256,
        caisse_name: caisse.as_deref(),
    };
    report::render_all(&v, &meta).with_context(|| format!("rendering the report of {}", f.name))
}

/// Moves the original into `archive/<provider>/<YYYY-MM>/<id>-<name>`
/// (unless an earlier attempt did); returns its spool-relative path.
fn archive(p: &Pipeline, f: &ReceivedFile) -> Result<String> {
    let month = rfc3339(f.received_at);
    let month = month.get(..7).unwrap_or("0000-00");
    let rel = f
        .archive_path
        .clone()
        .unwrap_or_else(|| format!("archive/{}/{month}/{}-{}", f.provider, f.id, f.name));
    let work = p.spool.abs(&f.work_path);
    let archive = p.spool.abs(&rel);
    if work.exists() {
        let dir = archive.parent().expect("archive path has a folder");
        fsutil::create_dir_all(dir)?;
        std::fs::rename(&work, &archive)
            .with_context(|| format!("cannot move {} to {}", work.display(), archive.display()))?;
        fsutil::sync_dir(dir)?;
    }
    Ok(rel)
}

/// Delivers the payment chain's file of `f` once (see the module header).
fn deliver_outbox(p: &mut Pipeline, f: &ReceivedFile, o: &Output, convention: Option<&str>) -> Result<()> {
    let conn = &p.conn;
    let delivered = crate::outbox::deliver::deliver_once(
        &p.spool,
        &o.path,
        o.staged_path.as_deref(),
        |w| crate::outbox::render(conn, f.id, w).map_err(std::io::Error::other),
        |rel| {
            conn.execute("UPDATE outputs SET staged_path = ?2 WHERE id = ?1", params![o.id, rel])?;
            Ok(())
        },
    )?;
    if delivered == crate::outbox::deliver::Delivered::Earlier {
        // Renamed before an interruption (and maybe already taken by the
        // payment chain): delivered, never written again.
        tracing::warn!(
            file = f.name,
            outbox = o.path,
            "outbox file was renamed into place before an interruption: recorded as delivered, not written again"
        );
    }
    let tx = p.conn.transaction()?;
    record_written(&tx, p.clock.now(), f, o, convention)?;
    tx.commit()?;
    tracing::info!(
        event = "outbox.written",
        id = f.id,
        file = f.name,
        provider = f.provider,
        outbox = o.path,
        "outbox file delivered"
    );
    Ok(())
}
