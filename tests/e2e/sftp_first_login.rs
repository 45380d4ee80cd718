//! One-time (temporary) passwords at the SFTP login (spec §5): refused by
//! plain `password` authentication, replaced through `keyboard-interactive`
//! (paramiko, and OpenSSH `sftp` on a terminal), expired on the clock
//! (`PPAS_GATEWAY_NOW`, with the real daemon and its database).

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::sftp_support::*;

const PASSWORD_PROMPT: &str = "Mot de passe / Password: ";
const NEW_PROMPT: &str = "Nouveau mot de passe / New password: ";
const CONFIRM_PROMPT: &str = "Confirmez / Confirm: ";

fn rounds(auth: &Value) -> Vec<Value> {
    auth["rounds"].as_array().cloned().unwrap_or_default()
}

fn instructions(round: &Value) -> String {
    round["instructions"].as_str().unwrap_or_default().to_string()
}

fn verifies(hash: &Option<String>, pw: &str) -> bool {
    ppas_gateway::accounts::verify_password(hash.as_deref().expect("a password"), pw)
}

/// The first line (the authentication) of a paramiko run from `source`.
fn attempt(gw: &Gateway, login: &str, secret: Secret<'_>, source: &str) -> Value {
    let mut cmd = gw.paramiko_cmd(login, secret, &json!([]));
    cmd.args(["--source", source]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

#[test]
fn paramiko_replaces_a_temporary_password_through_keyboard_interactive() {
    let gw = Gateway::start("");
    gw.user_with_temporary_password("tina", "saad1", "Temp2345", None);
    let lines = gw.paramiko(
        "tina",
        Secret::Interactive(&[&["Temp2345"], &["Mine2026", "Mine2026"]]),
        json!([["ls", "/"]]),
    );
    let auth = op(&lines, 0);
    assert!(ok(auth), "{lines:?}");
    let r = rounds(auth);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0]["prompts"], json!([[PASSWORD_PROMPT, false]]));
    assert_eq!(
        r[1]["prompts"],
        json!([[NEW_PROMPT, false], [CONFIRM_PROMPT, false]]),
        "the new password twice, not echoed"
    );
    assert!(
        instructions(&r[1]).contains("Your password is temporary: choose a new one, 8 to 12 letters and digits"),
        "{r:?}"
    );
    assert_eq!(op(&lines, 1)["result"], json!(["in", "out"]), "the session went in");

    let acc = gw.accounts.get("tina");
    assert!(!acc.password_temporary && acc.password_expires_at.is_none());
    assert!(verifies(&acc.password_hash, "Mine2026"));
    assert!(acc.password_hash.as_deref().unwrap().starts_with("$argon2id$"));

    // The new password works by `password` and by keyboard-interactive (one prompt).
    let lines = gw.paramiko("tina", Secret::Password("Mine2026"), json!([["ls", "/in"]]));
    assert!(ok(op(&lines, 1)), "{lines:?}");
    let lines = gw.paramiko("tina", Secret::Interactive(&[&["Mine2026"]]), json!([["ls", "/"]]));
    assert!(ok(op(&lines, 0)), "{lines:?}");
    assert_eq!(rounds(op(&lines, 0)).len(), 1, "a permanent password is asked once");
    // The temporary one opens nothing any more.
    let lines = gw.paramiko("tina", Secret::Password("Temp2345"), json!([]));
    assert!(!ok(op(&lines, 0)), "{lines:?}");
    let lines = gw.paramiko("tina", Secret::Interactive(&[&["Temp2345"]]), json!([]));
    assert!(!ok(op(&lines, 0)), "{lines:?}");
    assert_eq!(rounds(op(&lines, 0)).len(), 1, "no change round: {lines:?}");
}

#[test]
fn new_passwords_breaking_the_rules_are_refused_with_the_reason() {
    let gw = Gateway::start("");
    gw.user_with_temporary_password("tom", "saad1", "Temp2345", None);
    // Too short, then two different entries, then the temporary one again:
    // each refusal says why; the third ends the attempt.
    let lines = gw.paramiko(
        "tom",
        Secret::Interactive(&[
            &["Temp2345"],
            &["short1", "short1"],
            &["Mine2026", "Mine2027"],
            &["Temp2345", "Temp2345"],
            &["Mine2026", "Mine2026"],
        ]),
        json!([]),
    );
    let auth = op(&lines, 0);
    assert!(!ok(auth), "{lines:?}");
    let r = rounds(auth);
    assert_eq!(r.len(), 4, "three refusals, then the attempt fails: {r:?}");
    assert!(!instructions(&r[1]).contains("Refused"), "{r:?}");
    let why = instructions(&r[2]);
    assert!(
        why.contains("Refused: the password must have 8 to 12 characters (it has 6).")
            && why.contains("Refuse : le mot de passe doit avoir de 8 a 12 caracteres (il en a 6)."),
        "{why}"
    );
    assert!(
        instructions(&r[3]).contains("Refused: the two entries differ."),
        "{r:?}"
    );
    let acc = gw.accounts.get("tom");
    assert!(acc.password_temporary, "nothing changed");
    assert!(verifies(&acc.password_hash, "Temp2345"));
    let all = serde_json::to_string(&r).unwrap();
    assert!(
        !all.contains("short1") && !all.contains("Mine2026") && !all.contains("Temp2345"),
        "no password is ever repeated: {all}"
    );

    // The temporary password still works: a refusal, then a good one.
    let lines = gw.paramiko(
        "tom",
        Secret::Interactive(&[
            &["Temp2345"],
            &["nodigitshere", "nodigitshere"],
            &["Good2026x", "Good2026x"],
        ]),
        json!([["ls", "/"]]),
    );
    assert!(ok(op(&lines, 0)), "{lines:?}");
    let r = rounds(op(&lines, 0));
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(
        instructions(&r[2]).contains("Refused: the password must contain at least one digit."),
        "{r:?}"
    );
    assert!(ok(op(&lines, 1)), "{lines:?}");
    let acc = gw.accounts.get("tom");
    assert!(!acc.password_temporary && verifies(&acc.password_hash, "Good2026x"));
}

#[test]
fn plain_password_auth_refuses_a_temporary_password_like_a_wrong_one_without_counting_it() {
    let gw = Gateway::start("failure_delay_ms = 400\nlockout_after_failures = 2\n");
    gw.user_with_temporary_password("tara", "saad1", "Temp2345", None);
    gw.user_with_password("paul", "saad1", "Perm2345");
    let temp = attempt(&gw, "tara", Secret::Password("Temp2345"), "127.0.0.2");
    let wrong = attempt(&gw, "paul", Secret::Password("Wrong999"), "127.0.0.3");
    let unknown = attempt(&gw, "nobody", Secret::Password("Temp2345"), "127.0.0.4");
    for a in [&temp, &wrong, &unknown] {
        assert!(!ok(a), "{a}");
        assert_eq!(a["error"], temp["error"], "the same answer: {temp} {wrong} {unknown}");
        assert!(a["seconds"].as_f64().unwrap() >= 0.4, "the same delay: {a}");
    }
    let secs: Vec<f64> = [&temp, &wrong, &unknown]
        .iter()
        .map(|a| a["seconds"].as_f64().unwrap())
        .collect();
    let spread = secs.iter().cloned().fold(0f64, f64::max) - secs.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.3, "timings do not tell the cases apart: {secs:?}");

    // Twice more from the same address: two failures would lock it, but a
    // right temporary password is not an attack.
    for _ in 0..2 {
        assert!(!ok(&attempt(&gw, "tara", Secret::Password("Temp2345"), "127.0.0.2")));
    }
    let changed = attempt(
        &gw,
        "tara",
        Secret::Interactive(&[&["Temp2345"], &["Tara2026", "Tara2026"]]),
        "127.0.0.2",
    );
    assert!(ok(&changed), "not locked, and the change goes through: {changed}");
    // A wrong password through keyboard-interactive counts like any other.
    for _ in 0..2 {
        let a = attempt(&gw, "tara", Secret::Interactive(&[&["Wrong999"]]), "127.0.0.5");
        assert!(!ok(&a) && rounds(&a).len() == 1, "{a}");
    }
    let locked = attempt(&gw, "tara", Secret::Password("Tara2026"), "127.0.0.5");
    assert!(!ok(&locked), "two wrong passwords locked the source: {locked}");
}

#[test]
fn openssh_sftp_on_a_terminal_replaces_a_temporary_password() {
    let gw = Gateway::start("");
    gw.user_with_temporary_password("olga", "saad1", "Temp2345", None);
    // First login: the temporary password, a confirmation that differs
    // (the reason is shown, the new password asked again), then a good one.
    let (code, t) = gw.sftp_pty(
        "olga",
        "keyboard-interactive",
        &[
            ("Password: ", "Temp2345"),
            ("New password: ", "Olga2026"),
            ("Confirm: ", "Olga2027"),
            ("New password: ", "Olga2026"),
            ("Confirm: ", "Olga2026"),
            ("sftp> ", "ls /"),
            ("sftp> ", "bye"),
        ],
    );
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("Mot de passe provisoire / Temporary password"), "{t}");
    assert!(
        t.contains("Refused: the two entries differ."),
        "the reason is shown: {t}"
    );
    assert!(t.contains("in") && t.contains("out"), "{t}");
    for pw in ["Temp2345", "Olga2026", "Olga2027"] {
        assert!(!t.contains(pw), "passwords are typed without echo: {t}");
    }
    let acc = gw.accounts.get("olga");
    assert!(!acc.password_temporary && verifies(&acc.password_hash, "Olga2026"));

    // Next login, by plain `password` authentication, with the new password.
    let (code, t) = gw.sftp_pty(
        "olga",
        "password",
        &[("password: ", "Olga2026"), ("sftp> ", "pwd"), ("sftp> ", "bye")],
    );
    assert_eq!(code, Some(0), "{t}");
    assert!(t.contains("Remote working directory: /"), "{t}");
    // The temporary password is refused now, by either method.
    for method in ["keyboard-interactive", "password"] {
        let wait = if method == "password" {
            "password: "
        } else {
            "Password: "
        };
        let (code, t) = gw.sftp_pty("olga", method, &[(wait, "Temp2345")]);
        assert_ne!(code, Some(0), "{method}: {t}");
        assert!(t.contains("Permission denied"), "{method}: {t}");
        assert!(!t.contains("New password"), "{method}: {t}");
    }
    // And a temporary password never opens a session by `password`.
    gw.user_with_temporary_password("oscar", "saad1", "Temp6789", None);
    let (code, t) = gw.sftp_pty("oscar", "password", &[("password: ", "Temp6789")]);
    assert_ne!(code, Some(0), "{t}");
    assert!(t.contains("Permission denied"), "{t}");
}

/// The real daemon on a spool, its output collected.
struct Serve {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Serve {
    fn start(cfg: &std::path::Path, now: &str) -> Serve {
        let mut child = Command::new(crate::support::bin())
            .arg("--config")
            .arg(cfg)
            .arg("serve")
            .env("PPAS_GATEWAY_NOW", now)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (tx, log) = (tx.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let port = loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("serve starts");
            if let Some(rest) = line.split("SFTP server listening on 127.0.0.1:").nth(1) {
                break rest.split_whitespace().next().unwrap().parse::<u16>().unwrap();
            }
        };
        Serve { child, log, port }
    }

    fn paramiko(&self, login: &str, secret: Secret<'_>, ops: Value) -> Vec<Value> {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(crate::support::repo().join("scripts/sftp_client.py")).args([
            "--port",
            &self.port.to_string(),
            "--user",
            login,
        ]);
        match secret {
            Secret::Password(p) => cmd.arg("--password").arg(p),
            Secret::Interactive(r) => cmd.arg("--interactive").arg(serde_json::to_string(r).unwrap()),
            Secret::Key(k) => cmd.arg("--key").arg(k),
        };
        cmd.arg(ops.to_string());
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `user add` at a given instant, with `[accounts] temporary_password_days
/// = 2`, then the daemon two days later: the password made one second
/// later still works (and is replaced, in the database); the other has
/// just expired, by either method.
#[test]
fn serve_expires_temporary_passwords_on_the_clock_and_stores_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = root.join("ppas-gateway.toml");
    let db_path = root.join("spool/state/gateway.db");
    fs::write(
        &cfg,
        format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n[sftp]\nlisten = \"127.0.0.1:0\"\nhost_key = {:?}\n\
             failure_delay_ms = 50\n[accounts]\ntemporary_password_days = 2\n",
            root.join("spool"),
            db_path,
            root.join("spool/state/ssh_host_ed25519_key"),
        ),
    )
    .unwrap();
    let gw = |args: &[&str], now: &str| {
        let out = Command::new(crate::support::bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("PPAS_GATEWAY_NOW", now)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    let providers = crate::support::repo().join("tests/fixtures/import/providers.csv");
    gw(
        &["import", "providers", providers.to_str().unwrap()],
        "2026-11-02T10:00:00+01:00",
    );
    let add = |login: &str, now: &str| {
        let email = format!("{login}@saad21.example");
        gw(
            &[
                "user",
                "add",
                "--provider",
                "saad21",
                "--login",
                login,
                "--email",
                &email,
            ],
            now,
        );
    };
    add("late", "2026-11-02T10:00:00+01:00");
    add("early", "2026-11-02T10:00:01+01:00");
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let password_of = |login: &str| -> String {
        let body: String = db
            .query_row(
                "SELECT body FROM mail_queue WHERE dedup_key = ?1",
                [format!("user-created:{login}")],
                |r| r.get(0),
            )
            .unwrap();
        assert!(body.contains("jusqu'au 04/11/2026 à 10:00"), "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix("Mot de passe provisoire : "))
            .expect("password in the mail")
            .to_string()
    };
    let (late, early) = (password_of("late"), password_of("early"));
    let state = |login: &str| -> (i64, Option<String>) {
        db.query_row(
            "SELECT password_temporary, password_expires_at FROM users WHERE login = ?1",
            [login],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(state("late"), (1, Some("2026-11-04T09:00:00Z".into())));
    assert_eq!(state("early"), (1, Some("2026-11-04T09:00:01Z".into())));

    // Exactly when `late` expires; one second before `early` does.
    let serve = Serve::start(&cfg, "2026-11-04T10:00:00+01:00");
    let lines = serve.paramiko(
        "early",
        Secret::Interactive(&[&[early.as_str()], &["Early2026", "Early2026"]]),
        json!([["ls", "/"]]),
    );
    assert!(ok(op(&lines, 0)) && ok(op(&lines, 1)), "{lines:?}\n{}", serve.log());
    assert_eq!(state("early"), (0, None), "permanent now, no expiry");
    let phc: String = db
        .query_row("SELECT password_hash FROM users WHERE login = 'early'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(ppas_gateway::accounts::verify_password(&phc, "Early2026"));
    let comment: String = db
        .query_row(
            "SELECT comment FROM history WHERE kind = 'account' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        comment,
        "one-time password of account early replaced by its user at login (SFTP)"
    );
    let lines = serve.paramiko("early", Secret::Password("Early2026"), json!([["ls", "/in"]]));
    assert!(ok(op(&lines, 1)), "{lines:?}");
    let lines = serve.paramiko("early", Secret::Password(&early), json!([]));
    assert!(!ok(op(&lines, 0)), "the one-time password is spent: {lines:?}");

    for secret in [
        Secret::Interactive(&[&[late.as_str()], &["Late2026x", "Late2026x"]]),
        Secret::Password(&late),
    ] {
        let lines = serve.paramiko("late", secret, json!([]));
        assert!(!ok(op(&lines, 0)), "expired: {lines:?}");
        assert!(rounds(op(&lines, 0)).len() <= 1, "no change round: {lines:?}");
    }
    assert_eq!(state("late"), (1, Some("2026-11-04T09:00:00Z".into())));

    Gateway::wait_until("the refusals in the log", || {
        serve.log().contains("temporary password expired")
    });
    let log = serve.log();
    assert!(
        log.lines()
            .any(|l| l.contains("temporary password expired") && l.contains("late")),
        "{log}"
    );
    assert!(log.contains("SFTP temporary password replaced by its user"), "{log}");
    for pw in [late.as_str(), early.as_str(), "Early2026", "Late2026x"] {
        assert!(!log.contains(pw), "no password in the log: {log}");
    }
}
