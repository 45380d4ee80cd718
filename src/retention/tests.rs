//! Each retention rule on both sides of its boundary (Paris days, fixed
//! clock, never a sleep), what is owed never removed, and a second run that
//! finds nothing more.
//!
//! Today is 25/11/2026 (Paris, winter: UTC+1) unless said otherwise: 12
//! months keep from 25/11/2025 (00:00 Paris = 2025-11-24T23:00:00Z), 6
//! months from 25/05/2026 (00:00 Paris = 2026-05-24T22:00:00Z, summer).

use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::*;
use crate::clock::Clock;
use crate::config::Config;

const TODAY: &str = "2026-11-25T10:00:00+01:00";
const TOMORROW: &str = "2026-11-26T00:00:00+01:00";
/// 12 months: the last second expired and the first second kept.
const OLD_12: &str = "2025-11-24T22:59:59Z";
const KEPT_12: &str = "2025-11-24T23:00:00Z";
/// 6 months, likewise (summer time then).
const OLD_6: &str = "2026-05-24T21:59:59Z";
const KEPT_6: &str = "2026-05-24T22:00:00Z";
/// Long ago.
const ANCIENT: &str = "2020-01-01T00:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Fx {
    _dir: tempfile::TempDir,
    cfg: Config,
    conn: Connection,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.paths.spool = dir.path().join("spool");
        cfg.paths.database = dir.path().join("spool/state/gateway.db");
        let conn = crate::store::open(&cfg.paths.database).unwrap();
        conn.execute_batch(
            "INSERT INTO providers VALUES ('saad21', 'S', '73282932000074', 's@saad21.example', '03 80 00 00 21', 'saad', 'x');
             INSERT INTO providers VALUES ('ergo62', 'E', '44306184100047', 'e@ergo62.example', '03 21 00 00 62', 'ergo', 'x');
             INSERT INTO orders (rf_commande, id_cram, code_convention, provider, nir_per, nom_per, pn_per, adresse,
                 telephone, ressources, dt_commande, state, imported_at, updated_at)
               VALUES ('C1', '04', '62739900', 'ergo62', '1541299999000', 'N', 'P', 'A', '03 21 00 00 01', 'PS',
                 '2025-09-01', 'clos', 'x', 'x');",
        )
        .unwrap();
        Fx { _dir: dir, cfg, conn }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.cfg.paths.spool.join(rel)
    }

    /// Writes a file and sets its modification time.
    fn file(&self, rel: &str, modified: &str) {
        self.file_with(rel, rel.as_bytes(), modified);
    }

    fn file_with(&self, rel: &str, bytes: &[u8], modified: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::from(at(modified))).unwrap();
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// The files of the spool under `rel`, sorted.
    fn files(&self, rel: &str) -> Vec<String> {
        fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                if e.file_type().unwrap().is_dir() {
                    walk(root, &e.path(), out);
                } else {
                    out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.cfg.paths.spool, &self.path(rel), &mut out);
        out.sort();
        out
    }

    fn purge(&mut self, now: &str) -> PurgeSummary {
        purge(&mut self.conn, &self.cfg, &Clock::Fixed(at(now))).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A received file row; `archive` is its spool-relative original.
    fn received(&self, id: i64, state: &str, done_at: Option<&str>, archive: Option<&str>, quarantined: Option<&str>) {
        self.conn
            .execute(
                "INSERT INTO received_files (id, provider, name, channel, sha256, size, received_at, work_path, state,
                     done_at, archive_path, quarantined_at)
                 VALUES (?1, 'saad21', ?2, 'sftp', 'ab', 1, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    format!("f{id}.xml"),
                    done_at.unwrap_or(ANCIENT),
                    format!("work/saad21/{id}-f{id}.xml"),
                    state,
                    done_at,
                    archive,
                    quarantined
                ],
            )
            .unwrap();
    }

    fn output(&self, file_id: i64, path: &str, done_at: Option<&str>) {
        self.conn
            .execute(
                "INSERT INTO outputs (file_id, kind, path, done_at) VALUES (?1, 'report-xml', ?2, ?3)",
                params![file_id, path, done_at],
            )
            .unwrap();
    }

    /// A document of order C1 (ergo62) at `path`, copied from `source`,
    /// whose kept source holds `bytes`.
    fn document(&self, kind: &str, path: &str, source: &str, bytes: &[u8], done_at: Option<&str>) {
        self.conn
            .execute(
                "INSERT INTO documents (kind, rf_commande, provider, sha256, size, source_path, path, imported_at, done_at)
                 VALUES (?1, 'C1', 'ergo62', ?2, ?3, ?4, ?5, 'x', ?6)",
                params![
                    kind,
                    hex::encode(Sha256::digest(bytes)),
                    bytes.len() as i64,
                    source,
                    path,
                    done_at
                ],
            )
            .unwrap();
    }

    fn history(&self, t: &str, provider: Option<&str>, comment: &str) {
        crate::history::record(
            &self.conn,
            at(t),
            &crate::history::Entry {
                kind: "processed",
                application: "aide-a-domicile",
                interface: "facturation",
                provider,
                comment: comment.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }

    fn mail(&self, key: &str, sent_at: Option<&str>, failed_at: Option<&str>) {
        self.conn
            .execute(
                "INSERT INTO mail_queue (dedup_key, created_at, recipients, subject, body, next_attempt_at, sent_at, failed_at)
                 VALUES (?1, ?2, 'a@x.example', 's', 'b', ?2, ?3, ?4)",
                params![key, ANCIENT, sent_at, failed_at],
            )
            .unwrap();
    }

    fn comments(&self) -> Vec<String> {
        self.conn
            .prepare("SELECT comment FROM history WHERE interface = 'facturation' ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

#[test]
fn limits_are_paris_days_and_zero_is_for_ever() {
    let today = clock_day(TODAY);
    let l = Limit::on(today, 12).unwrap();
    assert_eq!(l.keep_from, NaiveDate::from_ymd_opt(2025, 11, 25).unwrap());
    assert_eq!(l.before, at(KEPT_12));
    assert!(l.expired(at(OLD_12)) && !l.expired(at(KEPT_12)));
    let l = Limit::on(today, 6).unwrap();
    assert_eq!(l.before, at(KEPT_6), "midnight in summer time");
    assert!(Limit::on(today, 0).is_none());
    // The 31st counts back to the last day of a shorter month.
    let l = Limit::on(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), 1).unwrap();
    assert_eq!(l.keep_from, NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
    // The day of 25/11 in Paris starts at 23:00 UTC the day before.
    assert_eq!(clock_day(TOMORROW), NaiveDate::from_ymd_opt(2026, 11, 26).unwrap());
    assert_eq!(
        Limit::on(clock_day(TOMORROW), 12).unwrap().before,
        at("2025-11-25T23:00:00Z")
    );
}

fn clock_day(t: &str) -> NaiveDate {
    Clock::Fixed(at(t)).today()
}

#[test]
fn reports_go_12_months_after_their_recorded_publication() {
    let mut fx = Fx::new();
    fx.received(1, "done", Some(OLD_12), None, None);
    fx.received(2, "done", Some(KEPT_12), None, None);
    let old = "outbound/saad21/reports/f1.xml.report.xml";
    let kept = "outbound/saad21/reports/f2.xml.report.xml";
    fx.output(1, old, Some(OLD_12));
    fx.output(2, kept, Some(KEPT_12));
    // The record wins over the file's time, both ways.
    fx.file(old, "2026-11-20T00:00:00Z");
    fx.file(kept, ANCIENT);

    let s = fx.purge(TODAY);
    assert_eq!(s.outbound_files, 1, "{s}");
    assert!(!fx.exists(old) && fx.exists(kept));
    // The output stays recorded done: it is never written again.
    assert_eq!(fx.count("SELECT COUNT(*) FROM outputs WHERE done_at IS NOT NULL"), 2);
    assert!(fx.exists("outbound/saad21/reports"), "the folder stays");

    let s = fx.purge(TOMORROW);
    assert_eq!(s.outbound_files, 1);
    assert!(!fx.exists(kept));
}

#[test]
fn documents_by_their_record_and_other_files_by_their_time() {
    let mut fx = Fx::new();
    let (d_old, d_kept) = (
        "outbound/ergo62/documents/C1.evaluation.pdf",
        "outbound/ergo62/documents/C1.decision.pdf",
    );
    fx.document(
        "evaluation",
        d_old,
        "archive/caisse/evaluations/C1-a.pdf",
        b"a",
        Some(OLD_12),
    );
    fx.document(
        "decision",
        d_kept,
        "archive/caisse/decisions/C1-b.pdf",
        b"b",
        Some(KEPT_12),
    );
    fx.file(d_old, TODAY);
    fx.file(d_kept, ANCIENT);
    // Files without a record (payment statements, say): their time.
    let (b_old, b_kept) = (
        "outbound/saad21/bordereaux/2025/B-old.pdf",
        "outbound/saad21/bordereaux/2025/B-kept.pdf",
    );
    fx.file(b_old, OLD_12);
    fx.file(b_kept, KEPT_12);
    let lone = "outbound/saad21/bordereaux/2024/B-lone.csv";
    fx.file(lone, ANCIENT);

    let s = fx.purge(TODAY);
    assert_eq!(s.outbound_files, 3, "{s}");
    assert!(!fx.exists(d_old) && fx.exists(d_kept));
    assert!(!fx.exists(b_old) && fx.exists(b_kept));
    assert!(
        !fx.exists("outbound/saad21/bordereaux/2024"),
        "a sub-folder emptied is removed"
    );
    assert!(fx.exists("outbound/saad21/bordereaux/2025"));

    fx.purge(TOMORROW);
    assert!(!fx.exists(d_kept) && !fx.exists(b_kept));
    assert!(fx.exists("outbound/saad21/bordereaux"), "first-level folders stay");
    assert!(fx.exists("outbound/ergo62/documents"));
}

#[test]
fn archived_originals_go_12_months_after_the_file_was_done_and_the_rows_stay() {
    let mut fx = Fx::new();
    fx.received(1, "done", Some(OLD_12), Some("archive/saad21/2025-11/1-f1.xml"), None);
    fx.received(2, "done", Some(KEPT_12), Some("archive/saad21/2025-11/2-f2.xml"), None);
    fx.received(3, "done", Some(OLD_12), Some("archive/saad21/2025-10/3-f3.xml"), None);
    fx.file("archive/saad21/2025-11/1-f1.xml", TODAY);
    fx.file("archive/saad21/2025-11/2-f2.xml", ANCIENT);
    fx.file("archive/saad21/2025-10/3-f3.xml", ANCIENT);
    // A damaged row never sends the purge outside archive/.
    fx.received(4, "done", Some(OLD_12), Some("archive/../state/gateway.db"), None);

    let err = purge(&mut fx.conn, &fx.cfg, &Clock::Fixed(at(TODAY))).unwrap_err();
    assert!(format!("{err:#}").contains("is not under archive/"), "{err:#}");
    assert!(fx.path("state/gateway.db").exists());
    assert!(!fx.exists("archive/saad21/2025-11/1-f1.xml"));
    assert!(fx.exists("archive/saad21/2025-11/2-f2.xml"));
    assert!(
        !fx.exists("archive/saad21/2025-10"),
        "an emptied month folder is removed"
    );
    assert_eq!(fx.count("SELECT COUNT(*) FROM received_files"), 4, "every row stays");
    let removed: Vec<(i64, Option<String>, String)> = fx
        .conn
        .prepare("SELECT id, archive_removed_at, archive_path FROM received_files ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(removed[0].1.as_deref(), Some("2026-11-25T09:00:00Z"));
    assert_eq!(
        removed[0].2, "archive/saad21/2025-11/1-f1.xml",
        "the path stays recorded"
    );
    assert_eq!(
        (removed[1].1.as_deref(), removed[2].1.is_some(), removed[3].1.as_deref()),
        (None, true, None)
    );

    fx.conn.execute("DELETE FROM received_files WHERE id = 4", []).unwrap();
    let s = fx.purge(TOMORROW);
    assert_eq!(s.archived_originals, 1);
    assert!(!fx.exists("archive/saad21/2025-11"));
}

#[test]
fn the_caisse_files_go_12_months_after_their_import() {
    let mut fx = Fx::new();
    // Named by the drop folder's stamp (UTC), whatever their own time.
    fx.file("archive/caisse/beneficiaries/20251124T225959-b.csv", TODAY);
    fx.file("archive/caisse/beneficiaries/20251124T230000-b.csv", ANCIENT);
    // A document's kept source: its time (written at the import).
    fx.document(
        "evaluation",
        "outbound/ergo62/documents/C1.evaluation.pdf",
        "archive/caisse/evaluations/C1-a.pdf",
        b"a",
        Some(OLD_12),
    );
    fx.file("archive/caisse/evaluations/C1-a.pdf", OLD_12);
    fx.file("archive/caisse/evaluations/C1-c.pdf", KEPT_12);

    let s = fx.purge(TODAY);
    assert_eq!(s.caisse_files, 2, "{s}");
    assert_eq!(
        fx.files("archive/caisse"),
        [
            "archive/caisse/beneficiaries/20251124T230000-b.csv",
            "archive/caisse/evaluations/C1-c.pdf"
        ]
    );
    fx.purge(TOMORROW);
    assert!(fx.files("archive/caisse").is_empty());
}

#[test]
fn nothing_owed_is_ever_removed() {
    let mut fx = Fx::new();
    // Outputs not recorded done (a crash between the write and the record).
    fx.received(1, "decided", None, None, None);
    fx.output(1, "outbound/saad21/reports/f1.xml.report.xml", None);
    fx.file("outbound/saad21/reports/f1.xml.report.xml", ANCIENT);
    // A received file not done, and a quarantined one: their copies.
    fx.received(2, "received", None, None, None);
    fx.file("work/saad21/2-f2.xml", ANCIENT);
    fx.received(3, "decided", None, None, Some(ANCIENT));
    fx.file("quarantine/saad21/3-f3.xml", ANCIENT);
    // A document not published yet, its file already written, and its source.
    fx.document(
        "decision",
        "outbound/ergo62/documents/C1.decision.pdf",
        "archive/caisse/decisions/C1-d.pdf",
        b"decision",
        None,
    );
    fx.file_with("outbound/ergo62/documents/C1.decision.pdf", b"decision", ANCIENT);
    fx.file_with("archive/caisse/decisions/C1-d.pdf", b"decision", ANCIENT);
    // Unsent e-mails, pending and failed.
    fx.mail("pending", None, None);
    fx.mail("failed", None, Some(ANCIENT));
    // Listings and a temporary file at the root of a provider's folder.
    for f in [
        "commandes.csv",
        "commandes.xml",
        "beneficiaires.csv",
        "beneficiaires.xml",
        "historique.csv",
        ".ppas-tmp-1-2-x.pdf",
    ] {
        fx.file(&format!("outbound/ergo62/{f}"), ANCIENT);
    }
    fx.file("outbound/ergo62/documents/.ppas-tmp-3-4-C1.pdf", ANCIENT);

    let s = fx.purge(TODAY);
    assert_eq!(s.files(), 0, "{s}");
    assert_eq!(s.mails, 0);
    for f in [
        "outbound/saad21/reports/f1.xml.report.xml",
        "work/saad21/2-f2.xml",
        "quarantine/saad21/3-f3.xml",
        "archive/caisse/decisions/C1-d.pdf",
        "outbound/ergo62/commandes.csv",
        "outbound/ergo62/beneficiaires.xml",
        "outbound/ergo62/.ppas-tmp-1-2-x.pdf",
        "outbound/ergo62/documents/.ppas-tmp-3-4-C1.pdf",
    ] {
        assert!(fx.exists(f), "{f} was removed");
    }
    assert_eq!(fx.count("SELECT COUNT(*) FROM mail_queue"), 2);
    // The publication after the purge published the document owed.
    assert_eq!(s.published.documents, 1);
    assert!(fx.exists("outbound/ergo62/documents/C1.decision.pdf"));
}

#[test]
fn zero_keeps_everything_for_ever() {
    let mut fx = Fx::new();
    fx.cfg.retention = crate::config::Retention {
        outbound_months: 0,
        history_months: 0,
        archive_months: 0,
        mail_months: 0,
    };
    fx.received(1, "done", Some(ANCIENT), Some("archive/saad21/2020-01/1-f1.xml"), None);
    fx.output(1, "outbound/saad21/reports/f1.xml.report.xml", Some(ANCIENT));
    fx.file("outbound/saad21/reports/f1.xml.report.xml", ANCIENT);
    fx.file("archive/saad21/2020-01/1-f1.xml", ANCIENT);
    fx.file("archive/caisse/orders/20200101T000000-o.csv", ANCIENT);
    fx.history(ANCIENT, Some("saad21"), "ancient");
    fx.mail("sent", Some(ANCIENT), None);
    let s = fx.purge(TODAY);
    assert_eq!((s.files(), s.history, s.mails), (0, 0, 0), "{s}");
    assert_eq!(fx.comments(), ["ancient"]);
    assert_eq!(fx.count("SELECT COUNT(*) FROM mail_queue WHERE body = 'b'"), 1);
    assert_eq!(s.to_string().matches("conservé sans limite").count(), 4, "{s}");
}

mod records;

#[test]
fn statements_and_reports_of_anomalies_by_their_record() {
    let mut fx = Fx::new();
    fx.received(3, "done", Some(OLD_12), None, None);
    fx.conn
        .execute_batch(&format!(
            "INSERT INTO statements (id, id_cram, code_convention, rf_paiement, provider, dt_paiement, due_at,
                 changed_at, created_at)
               VALUES (1, '03', '21999000', 'P1', 'saad21', '2025-11-01', 'x', 'x', 'x');
             INSERT INTO statement_editions VALUES (1, 1, 1, 'saad21', 'bordereau-21999000-P1', 1, 100, '{OLD_12}');
             INSERT INTO statement_editions VALUES (1, 2, 1, 'saad21', 'bordereau-21999000-P1.2', 1, 100, '{KEPT_12}');
             INSERT INTO anomaly_reports (id, file_id, provider, rf_borfact, occurrence, stem, source, created_at, done_at)
               VALUES (1, 3, 'saad21', 'F3', 1, 'F3.anomalies-report.1', 'r.csv', '{OLD_12}', '{OLD_12}'),
                      (2, 3, 'saad21', 'F3', 2, 'F3.anomalies-report.2', 'r.csv', '{KEPT_12}', NULL);"
        ))
        .unwrap();
    let old = [
        "outbound/saad21/bordereaux/bordereau-21999000-P1.pdf",
        "outbound/saad21/reports/F3.anomalies-report.1.csv",
    ];
    let kept = [
        "outbound/saad21/bordereaux/bordereau-21999000-P1.2.xml",
        // Written, its record not yet done: owed, never removed.
        "outbound/saad21/reports/F3.anomalies-report.2.pdf",
    ];
    // The record wins over the file's time, both ways.
    for f in old {
        fx.file(f, "2026-11-20T00:00:00Z");
    }
    for f in kept {
        fx.file(f, ANCIENT);
    }
    let s = fx.purge(TODAY);
    assert_eq!(s.outbound_files, 2, "{s}");
    assert!(old.iter().all(|f| !fx.exists(f)));
    assert!(kept.iter().all(|f| fx.exists(f)));
}
