//! The provider's history listing (`/out/historique.csv`) and the `purge`
//! job, with the real binary: the listing is what `history --format csv`
//! prints for the provider's last 6 months and follows its exchanges; the
//! purge removes each kind of thing the day after its period ends, never
//! before, and a second run removes nothing. The clock is moved by
//! `PPAS_GATEWAY_NOW`, never by sleeping.

use std::process::Output;

use crate::pipeline_support::*;

/// The binary with the clock at `now`.
fn at(g: &Gw, now: &str, args: &[&str]) -> Output {
    g.cmd()
        .env("PPAS_GATEWAY_NOW", now)
        .args(args)
        .output()
        .expect("run ppas-gateway")
}

/// `run purge` at `now`; asserts success and no NIR; returns stdout.
fn purge(g: &Gw, now: &str) -> String {
    let out = at(g, now, &["run", "purge"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "run purge at {now}\n{stdout}\n{stderr}");
    no_nir(&stdout, "run purge");
    no_nir(&stderr, "run purge");
    stdout
}

fn no_nir(s: &str, what: &str) {
    for nir in ALL_NIRS {
        assert!(!s.contains(nir), "NIR {nir} in {what}:\n{s}");
    }
}

/// The rows of a French-Excel CSV (BOM checked and dropped).
fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with("\u{FEFF}".as_bytes()), "no BOM");
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(&bytes[3..])
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn historique(g: &Gw, provider: &str) -> Vec<u8> {
    std::fs::read(g.path(&format!("outbound/{provider}/historique.csv")))
        .unwrap_or_else(|e| panic!("historique.csv of {provider}: {e}"))
}

fn process_expecting(g: &Gw, code: i32) {
    let out = g.process();
    assert_eq!(
        out.status.code(),
        Some(code),
        "process --once\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn each_provider_finds_its_own_exchanges_of_six_months_refreshed_after_each() {
    let g = Gw::with_cast();
    // saadA: one line accepted, one without a plan (partial); saadB: accepted.
    let a = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    let b = Bill::new(SITE_B, 3).line(BLine::month(NIR_B1, SITE_B, 1, "5"));
    g.drop_bill("saadA", &a);
    g.drop_bill("saadB", &b);
    process_expecting(&g, 1);

    let listing = historique(&g, "saadA");
    let rows = csv_rows(&listing);
    assert_eq!(rows[0][0], "horodatage (Paris)");
    assert_eq!(rows[0].len(), 11, "{:?}", rows[0]);
    assert!(rows.len() > 2, "{rows:?}");
    assert!(rows[1..].iter().all(|r| r[8] == "saadA"), "only saadA's: {rows:?}");
    let text_a = String::from_utf8(listing.clone()).unwrap();
    assert!(text_a.contains(&a.name()), "{text_a}");
    assert!(!text_a.contains(&b.name()) && !text_a.contains("saadB"), "{text_a}");
    no_nir(&text_a, "historique.csv");
    assert!(rows[1][0].starts_with("2026-11-20 10:00"), "Paris time: {:?}", rows[1]);
    assert!(!g.exists("outbound/saadA/historique.xml"), "CSV only");

    // Exactly what the history command prints for its last 6 months.
    let out = g.run(&[
        "history",
        "--from",
        "20/05/2026",
        "--to",
        "20/11/2026",
        "--provider",
        "saadA",
        "--format",
        "csv",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(out.stdout, listing);

    let text_b = String::from_utf8(historique(&g, "saadB")).unwrap();
    assert!(text_b.contains(&b.name()) && !text_b.contains(&a.name()), "{text_b}");
    assert!(
        !g.exists("outbound/saadC/historique.csv") || {
            let rows = csv_rows(&historique(&g, "saadC"));
            rows.len() == 1
        }
    );

    // saadA's next exchange is in its listing at once; saadB's is left as it was.
    let before_b = historique(&g, "saadB");
    let a2 = Bill::new(SITE_A, 4).line(BLine::month(NIR_A1, SITE_A, 2, "5"));
    g.drop_bill("saadA", &a2);
    process_expecting(&g, 0);
    let again = String::from_utf8(historique(&g, "saadA")).unwrap();
    assert!(again.contains(&a2.name()) && again.contains(&a.name()), "{again}");
    assert!(
        again.find(&a2.name()).unwrap() < again.find(&a.name()).unwrap(),
        "newest first: {again}"
    );
    assert_eq!(historique(&g, "saadB"), before_b);
}

#[test]
fn purge_removes_each_kind_the_day_after_its_period_and_nothing_more() {
    let g = Gw::with_cast();
    let a = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &a);
    process_expecting(&g, 1);
    let reports = g.files("outbound/saadA/reports");
    assert_eq!(reports.len(), 3, "{reports:?}");
    let archived = g.files("archive/saadA");
    assert_eq!(archived.len(), 1, "{archived:?}");
    let outbox = g.files("outbox");
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let entries = g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'");
    assert!(entries > 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NOT NULL"), 1);

    // Six months on, the same day: everything kept.
    let out = purge(&g, "2027-05-20T10:00:00+02:00");
    assert!(
        out.starts_with("purge : 0 fichier(s) publié(s) supprimé(s) de outbound, 0 original(aux)"),
        "{out}"
    );
    assert!(out.contains("0 entrée(s) d'historique et 0 e-mail(s)"), "{out}");
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"),
        entries
    );
    assert!(String::from_utf8(historique(&g, "saadA")).unwrap().contains(&a.name()));

    // The next day: the history entries and the delivered notice go; the
    // provider's listing is rewritten without them; the files stay.
    let out = purge(&g, "2027-05-21T10:00:00+02:00");
    assert!(out.contains("1 e-mail(s) envoyé(s)"), "{out}");
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue"), 0);
    assert_eq!(csv_rows(&historique(&g, "saadA")).len(), 1, "the header alone");
    assert_eq!(g.files("outbound/saadA/reports"), reports);

    // Twelve months on, the same day: the files are still there.
    let out = purge(&g, "2027-11-20T10:00:00+01:00");
    assert!(out.starts_with("purge : 0 fichier(s)"), "{out}");
    assert_eq!(g.files("outbound/saadA/reports"), reports);
    assert_eq!(g.files("archive/saadA"), archived);

    // The next day: the reports and the original go; the listings, the
    // payment chain's file and the record of the received file stay.
    let out = purge(&g, "2027-11-21T10:00:00+01:00");
    assert!(
        out.starts_with("purge : 3 fichier(s) publié(s) supprimé(s) de outbound, 1 original(aux)"),
        "{out}"
    );
    assert!(g.files("outbound/saadA/reports").is_empty());
    assert!(g.exists("outbound/saadA/reports"), "the folder stays");
    assert!(g.files("archive/saadA").is_empty());
    assert_eq!(g.files("outbox"), outbox);
    for f in ["beneficiaires.csv", "beneficiaires.xml", "historique.csv"] {
        assert!(g.exists(&format!("outbound/saadA/{f}")), "{f}");
    }
    assert_eq!(
        g.rows("SELECT state, archive_path IS NOT NULL, archive_removed_at FROM received_files"),
        [["done", "1", "2027-11-21T09:00:00Z"]]
    );

    // Again: nothing more.
    let out = purge(&g, "2027-11-21T10:00:00+01:00");
    assert!(
        out.starts_with(
            "purge : 0 fichier(s) publié(s) supprimé(s) de outbound, 0 original(aux) de fichiers reçus et 0 \
             fichier(s) de la caisse supprimé(s) de archive, 0 entrée(s) d'historique et 0 e-mail(s)"
        ),
        "{out}"
    );

    // Each run is in the history with its counts (those of the last 6 months).
    let out = at(
        &g,
        "2027-11-21T10:00:00+01:00",
        &[
            "history",
            "--from",
            "2027-05-21",
            "--to",
            "2027-11-21",
            "--interface",
            "purge",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let runs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|r| r["kind"] == "job" && r["provider"].is_null()));
    let latest = runs[1]["comment"].as_str().unwrap();
    assert!(
        latest.starts_with(
            "purge : 3 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 21/11/2026)"
        ),
        "{latest}"
    );
}

#[test]
fn run_purge_waits_for_the_spool_lock() {
    let g = Gw::with_cast();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(std::time::Duration::from_secs(20));
    let out = g.run(&["run", "purge"]);
    let _ = d.terminate();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("lock"), "{}", text(&out.stderr));
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE interface = 'purge'"), 0);
}
