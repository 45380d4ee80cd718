//! The outbound publisher: writes what the database says a provider is owed
//! in `outbound/<provider>/` (its SFTP `/out`), and records it written.
//!
//! In: `documents` rows not yet copied (`done_at IS NULL`) and `listings`
//! rows whose `written` generation is behind `wanted`. Out: the files, each
//! written under a hidden temporary name, flushed, renamed into place, its
//! folder flushed; then the record:
//!
//! - a document is copied from its kept source (`archive/…`) to its path
//!   (`outbound/<provider>/documents/…`), its content checked against the
//!   recorded SHA-256 on the way, then marked done with a "chargement"
//!   history entry, in one transaction;
//! - a listing (`commandes`, `beneficiaires`, `historique`) is rendered from
//!   one read snapshot together with its `wanted` generation, its forms are
//!   written (`<kind>.csv`, `<kind>.xml`; `historique.csv` alone), then
//!   `written` is set to that generation
//!   (never lowered): a change committed meanwhile bumped `wanted` again,
//!   so the listing is written once more at the next call.
//!
//! - a report of anomalies returned by the payment chain is rendered from
//!   the database and written as `.xml`, `.csv` and `.pdf` into
//!   `reports/`, then marked done with its history entry and e-mail
//!   ([`crate::bordereaux::anomalies`]).
//!
//! Idempotent and crash-safe: whatever is recorded done is never written
//! again; a kill between a write and its record only means the same bytes
//! are written again under the same name at the next call. One item that
//! fails (a missing source, a full disk) does not hold up the others: it is
//! logged, left owed, and named in the error returned after the rest.
//!
//! Callers: `import` (CLI) and the caisse drop folders after an import,
//! `run relances`, the pipeline after each received file and the daemon.
//! One publisher at a time per spool: the callers hold the spool lock.

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::fsutil;
use crate::habitat::Listing;
use crate::history::{self, Entry};
use crate::spool::Spool;

/// What one call wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Documents copied into `outbound/<provider>/documents/`.
    pub documents: usize,
    /// Listings written (each in all its forms: `.csv`, and `.xml` but for `historique`).
    pub listings: usize,
    /// Reports of anomalies returned by the payment chain, written into
    /// `outbound/<provider>/reports/` (each as `.xml`, `.csv`, `.pdf`).
    pub reports: usize,
}

impl Published {
    pub fn is_empty(&self) -> bool {
        self.documents == 0 && self.listings == 0 && self.reports == 0
    }
}

/// Writes every owed document and listing (see the module header). `now`
/// stamps the records. Errors only after trying every item, naming each
/// one that failed (those stay owed for the next call).
pub fn publish_due(conn: &mut Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Published> {
    let spool = Spool::new(&cfg.paths.spool);
    let mut done = Published::default();
    let mut failures: Vec<String> = Vec::new();

    for d in owed_documents(conn)? {
        match publish_document(conn, &spool, &d, now) {
            Ok(()) => {
                done.documents += 1;
                tracing::info!(provider = d.provider, document = d.path, "document published");
            }
            Err(e) => {
                tracing::warn!(
                    provider = d.provider,
                    document = d.path,
                    error = format!("{e:#}"),
                    "document not published; retried at the next publication"
                );
                failures.push(format!("document {}: {e:#}", d.path));
            }
        }
    }
    for (provider, kind) in owed_listings(conn)? {
        match publish_listing(conn, cfg, &spool, &provider, kind, now) {
            Ok(true) => {
                done.listings += 1;
                tracing::info!(provider, listing = kind.as_str(), "listing published");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(
                    provider,
                    listing = kind.as_str(),
                    error = format!("{e:#}"),
                    "listing not published; retried at the next publication"
                );
                failures.push(format!("{} listing of {provider}: {e:#}", kind.as_str()));
            }
        }
    }
    let (reports, failed) = crate::bordereaux::anomalies::publish_reports(conn, cfg, now)?;
    done.reports += reports;
    failures.extend(failed);
    if !failures.is_empty() {
        bail!(
            "{} outbound file(s) not written (left owed, retried at the next publication): {}",
            failures.len(),
            failures.join("; ")
        );
    }
    Ok(done)
}

/// A document owed to a provider.
#[derive(Debug, Clone)]
struct OwedDocument {
    id: i64,
    kind: String,
    rf_commande: String,
    provider: String,
    sha256: String,
    source_path: String,
    path: String,
    id_cram: Option<String>,
    convention: Option<String>,
}

fn owed_documents(conn: &Connection) -> Result<Vec<OwedDocument>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.kind, d.rf_commande, d.provider, d.sha256, d.source_path, d.path,
                o.id_cram, o.code_convention
         FROM documents d LEFT JOIN orders o ON o.rf_commande = d.rf_commande
         WHERE d.done_at IS NULL ORDER BY d.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(OwedDocument {
                id: r.get(0)?,
                kind: r.get(1)?,
                rf_commande: r.get(2)?,
                provider: r.get(3)?,
                sha256: r.get(4)?,
                source_path: r.get(5)?,
                path: r.get(6)?,
                id_cram: r.get(7)?,
                convention: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the documents owed")?;
    Ok(rows)
}

/// Copies one document to its outbound path (content checked against its
/// SHA-256), then records it done with its history entry.
fn publish_document(conn: &mut Connection, spool: &Spool, d: &OwedDocument, now: DateTime<Utc>) -> Result<()> {
    let source = spool.abs(&d.source_path);
    let dest = spool.abs(&d.path);
    let mut input =
        std::fs::File::open(&source).with_context(|| format!("cannot open the kept document {}", source.display()))?;
    fsutil::write_atomic_with(&dest, |w| {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            w.write_all(&buf[..n])?;
        }
        let got = hex::encode(h.finalize());
        if got != d.sha256 {
            return Err(std::io::Error::other(format!(
                "the kept document {} no longer has the imported content (SHA-256 {got}, expected {})",
                source.display(),
                d.sha256
            )));
        }
        Ok(())
    })?;
    let tx = conn.transaction()?;
    let n = tx.execute(
        "UPDATE documents SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL",
        params![d.id, now.to_rfc3339_opts(SecondsFormat::Secs, true)],
    )?;
    if n == 1 {
        let what = if d.kind == "decision" {
            "notification de décision"
        } else {
            "évaluation"
        };
        history::record(
            &tx,
            now,
            &Entry {
                kind: "chargement",
                id_cram: d.id_cram.as_deref(),
                application: "habitat",
                interface: "documents",
                provider: Some(&d.provider),
                convention: d.convention.as_deref(),
                comment: format!(
                    "{what} de la commande {} publiée : {}",
                    d.rf_commande,
                    crate::import::documents::published_name(&d.path)
                ),
                ..Default::default()
            },
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn owed_listings(conn: &Connection) -> Result<Vec<(String, Listing)>> {
    let mut stmt =
        conn.prepare_cached("SELECT provider, kind FROM listings WHERE written < wanted ORDER BY provider, kind")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the listings owed")?;
    rows.into_iter()
        .map(|(p, k)| {
            let kind = Listing::parse(&k).with_context(|| format!("unknown listing kind {k:?} owed to {p}"))?;
            Ok((p, kind))
        })
        .collect()
}

/// Renders and writes one listing, then records the generation written.
/// `false` when it was no longer owed (another publisher wrote it). `now`
/// is the day the `historique` listing counts its six months back from.
fn publish_listing(
    conn: &mut Connection,
    cfg: &Config,
    spool: &Spool,
    provider: &str,
    kind: Listing,
    now: DateTime<Utc>,
) -> Result<bool> {
    let dir = spool.outbound_of(provider);
    // One read snapshot: the generation and the content it stands for.
    let wanted = {
        let tx = conn.transaction()?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT wanted, written FROM listings WHERE provider = ?1 AND kind = ?2",
                params![provider, kind.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((wanted, _)) = row.filter(|(wanted, written)| written < wanted) else {
            return Ok(false);
        };
        let mut files = kind
            .file_names()
            .iter()
            .map(|name| fsutil::Staged::create(&dir.join(name)))
            .collect::<Result<Vec<_>>>()?;
        let written: Result<()> = (|| {
            match (kind, files.as_mut_slice()) {
                (Listing::Commandes, [csv, xml]) => {
                    let r = crate::listing::commandes::render(&tx, provider)?;
                    csv.writer()?.write_all(&r.csv)?;
                    xml.writer()?.write_all(&r.xml)?;
                }
                // Streamed: a listing of 100 000 plans is tens of megabytes.
                (Listing::Beneficiaires, [csv, xml]) => {
                    crate::listing::beneficiaires::write(&tx, provider, csv.writer()?, xml.writer()?)?;
                }
                // CSV only (see the module's header); streamed too.
                (Listing::Historique, [csv]) => {
                    let today = crate::clock::paris_day(now);
                    crate::listing::historique::write(&tx, provider, today, &cfg.billing.caisses, csv.writer()?)?;
                }
                (kind, files) => bail!("{} file(s) staged for the {} listing", files.len(), kind.as_str()),
            }
            Ok(())
        })();
        written.with_context(|| format!("rendering the {} listing of {provider}", kind.as_str()))?;
        tx.commit()?;
        for f in files {
            f.install()?;
        }
        wanted
    };
    fsutil::sync_dir(&dir)?;
    conn.execute(
        "UPDATE listings SET written = ?3 WHERE provider = ?1 AND kind = ?2 AND written < ?3",
        params![provider, kind.as_str(), wanted],
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests;
