//! Unit tests of the mail worker in `.eml` mode (the SMTP side is tested
//! end to end against a real server in `tests/e2e/mail.rs`).

use super::*;
use crate::mail::{enqueue, queue, Message};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn setup() -> (tempfile::TempDir, Connection, Config) {
    let d = tempfile::tempdir().unwrap();
    let conn = crate::store::open(&d.path().join("state/g.db")).unwrap();
    let mut cfg = Config::default();
    cfg.paths.spool = d.path().join("spool");
    cfg.mail.max_attempts = 3;
    (d, conn, cfg)
}

fn msg(key: &str, to: &str) -> Message {
    Message {
        dedup_key: key.into(),
        recipients: to.split(',').map(str::to_owned).collect(),
        subject: "Compte rendu : fichier rejeté".into(),
        body: "Bonjour,\nvotre fichier a été rejeté.\n".into(),
        secret: false,
    }
}

fn eml_files(cfg: &Config) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(eml_dir(cfg))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn history_count(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM history WHERE kind = 'mail'", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn backoff_doubles_from_one_minute_and_caps_at_one_hour() {
    let mins: Vec<i64> = (1..=9).map(|a| backoff(a).num_minutes()).collect();
    assert_eq!(mins, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(backoff(u32::MAX).num_minutes(), 60);
}

#[test]
fn eml_mode_writes_each_message_once() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    assert!(enqueue(&conn, t0, &msg("report:1", "a@example.org,b@example.org")).unwrap());
    assert!(enqueue(&conn, t0, &msg("report:2", "c@example.org")).unwrap());
    let clock = Clock::Fixed(at("2026-11-25T09:00:05Z"));
    let s = run_once(&mut conn, &cfg, &clock).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 2,
            ..Default::default()
        }
    );
    let files = eml_files(&cfg);
    assert_eq!(files.len(), 2, "{files:?}");
    let text = std::fs::read_to_string(eml_dir(&cfg).join(&files[0])).unwrap();
    assert!(text.contains("To: a@example.org, b@example.org\r\n"), "{text}");
    assert!(text.contains("Date: Wed, 25 Nov 2026 09:00:05 +0000"), "{text}");
    assert_eq!(history_count(&conn), 2);
    let MailState {
        sent_at,
        attempts,
        last_error: err,
        ..
    } = state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!(
        (sent_at.as_deref(), attempts, err),
        (Some("2026-11-25T09:00:05Z"), 0, None)
    );

    // A second pass, even much later, sends nothing again.
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-12-25T09:00:00Z"))).unwrap();
    assert_eq!(s, DeliverySummary::default());
    assert_eq!(eml_files(&cfg).len(), 2);
    assert_eq!(history_count(&conn), 2);
}

#[test]
fn crash_after_writing_never_writes_twice() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();
    run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    let name = eml_files(&cfg).remove(0);
    let path = eml_dir(&cfg).join(&name);
    std::fs::write(&path, b"written before the crash").unwrap();
    // As if the process died between the write and the mark.
    conn.execute("UPDATE mail_queue SET sent_at = NULL", []).unwrap();
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:30:00Z"))).unwrap();
    assert_eq!(s.sent, 1);
    assert_eq!(eml_files(&cfg), vec![name]);
    assert_eq!(std::fs::read(&path).unwrap(), b"written before the crash");
}

#[test]
fn not_yet_due_messages_wait() {
    let (_d, mut conn, cfg) = setup();
    enqueue(&conn, at("2026-11-25T10:00:00Z"), &msg("report:1", "a@example.org")).unwrap();
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:59:59Z"))).unwrap();
    assert_eq!(s, DeliverySummary::default());
    assert!(eml_files(&cfg).is_empty());
}

#[test]
fn failures_back_off_then_abandon_then_requeue() {
    let (d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();
    enqueue(&conn, t0, &msg("report:2", "b@example.org")).unwrap();
    // The mail folder cannot be created: a file is in the way.
    std::fs::create_dir_all(&cfg.paths.spool).unwrap();
    std::fs::write(eml_dir(&cfg), b"").unwrap();

    let s = run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            retried: 1,
            deferred: 1,
            ..Default::default()
        }
    );
    let MailState {
        sent_at: sent,
        attempts,
        last_error: err,
        ..
    } = state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!((sent, attempts), (None, 1));
    assert!(err.unwrap().contains("mail"));
    // The second was not attempted, so not charged.
    assert_eq!(state_of(&conn, "report:2").unwrap().unwrap().attempts, 0);

    // 30 s later: report:1 is not due yet (1 min back-off); report:2 is tried.
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:00:30Z"))).unwrap();
    assert_eq!(s.retried, 1);
    assert_eq!(state_of(&conn, "report:1").unwrap().unwrap().attempts, 1);
    assert_eq!(state_of(&conn, "report:2").unwrap().unwrap().attempts, 1);

    // Second failure of report:1 at +1 min, third (the last allowed) at +3 min.
    run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:01:00Z"))).unwrap();
    assert_eq!(state_of(&conn, "report:1").unwrap().unwrap().attempts, 2);
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:02:59Z"))).unwrap();
    assert_eq!(
        state_of(&conn, "report:1").unwrap().unwrap().attempts,
        2,
        "{s:?}: back-off of 2 min not respected"
    );
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:03:00Z"))).unwrap();
    assert_eq!(s.failed, 1, "{s:?}");
    let st1 = state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!(st1.attempts, 3);
    assert_eq!(
        st1.failed_at.as_deref(),
        Some("2026-11-25T09:03:00Z"),
        "failed is recorded"
    );
    assert_eq!(mail_errors(&conn).len(), 1);

    // Failed: never tried again, even with a higher limit; visible in the status.
    let later = at("2026-11-26T09:00:00Z");
    std::fs::remove_file(eml_dir(&cfg)).unwrap();
    let mut raised = cfg.clone();
    raised.mail.max_attempts = 10;
    let s = run_once(&mut conn, &raised, &Clock::Fixed(later)).unwrap();
    assert_eq!(s.sent, 1, "report:2 (2 attempts) goes out, report:1 stays failed");
    assert_eq!(eml_files(&cfg).len(), 1);
    let st = queue::status(&conn, &cfg, later).unwrap();
    assert_eq!((st.pending, st.failed, st.sent), (0, 1, 1));
    assert!(st.retrying.is_empty());
    let f = &st.failed_messages[..];
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].id, f[0].dedup_key.as_str(), f[0].attempts),
        (st1.id, "report:1", 3)
    );
    assert_eq!(
        (f[0].failed_at.as_deref(), f[0].next_attempt_at.as_deref()),
        (Some("2026-11-25T09:03:00Z"), None)
    );
    assert!(f[0].last_error.contains("mail"), "{f:?}");
    assert_eq!(f[0].subject, "Compte rendu : fichier rejeté");

    // The operator fixed the cause: requeue, and it goes out.
    assert_eq!(queue::retry(&mut conn, &cfg, later, queue::Retry::All).unwrap(), 1);
    let st = queue::status(&conn, &cfg, later).unwrap();
    assert_eq!((st.pending, st.due, st.failed), (1, 1, 0));
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(later)).unwrap();
    assert_eq!(s.sent, 1);
    assert_eq!(eml_files(&cfg).len(), 2);
    assert_eq!(history_count(&conn), 2);
    assert_eq!(mail_errors(&conn).len(), 1, "reported once");
    drop(d);
}

/// `errors` rows of the mail worker.
fn mail_errors(conn: &Connection) -> Vec<String> {
    conn.prepare("SELECT message FROM errors WHERE worker = 'mail' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_failed_message_is_reported_once_with_its_cause_and_never_its_body() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    let mut m = msg("user:alice:password", "alice@example.org");
    m.subject = "Votre mot de passe".into();
    m.body = "Mot de passe : Zq8-very-secret\n".into();
    m.secret = true;
    enqueue(&conn, t0, &m).unwrap();
    std::fs::create_dir_all(&cfg.paths.spool).unwrap();
    std::fs::write(eml_dir(&cfg), b"").unwrap();
    for minutes in [0, 1, 3, 7, 60, 600] {
        run_once(&mut conn, &cfg, &Clock::Fixed(t0 + chrono::Duration::minutes(minutes))).unwrap();
    }
    let st = state_of(&conn, "user:alice:password").unwrap().unwrap();
    assert_eq!(
        (st.attempts, st.failed_at.as_deref()),
        (3, Some("2026-11-25T09:03:00Z"))
    );
    let errors = mail_errors(&conn);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(
        e.starts_with(&format!(
            "e-mail {} \"Votre mot de passe\" (user:alice:password) failed after 3 attempts",
            st.id
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("mail retry {}", st.id)) && e.contains("mail"),
        "{e}"
    );
    assert!(!e.contains("Zq8-very-secret"), "{e}");
}

#[test]
fn messages_left_at_the_limit_are_marked_failed_without_another_attempt() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();
    enqueue(&conn, t0, &msg("report:2", "b@example.org")).unwrap();
    // As a database from before `failed_at` left them (limit 3 here).
    conn.execute("UPDATE mail_queue SET attempts = 5, last_error = 'relay said no'", [])
        .unwrap();
    conn.execute(
        "UPDATE mail_queue SET last_error = NULL WHERE dedup_key = 'report:2'",
        [],
    )
    .unwrap();
    // Counted failed at once; marked by the next pass.
    let st = queue::status(&conn, &cfg, t0).unwrap();
    assert_eq!((st.pending, st.failed), (0, 2));
    assert!(st.failed_messages.iter().all(|f| f.failed_at.is_none()));
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            failed: 2,
            ..Default::default()
        }
    );
    assert!(eml_files(&cfg).is_empty(), "no attempt");
    let st = queue::status(&conn, &cfg, t0).unwrap();
    assert!(st.failed_messages.iter().all(|f| f.failed_at.is_some()));
    assert_eq!(st.failed_messages[1].last_error, "relay said no");
    assert!(st.failed_messages[0].last_error.contains("max_attempts = 3"));
    run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(mail_errors(&conn).len(), 2);
}

#[test]
fn retry_of_one_message_says_why_it_cannot() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "not an address")).unwrap();
    enqueue(&conn, t0, &msg("report:2", "ok@example.org")).unwrap();
    enqueue(
        &conn,
        t0 + chrono::Duration::hours(1),
        &msg("report:3", "ok@example.org"),
    )
    .unwrap();
    run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    let id = |k: &str| state_of(&conn, k).unwrap().unwrap().id;
    let (failed, sent, pending) = (id("report:1"), id("report:2"), id("report:3"));
    let err = |conn: &mut Connection, which| format!("{:#}", queue::retry(conn, &cfg, t0, which).unwrap_err());
    assert!(err(&mut conn, queue::Retry::One(999)).contains("no e-mail 999"));
    assert!(err(&mut conn, queue::Retry::One(sent)).contains("was sent at 2026-11-25T09:00:00Z"));
    assert!(err(&mut conn, queue::Retry::One(pending)).contains("has not failed"));
    assert_eq!(queue::retry(&mut conn, &cfg, t0, queue::Retry::One(failed)).unwrap(), 1);
    let st = state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!((st.attempts, st.failed_at), (0, None));
    assert!(err(&mut conn, queue::Retry::One(failed)).contains("has not failed"));
    assert_eq!(queue::retry(&mut conn, &cfg, t0, queue::Retry::All).unwrap(), 0);
}

#[test]
fn an_unbuildable_message_is_abandoned_at_once() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "not an address")).unwrap();
    enqueue(&conn, t0, &msg("report:2", "ok@example.org")).unwrap();
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 1,
            failed: 1,
            ..Default::default()
        }
    );
    let MailState {
        sent_at: sent,
        attempts,
        last_error: err,
        failed_at,
        ..
    } = state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!(
        (sent, attempts, failed_at.as_deref()),
        (None, 1, Some("2026-11-25T09:00:00Z"))
    );
    assert!(err.unwrap().contains("not an address"));
    assert_eq!(mail_errors(&conn).len(), 1);
}

#[test]
fn a_claimed_message_is_not_taken_twice() {
    let (_d, mut conn, cfg) = setup();
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();
    let q = due(&conn, t0, 3, 0).unwrap().remove(0);
    assert!(claim(&mut conn, &q, t0).unwrap());
    // A second worker holding the same stale read loses the race.
    assert!(!claim(&mut conn, &q, t0).unwrap());
    // And a pass during the lease does not see it.
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:05:00Z"))).unwrap();
    assert_eq!(s, DeliverySummary::default());
    // After the lease (a worker that died), it is delivered.
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(at("2026-11-25T09:10:00Z"))).unwrap();
    assert_eq!(s.sent, 1);
}

#[test]
fn history_application_follows_the_cause() {
    assert_eq!(application_for("report:12"), "aide-a-domicile");
    assert_eq!(application_for("relance:C04-2026-000123"), "habitat");
    assert_eq!(application_for("Attestation/77"), "habitat");
    assert_eq!(application_for(""), "aide-a-domicile");
}

/// Files of the database (itself, `-wal`, `-shm`) whose raw bytes hold `needle`.
fn files_holding(db: &std::path::Path, needle: &str) -> Vec<String> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            let bytes = std::fs::read(&p).ok()?;
            bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
                .then(|| p.display().to_string())
        })
        .collect()
}

const PASSWORD: &str = "Mdp-Tr4ce-9xQ";

fn secret_msg(key: &str, body: String) -> Message {
    Message {
        dedup_key: key.into(),
        recipients: vec!["alice@example.org".into()],
        subject: "Votre mot de passe provisoire".into(),
        body,
        secret: true,
    }
}

#[test]
fn a_delivered_secret_leaves_no_trace_in_the_database_files() {
    let (d, conn, cfg) = setup();
    let db = d.path().join("state/g.db");
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &secret_msg("user:a", format!("Mot de passe : {PASSWORD}\n"))).unwrap();
    // Large enough for overflow pages.
    let long = format!("{}\nMot de passe : {PASSWORD}-long\n", "Bonjour. ".repeat(2000));
    enqueue(&conn, t0, &secret_msg("user:b", long)).unwrap();
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();
    // Closed: the clear text is checkpointed into the database file itself.
    drop(conn);
    assert_eq!(files_holding(&db, PASSWORD), [db.display().to_string()]);

    // The daemon holds connections open: the WAL is not removed at close.
    let mut conn = crate::store::open(&db).unwrap();
    let other = crate::store::open(&db).unwrap();
    let s = run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(s.sent, 3);
    assert!(
        files_holding(&db, PASSWORD).is_empty(),
        "{:?}",
        files_holding(&db, PASSWORD)
    );
    let body = |k: &str| -> String {
        other
            .query_row("SELECT body FROM mail_queue WHERE dedup_key = ?1", [k], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(body("user:a"), WIPED_BODY);
    assert_eq!(body("user:b"), WIPED_BODY);
    assert_eq!(
        body("report:1"),
        "Bonjour,\nvotre fichier a été rejeté.\n",
        "only secrets are wiped"
    );
    // The delivery itself (the .eml file) holds it, readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    for f in eml_files(&cfg) {
        let meta = std::fs::metadata(eml_dir(&cfg).join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn a_busy_database_delays_the_wal_scrub_to_a_later_pass() {
    let (d, mut conn, cfg) = setup();
    let db = d.path().join("state/g.db");
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &secret_msg("user:a", format!("Mot de passe : {PASSWORD}\n"))).unwrap();
    // A reader in the middle of a long transaction.
    let mut reader = crate::store::open(&db).unwrap();
    let tx = reader.transaction().unwrap();
    let _: i64 = tx
        .query_row("SELECT COUNT(*) FROM mail_queue", [], |r| r.get(0))
        .unwrap();
    let mut scrub = WalScrub::default();
    let s = pass(&mut conn, &cfg, &Clock::Fixed(t0), &mut scrub).unwrap();
    assert_eq!(s.sent, 1, "the pass is not held up");
    assert!(
        !files_holding(&db, PASSWORD).is_empty(),
        "not yet emptied: the reader holds the WAL"
    );
    tx.finish().unwrap();
    // The next pass, with nothing to send, empties it.
    let s = pass(&mut conn, &cfg, &Clock::Fixed(t0), &mut scrub).unwrap();
    assert_eq!(s, DeliverySummary::default());
    assert!(files_holding(&db, PASSWORD).is_empty());
    assert_eq!(std::fs::metadata(format!("{}-wal", db.display())).unwrap().len(), 0);
}

#[test]
fn a_secret_delivered_by_an_older_version_is_wiped_at_the_next_pass() {
    let (d, mut conn, cfg) = setup();
    let db = d.path().join("state/g.db");
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &secret_msg("user:a", format!("Mot de passe : {PASSWORD}\n"))).unwrap();
    conn.execute("UPDATE mail_queue SET sent_at = '2026-11-25T09:00:00Z'", [])
        .unwrap();
    let _other = crate::store::open(&db).unwrap();
    // Even in a pass that cannot deliver (the relay's password is the mask).
    let mut masked = cfg.clone();
    masked.mail.smtp_url = Some(crate::mail::SmtpUrl::new("smtp://gw:***@127.0.0.1:25"));
    let e = run_once(&mut conn, &masked, &Clock::Fixed(t0)).unwrap_err();
    assert!(format!("{e:#}").contains("mask"), "{e:#}");
    assert!(files_holding(&db, PASSWORD).is_empty());
}

/// `From:` header of the `.eml` file of message `id`.
fn eml_from(cfg: &Config, id: i64) -> Option<String> {
    let name = eml_files(cfg)
        .into_iter()
        .find(|n| n.starts_with(&format!("{id:08}-")))?;
    let text = std::fs::read_to_string(eml_dir(cfg).join(name)).unwrap();
    text.lines().find_map(|l| l.strip_prefix("From: ")).map(str::to_owned)
}

#[test]
fn the_worker_takes_a_new_configuration_at_its_next_pass() {
    let (d, conn, mut cfg) = setup();
    cfg.paths.database = d.path().join("state/g.db");
    cfg.mail.from = "premier@caisse.fr".into();
    let t0 = at("2026-11-25T09:00:00Z");
    let id = |conn: &Connection, key: &str| state_of(conn, key).unwrap().unwrap().id;
    enqueue(&conn, t0, &msg("report:1", "a@example.org")).unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (cfg_tx, cfg_rx) = tokio::sync::watch::channel(Arc::new(cfg.clone()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The worker's waits: reported here, ended when the test says so.
        let (waits_tx, mut waits) = tokio::sync::mpsc::unbounded_channel::<Duration>();
        let go = Arc::new(tokio::sync::Notify::new());
        let wait = {
            let go = go.clone();
            move |d: Duration| {
                let (waits_tx, go) = (waits_tx.clone(), go.clone());
                async move {
                    let _ = waits_tx.send(d);
                    go.notified().await;
                }
            }
        };
        let w = tokio::spawn(worker_with(cfg_rx, Clock::Fixed(t0), stop_rx, wait));

        // First pass at start, with the first configuration.
        assert_eq!(waits.recv().await, Some(Duration::from_secs(10)));
        assert_eq!(
            eml_from(&cfg, id(&conn, "report:1")).as_deref(),
            Some("premier@caisse.fr")
        );

        // Reloaded during the wait: another sender, another interval.
        let mut second = cfg.clone();
        second.mail.from = "second@caisse.fr".into();
        second.mail.poll_secs = 30;
        cfg_tx.send(Arc::new(second.clone())).unwrap();
        enqueue(&conn, t0, &msg("report:2", "b@example.org")).unwrap();
        go.notify_one();
        assert_eq!(waits.recv().await, Some(Duration::from_secs(30)), "the new interval");
        assert_eq!(
            eml_from(&cfg, id(&conn, "report:2")).as_deref(),
            Some("second@caisse.fr")
        );

        // A relay now (down here): the next message goes to it, not to a file.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut third = second.clone();
        third.mail.smtp_url = Some(crate::mail::SmtpUrl::new(format!("smtp://127.0.0.1:{port}")));
        // [paths] are not reloaded: the queue stays where it is.
        third.paths.database = d.path().join("elsewhere/g.db");
        third.paths.spool = d.path().join("elsewhere");
        cfg_tx.send(Arc::new(third)).unwrap();
        enqueue(&conn, t0, &msg("report:3", "c@example.org")).unwrap();
        go.notify_one();
        waits.recv().await.unwrap();
        let st = state_of(&conn, "report:3").unwrap().unwrap();
        assert_eq!((st.sent_at, st.attempts), (None, 1));
        assert!(
            st.last_error.unwrap().to_lowercase().contains("connection refused"),
            "tried on the relay"
        );
        assert_eq!(eml_files(&cfg).len(), 2);
        assert!(!d.path().join("elsewhere").exists());

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("the worker stops")
            .unwrap();
    });
}
