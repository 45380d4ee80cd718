//! Step 3 of the pipeline: writes the outputs a decided file owes, from the
//! database, each atomically (temp file, fsync, rename); flushes each folder
//! once; archives the original; then marks the outputs done, with their
//! history entries, and the file done, in one transaction.
//!
//! A crash anywhere before that commit leaves the file in flight: recovery
//! publishes it again, which rewrites the same bytes under the same names
//! and finds the original already archived. Nothing is doubled.

use std::io::{self, Write};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{rfc3339, Pipeline};
use crate::billing::{Anomaly, Code, FileVerdict, Footer, Header, Verdict};
use crate::fsutil;
use crate::history::{self, Entry};
use crate::report::{self, ReportMeta};
use crate::store::reference::from_hundredths;

/// The verdict of a decided file, rebuilt from the database.
pub fn load_verdict(conn: &Connection, id: i64) -> Result<FileVerdict> {
    #[allow(clippy::type_complexity)]
    let (name, verdict, lines, accepted, hours, h): (String, String, i64, i64, i64, Header) = conn.query_row(
        "SELECT name, verdict, lines, accepted_lines, accepted_hours,
                COALESCE(rf_borfact,''), COALESCE(log_fact,''), COALESCE(id_cram,''), COALESCE(id_site,''), COALESCE(rf_prstpap,'')
         FROM received_files WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                Header { rf_borfact: r.get(5)?, log_fact: r.get(6)?, id_cram: r.get(7)?, id_site: r.get(8)?, rf_prstpap: r.get(9)? },
            ))
        },
    )?;
    let mut st = conn
        .prepare_cached("SELECT code, line, xml_line, field, message FROM anomalies WHERE file_id = ?1 ORDER BY seq")?;
    let anomalies = st
        .query_map([id], |r| {
            let code: String = r.get(0)?;
            Ok(Anomaly {
                code: parse_code(&code),
                line: r.get::<_, Option<i64>>(1)?.map(|l| l as u32),
                xml_line: r.get::<_, Option<i64>>(2)?.map(|l| l as u64),
                field: r.get(3)?,
                message: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(FileVerdict {
        file: name,
        verdict: match verdict.as_str() {
            "accepted" => Verdict::Accepted,
            "partial" => Verdict::Partial,
            _ => Verdict::Rejected,
        },
        lines: lines as u32,
        accepted_lines: accepted as u32,
        accepted_hours: from_hundredths(hours),
        header: h,
        footer: Footer::default(),
        anomalies,
    })
}

fn parse_code(s: &str) -> Code {
    use Code::*;
    const ALL: [Code; 25] = [
        F01, F02, F03, F04, F05, F06, F07, F08, F09, F10, F11, F12, F13, L01, L02, L03, L04, L05, L06, L07, L08, L09,
        L10, L11, L12,
    ];
    ALL.into_iter().find(|c| c.as_str() == s).unwrap_or(F01)
}

/// Writes what file `id` still owes, then archives it. Idempotent.
pub fn publish(p: &mut Pipeline, id: i64) -> Result<()> {
    let (provider, name, channel, sha, received_at, work_path, state, archive_path): (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    ) = p.conn.query_row(
        "SELECT provider, name, channel, sha256, received_at, work_path, state, archive_path FROM received_files WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
    )?;
    if state == "done" {
        return Ok(());
    }
    let pending: Vec<(i64, String, String)> = p
        .conn
        .prepare("SELECT id, kind, path FROM outputs WHERE file_id = ?1 AND done_at IS NULL ORDER BY id")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let (id_cram, id_site): (Option<String>, Option<String>) =
        p.conn
            .query_row("SELECT id_cram, id_site FROM received_files WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
    let id_cram = id_cram.filter(|c| !c.is_empty());
    let convention = match (&id_cram, &id_site) {
        (Some(c), Some(s)) => super::decide::convention_of(&p.conn, &provider, c, s)?,
        _ => None,
    };
    let mut rendered: Option<report::Rendered> = None;
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for (_, kind, rel) in &pending {
        let path = p.spool.abs(rel);
        if let Some(dir) = path.parent() {
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
        if kind == "outbox" {
            let conn = &p.conn;
            fsutil::write_atomic_unsynced(&path, |w| crate::outbox::render(conn, id, w).map_err(io::Error::other))?;
        } else {
            if rendered.is_none() {
                let v = load_verdict(&p.conn, id)?;
                let received: DateTime<Utc> = DateTime::parse_from_rfc3339(&received_at)
                    .map(|t| t.with_timezone(&Utc))
                    .with_context(|| format!("received_at of file {id}"))?;
                let decided_at: Option<String> = p
                    .conn
                    .query_row("SELECT decided_at FROM received_files WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .flatten();
                let processed = decided_at
                    .and_then(|d| DateTime::parse_from_rfc3339(&d).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(received);
                let caisse = p.cfg.billing.caisses.get(&v.header.id_cram).cloned();
                let meta = ReportMeta {
                    provider: &provider,
                    received_at: received,
                    processed_at: processed,
                    channel: if channel == "sftp" { "sftp" } else { "dépôt" },
                    sha256: &sha,
                    caisse_name: caisse.as_deref(),
                };
                rendered = Some(report::render_all(&v, &meta)?);
            }
            let r = rendered.as_ref().expect("rendered above");
            let bytes = match kind.as_str() {
                "report-xml" => &r.xml,
                "report-csv" => &r.csv,
                _ => &r.pdf,
            };
            fsutil::write_atomic_unsynced(&path, |w| w.write_all(bytes))?;
        }
    }
    // The renames above are durable once their folders are flushed: one
    // flush a folder, not one an output.
    for dir in &dirs {
        fsutil::sync_dir(dir)?;
    }
    // Archive the original: archive/<provider>/<YYYY-MM>/<id>-<name>.
    let month = received_at.get(..7).unwrap_or("0000-00");
    let rel_archive = archive_path.unwrap_or_else(|| format!("archive/{provider}/{month}/{id}-{name}"));
    let work = p.spool.abs(&work_path);
    let archive = p.spool.abs(&rel_archive);
    if work.exists() {
        let dir = archive.parent().expect("archive path has a folder");
        fsutil::create_dir_all(dir)?;
        std::fs::rename(&work, &archive)
            .with_context(|| format!("cannot move {} to {}", work.display(), archive.display()))?;
        fsutil::sync_dir(dir)?;
    }
    let now = p.clock.now();
    let tx = p.conn.transaction()?;
    for (out_id, kind, rel) in &pending {
        tx.execute(
            "UPDATE outputs SET done_at = ?2 WHERE id = ?1",
            params![out_id, rfc3339(now)],
        )?;
        let (hkind, interface, comment) = if kind == "outbox" {
            (
                "outbox",
                "chaine-de-paiement",
                format!("lignes acceptées du fichier {name} déposées dans {rel}"),
            )
        } else {
            (
                "chargement",
                "facturation",
                format!(
                    "compte rendu du fichier {name} publié : {}",
                    rel.rsplit('/').next().unwrap_or(rel)
                ),
            )
        };
        history::record(
            &tx,
            now,
            &Entry {
                kind: hkind,
                id_cram: id_cram.as_deref(),
                application: "aide-a-domicile",
                interface,
                provider: Some(&provider),
                convention: convention.as_deref(),
                comment,
                ..Default::default()
            },
        )?;
    }
    tx.execute(
        "UPDATE received_files SET state = 'done', done_at = ?2, archive_path = ?3 WHERE id = ?1",
        params![id, rfc3339(now), rel_archive],
    )?;
    tx.commit()?;
    Ok(())
}
