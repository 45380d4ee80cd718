//! A habitat fixture for the unit tests of the imports, the publisher, the
//! order listing and the relances: a spool in a temporary folder, an
//! in-memory database with two ergothérapeutes and one home-care provider.

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection};

use crate::config::Config;
use crate::import::{import_file, ImportError, ImportSummary, Kind};

pub const O_HEADER: &str =
    "rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;telephone;ressources;dt-commande\n";

pub const P_HEADER: &str =
    "rf-paiement;dt-paiement;id-cram;code-convention;rf-facture;nir-per;nom-per;pn-per;rf-prstpap;dtd-interv;dtf-interv;nb-quant;mt-paye\n";

pub const RA_HEADER: &str = "rf-facture;nir-per;dtd-interv;dtf-interv;code;motif\n";

/// ergo62: conventions 04/62739900 and 03/62000003, one user; ergo59:
/// 04/59111100, no user (its own address receives the mails); saad21:
/// home care, 03/21999000.
const PROVIDERS: &str = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
ergo62;Ergo Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n\
ergo62;Ergo Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;03;62000003;62000003\n\
ergo59;Ergo Flandre;35600000049837;cabinet@ergo59.example;03 20 00 00 59;ergo;04;59111100;59111100\n\
saad21;Aide Dijon;73282932000074;contact@saad21.example;03 80 00 00 21;saad;03;21999000;21999000\n";

/// 2026-11-02 10:00 in Paris.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

/// A small file that passes the PDF checks; `tag` makes its bytes differ.
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {tag}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").into_bytes()
}

pub struct Kit {
    /// Holds the spool's folder until the end of the test.
    pub _dir: tempfile::TempDir,
    pub cfg: Config,
    pub conn: Connection,
}

impl Kit {
    pub fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.paths.spool = dir.path().join("spool");
        cfg.paths.database = dir.path().join("spool/state/gateway.db");
        let mut k = Kit {
            _dir: dir,
            cfg,
            conn: crate::store::open_in_memory().unwrap(),
        };
        k.import(Kind::Providers, "providers.csv", PROVIDERS.as_bytes())
            .unwrap();
        // The home-care provider's plan listing, owed since the import, is
        // not what these tests are about: as if already published.
        k.conn
            .execute("UPDATE listings SET written = wanted WHERE kind = 'beneficiaires'", [])
            .unwrap();
        k.conn
            .execute(
                "INSERT INTO users (login, provider, email, admin, created_at, updated_at)
                 VALUES ('alice', 'ergo62', 'alice@ergo62.example', 1, ?1, ?1)",
                ["2026-01-01T00:00:00Z"],
            )
            .unwrap();
        k
    }

    pub fn import(&mut self, kind: Kind, name: &str, bytes: &[u8]) -> Result<ImportSummary, ImportError> {
        self.import_at(kind, name, bytes, now())
    }

    pub fn import_at(
        &mut self,
        kind: Kind,
        name: &str,
        bytes: &[u8],
        at: DateTime<Utc>,
    ) -> Result<ImportSummary, ImportError> {
        import_file(&mut self.conn, &self.cfg, kind, name, bytes, at)
    }

    /// Imports `rows` (without header) as an orders file; must apply.
    pub fn orders(&mut self, rows: &str) -> ImportSummary {
        let text = format!("{O_HEADER}{rows}");
        self.import(Kind::Orders, "commandes.csv", text.as_bytes()).unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.cfg.paths.spool.join(rel)
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn text(&self, sql: &str) -> String {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn state(&self, rf: &str) -> String {
        self.conn
            .query_row("SELECT state FROM orders WHERE rf_commande = ?1", [rf], |r| r.get(0))
            .unwrap()
    }

    /// `(wanted, written)` of a provider's `commandes` listing.
    pub fn listing(&self, provider: &str) -> (i64, i64) {
        self.conn
            .query_row(
                "SELECT wanted, written FROM listings WHERE provider = ?1 AND kind = 'commandes'",
                [provider],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or((0, 0))
    }

    /// What the billing pipeline records for a billing file `name` of
    /// saad21 (site 21999000, caisse 03, PPP100) whose lines `lines`
    /// (NIR, start, end, line index) were transmitted; returns its id.
    pub fn billing_file(&self, name: &str, lines: &[(&str, &str, &str, i64)]) -> i64 {
        let c = &self.conn;
        let rf = name.trim_end_matches(".xml");
        c.execute(
            "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state, kind,
                                         verdict, lines, accepted_lines, accepted_hours, rf_borfact, log_fact, id_cram,
                                         id_site, rf_prstpap, decided_at)
             VALUES ('saad21', ?1, 'sftp', ?2, 1, '2026-10-20T08:00:00Z', ?3, 'done', 'billing',
                     'partial', ?4, ?5, 0, ?6, 'x', '03', '21999000', 'PPP100', '2026-10-20T08:00:01Z')",
            params![
                name,
                format!("sha-{name}"),
                format!("work/saad21/{name}"),
                lines.len() as i64 + 1,
                lines.len() as i64,
                rf
            ],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        let mut ids = Vec::new();
        for (nir, dtd, dtf, no) in lines {
            let int = |d: &str| d.replace('-', "").parse::<i64>().unwrap();
            c.execute(
                "INSERT INTO accepted_lines (file_id, line_no, plan_id, id_cram, nir_per, nom_per, pn_per, rf_prstpap,
                                             id_prest, dtd, dtf, nb_quant, mt_tu, mt_total, bo_regul, amount_e4)
                 VALUES (?1, ?2, NULL, '03', ?3, 'DUPONT', 'Jean', 'PPP100', '21999000', ?4, ?5, 1000, 100, 0, 'F', 100000)",
                params![id, no, nir, int(dtd), int(dtf)],
            )
            .unwrap();
            ids.push(c.last_insert_rowid());
        }
        c.execute(
            "UPDATE received_files SET lines_from = ?2, lines_to = ?3 WHERE id = ?1",
            params![id, ids.first().copied().unwrap_or(1), ids.last().copied().unwrap_or(0)],
        )
        .unwrap();
        id
    }

    /// What the attestation pipeline does for an accepted attestation of
    /// `rf` (statut T or S), from a received file named `file`, item `item`.
    pub fn attest(&self, rf: &str, statut: &str, file: &str, item: i64) {
        let c = &self.conn;
        let provider: String = c
            .query_row("SELECT provider FROM orders WHERE rf_commande = ?1", [rf], |r| r.get(0))
            .unwrap();
        let id: i64 = match c.query_row("SELECT id FROM received_files WHERE name = ?1", [file], |r| r.get(0)) {
            Ok(id) => id,
            Err(_) => {
                c.execute(
                    "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state, kind)
                     VALUES (?1, ?2, 'sftp', 'x', 1, '2026-10-20T08:00:00Z', ?3, 'done', 'attestations')",
                    params![provider, file, format!("work/{provider}/{file}")],
                )
                .unwrap();
                c.last_insert_rowid()
            }
        };
        let (state, motif) = if statut == "T" {
            ("transmise", None)
        } else {
            ("sans_suite", Some("REFUS"))
        };
        c.execute(
            "INSERT INTO attestations (file_id, item, rf_commande, statut, dt_visite, motif, transmitted_at)
             VALUES (?1, ?2, ?3, ?4, '2026-10-15', ?5, '2026-10-20T08:00:00Z')",
            params![id, item, rf, statut, motif],
        )
        .unwrap();
        c.execute(
            "UPDATE orders SET state = ?2, transmitted_at = '2026-10-20T08:00:00Z',
                    closed_at = CASE WHEN ?2 = 'sans_suite' THEN '2026-10-20T08:00:00Z' ELSE closed_at END
             WHERE rf_commande = ?1",
            params![rf, state],
        )
        .unwrap();
        crate::habitat::mark_listing(c, &provider, crate::habitat::Listing::Commandes).unwrap();
    }
}
