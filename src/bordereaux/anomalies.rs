//! Reports of anomalies returned by the payment chain ("anomalies de
//! report", spec §6): lines of a billing file the payment chain rejected
//! after receipt, imported by the caisse (`import report-anomalies`), routed
//! to the provider that sent the file.
//!
//! In: `anomaly_reports` rows not yet written (`done_at IS NULL`), each
//! with the lines it names (`anomaly_report_lines`, fixed at the import)
//! and the received file. Out: `outbound/<provider>/reports/<stem>.xml`,
//! `.csv` and `.pdf` (`<stem>` is `<rf-borfact>.anomalies-report.<n>`),
//! each written under a hidden temporary name, flushed and renamed into
//! place, the folder flushed; then, in one transaction, the report marked
//! done, a "chargement" history entry and an e-mail to the provider's
//! users (dedup key per report). Layout: `docs/formats/anomalies-report.md`,
//! schema `schema/anomalies-report.xsd`.
//!
//! Called by the outbound publisher ([`crate::outbound::publish_due`]) after
//! each import, each received file and each rescan. Rendering reads the
//! database alone: a crash before the record only means the same bytes
//! written again under the same names; a report recorded done is never
//! written again, its e-mail never queued again.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Europe::Paris;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::config::Config;
use crate::fsutil;
use crate::history::{self, Entry};
use crate::report::sheet::{render_sheet, Align, Column, Sheet};
use crate::report::{sheet_csv, xml_text};
use crate::spool::Spool;

/// Version of the layout, in the XML root's `version` attribute.
pub const FORMAT_VERSION: &str = "1";

/// The CSV header of the table of rejected lines.
pub const CSV_HEADER: [&str; 8] = [
    "Ligne",
    "NIR",
    "Nom",
    "Prénom",
    "Début de période",
    "Fin de période",
    "Code",
    "Motif",
];

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based index of the `factprest` element in the billing file.
    pub line_no: i64,
    pub nir: String,
    pub nom: String,
    pub pn: String,
    pub dtd: String,
    pub dtf: String,
    pub code: String,
    pub motif: String,
}

/// One report of anomalies, as published.
#[derive(Debug, Clone)]
pub struct AnomalyReport {
    pub id: i64,
    pub provider: String,
    pub stem: String,
    /// The billing file as received.
    pub file_name: String,
    pub rf_borfact: String,
    pub received_at: DateTime<Utc>,
    pub id_cram: String,
    pub caisse_name: Option<String>,
    pub id_site: String,
    pub rf_prstpap: String,
    /// When the caisse's file was imported.
    pub created_at: DateTime<Utc>,
    /// In line order.
    pub lines: Vec<Line>,
}

/// The three forms.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub xml: Vec<u8>,
    pub csv: Vec<u8>,
    pub pdf: Vec<u8>,
}

/// Writes every report owed (see the module header). Returns how many were
/// written, and one message per report that failed (it stays owed).
pub fn publish_reports(conn: &mut Connection, cfg: &Config, now: DateTime<Utc>) -> Result<(usize, Vec<String>)> {
    let spool = Spool::new(&cfg.paths.spool);
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM anomaly_reports WHERE done_at IS NULL ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("reading the reports of anomalies owed")?;
    let mut done = 0;
    let mut failures = Vec::new();
    for id in ids {
        match publish_one(conn, cfg, &spool, id, now) {
            Ok(true) => done += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(
                    report = id,
                    error = format!("{e:#}"),
                    "report of anomalies not published; retried at the next publication"
                );
                failures.push(format!("report of anomalies {id}: {e:#}"));
            }
        }
    }
    Ok((done, failures))
}

fn publish_one(conn: &mut Connection, cfg: &Config, spool: &Spool, id: i64, now: DateTime<Utc>) -> Result<bool> {
    let (r, rendered) = {
        let tx = conn.transaction()?;
        let Some(r) = AnomalyReport::load(&tx, cfg, id)? else {
            return Ok(false);
        };
        let rendered = r.render().with_context(|| format!("rendering {}", r.stem))?;
        tx.commit()?;
        (r, rendered)
    };
    let dir = spool.outbound_of(&r.provider).join("reports");
    for (ext, bytes) in [("xml", &rendered.xml), ("csv", &rendered.csv), ("pdf", &rendered.pdf)] {
        fsutil::write_atomic_unsynced(&dir.join(format!("{}.{ext}", r.stem)), |w| w.write_all(bytes))?;
    }
    fsutil::sync_dir(&dir)?;
    // A stop between the files and their record, on demand (debug builds).
    crate::fault::hit("anomalies-report", &r.stem);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE anomaly_reports SET done_at = ?2 WHERE id = ?1 AND done_at IS NULL",
        params![id, now.to_rfc3339_opts(SecondsFormat::Secs, true)],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let convention: Option<String> = tx
        .prepare_cached(
            "SELECT code_convention FROM conventions
             WHERE provider = ?1 AND id_cram = ?2 AND id_site = ?3 AND validated = 1
             ORDER BY code_convention LIMIT 1",
        )?
        .query_row(params![r.provider, r.id_cram, r.id_site], |x| x.get(0))
        .optional()?;
    history::record(
        &tx,
        now,
        &Entry {
            kind: "chargement",
            id_cram: Some(&r.id_cram).filter(|c| !c.is_empty()).map(String::as_str),
            application: "aide-a-domicile",
            interface: "anomalies-de-report",
            provider: Some(&r.provider),
            convention: convention.as_deref(),
            comment: format!(
                "anomalies de report du fichier {} publiées : {}.pdf, {}.xml, {}.csv ({} ligne(s))",
                r.file_name,
                r.stem,
                r.stem,
                r.stem,
                r.lines.len()
            ),
            ..Default::default()
        },
    )?;
    let mut m = r.mail();
    m.recipients = crate::accounts::recipients(&tx, &r.provider)?;
    crate::mail::enqueue(&tx, now, &m)?;
    tx.commit()?;
    tracing::info!(provider = r.provider, report = r.stem, "report of anomalies published");
    Ok(true)
}

impl AnomalyReport {
    /// Report `id` if it is still owed; `None` otherwise.
    pub fn load(conn: &Connection, cfg: &Config, id: i64) -> Result<Option<AnomalyReport>> {
        let head = conn
            .query_row(
                "SELECT a.provider, a.stem, f.name, a.rf_borfact, f.received_at, COALESCE(f.id_cram, ''),
                        COALESCE(f.id_site, ''), COALESCE(f.rf_prstpap, ''), a.created_at
                 FROM anomaly_reports a JOIN received_files f ON f.id = a.file_id
                 WHERE a.id = ?1 AND a.done_at IS NULL",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, String>(8)?,
                    ))
                },
            )
            .optional()
            .with_context(|| format!("reading report of anomalies {id}"))?;
        let Some((provider, stem, file_name, rf_borfact, received_at, id_cram, id_site, rf_prstpap, created_at)) = head
        else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(
            "SELECT l.line_no, a.nir_per, a.nom_per, a.pn_per, a.dtd, a.dtf, l.code, l.motif
             FROM anomaly_report_lines l JOIN accepted_lines a ON a.id = l.line_id
             WHERE l.report_id = ?1 ORDER BY l.seq",
        )?;
        let lines = stmt
            .query_map([id], |r| {
                Ok(Line {
                    line_no: r.get(0)?,
                    nir: r.get(1)?,
                    nom: r.get(2)?,
                    pn: r.get(3)?,
                    dtd: stored_date(r.get(4)?),
                    dtf: stored_date(r.get(5)?),
                    code: r.get(6)?,
                    motif: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .with_context(|| format!("reading the lines of report of anomalies {id}"))?;
        let time = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .with_context(|| format!("report of anomalies {id}: time {s:?}"))
        };
        Ok(Some(AnomalyReport {
            id,
            provider,
            stem,
            file_name,
            rf_borfact,
            received_at: time(&received_at)?,
            caisse_name: cfg.billing.caisses.get(&id_cram).cloned(),
            id_cram,
            id_site,
            rf_prstpap,
            created_at: time(&created_at)?,
            lines,
        }))
    }

    fn caisse_label(&self) -> String {
        match (&self.caisse_name, self.id_cram.is_empty()) {
            (_, true) => String::new(),
            (Some(n), false) => format!("{} — {n}", self.id_cram),
            (None, false) => self.id_cram.clone(),
        }
    }

    pub fn render(&self) -> Result<Rendered> {
        Ok(Rendered {
            xml: self.xml(),
            csv: self.csv(),
            pdf: self.pdf()?,
        })
    }

    /// XML (UTF-8, LF, two-space indent), `schema/anomalies-report.xsd`.
    pub fn xml(&self) -> Vec<u8> {
        let mut o = String::with_capacity(1024 + self.lines.len() * 400);
        o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(o, "<anomalies-de-report version=\"{FORMAT_VERSION}\">");
        elem(&mut o, 2, "prestataire", &self.provider);
        o.push_str("  <fichier>\n");
        elem(&mut o, 4, "nom", &self.file_name);
        elem(&mut o, 4, "rf-borfact", &self.rf_borfact);
        elem(&mut o, 4, "recu-le", &paris_rfc3339(self.received_at));
        o.push_str("    <caisse>\n");
        elem(&mut o, 6, "id-cram", &self.id_cram);
        if let Some(n) = &self.caisse_name {
            elem(&mut o, 6, "nom", n);
        }
        o.push_str("    </caisse>\n");
        elem(&mut o, 4, "id-site", &self.id_site);
        elem(&mut o, 4, "rf-prstpap", &self.rf_prstpap);
        o.push_str("  </fichier>\n");
        elem(&mut o, 2, "signale-le", &paris_rfc3339(self.created_at));
        let _ = writeln!(o, "  <anomalies nombre=\"{}\">", self.lines.len());
        for l in &self.lines {
            o.push_str("    <anomalie>\n");
            let _ = writeln!(o, "      <ligne>{}</ligne>", l.line_no);
            elem(&mut o, 6, "nir-per", &l.nir);
            elem(&mut o, 6, "nom-per", &l.nom);
            elem(&mut o, 6, "pn-per", &l.pn);
            elem(&mut o, 6, "dtd-interv", &l.dtd);
            elem(&mut o, 6, "dtf-interv", &l.dtf);
            elem(&mut o, 6, "code", &l.code);
            elem(&mut o, 6, "motif", &l.motif);
            o.push_str("    </anomalie>\n");
        }
        o.push_str("  </anomalies>\n");
        o.push_str("</anomalies-de-report>\n");
        o.into_bytes()
    }

    /// CSV for a French spreadsheet: a summary block, an empty row, the
    /// table of rejected lines; every row has [`CSV_HEADER`]`.len()` cells.
    pub fn csv(&self) -> Vec<u8> {
        let mut rows: Vec<Vec<String>> = vec![
            vec!["Rubrique".into(), "Valeur".into()],
            vec!["Anomalies de report".into(), self.stem.clone()],
            vec!["Fichier".into(), self.file_name.clone()],
            vec!["Bordereau (rf-borfact)".into(), self.rf_borfact.clone()],
            vec!["Prestataire".into(), self.provider.clone()],
            vec!["Caisse".into(), self.caisse_label()],
            vec!["Site (id-site)".into(), self.id_site.clone()],
            vec!["Prestation (rf-prstpap)".into(), self.rf_prstpap.clone()],
            vec!["Reçu le (heure de Paris)".into(), paris_fr(self.received_at)],
            vec!["Signalé le (heure de Paris)".into(), paris_fr(self.created_at)],
            vec!["Lignes rejetées".into(), self.lines.len().to_string()],
            vec![],
            CSV_HEADER.iter().map(|s| s.to_string()).collect(),
        ];
        for l in &self.lines {
            rows.push(vec![
                l.line_no.to_string(),
                l.nir.clone(),
                l.nom.clone(),
                l.pn.clone(),
                iso_to_fr(&l.dtd),
                iso_to_fr(&l.dtf),
                l.code.clone(),
                l.motif.clone(),
            ]);
        }
        sheet_csv(&rows, CSV_HEADER.len())
    }

    pub fn pdf(&self) -> Result<Vec<u8>> {
        let col = |title, weight, align, max_lines| Column {
            title,
            weight,
            align,
            max_lines,
        };
        let or_dash = |s: String| if s.trim().is_empty() { "—".to_string() } else { s };
        let n = self.lines.len();
        let sheet = Sheet {
            title: "Anomalies de report".into(),
            subtitle: format!(
                "Fichier de facturation {} — lignes rejetées par la chaîne de paiement après réception",
                self.file_name
            ),
            summary: vec![
                ("Fichier".into(), or_dash(self.file_name.clone())),
                ("Bordereau (rf-borfact)".into(), or_dash(self.rf_borfact.clone())),
                ("Prestataire".into(), or_dash(self.provider.clone())),
                ("Caisse".into(), or_dash(self.caisse_label())),
                ("Site (id-site)".into(), or_dash(self.id_site.clone())),
                ("Prestation (rf-prstpap)".into(), or_dash(self.rf_prstpap.clone())),
                (
                    "Reçu le".into(),
                    format!("{} (heure de Paris)", paris_fr(self.received_at)),
                ),
                (
                    "Signalé le".into(),
                    format!("{} (heure de Paris)", paris_fr(self.created_at)),
                ),
                ("Lignes rejetées".into(), n.to_string()),
            ],
            heading: format!("Lignes rejetées ({n})"),
            columns: vec![
                col("Ligne", 6.5, Align::Right, 1),
                col("NIR", 14.5, Align::Left, 1),
                col("Bénéficiaire", 18.0, Align::Left, 2),
                col("Période", 14.0, Align::Left, 2),
                col("Code", 9.0, Align::Left, 2),
                col("Motif", 38.0, Align::Left, 12),
            ],
            rows: self
                .lines
                .iter()
                .map(|l| {
                    vec![
                        l.line_no.to_string(),
                        l.nir.clone(),
                        format!("{} {}", l.nom, l.pn),
                        format!("du {}\nau {}", iso_to_fr(&l.dtd), iso_to_fr(&l.dtf)),
                        l.code.clone(),
                        l.motif.clone(),
                    ]
                })
                .collect(),
            totals: None,
            empty: "Aucune ligne.".into(),
            notes: vec![format!(
                "Ces {n} ligne{s} du fichier {f}, transmise{s} à la chaîne de paiement lors de sa réception, \
                 {ont} été rejetée{s} par elle ensuite, avec le code et le motif ci-dessus. « Ligne » est le rang \
                 de l'élément factprest dans le fichier.",
                s = if n > 1 { "s" } else { "" },
                ont = if n > 1 { "ont" } else { "a" },
                f = self.file_name
            )],
            footer: format!("Anomalies de report — {}", self.file_name),
            doc_title: format!("Anomalies de report — {}", self.file_name),
            created: self.created_at,
        };
        render_sheet(&sheet)
    }

    /// The e-mail to the provider's users (no person in it).
    pub fn mail(&self) -> crate::mail::Message {
        let n = self.lines.len();
        crate::mail::Message {
            dedup_key: format!("anomalies-report:{}", self.id),
            recipients: Vec::new(),
            subject: format!("PPAS : anomalies de report sur le fichier {}", self.file_name),
            body: format!(
                "Bonjour,\n\nLa chaîne de paiement a rejeté {n} ligne{s} du fichier {f} après sa réception.\n\n\
                 Le détail (rang de chaque ligne dans le fichier, code et motif du rejet) est disponible par SFTP \
                 dans le dossier /out/reports/ :\n  {stem}.pdf (à lire et imprimer)\n  {stem}.csv (tableur)\n  \
                 {stem}.xml (données)\n\n\
                 Ce message est envoyé automatiquement, merci de ne pas y répondre.\n",
                s = if n > 1 { "s" } else { "" },
                f = self.file_name,
                stem = self.stem
            ),
            secret: false,
        }
    }
}

/// A stored yyyymmdd as `YYYY-MM-DD`.
fn stored_date(v: i64) -> String {
    let mut b = Vec::with_capacity(10);
    crate::store::dates::put_text(&mut b, v);
    String::from_utf8_lossy(&b).into_owned()
}

fn iso_to_fr(s: &str) -> String {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.format("%d/%m/%Y").to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn paris_rfc3339(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn paris_fr(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).format("%d/%m/%Y %H:%M:%S").to_string()
}

fn elem(o: &mut String, indent: usize, name: &str, value: &str) {
    let _ = writeln!(o, "{:indent$}<{name}>{}</{name}>", "", xml_text(value));
}
