//! The provider's history listing (`/out/historique.csv`) and the `purge`
//! job, with the real binary: the listing is what `history --format csv`
//! prints for the provider's last 6 months and follows its exchanges; the
//! purge removes each kind of thing the day after its period ends, never
//! before, and a second run removes nothing. The clock is moved by
//! `PPAS_GATEWAY_NOW`, never by sleeping.

use std::process::Output;
use std::time::Duration;

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
        out.starts_with(
            "purge : 0 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 20/05/2026) ; \
             0 original(aux)"
        ),
        "{out}"
    );
    assert!(
        out.contains("0 entrée(s) d'historique et 0 exécution(s) de tâche supprimée(s) (6 mois, conservé depuis le 20/11/2026) ; 0 e-mail(s)"),
        "{out}"
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"),
        entries
    );
    assert!(String::from_utf8(historique(&g, "saadA")).unwrap().contains(&a.name()));
    let body = g.rows("SELECT body FROM mail_queue");
    assert!(body[0][0].contains(&a.name()), "{body:?}");

    // The next day: the history entries go and the delivered notice is
    // emptied (its row stays: the same notice is never queued again); the
    // provider's listing is rewritten without them; the files stay.
    let out = purge(&g, "2027-05-21T10:00:00+02:00");
    assert!(out.contains("1 e-mail(s) envoyé(s) vidé(s) de leur contenu"), "{out}");
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"), 0);
    assert_eq!(
        g.rows("SELECT body, sent_at IS NOT NULL FROM mail_queue"),
        [["[contenu supprimé : durée de conservation écoulée]", "1"]]
    );
    assert_eq!(csv_rows(&historique(&g, "saadA")).len(), 1, "the header alone");
    assert_eq!(g.files("outbound/saadA/reports"), reports);

    // Twelve months on, the same day: the files are still there.
    let out = purge(&g, "2027-11-20T10:00:00+01:00");
    assert!(out.starts_with("purge : 0 fichier(s)"), "{out}");
    assert!(out.contains(" 0 original(aux)"), "{out}");
    assert_eq!(g.files("outbound/saadA/reports"), reports);
    assert_eq!(g.files("archive/saadA"), archived);

    // The next day: the reports and the original go; the listings, the
    // payment chain's file and the record of the received file stay.
    let out = purge(&g, "2027-11-21T10:00:00+01:00");
    assert!(
        out.starts_with(
            "purge : 3 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 21/11/2026) ; \
             1 original(aux)"
        ),
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
            "purge : 0 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 21/11/2026) ; \
             0 original(aux) de fichiers reçus et 0 fichier(s) de la caisse supprimé(s) de archive (12 mois, \
             conservé depuis le 21/11/2026) ; 0 entrée(s) d'historique et 0 exécution(s) de tâche supprimée(s) (6 \
             mois, conservé depuis le 21/05/2027) ; 0 e-mail(s)"
        ),
        "{out}"
    );

    // Each run is recorded with its counts: its history entry (those of
    // the last 6 months) and its row in job_runs (the run of 20/05 is
    // history too, now).
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
            "jobs",
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
            "purge (lancement manuel) : ok — 3 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé \
             depuis le 21/11/2026) ; 1 original(aux)"
        ),
        "{latest}"
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'job'"), 4);
    let recorded = g.rows("SELECT started_at, outcome FROM job_runs WHERE job = 'purge' ORDER BY id");
    assert_eq!(
        recorded,
        [
            ["2027-05-21T08:00:00Z", "ok"],
            ["2027-11-20T09:00:00Z", "ok"],
            ["2027-11-21T09:00:00Z", "ok"],
            ["2027-11-21T09:00:00Z", "ok"]
        ]
    );
}

#[test]
fn each_period_is_configurable_and_crossed_the_day_after() {
    let g =
        Gw::new_with("\n[retention]\noutbound_months = 24\nhistory_months = 2\narchive_months = 3\nmail_months = 1\n");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let a = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &a);
    process_expecting(&g, 1);
    let reports = g.files("outbound/saadA/reports");
    assert_eq!(reports.len(), 3, "{reports:?}");
    let entries = g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'");
    // The imports', the file's and the notice's, all of 20/11/2026.
    let all_entries = g.count("SELECT COUNT(*) FROM history");
    let body = || g.rows("SELECT body FROM mail_queue")[0][0].clone();
    let full = body();
    assert!(full.contains(&a.name()), "{full}");

    // (day of the run, what it removes: mail bodies, history, originals, reports)
    let steps: [(&str, [usize; 4]); 8] = [
        ("2026-12-20T10:00:00+01:00", [0, 0, 0, 0]),
        ("2026-12-21T10:00:00+01:00", [1, 0, 0, 0]),
        ("2027-01-20T10:00:00+01:00", [0, 0, 0, 0]),
        ("2027-01-21T10:00:00+01:00", [0, 1, 0, 0]),
        ("2027-02-20T10:00:00+01:00", [0, 0, 0, 0]),
        ("2027-02-21T10:00:00+01:00", [0, 0, 1, 0]),
        ("2028-11-20T10:00:00+01:00", [0, 0, 0, 0]),
        ("2028-11-21T10:00:00+01:00", [0, 0, 0, 3]),
    ];
    for (now, [mails, history, originals, files]) in steps {
        let out = purge(&g, now);
        let mut wants = vec![
            format!("purge : {files} fichier(s) publié(s) supprimé(s) de outbound (24 mois"),
            format!(" ; {originals} original(aux) de fichiers reçus et 0 fichier(s) de la caisse supprimé(s) de archive (3 mois"),
            format!(" ; {mails} e-mail(s) envoyé(s) vidé(s) de leur contenu (1 mois"),
        ];
        // The runs' own records age out too: the count is checked on the
        // day the entries of 20/11/2026 go.
        if history == 1 {
            wants.push(format!(" ; {all_entries} entrée(s) d'historique et "));
        }
        for want in wants {
            assert!(out.contains(&want), "{now}: {want:?} in\n{out}");
        }
        let of_that_day = g.count("SELECT COUNT(*) FROM history WHERE at < '2026-11-21'");
        let gone = now >= "2027-01-21";
        assert_eq!(of_that_day, if gone { 0 } else { all_entries }, "{now}");
        // Again the same day: nothing more.
        let again = purge(&g, now);
        assert!(
            again.starts_with("purge : 0 fichier(s)")
                && again.contains(" ; 0 original(aux)")
                && again.contains(" ; 0 e-mail(s)"),
            "{now}: {again}"
        );
        match now {
            "2026-12-20T10:00:00+01:00" => assert_eq!(body(), full),
            "2026-12-21T10:00:00+01:00" => assert_ne!(body(), full),
            "2027-01-20T10:00:00+01:00" => assert_eq!(
                g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"),
                entries
            ),
            "2027-01-21T10:00:00+01:00" => {
                assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"), 0);
                assert_eq!(csv_rows(&historique(&g, "saadA")).len(), 1, "the header alone");
            }
            "2027-02-20T10:00:00+01:00" => assert_eq!(g.files("archive/saadA").len(), 1),
            "2027-02-21T10:00:00+01:00" => {
                assert!(g.files("archive/saadA").is_empty());
                assert_eq!(g.files("outbound/saadA/reports"), reports);
            }
            "2028-11-20T10:00:00+01:00" => assert_eq!(g.files("outbound/saadA/reports"), reports),
            _ => assert!(g.files("outbound/saadA/reports").is_empty()),
        }
    }
}

#[test]
fn the_daemon_purges_once_at_its_catch_up_across_restarts_and_keeps_what_is_owed() {
    // The notices cannot be delivered (no relay listens there): owed,
    // whatever their age. Only the purge is scheduled (daily 03:30).
    let port = crate::mail::free_port();
    let g = Gw::new_with(&format!(
        "smtp_url = \"smtp://127.0.0.1:{port}\"\n\n[jobs]\ninvoice_threshold = \"\"\ninvoice_weekly = \"\"\n\
         bordereaux = \"\"\nrelances = \"\"\n"
    ));
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let a = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &a);
    let log = g.dir.path().join("serve.log");
    let done = || g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'");

    // First start: the file is processed; the schedule is followed from now.
    let d = crate::jobs::serve_at(&g, NOW, &log, None);
    wait_for(Duration::from_secs(30), "the file done", || done() == 1);
    assert_eq!(d.terminate().0, Some(0));
    assert!(crate::jobs::runs(&g, "purge").is_empty());
    let reports = g.files("outbound/saadA/reports");
    assert_eq!(reports.len(), 3, "{reports:?}");
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL"), 1);

    // A year and a day later: the occurrence of 03:30 is caught up, once.
    let later = "2027-11-21T10:00:00+01:00";
    let d = crate::jobs::serve_at(&g, later, &log, None);
    crate::jobs::wait_runs(&g, "purge", 1);
    assert_eq!(d.terminate().0, Some(0));
    assert_eq!(
        crate::jobs::runs(&g, "purge"),
        [["2027-11-21T03:30", "catch-up", "ok", "1"]]
    );
    let summary = &g.rows("SELECT summary FROM job_runs WHERE job = 'purge'")[0][0];
    assert!(
        summary.starts_with(
            "3 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 21/11/2026) ; 1 original(aux)"
        ),
        "{summary}"
    );
    assert!(g.files("outbound/saadA/reports").is_empty());
    assert!(g.files("archive/saadA").is_empty());
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE provider = 'saadA'"), 0);
    assert_eq!(csv_rows(&historique(&g, "saadA")).len(), 1, "the header alone");
    // The unsent notice is owed: kept with its body.
    let mail = g.rows("SELECT sent_at IS NULL, body FROM mail_queue");
    assert_eq!(mail.len(), 1);
    assert!(mail[0][0] == "1" && mail[0][1].contains(&a.name()), "{mail:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("purge done"), "{logs}");

    // Restarted at the same instant: the occurrence has run; a file taken
    // after the scheduler's look shows the processor went past it.
    let b = Bill::new(SITE_A, 3).lines([
        BLine::month(NIR_A1, SITE_A, 2, "5"),
        BLine::month(NIR_NONE, SITE_A, 2, "5"),
    ]);
    let d = crate::jobs::serve_at(&g, later, &log, None);
    g.drop_bill("saadA", &b);
    wait_for(Duration::from_secs(30), "the second file done", || done() == 2);
    assert_eq!(d.terminate().0, Some(0));
    assert_eq!(crate::jobs::runs(&g, "purge").len(), 1, "no second run");
    assert!(String::from_utf8(historique(&g, "saadA")).unwrap().contains(&b.name()));

    // By hand at the same instant: nothing more to remove.
    let out = purge(&g, later);
    assert!(
        out.starts_with("purge : 0 fichier(s) publié(s) supprimé(s)")
            && out.contains(" ; 0 original(aux)")
            && out.contains(" ; 0 entrée(s) d'historique"),
        "{out}"
    );
    assert_eq!(g.files("outbound/saadA/reports").len(), 3, "the second file's reports");
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL"), 2);
}

#[test]
fn run_purge_waits_for_the_spool_lock() {
    let g = Gw::with_cast();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    let out = g.run(&["run", "purge"]);
    let _ = d.terminate();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("lock"), "{}", text(&out.stderr));
    assert_eq!(g.count("SELECT COUNT(*) FROM job_runs WHERE job = 'purge'"), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'job'"), 0);
}
