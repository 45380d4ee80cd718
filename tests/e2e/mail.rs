//! Mail delivery against a real SMTP server (`scripts/smtp_sink.py`, on
//! Debian's aiosmtpd), and `.eml` files read back by Python's e-mail parser.
//! Time rules are driven by a fixed clock, never by sleeping.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use ppas_gateway::clock::Clock;
use ppas_gateway::config::Config;
use ppas_gateway::mail::deliver::{self, DeliverySummary};
use ppas_gateway::mail::{enqueue, queue, Message};
use rusqlite::Connection;
use serde_json::Value;

use crate::support::repo;

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A port with nothing listening on it (yet).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The SMTP sink, stopped when dropped.
pub(crate) struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Sink {
    pub(crate) fn start(port: u16, dir: &Path) -> Sink {
        let mut child = Command::new("/usr/bin/python3")
            .arg(repo().join("scripts/smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (python3-aiosmtpd) is required");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "SMTP sink did not start");
        Sink {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Decoded records of the messages received, in arrival order.
    pub(crate) fn received(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json") && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn setup(smtp_port: Option<u16>) -> (tempfile::TempDir, Config, Connection) {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.paths.spool = d.path().join("spool");
    cfg.paths.database = d.path().join("spool/state/gateway.db");
    cfg.mail.from = "ppas-gateway@carsat-exemple.fr".into();
    cfg.mail.smtp_url = smtp_port.map(|p| ppas_gateway::mail::SmtpUrl::new(format!("smtp://127.0.0.1:{p}")));
    let conn = ppas_gateway::store::open(&cfg.paths.database).unwrap();
    (d, cfg, conn)
}

const SUBJECT: &str = "Compte rendu : fichier « 04_251126_100_21999000.xml » partiellement accepté — 2 anomalies";
const BODY: &str = "Bonjour,\n\nLe fichier 04_251126_100_21999000.xml a été traité : 1 ligne acceptée, 2 rejetées.\nLe compte rendu détaillé est déposé dans /out/reports.\n\nCordialement,\nLa caisse\n";

fn notice(key: &str, to: &[&str]) -> Message {
    Message {
        dedup_key: key.into(),
        recipients: to.iter().map(|s| s.to_string()).collect(),
        subject: SUBJECT.into(),
        body: BODY.into(),
        secret: false,
    }
}

fn history_mail(conn: &Connection) -> Vec<(String, String)> {
    let mut st = conn
        .prepare("SELECT application, comment FROM history WHERE kind = 'mail' ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn relay_down_then_up_delivers_each_message_exactly_once() {
    let port = free_port();
    let (d, cfg, mut conn) = setup(Some(port));
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(
        &conn,
        t0,
        &notice("report:1", &["gestion@saad-nord.fr", "direction@saad-nord.fr"]),
    )
    .unwrap();
    enqueue(&conn, t0, &notice("report:2", &["compta@saad-nord.fr"])).unwrap();

    // Relay down: the first message is charged an attempt, the pass stops.
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            retried: 1,
            deferred: 1,
            ..Default::default()
        }
    );
    let deliver::MailState {
        sent_at: sent,
        attempts,
        last_error: err,
        ..
    } = deliver::state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!((sent, attempts), (None, 1));
    assert!(!err.unwrap().is_empty());
    let st = queue::status(&conn, &cfg, t0).unwrap();
    assert_eq!((st.pending, st.sent), (2, 0));
    assert_eq!(st.retrying[0].dedup_key, "report:1");

    // The relay comes back. 30 s later the first is still backing off (1 min);
    // the second, never attempted, goes out.
    let sink = Sink::start(port, &d.path().join("received"));
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::seconds(30))).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 1,
            ..Default::default()
        }
    );
    assert_eq!(sink.received().len(), 1);
    assert_eq!(
        sink.received()[0]["rcpt_tos"],
        serde_json::json!(["compta@saad-nord.fr"])
    );

    // At +1 min the first is due again and delivered.
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::seconds(60))).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 1,
            ..Default::default()
        }
    );

    // Later passes send nothing more.
    for h in [1, 5, 48] {
        let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::hours(h))).unwrap();
        assert_eq!(s, DeliverySummary::default());
    }
    let got = sink.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let first = &got[1];
    assert_eq!(
        first["rcpt_tos"],
        serde_json::json!(["gestion@saad-nord.fr", "direction@saad-nord.fr"])
    );
    // Decoded back by Python's parser: accents, guillemets and dash intact.
    assert_eq!(first["subject"], SUBJECT);
    // lettre always ends DATA with CRLF "." CRLF, even after a final line
    // break, so the relay sees one more empty line at the end: harmless.
    assert_eq!(
        first["body"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        BODY.trim_end()
    );
    assert_eq!(first["mail_from"], "ppas-gateway@carsat-exemple.fr");
    assert_eq!(first["from"], "ppas-gateway@carsat-exemple.fr");
    assert_eq!(first["auto_submitted"], "auto-generated");
    assert!(
        first["message_id"].as_str().unwrap().ends_with("@carsat-exemple.fr>"),
        "{first}"
    );
    assert_eq!(first["date"], "Wed, 25 Nov 2026 09:01:00 +0000");

    let deliver::MailState {
        sent_at: sent,
        attempts,
        last_error: err,
        ..
    } = deliver::state_of(&conn, "report:1").unwrap().unwrap();
    assert_eq!(
        (sent.as_deref(), attempts, err),
        (Some("2026-11-25T09:01:00Z"), 1, None)
    );
    let hist = history_mail(&conn);
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].0, "aide-a-domicile");
    assert!(
        hist[1].1.contains("gestion@saad-nord.fr") && hist[1].1.contains("report:1"),
        "{hist:?}"
    );
    let st = queue::status(&conn, &cfg, t0 + Duration::hours(48)).unwrap();
    assert_eq!((st.pending, st.failed, st.sent), (0, 0, 2));
    assert!(st.retrying.is_empty() && st.failed_messages.is_empty());
}

#[test]
fn a_refused_message_backs_off_alone_and_is_abandoned_after_max_attempts() {
    let port = free_port();
    let (d, mut cfg, mut conn) = setup(Some(port));
    cfg.mail.max_attempts = 3;
    let sink = Sink::start(port, &d.path().join("received"));
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &notice("report:1", &["refuse@saad-nord.fr"])).unwrap();
    enqueue(&conn, t0, &notice("report:2", &["ok@saad-nord.fr"])).unwrap();

    // The relay answers 550 for the first: only that message fails.
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0)).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 1,
            retried: 1,
            ..Default::default()
        }
    );
    let err = deliver::state_of(&conn, "report:1")
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert!(err.contains("550"), "{err}");

    // Attempts 2 and 3 at +1 min and +3 min; then abandoned.
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::minutes(1))).unwrap();
    assert_eq!(s.retried, 1);
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::minutes(3))).unwrap();
    assert_eq!(s.failed, 1);
    let s = deliver::run_once(&mut conn, &cfg, &Clock::Fixed(t0 + Duration::days(3))).unwrap();
    assert_eq!(s, DeliverySummary::default());

    let st = queue::status(&conn, &cfg, t0 + Duration::days(3)).unwrap();
    assert_eq!((st.pending, st.failed, st.sent), (0, 1, 1));
    let f = &st.failed_messages[0];
    assert_eq!(f.failed_at.as_deref(), Some("2026-11-25T09:03:00Z"));
    assert!(f.last_error.contains("550"), "{f:?}");
    assert_eq!(sink.received().len(), 1);
}

/// Python's parser on an `.eml` file: the decoded headers and body.
fn parse_eml(path: &Path) -> Value {
    let script = concat!(
        "import email, email.policy, json, sys\n",
        "m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\n",
        "print(json.dumps({'subject': str(m['Subject']), 'to': str(m['To']), 'from': str(m['From']),\n",
        "    'message_id': str(m['Message-ID']), 'body': m.get_body(('plain',)).get_content()}))\n",
    );
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn without_a_relay_messages_become_eml_files_once() {
    let (_d, cfg, conn) = setup(None);
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &notice("report:1", &["gestion@saad-nord.fr"])).unwrap();
    enqueue(&conn, t0, &notice("relance:C04-2026-000123", &["ergo@cabinet.fr"])).unwrap();
    // The same cause queued again is ignored.
    assert!(!enqueue(&conn, t0, &notice("report:1", &["gestion@saad-nord.fr"])).unwrap());
    drop(conn);

    // What `run mail` does: open the database from the configuration.
    let clock = Clock::Fixed(t0 + Duration::seconds(5));
    let s = deliver::run_job(&cfg, &clock).unwrap();
    assert_eq!(
        s,
        DeliverySummary {
            sent: 2,
            ..Default::default()
        }
    );
    let dir = deliver::eml_dir(&cfg);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let raw = std::fs::read(&files[0]).unwrap();
    assert!(
        raw.windows(2).any(|w| w == b"\r\n") && raw.is_ascii(),
        "RFC 5322: CRLF, 7-bit headers and encoded body"
    );
    let m = parse_eml(&files[0]);
    assert_eq!(m["subject"], SUBJECT);
    assert_eq!(m["to"], "gestion@saad-nord.fr");
    assert_eq!(m["from"], "ppas-gateway@carsat-exemple.fr");
    assert_eq!(m["body"].as_str().unwrap().replace("\r\n", "\n"), BODY);

    // Re-runs write nothing more.
    let s = deliver::run_job(&cfg, &Clock::Fixed(t0 + Duration::days(1))).unwrap();
    assert_eq!(s, DeliverySummary::default());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let conn = ppas_gateway::store::open(&cfg.paths.database).unwrap();
    let apps: Vec<String> = history_mail(&conn).into_iter().map(|(a, _)| a).collect();
    assert_eq!(apps, ["aide-a-domicile", "habitat"]);
}

#[test]
fn the_async_entry_point_runs_off_the_runtime() {
    let (_d, cfg, conn) = setup(None);
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &notice("report:1", &["gestion@saad-nord.fr"])).unwrap();
    drop(conn);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = std::sync::Arc::new(cfg);
    let s = rt
        .block_on(deliver::run_job_async(cfg.clone(), Clock::Fixed(t0)))
        .unwrap();
    assert_eq!(s.sent, 1);
    // The periodic worker stops when told to.
    let (tx, rx) = tokio::sync::watch::channel(false);
    rt.block_on(async {
        let (_cfg_tx, cfg_rx) = tokio::sync::watch::channel(cfg.clone());
        let w = tokio::spawn(deliver::worker(cfg_rx, Clock::Fixed(t0), rx));
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), w)
            .await
            .unwrap()
            .unwrap();
    });
}

/// Runs the binary with a configuration file and the clock at `now`.
pub(crate) fn gateway(config: &Path, now: DateTime<Utc>, args: &[&str]) -> std::process::Output {
    Command::new(crate::support::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("PPAS_GATEWAY_NOW", now.to_rfc3339())
        .env_remove("RUST_LOG")
        .output()
        .expect("run ppas-gateway")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A configuration file for `cfg` (paths, sender, relay, attempts).
pub(crate) fn config_file(dir: &Path, cfg: &Config) -> PathBuf {
    let path = dir.join("ppas-gateway.toml");
    let mut t = format!(
        "[paths]\nspool = {:?}\ndatabase = {:?}\n[mail]\nfrom = {:?}\nmax_attempts = {}\n",
        cfg.paths.spool.display().to_string(),
        cfg.paths.database.display().to_string(),
        cfg.mail.from,
        cfg.mail.max_attempts
    );
    if let Some(u) = &cfg.mail.smtp_url {
        // No password in these URLs: the masked form is the URL.
        t.push_str(&format!("smtp_url = {:?}\n", u.to_string()));
    }
    std::fs::write(&path, t).unwrap();
    path
}

#[test]
fn a_message_failed_after_its_last_attempt_is_shown_then_retried_by_hand_and_sent_once() {
    let port = free_port();
    let (d, mut cfg, conn) = setup(Some(port));
    cfg.mail.max_attempts = 3;
    let config = config_file(d.path(), &cfg);
    let t0 = at("2026-11-25T09:00:00Z");
    enqueue(&conn, t0, &notice("report:1", &["gestion@saad-nord.fr"])).unwrap();
    let id = deliver::state_of(&conn, "report:1").unwrap().unwrap().id;
    drop(conn);

    // The relay is down for the three attempts (at +0, +1 and +3 min).
    let mut logs = String::new();
    for (minutes, summary) in [
        (0, "1 à réessayer, 0 en échec"),
        (1, "1 à réessayer, 0 en échec"),
        (2, "0 à réessayer, 0 en échec"),
        (3, "0 à réessayer, 1 en échec"),
        (60, "0 à réessayer, 0 en échec"),
    ] {
        let out = gateway(&config, t0 + Duration::minutes(minutes), &["run", "mail"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(summary),
            "+{minutes} min: {}",
            text(&out.stdout)
        );
        logs.push_str(&text(&out.stderr));
    }
    let failed_lines: Vec<&str> = logs.lines().filter(|l| l.contains("e-mail failed")).collect();
    assert_eq!(failed_lines.len(), 1, "logged once:\n{logs}");
    assert!(failed_lines[0].contains("ERROR"), "at error level: {}", failed_lines[0]);

    // `status` counts it failed and shows why, once.
    let out = gateway(&config, t0 + Duration::hours(2), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["mail_pending"].as_u64(), v["mail_failed"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    let errors: Vec<&Value> = v["last_errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["worker"] == "mail")
        .collect();
    assert_eq!(errors.len(), 1, "{v}");
    let note = errors[0]["message"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("e-mail {id} \"{SUBJECT}\" (report:1) failed after 3 attempts")),
        "{note}"
    );
    assert!(note.to_lowercase().contains("connection refused"), "{note}");
    assert!(!note.contains("a été traité"), "never the body: {note}");
    // Each failed message with its error, for `status` to display.
    let conn = ppas_gateway::store::open(&cfg.paths.database).unwrap();
    let st = queue::status(&conn, &cfg, t0 + Duration::hours(2)).unwrap();
    assert_eq!(st.failed_messages.len(), 1);
    let f = &st.failed_messages[0];
    assert_eq!(
        (f.id, f.dedup_key.as_str(), f.subject.as_str(), f.attempts),
        (id, "report:1", SUBJECT, 3)
    );
    assert_eq!(f.failed_at.as_deref(), Some("2026-11-25T09:03:00Z"));
    assert!(f.last_error.to_lowercase().contains("connection refused"), "{f:?}");
    drop(conn);

    // The relay is back; the operator queues it again.
    let sink = Sink::start(port, &d.path().join("received"));
    let later = t0 + Duration::days(1);
    for (args, code, needle) in [
        (&["mail", "retry", "999"][..], 2, "no e-mail 999"),
        (&["mail", "retry"][..], 2, "--all"),
        (&["mail", "retry", "--all", "1"][..], 2, "cannot be used with"),
    ] {
        let out = gateway(&config, later, args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
    let out = gateway(&config, later, &["mail", "retry", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "1 failed e-mail queued again; it goes out at the next mail pass\n"
    );
    let out = gateway(&config, later, &["mail", "retry", &id.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("has not failed"), "{}", text(&out.stderr));

    let out = gateway(&config, later, &["run", "mail"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 envoyé(s)"), "{}", text(&out.stdout));
    let out = gateway(&config, later + Duration::hours(1), &["run", "mail"]);
    assert!(text(&out.stdout).contains("0 envoyé(s)"), "{}", text(&out.stdout));
    let got = sink.received();
    assert_eq!(got.len(), 1, "delivered once: {got:#?}");
    assert_eq!(got[0]["subject"], SUBJECT);
    let out = gateway(&config, later + Duration::hours(1), &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["mail_pending"].as_u64(), v["mail_failed"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
}

#[test]
fn mail_retry_never_creates_a_database() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.paths.spool = d.path().join("spool");
    cfg.paths.database = d.path().join("spool/state/gateway.db");
    let config = config_file(d.path(), &cfg);
    let out = gateway(&config, at("2026-11-25T09:00:00Z"), &["mail", "retry", "--all"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no database at") && err.contains(&cfg.paths.database.display().to_string()),
        "{err}"
    );
    assert!(!d.path().join("spool").exists(), "nothing created");
}
