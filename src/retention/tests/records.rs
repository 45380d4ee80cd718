//! The rows the purge changes (history entries, job runs, delivered
//! e-mails), what it never touches (invoices, the payment chain's files),
//! and how a run is recorded through the jobs' one path.

use rusqlite::params;

use super::*;

#[test]
fn history_entries_go_after_6_months_and_delivered_mails_lose_their_body() {
    let mut fx = Fx::new();
    fx.history(OLD_6, Some("saad21"), "old");
    fx.history(KEPT_6, Some("saad21"), "kept");
    fx.history(OLD_6, None, "old, nobody's");
    fx.mail("sent-old", Some(OLD_6), None);
    fx.mail("sent-kept", Some(KEPT_6), None);

    let s = fx.purge(TODAY);
    assert_eq!((s.history, s.mails), (2, 1), "{s}");
    assert_eq!(fx.comments(), ["kept"]);
    let bodies = |fx: &Fx| -> Vec<(String, String)> {
        fx.conn
            .prepare("SELECT dedup_key, body FROM mail_queue ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        bodies(&fx),
        [
            ("sent-old".to_string(), PURGED_BODY.to_string()),
            ("sent-kept".to_string(), "b".to_string())
        ]
    );
    // The row stays with its dedup key: the same cause never queues the
    // message again.
    let again = crate::mail::Message {
        dedup_key: "sent-old".into(),
        recipients: vec!["a@x.example".into()],
        subject: "s".into(),
        body: "b".into(),
        secret: false,
    };
    assert!(!crate::mail::enqueue(&fx.conn, at(TODAY), &again).unwrap());
    assert_eq!(fx.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL"), 0);

    // 26/11 in Paris: 26/05 is the first day kept.
    let s = fx.purge("2026-11-26T00:00:00+01:00");
    assert_eq!((s.history, s.mails), (1, 1));
    assert!(fx.comments().is_empty());
    assert!(bodies(&fx).iter().all(|(_, b)| b == PURGED_BODY));
    // Emptied once: not counted again.
    let s = fx.purge("2026-11-26T00:00:00+01:00");
    assert_eq!((s.history, s.mails), (0, 0));
}

#[test]
fn job_runs_are_history_but_each_jobs_latest_and_an_unfinished_one_stay() {
    let mut fx = Fx::new();
    let run = |job: &str, occurrence: &str, cause: &str, finished: Option<&str>| {
        fx.conn
            .execute(
                "INSERT INTO job_runs (job, occurrence, cause, started_at, finished_at, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 IS NULL THEN NULL ELSE 'ok' END)",
                params![job, occurrence, cause, finished.unwrap_or(OLD_6), finished],
            )
            .unwrap();
    };
    // relances: two old scheduled runs, then an old run by hand (the latest).
    run("relances", "2026-04-01T07:00", "schedule", Some(OLD_6));
    run("relances", "2026-04-02T07:00", "schedule", Some(OLD_6));
    run("relances", "manual:2026-04-03T09:00:00Z", "manual", Some(OLD_6));
    // bordereaux: an old one and a recent one; purge: an unfinished old one.
    run("bordereaux", "2026-04-01T03:15", "schedule", Some(OLD_6));
    run("bordereaux", "2026-05-25T03:15", "schedule", Some(KEPT_6));
    run("purge", "2026-04-01T03:30", "catch-up", None);

    let s = fx.purge(TODAY);
    assert_eq!(s.job_runs, 2, "{s}");
    let left: Vec<String> = fx
        .conn
        .prepare("SELECT occurrence FROM job_runs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        left,
        [
            "2026-04-02T07:00",
            "manual:2026-04-03T09:00:00Z",
            "2026-05-25T03:15",
            "2026-04-01T03:30"
        ]
    );
    assert_eq!(fx.purge(TODAY).job_runs, 0);
}

#[test]
fn invoices_and_the_payment_chain_files_are_never_touched() {
    let mut fx = Fx::new();
    let invoice = |id: i64, staged: Option<&str>, delivered: Option<&str>| {
        fx.conn
            .execute(
                "INSERT INTO invoices (id, reference, id_cram, code_convention, provider, mode, lines, amount,
                     created_at, path, staged_path, delivered_at)
                 VALUES (?1, ?2, '04', '62739900', 'ergo62', 'weekly', 1, 100, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    format!("F04-62739900-20200101-{id}"),
                    ANCIENT,
                    format!("outbox/04/invoices/F04-62739900-20200101-{id}.xml"),
                    staged,
                    delivered
                ],
            )
            .unwrap();
    };
    // Delivered long ago, and one committed whose delivery is still owed
    // (its staged file written, the rename not done).
    invoice(1, Some("outbox/04/invoices/.ppas-tmp-1.xml"), Some(ANCIENT));
    fx.file("outbox/04/invoices/F04-62739900-20200101-1.xml", ANCIENT);
    invoice(2, Some("outbox/04/invoices/.ppas-tmp-2.xml"), None);
    fx.file("outbox/04/invoices/.ppas-tmp-2.xml", ANCIENT);
    // The payment chain's file of a received file, and its notice unsent.
    fx.file("outbox/04/04_251126_100_21999000.xml", ANCIENT);
    fx.mail("invoice:2", None, None);
    let before = fx.files("outbox");

    let s = fx.purge(TODAY);
    assert_eq!(s.files(), 0, "{s}");
    assert_eq!(fx.files("outbox"), before);
    assert_eq!(
        fx.count("SELECT COUNT(*) FROM invoices WHERE delivered_at IS NULL AND staged_path IS NOT NULL"),
        1
    );
    assert_eq!(fx.count("SELECT COUNT(*) FROM invoices"), 2);
    assert_eq!(fx.count("SELECT COUNT(*) FROM mail_queue WHERE body = 'b'"), 1);
}

/// `purge` through the one path of every run, by hand at `now`.
fn run_by_hand(fx: &mut Fx, now: &str) -> crate::jobs::RunRecord {
    let clock = Clock::Fixed(at(now));
    crate::jobs::runs::execute(
        &mut fx.conn,
        &fx.cfg,
        &clock,
        crate::jobs::Job::Purge,
        crate::jobs::RunKey::Manual(clock.now()),
        crate::jobs::Cause::Manual,
        None,
    )
    .unwrap()
    .expect("a run by hand always runs")
}

#[test]
fn a_run_is_recorded_refreshes_every_historique_and_a_second_run_removes_nothing() {
    let mut fx = Fx::new();
    fx.received(1, "done", Some(OLD_12), Some("archive/saad21/2025-11/1-f1.xml"), None);
    fx.output(1, "outbound/saad21/reports/f1.xml.report.xml", Some(OLD_12));
    fx.file("outbound/saad21/reports/f1.xml.report.xml", OLD_12);
    fx.file("archive/saad21/2025-11/1-f1.xml", OLD_12);
    fx.history(OLD_6, Some("saad21"), "vieux");
    fx.history(KEPT_6, Some("saad21"), "récent");
    fx.history(KEPT_6, Some("ergo62"), "d'ergo62");
    fx.mail("sent", Some(OLD_6), None);
    // An unregistered folder's provider with entries only.
    fx.history(KEPT_6, Some("inconnu"), "dépôt inconnu");

    let s = fx.purge(TODAY);
    assert_eq!(
        (
            s.outbound_files,
            s.archived_originals,
            s.caisse_files,
            s.history,
            s.mails
        ),
        (1, 1, 0, 1, 1)
    );
    assert_eq!(s.published.listings, 3, "the historique of saad21, ergo62 and inconnu");
    assert_eq!(
        s.to_string(),
        "1 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 25/11/2025) ; \
         1 original(aux) de fichiers reçus et 0 fichier(s) de la caisse supprimé(s) de archive (12 mois, conservé \
         depuis le 25/11/2025) ; 1 entrée(s) d'historique et 0 exécution(s) de tâche supprimée(s) (6 mois, \
         conservé depuis le 25/05/2026) ; 1 e-mail(s) envoyé(s) vidé(s) de leur contenu (6 mois, conservé depuis \
         le 25/05/2026) ; 3 liste(s) réécrite(s)"
    );
    let listing = std::fs::read_to_string(fx.path("outbound/saad21/historique.csv")).unwrap();
    assert!(listing.contains("récent") && !listing.contains("vieux"), "{listing}");
    assert!(!listing.contains("ergo62") && !listing.contains("inconnu"), "{listing}");
    assert!(fx.exists("outbound/ergo62/historique.csv") && fx.exists("outbound/inconnu/historique.csv"));

    // Again at the same instant, as a job run by hand: nothing more to
    // remove; the run is recorded with what it did (one history entry, the
    // run's), and the listings refreshed again with the same content.
    let files = fx.files("");
    let rec = run_by_hand(&mut fx, TODAY);
    assert!(rec.ok(), "{rec:?}");
    let summary = rec.summary.clone().unwrap();
    assert!(
        summary.starts_with("0 fichier(s) publié(s) supprimé(s) de outbound (12 mois, conservé depuis le 25/11/2025)")
            && summary.contains(" 0 entrée(s) d'historique et 0 exécution(s) de tâche supprimée(s)")
            && summary.ends_with("3 liste(s) réécrite(s)"),
        "{summary}"
    );
    assert_eq!(fx.files(""), files);
    assert_eq!(
        std::fs::read_to_string(fx.path("outbound/saad21/historique.csv")).unwrap(),
        listing
    );
    let (kind, app, provider, comment): (String, String, Option<String>, String) = fx
        .conn
        .query_row(
            "SELECT kind, application, provider, comment FROM history WHERE kind = 'job'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (kind.as_str(), app.as_str(), provider),
        ("job", "aide-a-domicile", None)
    );
    assert_eq!(comment, format!("purge (lancement manuel) : ok — {summary}"));
}

#[test]
fn a_file_that_cannot_be_removed_fails_the_run_which_still_says_what_was_removed() {
    let mut fx = Fx::new();
    fx.file("outbound/saad21/bordereaux/2025/B-old.pdf", OLD_12);
    fx.history(OLD_6, Some("saad21"), "vieux");
    // An archived original that cannot be removed: a folder stands where
    // the file was (whoever runs the test, root included).
    fx.received(1, "done", Some(OLD_12), Some("archive/saad21/2025-11/1-f1.xml"), None);
    fx.file("archive/saad21/2025-11/1-f1.xml/inside", OLD_12);

    let rec = run_by_hand(&mut fx, TODAY);
    assert_eq!(rec.outcome.as_deref(), Some("error"));
    let summary = rec.summary.unwrap();
    assert!(
        summary.starts_with("1 fichier(s) publié(s) supprimé(s) de outbound")
            && summary.contains("0 original(aux) de fichiers reçus")
            && summary.contains("1 entrée(s) d'historique")
            && summary.contains("1 item(s) could not be removed"),
        "{summary}"
    );
    assert!(!fx.exists("outbound/saad21/bordereaux/2025/B-old.pdf"));
    assert_eq!(
        fx.count("SELECT COUNT(*) FROM received_files WHERE archive_removed_at IS NULL"),
        1
    );
    // Tried again at the next run.
    std::fs::remove_dir_all(fx.path("archive/saad21/2025-11/1-f1.xml")).unwrap();
    fx.file("archive/saad21/2025-11/1-f1.xml", OLD_12);
    let s = fx.purge(TODAY);
    assert_eq!((s.outbound_files, s.archived_originals, s.history), (0, 1, 0), "{s}");
    assert!(!fx.exists("archive/saad21/2025-11"));
}
