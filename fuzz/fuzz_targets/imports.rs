//! libFuzzer target: arbitrary bytes through the caisse's CSV imports
//! (`import providers|beneficiaries|orders|payments|report-anomalies`,
//! spec §5), on a database that
//! already holds providers, so that orders and plans can name them.
//!
//! The first byte picks the kind, the rest is the file. An import must
//! never panic, and a refused file must leave the database as it was
//! (every table's row count and a digest of its contents unchanged): the
//! import is one transaction, applied whole or not at all.

#![no_main]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use ppas_gateway::config::Config;
use ppas_gateway::import::{import_file, Kind};
use rusqlite::Connection;

const KINDS: [Kind; 5] = [
    Kind::Providers,
    Kind::Beneficiaries,
    Kind::Orders,
    Kind::Payments,
    Kind::ReportAnomalies,
];

const PROVIDERS: &[u8] = b"provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
ergo62;Cabinet Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n\
saad21;Aide Dijon;73282932000074;contact@saad21.example;03 80 00 00 21;saad;03;21999000;21999000\n";

/// Every table's name, row count and a digest of its rows (order free).
fn digest(conn: &Connection) -> Vec<(String, usize, u64)> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("table names");
    names
        .into_iter()
        .map(|t| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\"")).expect("select");
            let cols = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let mut row = String::new();
                    for i in 0..cols {
                        row.push_str(&format!("{:?}|", r.get_ref(i)?));
                    }
                    Ok(row)
                })
                .and_then(|m| m.collect())
                .expect("rows");
            rows.sort();
            let mut h = DefaultHasher::new();
            rows.hash(&mut h);
            (t, rows.len(), h.finish())
        })
        .collect()
}

/// A database with the schema and the seed providers, made once: each input
/// starts from a copy of it (making the schema for every input would spend
/// most of the time in migrations).
fn template() -> &'static (tempfile::TempDir, PathBuf) {
    static T: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (cfg, now) = (config(dir.path()), now());
        let path = cfg.paths.database.clone();
        let mut conn = ppas_gateway::store::open(&path).expect("the schema");
        import_file(&mut conn, &cfg, Kind::Providers, "providers.csv", PROVIDERS, now).expect("the seed providers");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
        drop(conn);
        (dir, path)
    })
}

fn config(root: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.paths.spool = root.join("spool");
    cfg.paths.database = root.join("spool/state/gateway.db");
    cfg
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).single().expect("an instant")
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, bytes)) = data.split_first() else {
        return;
    };
    let kind = KINDS[k as usize % KINDS.len()];
    let dir = tempfile::tempdir().expect("a temporary folder");
    let cfg = config(dir.path());
    std::fs::create_dir_all(cfg.paths.database.parent().expect("a folder")).expect("state folder");
    std::fs::copy(&template().1, &cfg.paths.database).expect("a copy of the template");
    let mut conn = ppas_gateway::store::open(&cfg.paths.database).expect("the copy opens");
    let before = digest(&conn);
    match import_file(&mut conn, &cfg, kind, "fuzz.csv", bytes, now()) {
        Ok(summary) => {
            assert_eq!(summary.kind, kind);
            assert!(summary.new + summary.updated <= summary.rows, "{summary:?}");
        }
        Err(e) => {
            // The message is what the operator reads: it must render.
            let _ = e.to_string();
            assert_eq!(digest(&conn), before, "a refused {kind:?} file changed the database: {e}");
        }
    }
});
