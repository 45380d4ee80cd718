//! `ppas-gateway import KIND FILE`, run as the caisse IT team runs it: a
//! temporary configuration, the real database, fixture CSV files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::Connection;

use crate::support;

/// A gateway installation in a temporary folder.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Gateway {
    pub fn new() -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = dir.path().join("spool");
        let config = dir.path().join("ppas-gateway.toml");
        let text = format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n",
            spool.display().to_string(),
            spool.join("state/gateway.db").display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        Gateway { dir, config }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("spool/state/gateway.db")
    }

    pub fn db(&self) -> Connection {
        Connection::open(self.db_path()).expect("open database")
    }

    /// Runs the binary with this configuration and a fixed clock.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(support::bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path())
            .env("PPAS_GATEWAY_NOW", "2026-11-02T10:00:00+01:00")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ppas-gateway");
        {
            let mut input = child.stdin.take().expect("stdin");
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).expect("write stdin");
            }
        }
        child.wait_with_output().expect("wait ppas-gateway")
    }

    pub fn import(&self, kind: &str, file: &Path) -> Output {
        self.run(&["import", kind, file.to_str().expect("utf-8 path")], None)
    }

    /// Imports the fixture providers (and checks it worked).
    pub fn with_providers(self) -> Gateway {
        let out = self.import("providers", &fixture("providers.csv"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        self
    }
}

pub fn fixture(name: &str) -> PathBuf {
    support::repo().join("tests/fixtures/import").join(name)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every row of a table, as text, to compare states.
fn dump(c: &Connection, table: &str) -> Vec<String> {
    let mut s = c.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2, 3")).unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        let mut v = Vec::new();
        for i in 0..n {
            v.push(format!("{:?}", r.get_ref(i)?));
        }
        Ok(v.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn state(g: &Gateway) -> Vec<Vec<String>> {
    let c = g.db();
    ["providers", "conventions", "plans", "history"]
        .iter()
        .map(|t| dump(&c, t))
        .collect()
}

#[test]
fn providers_then_beneficiaries_apply_and_upsert() {
    let g = Gateway::new();
    let out = g.import("providers", &fixture("providers.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "providers: 4 rows applied (4 new, 0 updated)\n");

    let out = g.import("beneficiaries", &fixture("beneficiaries.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "beneficiaries: 3 rows applied (3 new, 0 updated)\n");

    // Applying the same files again updates on the keys, adds nothing.
    let out = g.import("providers", &fixture("providers.csv"));
    assert_eq!(text(&out.stdout), "providers: 4 rows applied (0 new, 4 updated)\n");
    let out = g.import("beneficiaries", &fixture("beneficiaries.csv"));
    assert_eq!(text(&out.stdout), "beneficiaries: 3 rows applied (0 new, 3 updated)\n");

    let c = g.db();
    let n: i64 = c.query_row("SELECT COUNT(*) FROM providers", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 3);
    let raison: String = c
        .query_row(
            "SELECT raison_sociale FROM providers WHERE provider='saad21'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raison, "Aide à Domicile de Côte-d'Or");
    let (total, used, debut, fin): (i64, i64, String, String) = c
        .query_row(
            "SELECT mt_total, mt_consomme, dt_debut, dt_fin FROM plans WHERE nir_per='1541299999000'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (total, used, debut.as_str(), fin.as_str()),
        (12050, 1025, "2026-01-01", "2026-12-31")
    );
    let corsica: i64 = c
        .query_row("SELECT mt_total FROM plans WHERE nir_per='154122A999002'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(corsica, 6050);

    let h: Vec<(String, String, String)> = c
        .prepare("SELECT kind, interface, comment FROM history ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(h.len(), 4);
    assert!(h.iter().all(|(k, i, _)| k == "import" && i == "referentiel"), "{h:?}");
    assert!(
        h[1].2.contains("beneficiaries.csv") && h[1].2.contains("3 new"),
        "{h:?}"
    );
}

#[test]
fn a_bad_providers_file_names_every_row_and_changes_nothing() {
    let g = Gateway::new().with_providers();
    let before = state(&g);
    let out = g.import("providers", &fixture("providers-bad.csv"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(out.stdout.is_empty());
    for needle in [
        "providers file providers-bad.csv: ",
        "nothing applied",
        "line 3: column provider:",
        "line 3: column siret: \"73282932000075\" fails the SIRET check digit (Luhn)",
        "line 3: column email:",
        "line 3: column telephone: \"0380000022\" must be written nn nn nn nn nn",
        "line 3: column type: \"aide\" must be saad or ergo",
        "line 3: column id-cram: \"99\" is not a known caisse id-cram",
        "line 4: has 8 cells, the header has 9",
        "line 5: column id-site: site 21999000 is also given to provider saad21",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert_eq!(state(&g), before, "the database is unchanged");
}

#[test]
fn a_bad_beneficiaries_file_names_every_row_and_changes_nothing() {
    let g = Gateway::new().with_providers();
    let out = g.import("beneficiaries", &fixture("beneficiaries.csv"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let before = state(&g);
    let out = g.import("beneficiaries", &fixture("beneficiaries-bad.csv"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for needle in [
        "beneficiaries file beneficiaries-bad.csv: 7 problems found, nothing applied",
        "line 3: column id-site: site 62739900 has no validated convention with caisse 03",
        "line 4: column nir-per: must be 13 characters",
        "line 4: column rf-prstpap: \"PPP999\" is not a known prestation",
        "line 4: column dt-debut: \"31/02/2026\" is not a real date",
        "line 4: column mt-total: \"1,234\" has more than 2 decimals",
        "line 5: column dt-fin: 2026-01-01 is before dt-debut 2026-12-31",
        "line 5: column mt-consomme: 50.00 is more than mt-total 45.00",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains("1541299999000") && !err.contains("DUPONT"),
        "no NIR nor name in:\n{err}"
    );
    assert_eq!(state(&g), before, "the database is unchanged");
}

#[test]
fn beneficiaries_need_the_provider_sites_first() {
    let g = Gateway::new();
    let out = g.import("beneficiaries", &fixture("beneficiaries.csv"));
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 2: column id-site: site 21999000 has no validated convention"),
        "{err}"
    );
    assert!(err.contains("line 4: column id-site: site 59999000"), "{err}");
}

#[test]
fn unknown_kinds_wrong_headers_and_missing_files_exit_2() {
    let g = Gateway::new();
    let out = g.import("suppliers", &fixture("providers.csv"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown import kind \"suppliers\""),
        "{}",
        text(&out.stderr)
    );
    let out = g.import("payments", &fixture("providers.csv"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 1: column provider: unknown column"),
        "{}",
        text(&out.stderr)
    );
    let out = g.import("providers", &g.dir.path().join("absent.csv"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("absent.csv"), "{}", text(&out.stderr));
}
