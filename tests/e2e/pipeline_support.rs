//! Builders for the pipeline and crash tests: a gateway installation in a
//! temporary folder (configuration, reference data), billing files of any
//! shape, and ways to look at the spool and the database from outside.
//!
//! The reference data is one fixed cast, so that each test reads as a
//! story about known providers and beneficiaries:
//!
//! | provider | caisse | site(s)                 |
//! |----------|--------|-------------------------|
//! | `saadA`  | 03     | 21100001, 21100002      |
//! | `saadB`  | 03     | 21200001                |
//! | `saadC`  | 04     | 59300001 (none with 03) |
//!
//! and the plans of [`PLANS`] (caisse 03).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::NaiveDate;
use rusqlite::Connection;

use crate::support;

mod daemon;
mod read;

pub use daemon::{wait_for, Daemon};
pub use read::*;

/// The clock of every run (a Friday; lines are billed for earlier months).
pub const NOW: &str = "2026-11-20T10:00:00+01:00";

pub const SITE_A: &str = "21100001";
pub const SITE_A2: &str = "21100002";
pub const SITE_B: &str = "21200001";
pub const SITE_C: &str = "59300001";

/// NIRs of the cast (all fictitious).
pub const NIR_A1: &str = "1540321000001";
pub const NIR_A2: &str = "2600321000002";
pub const NIR_A3: &str = "1700321000003";
pub const NIR_A5: &str = "180032B000006";
pub const NIR_B1: &str = "1520321000005";
/// A NIR with no plan anywhere.
pub const NIR_NONE: &str = "1999999999999";

/// (site, nir, nom, prénom, prestation, début, fin, total, consommé).
pub type Plan = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

pub const PLANS: &[Plan] = &[
    (
        SITE_A,
        NIR_A1,
        "DUPONT",
        "Jean",
        "PPP100",
        "2026-01-01",
        "2026-12-31",
        "200",
        "0",
    ),
    (
        SITE_A,
        NIR_A1,
        "DUPONT",
        "Jean",
        "PPP119",
        "2026-01-01",
        "2026-12-31",
        "300",
        "0",
    ),
    // A small budget, already partly used: 16 hours left.
    (
        SITE_A,
        NIR_A2,
        "MARTIN",
        "Anne",
        "PPP100",
        "2026-01-01",
        "2026-12-31",
        "20",
        "4",
    ),
    // First half-year only.
    (
        SITE_A,
        NIR_A3,
        "LEROY",
        "Paul",
        "PPP100",
        "2026-01-01",
        "2026-06-30",
        "100",
        "0",
    ),
    (
        SITE_A2,
        NIR_A5,
        "ORSONI",
        "Marie",
        "PPP100",
        "2026-01-01",
        "2026-12-31",
        "200",
        "0",
    ),
    // saadB's beneficiary.
    (
        SITE_B,
        NIR_B1,
        "BERNARD",
        "Luc",
        "PPP100",
        "2026-01-01",
        "2026-12-31",
        "200",
        "0",
    ),
];

/// Every NIR the tests use (to prove none reaches the logs).
pub const ALL_NIRS: &[&str] = &[NIR_A1, NIR_A2, NIR_A3, NIR_A5, NIR_B1, NIR_NONE];

/// A SIRET passing the Luhn check, derived from `n`.
pub fn siret(n: u32) -> String {
    let base = format!("{:013}", 7328293200000u64 + n as u64 * 10);
    for check in 0..10 {
        let s = format!("{base}{check}");
        let sum: u32 = s
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = (b - b'0') as u32;
                if i % 2 == 1 {
                    let x = d * 2;
                    if x > 9 {
                        x - 9
                    } else {
                        x
                    }
                } else {
                    d
                }
            })
            .sum();
        if sum % 10 == 0 {
            return s;
        }
    }
    unreachable!("one check digit always fits")
}

/// The providers CSV of the cast.
pub fn providers_csv() -> String {
    let mut s = String::from("provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n");
    let rows = [
        (
            "saadA",
            "Aide à Domicile A",
            1,
            "a@saada.example",
            "03 80 00 00 01",
            "03",
            "C03A1",
            SITE_A,
        ),
        (
            "saadA",
            "Aide à Domicile A",
            1,
            "a@saada.example",
            "03 80 00 00 01",
            "03",
            "C03A2",
            SITE_A2,
        ),
        (
            "saadB",
            "Services B",
            2,
            "b@saadb.example",
            "03 80 00 00 02",
            "03",
            "C03B1",
            SITE_B,
        ),
        (
            "saadC",
            "Nord Services C",
            3,
            "c@saadc.example",
            "03 20 00 00 03",
            "04",
            "C04C1",
            SITE_C,
        ),
    ];
    for (p, r, n, e, t, c, code, site) in rows {
        writeln!(s, "{p};{r};{};{e};{t};saad;{c};{code};{site}", siret(n)).unwrap();
    }
    s
}

/// The beneficiaries CSV of the cast.
pub fn beneficiaries_csv() -> String {
    let mut s =
        String::from("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n");
    for (site, nir, nom, pn, prest, d, f, total, used) in PLANS {
        writeln!(s, "03;{site};{nir};{nom};{pn};{prest};{d};{f};{total};{used}").unwrap();
    }
    s
}

/// One `factprest` line. Text fields are written as given (numbers too),
/// so a test can write anything the schema allows or not.
#[derive(Debug, Clone)]
pub struct BLine {
    pub nir: String,
    pub nom: String,
    pub pn: String,
    pub prest: String,
    pub id_prest: String,
    pub dtd: String,
    pub dtf: String,
    pub nb_quant: String,
    pub mt_tu: String,
    pub mt_total: String,
    pub bo_regul: String,
}

impl BLine {
    /// A valid PPP100 line for `nir` at `site`, `hours` over [dtd, dtf].
    pub fn new(nir: &str, site: &str, dtd: &str, dtf: &str, hours: &str) -> BLine {
        BLine {
            nir: nir.into(),
            nom: "NOM".into(),
            pn: "Prenom".into(),
            prest: "PPP100".into(),
            id_prest: site.into(),
            dtd: dtd.into(),
            dtf: dtf.into(),
            nb_quant: hours.into(),
            mt_tu: "1".into(),
            mt_total: "0".into(),
            bo_regul: "F".into(),
        }
    }

    /// The calendar month `m` of 2026.
    pub fn month(nir: &str, site: &str, m: u32, hours: &str) -> BLine {
        let first = NaiveDate::from_ymd_opt(2026, m, 1).expect("month of 2026");
        let next = if m == 12 {
            NaiveDate::from_ymd_opt(2027, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(2026, m + 1, 1)
        }
        .expect("next month");
        let last = next.pred_opt().expect("day before");
        BLine::new(nir, site, &first.to_string(), &last.to_string(), hours)
    }

    pub fn prest(mut self, p: &str) -> BLine {
        self.prest = p.into();
        self
    }

    pub fn regul(mut self) -> BLine {
        self.bo_regul = "V".into();
        self
    }

    pub fn id_prest(mut self, site: &str) -> BLine {
        self.id_prest = site.into();
        self
    }
}

/// A billing file (`factbord`): header, lines, footer computed unless overridden.
#[derive(Debug, Clone)]
pub struct Bill {
    pub id_cram: String,
    pub id_site: String,
    pub prest: String,
    /// The JJMMAA of the name (and of `rf-borfact`).
    pub day: NaiveDate,
    pub log_fact: String,
    pub lines: Vec<BLine>,
    /// Replaces the computed `nb-ligbor` (to make F08).
    pub nb_ligbor: Option<String>,
}

impl Bill {
    /// A PPP100 file of caisse 03 for `site`, named after day `dd` of November 2026.
    pub fn new(site: &str, dd: u32) -> Bill {
        Bill::dated(
            site,
            NaiveDate::from_ymd_opt(2026, 11, dd).expect("a day of November 2026"),
        )
    }

    pub fn dated(site: &str, day: NaiveDate) -> Bill {
        Bill {
            id_cram: "03".into(),
            id_site: site.into(),
            prest: "PPP100".into(),
            day,
            log_fact: "logiciel 1.0".into(),
            lines: Vec::new(),
            nb_ligbor: None,
        }
    }

    pub fn cram(mut self, c: &str) -> Bill {
        self.id_cram = c.into();
        self
    }

    pub fn prest(mut self, p: &str) -> Bill {
        self.prest = p.into();
        self
    }

    pub fn line(mut self, l: BLine) -> Bill {
        self.lines.push(l);
        self
    }

    pub fn lines(mut self, ls: impl IntoIterator<Item = BLine>) -> Bill {
        self.lines.extend(ls);
        self
    }

    /// `rf-borfact`: `<id-cram>_<JJMMAA>_<code>_<id-site>`.
    pub fn rf_borfact(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.id_cram,
            self.day.format("%d%m%y"),
            self.prest.strip_prefix("PPP").unwrap_or(&self.prest),
            self.id_site
        )
    }

    pub fn name(&self) -> String {
        format!("{}.xml", self.rf_borfact())
    }

    pub fn xml(&self) -> String {
        let mut s = String::with_capacity(300 + self.lines.len() * 400);
        s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<factbord>\n");
        writeln!(s, " <rf-borfact>{}</rf-borfact>", self.rf_borfact()).unwrap();
        writeln!(s, " <log-fact>{}</log-fact>", self.log_fact).unwrap();
        writeln!(s, " <id-cram>{}</id-cram>", self.id_cram).unwrap();
        writeln!(s, " <id-site>{}</id-site>", self.id_site).unwrap();
        writeln!(s, " <rf-prstpap>{}</rf-prstpap>", self.prest).unwrap();
        let (mut hours, mut total) = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
        for l in &self.lines {
            hours += l.nb_quant.parse::<rust_decimal::Decimal>().unwrap_or_default();
            total += l.mt_total.parse::<rust_decimal::Decimal>().unwrap_or_default();
            write!(
                s,
                " <factprest>\n  <nir-per>{}</nir-per>\n  <nom-per>{}</nom-per>\n  <pn-per>{}</pn-per>\n  <rf-prstpap>{}</rf-prstpap>\n  <id-prest>{}</id-prest>\n  <dtd-interv>{}</dtd-interv>\n  <dtf-interv>{}</dtf-interv>\n  <nb-quant>{}</nb-quant>\n  <mt-tu>{}</mt-tu>\n  <mt-total>{}</mt-total>\n  <bo-regul>{}</bo-regul>\n </factprest>\n",
                l.nir, l.nom, l.pn, l.prest, l.id_prest, l.dtd, l.dtf, l.nb_quant, l.mt_tu, l.mt_total, l.bo_regul
            )
            .unwrap();
        }
        let n = self.nb_ligbor.clone().unwrap_or_else(|| self.lines.len().to_string());
        writeln!(s, " <nb-ligbor>{n}</nb-ligbor>").unwrap();
        writeln!(s, " <mt-totamd>{}</mt-totamd>", hours.normalize()).unwrap();
        writeln!(s, " <mt-totprest>{}</mt-totprest>", total.normalize()).unwrap();
        s.push_str("</factbord>\n");
        s
    }
}

/// A billing file of `nirs.len() × periods.len()` valid lines (every NIR
/// for every period) from `site`, all at that site.
pub fn generate_bill(site: &str, dd: u32, nirs: &[&str], periods: &[(&str, &str)], hours: &str) -> Bill {
    let mut b = Bill::new(site, dd);
    for nir in nirs {
        for (d, f) in periods {
            b.lines.push(BLine::new(nir, site, d, f, hours));
        }
    }
    b
}

/// A gateway installation in a temporary folder.
pub struct Gw {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub spool: PathBuf,
}

impl Gw {
    /// Empty state; `extra` is appended to the configuration. Dropped files
    /// are taken once quiet for 300 ms (tests about that rule set their own
    /// period with [`Gw::new_intake`]).
    pub fn new_with(extra: &str) -> Gw {
        Gw::new_intake("settle_ms = 300\n", extra)
    }

    /// Empty state; `intake` holds the `[intake]` keys besides
    /// `rescan_secs = 1`, `extra` is appended to the configuration.
    pub fn new_intake(intake: &str, extra: &str) -> Gw {
        let dir = tempfile::tempdir().expect("temp dir");
        let spool = dir.path().join("spool");
        let config = dir.path().join("ppas-gateway.toml");
        let text = format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n\n[sftp]\nenabled = false\n\n[intake]\nrescan_secs = 1\n{intake}\n[mail]\npoll_secs = 1\n{extra}",
            spool.display().to_string(),
            spool.join("state/gateway.db").display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        Gw { dir, config, spool }
    }

    pub fn new() -> Gw {
        Gw::new_with("")
    }

    /// With the cast's providers and beneficiaries imported by the CLI.
    pub fn with_cast() -> Gw {
        let g = Gw::new();
        g.import("providers", &providers_csv());
        g.import("beneficiaries", &beneficiaries_csv());
        g
    }

    /// The binary with this configuration and the fixed clock.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(support::bin());
        c.arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env("PPAS_GATEWAY_NOW", NOW)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run ppas-gateway")
    }

    /// `import KIND FILE` of `csv`; asserts it applied.
    pub fn import(&self, kind: &str, csv: &str) {
        let f = self.dir.path().join(format!("{kind}.csv"));
        std::fs::write(&f, csv).expect("write csv");
        let out = self.run(&["import", kind, f.to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(0), "import {kind}: {}", text(&out.stderr));
    }

    /// `process --once`.
    pub fn process(&self) -> Output {
        self.run(&["process", "--once"])
    }

    /// Drops `bytes` as `name` into `inbound/<provider>/` the way a careful
    /// uploader does: written under a temp name, then renamed in.
    pub fn drop_file(&self, provider: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.spool.join("inbound").join(provider);
        std::fs::create_dir_all(&dir).expect("inbound folder");
        let tmp = dir.join(format!("{name}.part"));
        std::fs::write(&tmp, bytes).expect("write drop");
        let dest = dir.join(name);
        std::fs::rename(&tmp, &dest).expect("rename drop");
        dest
    }

    pub fn drop_bill(&self, provider: &str, b: &Bill) -> PathBuf {
        self.drop_file(provider, &b.name(), b.xml().as_bytes())
    }

    pub fn db(&self) -> Connection {
        Connection::open(self.spool.join("state/gateway.db")).expect("open database")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.spool.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Every file under `rel` (spool-relative, sorted), recursively.
    pub fn files(&self, rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.spool, &self.path(rel), &mut out);
        out.sort();
        out
    }

    /// The e-mails written under `spool/mail/`: (file, Message-ID, decoded subject, raw text).
    pub fn mails(&self) -> Vec<Mail> {
        self.files("mail")
            .into_iter()
            .filter(|f| f.ends_with(".eml"))
            .map(|f| Mail::parse(&f, &self.read(&f)))
            .collect()
    }

    /// Every table of the database dumped as text lines (to compare states).
    pub fn dump(&self) -> BTreeMap<String, Vec<String>> {
        let c = self.db();
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        tables
            .into_iter()
            .map(|t| {
                let mut s = c.prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1")).unwrap();
                let n = s.column_count();
                let rows = s
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| Ok(format!("{:?}", r.get_ref(i)?)))
                            .collect::<rusqlite::Result<Vec<_>>>()
                            .map(|v| v.join("|"))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (t, rows)
            })
            .collect()
    }

    /// Rows of a one-column-per-field query, as strings.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let c = self.db();
        let mut s = c.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = s.column_count();
        s.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                })
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db()
            .query_row(sql, [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned());
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
