//! A mail carrying a password (spec §5, §9): once delivered, to a real SMTP
//! server or as an `.eml` file, the password is nowhere in the raw bytes of
//! the database, its `-wal` or its `-shm`; the `.eml` file is mode 0600
//! whatever the umask. A connection is held open by the test throughout, as
//! the daemon's would be, so the WAL is not simply removed at exit: it must
//! have been emptied by the mail pass itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use ppas_gateway::mail::deliver::{self, WIPED_BODY};
use ppas_gateway::mail::{enqueue, Message};
use rusqlite::Connection;

use crate::mail::{at, config_file, free_port, setup, text, Sink};

/// A password-like string, recognisable in raw bytes.
const PASSWORD: &str = "Pw-7fQ2zX9wK-e2e";

fn password_mail() -> Message {
    Message {
        dedup_key: "user:alice:password".into(),
        recipients: vec!["alice@saad-nord.fr".into()],
        subject: "Votre mot de passe provisoire".into(),
        body: format!(
            "Bonjour,\n\nVotre identifiant : alice\nVotre mot de passe provisoire : {PASSWORD}\n\
             Il devra etre change a la premiere connexion.\n"
        ),
        secret: true,
    }
}

/// Files of the database whose raw bytes hold `needle`.
fn files_holding(db: &Path, needle: &str) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .collect()
}

/// `run mail` with the clock at 2026-11-25 09:00 UTC and umask 000.
fn run_mail_with_open_umask(config: &Path) -> std::process::Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(crate::support::bin())
        .arg("--config")
        .arg(config)
        .args(["run", "mail"])
        .env("PPAS_GATEWAY_NOW", "2026-11-25T09:00:00Z")
        .env_remove("RUST_LOG")
        .output()
        .expect("run ppas-gateway")
}

/// Queues the password mail; returns a connection held open (as the
/// daemon's), with the clear text checked to be in the files at first.
fn queue_it(cfg: &ppas_gateway::config::Config, conn: Connection) -> Connection {
    enqueue(&conn, at("2026-11-25T08:59:00Z"), &password_mail()).unwrap();
    let held = Connection::open(&cfg.paths.database).unwrap();
    drop(conn);
    assert!(
        !files_holding(&cfg.paths.database, PASSWORD).is_empty(),
        "the test would not see the password"
    );
    held
}

fn assert_wiped(cfg: &ppas_gateway::config::Config, held: &Connection) {
    let leaks = files_holding(&cfg.paths.database, PASSWORD);
    assert!(leaks.is_empty(), "the password is still in {leaks:?}");
    let body: String = held
        .query_row(
            "SELECT body FROM mail_queue WHERE dedup_key = 'user:alice:password'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(body, WIPED_BODY);
    let st = deliver::state_of(held, "user:alice:password").unwrap().unwrap();
    assert_eq!(st.sent_at.as_deref(), Some("2026-11-25T09:00:00Z"));
}

#[test]
fn an_eml_delivery_wipes_the_password_and_is_private_to_the_service_user() {
    use std::os::unix::fs::PermissionsExt;
    let (d, cfg, conn) = setup(None);
    let config = config_file(d.path(), &cfg);
    let held = queue_it(&cfg, conn);

    let out = run_mail_with_open_umask(&config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 envoyé(s)"), "{}", text(&out.stdout));
    assert_wiped(&cfg, &held);

    let files: Vec<PathBuf> = std::fs::read_dir(deliver::eml_dir(&cfg))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let meta = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "mode {:o}",
        meta.permissions().mode()
    );
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.contains(PASSWORD), "the delivery itself carries it:\n{eml}");
}

#[test]
fn an_smtp_delivery_wipes_the_password() {
    let port = free_port();
    let (d, cfg, conn) = setup(Some(port));
    let sink = Sink::start(port, &d.path().join("received"));
    let config = config_file(d.path(), &cfg);
    let held = queue_it(&cfg, conn);

    let out = run_mail_with_open_umask(&config);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 envoyé(s)"), "{}", text(&out.stdout));
    let got = sink.received();
    assert_eq!(got.len(), 1);
    assert!(got[0]["body"].as_str().unwrap().contains(PASSWORD), "{}", got[0]);
    assert_wiped(&cfg, &held);
    assert!(!deliver::eml_dir(&cfg).exists(), "no .eml file with a relay");
}
