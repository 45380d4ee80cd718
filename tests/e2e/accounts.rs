//! `ppas-gateway user add|list|disable|key-add|passwd`, run as an operator
//! runs it, with keys made by the real `ssh-keygen`.

use std::path::PathBuf;
use std::process::Command;

use crate::import::{text, Gateway};
use crate::support;

/// Generates a key pair with ssh-keygen; returns the public-key file.
fn keygen(g: &Gateway, name: &str, args: &[&str]) -> PathBuf {
    assert!(support::have("ssh-keygen"), "ssh-keygen is needed (OpenSSH client)");
    let path = g.dir.path().join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .args(args)
        .status()
        .expect("run ssh-keygen");
    assert!(st.success(), "ssh-keygen {args:?} failed");
    path.with_extension("pub")
}

/// `SHA256:…` as `ssh-keygen -l` prints it.
fn fingerprint(pubkey: &PathBuf) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey)
        .output()
        .expect("ssh-keygen -l");
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string()
}

fn ok(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn refused(out: &std::process::Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn mails(g: &Gateway) -> Vec<(String, String, String)> {
    let c = g.db();
    let mut s = c
        .prepare("SELECT dedup_key, recipients, body FROM mail_queue ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn add_with_a_key_and_without_one() {
    let g = Gateway::new().with_providers();
    let pubkey = keygen(&g, "alice_ed25519", &["-t", "ed25519"]);
    let fp = fingerprint(&pubkey);
    let out = g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "alice",
            "--email",
            "alice@saad21.example",
            "--key",
            pubkey.to_str().unwrap(),
        ],
        None,
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("account alice created for provider saad21 (administrator)"),
        "{stdout}"
    );
    assert!(stdout.contains(&fp), "{stdout} vs {fp}");

    let out = g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "bob",
            "--email",
            "bob@saad21.example",
        ],
        None,
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("account bob created for provider saad21 (user)"),
        "{stdout}"
    );

    // One e-mail per new account; bob's carries his one-time password.
    let m = mails(&g);
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(
        (m[0].0.as_str(), m[0].1.as_str()),
        ("user-created:alice", "alice@saad21.example")
    );
    assert!(m[0].2.contains(&fp));
    assert_eq!(
        (m[1].0.as_str(), m[1].1.as_str()),
        ("user-created:bob", "bob@saad21.example")
    );
    let pw = m[1]
        .2
        .lines()
        .find_map(|l| l.strip_prefix("Mot de passe provisoire : "))
        .expect("password in mail");
    assert!(
        !text(&out.stdout).contains(pw) && !text(&out.stderr).contains(pw),
        "never printed"
    );

    let c = g.db();
    let bob = ppas_gateway::accounts::find_login(&c, "bob").unwrap().unwrap();
    assert!(ppas_gateway::accounts::verify_password(
        bob.password_hash.as_deref().unwrap(),
        pw
    ));
    let alice = ppas_gateway::accounts::find_login(&c, "alice").unwrap().unwrap();
    assert_eq!(alice.password_hash, None);
    let key_line = std::fs::read_to_string(&pubkey).unwrap();
    assert_eq!(
        alice.keys,
        vec![key_line.split_whitespace().take(2).collect::<Vec<_>>().join(" ")]
    );
    let stored_fp: String = c
        .query_row("SELECT fingerprint FROM user_keys WHERE login='alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored_fp, fp);
    let entries: i64 = c
        .query_row("SELECT COUNT(*) FROM history WHERE kind='account'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, 2);

    let list = ok(&g.run(&["user", "list"], None));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("LOGIN"), "{list}");
    let alice_row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        alice_row,
        ["alice", "saad21", "alice@saad21.example", "yes", "no", "1", "no"]
    );
    let bob_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(bob_row, ["bob", "saad21", "bob@saad21.example", "no", "no", "0", "yes"]);
    let other = ok(&g.run(&["user", "list", "--provider", "ergo62"], None));
    assert_eq!(other.lines().count(), 1, "header only: {other}");

    // Same login again, unknown provider, bad login: refused.
    let e = refused(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "bob",
            "--email",
            "b@x.example",
        ],
        None,
    ));
    assert!(e.contains("login bob already exists"), "{e}");
    let e = refused(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "nobody",
            "--login",
            "carl",
            "--email",
            "c@x.example",
        ],
        None,
    ));
    assert!(e.contains("unknown provider nobody"), "{e}");
    let e = refused(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "carl.d",
            "--email",
            "c@x.example",
        ],
        None,
    ));
    assert!(e.contains("ASCII letters and digits"), "{e}");
}

#[test]
fn weak_and_dsa_keys_are_refused() {
    let g = Gateway::new().with_providers();
    let good = keygen(&g, "erin_ecdsa", &["-t", "ecdsa"]);
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "ergo62",
            "--login",
            "erin",
            "--email",
            "erin@ergo62.example",
            "--key",
            good.to_str().unwrap(),
        ],
        None,
    ));

    let rsa1024 = keygen(&g, "erin_rsa1024", &["-t", "rsa", "-b", "1024"]);
    let e = refused(&g.run(&["user", "key-add", "erin", rsa1024.to_str().unwrap()], None));
    assert!(e.contains("RSA key of 1024 bits refused"), "{e}");

    let dsa = keygen(&g, "erin_dsa", &["-t", "dsa"]);
    let e = refused(&g.run(&["user", "key-add", "erin", dsa.to_str().unwrap()], None));
    assert!(e.contains("DSA keys (ssh-dss) are refused"), "{e}");

    // A key can be added once only; a 3072-bit RSA key is fine.
    let e = refused(&g.run(&["user", "key-add", "erin", good.to_str().unwrap()], None));
    assert!(e.contains("already registered for login erin"), "{e}");
    let rsa = keygen(&g, "erin_rsa", &["-t", "rsa", "-b", "3072"]);
    let out = ok(&g.run(&["user", "key-add", "erin", rsa.to_str().unwrap()], None));
    assert!(out.contains(&fingerprint(&rsa)), "{out}");

    // A private key given by mistake is refused without being echoed.
    let private = g.dir.path().join("erin_rsa");
    let e = refused(&g.run(&["user", "key-add", "erin", private.to_str().unwrap()], None));
    assert!(e.contains("private key"), "{e}");
    assert!(!e.contains("PRIVATE KEY-----\n"), "{e}");

    let c = g.db();
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM user_keys WHERE login='erin'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn the_last_enabled_administrator_stays() {
    let g = Gateway::new().with_providers();
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "alice",
            "--email",
            "alice@saad21.example",
        ],
        None,
    ));
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "bob",
            "--email",
            "bob@saad21.example",
        ],
        None,
    ));
    let e = refused(&g.run(&["user", "disable", "alice"], None));
    assert!(
        e.contains("alice is the last enabled administrator of provider saad21"),
        "{e}"
    );
    assert_eq!(ok(&g.run(&["user", "disable", "bob"], None)), "account bob disabled\n");
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "carol",
            "--email",
            "carol@saad21.example",
            "--admin",
        ],
        None,
    ));
    assert_eq!(
        ok(&g.run(&["user", "disable", "alice"], None)),
        "account alice disabled\n"
    );
    let e = refused(&g.run(&["user", "disable", "carol"], None));
    assert!(e.contains("last enabled administrator"), "{e}");
    let e = refused(&g.run(&["user", "disable", "nobody"], None));
    assert!(e.contains("no account with login nobody"), "{e}");
    let c = g.db();
    let r = ppas_gateway::accounts::recipients(&c, "saad21").unwrap();
    assert_eq!(r, vec!["carol@saad21.example"]);
}

#[test]
fn passwd_reads_stdin_checks_the_rules_or_generates() {
    let g = Gateway::new().with_providers();
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "alice",
            "--email",
            "alice@saad21.example",
        ],
        None,
    ));
    for (bad, why) in [
        ("short1\n", "8 to 12 characters"),
        ("muchtoolong123\n", "8 to 12 characters"),
        ("nodigitshere\n", "at least one digit"),
        ("12345678\n", "at least one letter"),
        ("pass word1\n", "only letters and digits"),
        ("motdepassé1\n", "only letters and digits"),
        ("", "no password given"),
    ] {
        let e = refused(&g.run(&["user", "passwd", "alice"], Some(bad)));
        assert!(e.contains(why), "{bad:?}: {e}");
        let shown = bad.trim_end();
        assert!(
            shown.is_empty() || !e.contains(shown),
            "the password is never echoed: {e}"
        );
    }
    assert_eq!(
        ok(&g.run(&["user", "passwd", "alice"], Some("Secret2026\r\n"))),
        "password of alice changed\n"
    );
    let c = g.db();
    let phc = ppas_gateway::accounts::find_login(&c, "alice")
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(ppas_gateway::accounts::verify_password(&phc, "Secret2026"));

    let out = ok(&g.run(&["user", "passwd", "alice", "--generate"], None));
    assert_eq!(out, "a new password for alice is queued for e-mail\n");
    let m = mails(&g);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[1].0.starts_with("password:alice:"), "{m:?}");
    let pw = m[1]
        .2
        .lines()
        .find_map(|l| l.strip_prefix("Nouveau mot de passe : "))
        .expect("password in mail");
    let phc = ppas_gateway::accounts::find_login(&c, "alice")
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(ppas_gateway::accounts::verify_password(&phc, pw));
    assert!(!ppas_gateway::accounts::verify_password(&phc, "Secret2026"));
    let e = refused(&g.run(&["user", "passwd", "nobody", "--generate"], None));
    assert!(e.contains("no account with login nobody"), "{e}");
}

/// (password_temporary, password_expires_at) as stored.
fn password_state(g: &Gateway, login: &str) -> (i64, Option<String>) {
    g.db()
        .query_row(
            "SELECT password_temporary, password_expires_at FROM users WHERE login = ?1",
            [login],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[test]
fn one_time_passwords_are_stored_as_temporary_with_the_configured_expiry() {
    let g = Gateway::new().with_providers();
    let add = |login: &str| {
        ok(&g.run(
            &[
                "user",
                "add",
                "--provider",
                "saad21",
                "--login",
                login,
                "--email",
                &format!("{login}@saad21.example"),
            ],
            None,
        ))
    };
    // No [accounts] temporary_password_days: temporary, no expiry.
    add("alice");
    assert_eq!(password_state(&g, "alice"), (1, None));
    let mut cfg = std::fs::OpenOptions::new().append(true).open(&g.config).unwrap();
    std::io::Write::write_all(&mut cfg, b"[accounts]\ntemporary_password_days = 3\n").unwrap();
    drop(cfg);
    // The clock is PPAS_GATEWAY_NOW=2026-11-02T10:00:00+01:00.
    add("bob");
    assert_eq!(password_state(&g, "bob"), (1, Some("2026-11-05T09:00:00Z".into())));
    let body = &mails(&g)[1].2;
    assert!(
        body.contains("Ce mot de passe est provisoire") && body.contains("jusqu'au 05/11/2026 à 10:00"),
        "{body}"
    );

    // A password given on standard input is permanent.
    ok(&g.run(&["user", "passwd", "bob"], Some("Chosen2026\n")));
    assert_eq!(password_state(&g, "bob"), (0, None));
    // --generate issues a new one-time password.
    ok(&g.run(&["user", "passwd", "bob", "--generate"], None));
    assert_eq!(password_state(&g, "bob"), (1, Some("2026-11-05T09:00:00Z".into())));
    let body = &mails(&g)[2].2;
    assert!(
        body.contains("Nouveau mot de passe : ") && body.contains("provisoire"),
        "{body}"
    );

    // A key account has no password at all.
    let pubkey = keygen(&g, "carol_ed25519", &["-t", "ed25519"]);
    ok(&g.run(
        &[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "carol",
            "--email",
            "carol@saad21.example",
            "--key",
            pubkey.to_str().unwrap(),
        ],
        None,
    ));
    assert_eq!(password_state(&g, "carol"), (0, None));
}
