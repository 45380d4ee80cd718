//! Account rules on an in-memory database.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;

use super::*;
use crate::config::Config;
use crate::import::{import_file, Kind};

const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOEBmlegQNyuGeR6CxGOWXhO9nLKkTOBa6MRkMzjJl7U alice@example\n";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn db() -> Connection {
    let mut c = crate::store::open_in_memory().unwrap();
    let text = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
        saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
        ergo1;Ergo Un;44306184100047;contact@ergo1.example;03 21 00 00 02;ergo;04;62739900;62000001\n";
    import_file(
        &mut c,
        &Config::default(),
        Kind::Providers,
        "p.csv",
        text.as_bytes(),
        now(),
    )
    .unwrap();
    c
}

fn add(
    c: &mut Connection,
    provider: &str,
    login: &str,
    key: Option<&str>,
    admin: bool,
) -> anyhow::Result<manage::Added> {
    add_user(
        c,
        now(),
        &NewUser {
            provider,
            login,
            email: &format!("{login}@example.org"),
            key,
            admin,
            temporary_days: 0,
        },
    )
}

fn mails(c: &Connection) -> Vec<(String, String, String)> {
    let mut s = c
        .prepare("SELECT dedup_key, recipients, body FROM mail_queue ORDER BY id")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn first_user_is_admin_and_gets_a_one_time_password_by_mail() {
    let mut c = db();
    let a = add(&mut c, "saad1", "alice", None, false).unwrap();
    assert!(a.admin && a.password_mailed && a.key.is_none());
    let b = add(&mut c, "saad1", "bob", None, false).unwrap();
    assert!(!b.admin);

    let acc = find_login(&c, "alice").unwrap().unwrap();
    assert_eq!((acc.provider.as_str(), acc.admin, acc.disabled), ("saad1", true, false));
    let phc = acc.password_hash.unwrap();
    assert!(phc.starts_with("$argon2id$"));

    let m = mails(&c);
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].0.as_str(), m[0].1.as_str()),
        ("user-created:alice", "alice@example.org")
    );
    // The mailed password is the stored one, and meets the rules.
    let pw = m[0]
        .2
        .lines()
        .find_map(|l| l.strip_prefix("Mot de passe provisoire : "))
        .unwrap();
    password::check_rules(pw).unwrap();
    assert!(verify_password(&phc, pw));
    assert!(!verify_password(&phc, "wrong1234"));

    let h: i64 = c
        .query_row("SELECT COUNT(*) FROM history WHERE kind='account'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(h, 2);
    let comment: String = c
        .query_row(
            "SELECT comment FROM history WHERE kind='account' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!comment.contains(pw), "the password never reaches the history");
}

#[test]
fn key_accounts_have_no_password() {
    let mut c = db();
    let a = add(&mut c, "ergo1", "erin", Some(ED), false).unwrap();
    assert!(a.admin && !a.password_mailed);
    let acc = find_login(&c, "erin").unwrap().unwrap();
    assert_eq!(acc.password_hash, None);
    assert_eq!(
        acc.keys,
        vec![ED.split_whitespace().take(2).collect::<Vec<_>>().join(" ")]
    );
    let m = mails(&c);
    assert_eq!(m.len(), 1);
    assert!(
        m[0].2.contains("SHA256:NPpPf5lo4zfyO/uJ4UriA3KPNdKEEEaSZvaNH/fcehg"),
        "{}",
        m[0].2
    );
    let app: String = c
        .query_row("SELECT application FROM history WHERE kind='account'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, "habitat");

    // The same key is refused again, for this account or another.
    let e = key_add(&mut c, now(), "erin", ED).unwrap_err().to_string();
    assert!(e.contains("already registered for login erin"), "{e}");
    let e = add(&mut c, "saad1", "sam", Some(ED), false).unwrap_err().to_string();
    assert!(e.contains("already registered"), "{e}");
    assert!(find_login(&c, "sam").unwrap().is_none());
}

#[test]
fn add_refusals() {
    let mut c = db();
    add(&mut c, "saad1", "alice", None, false).unwrap();
    let e = |r: anyhow::Result<manage::Added>| r.unwrap_err().to_string();
    assert!(e(add(&mut c, "saad1", "alice", None, false)).contains("already exists"));
    assert!(e(add(&mut c, "nobody", "zed", None, false)).contains("unknown provider nobody"));
    assert!(e(add(&mut c, "saad1", "al-ice", None, false)).contains("ASCII letters and digits"));
    assert!(e(add(&mut c, "saad1", &"a".repeat(33), None, false)).contains("longer than 32"));
    let bad_mail = add_user(
        &mut c,
        now(),
        &NewUser {
            provider: "saad1",
            login: "carl",
            email: "carl",
            key: None,
            admin: false,
            temporary_days: 0,
        },
    );
    assert!(e(bad_mail).contains("not an e-mail address"));
    assert_eq!(list(&c, None).unwrap().len(), 1);
}

#[test]
fn the_last_enabled_admin_cannot_be_disabled() {
    let mut c = db();
    add(&mut c, "saad1", "alice", None, false).unwrap();
    add(&mut c, "saad1", "bob", None, false).unwrap();
    let e = disable(&mut c, now(), "alice").unwrap_err().to_string();
    assert!(e.contains("last enabled administrator of provider saad1"), "{e}");
    assert!(disable(&mut c, now(), "bob").unwrap());
    assert!(!disable(&mut c, now(), "bob").unwrap(), "already disabled");
    add(&mut c, "saad1", "carol", None, true).unwrap();
    assert!(disable(&mut c, now(), "alice").unwrap());
    assert!(find_login(&c, "alice").unwrap().unwrap().disabled);
    assert!(disable(&mut c, now(), "nobody")
        .unwrap_err()
        .to_string()
        .contains("no account with login nobody"));
}

#[test]
fn recipients_are_enabled_users_or_the_provider() {
    let mut c = db();
    assert_eq!(recipients(&c, "saad1").unwrap(), vec!["contact@saad1.example"]);
    assert!(recipients(&c, "nobody").unwrap().is_empty());
    add(&mut c, "saad1", "alice", None, false).unwrap();
    add(&mut c, "saad1", "bob", None, true).unwrap();
    assert_eq!(
        recipients(&c, "saad1").unwrap(),
        vec!["alice@example.org", "bob@example.org"]
    );
    disable(&mut c, now(), "alice").unwrap();
    assert_eq!(recipients(&c, "saad1").unwrap(), vec!["bob@example.org"]);
}

#[test]
fn passwd_given_and_generated() {
    let mut c = db();
    add(&mut c, "saad1", "alice", Some(ED), false).unwrap();
    let e = passwd(&mut c, now(), "alice", &PasswordChange::Given("short1".into()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("8 to 12"), "{e}");
    assert!(find_login(&c, "alice").unwrap().unwrap().password_hash.is_none());
    passwd(&mut c, now(), "alice", &PasswordChange::Given("Secret123".into())).unwrap();
    let phc = find_login(&c, "alice").unwrap().unwrap().password_hash.unwrap();
    assert!(verify_password(&phc, "Secret123"));

    // Two generations at the same instant are two messages.
    passwd(&mut c, now(), "alice", &PasswordChange::Generate { temporary_days: 0 }).unwrap();
    passwd(&mut c, now(), "alice", &PasswordChange::Generate { temporary_days: 0 }).unwrap();
    let m = mails(&c);
    assert_eq!(m.len(), 3, "{m:?}");
    let pw = m[2]
        .2
        .lines()
        .find_map(|l| l.strip_prefix("Nouveau mot de passe : "))
        .unwrap();
    let phc = find_login(&c, "alice").unwrap().unwrap().password_hash.unwrap();
    assert!(verify_password(&phc, pw));
    assert!(!verify_password(&phc, "Secret123"));
    assert!(passwd(&mut c, now(), "nobody", &PasswordChange::Generate { temporary_days: 0 }).is_err());

    let rows = list(&c, Some("saad1")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].keys, rows[0].password, rows[0].admin), (1, true, true));
    assert!(list(&c, Some("ergo1")).unwrap().is_empty());
}

/// (temporary, expires_at) as stored.
fn password_state(c: &Connection, login: &str) -> (i64, Option<String>) {
    c.query_row(
        "SELECT password_temporary, password_expires_at FROM users WHERE login = ?1",
        [login],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn one_time_passwords_are_temporary_and_expire_when_configured() {
    let mut c = db();
    // Without a key: temporary; no expiry when temporary_days is 0.
    add(&mut c, "saad1", "alice", None, false).unwrap();
    assert_eq!(password_state(&c, "alice"), (1, None));
    let acc = find_login(&c, "alice").unwrap().unwrap();
    assert!(acc.password_temporary && acc.password_expires_at.is_none());
    // With temporary_days: now + days, RFC 3339 UTC.
    add_user(
        &mut c,
        now(),
        &NewUser {
            provider: "saad1",
            login: "bob",
            email: "bob@example.org",
            key: None,
            admin: false,
            temporary_days: 3,
        },
    )
    .unwrap();
    assert_eq!(password_state(&c, "bob"), (1, Some("2026-11-05T09:00:00Z".into())));
    let bob = find_login(&c, "bob").unwrap().unwrap();
    assert_eq!(bob.password_expires_at, Some(now() + chrono::Duration::days(3)));
    let body = &mails(&c)[1].2;
    assert!(body.contains("05/11/2026 à 10:00 (heure de Paris)"), "{body}");
    assert!(body.contains("provisoire"), "{body}");
    // A key account has no password, so nothing temporary.
    add(&mut c, "ergo1", "erin", Some(ED), false).unwrap();
    assert_eq!(password_state(&c, "erin"), (0, None));

    // A password given by the operator is permanent; a generated one is not.
    passwd(&mut c, now(), "bob", &PasswordChange::Given("Secret123".into())).unwrap();
    assert_eq!(password_state(&c, "bob"), (0, None));
    passwd(&mut c, now(), "bob", &PasswordChange::Generate { temporary_days: 2 }).unwrap();
    assert_eq!(password_state(&c, "bob"), (1, Some("2026-11-04T09:00:00Z".into())));
    passwd(&mut c, now(), "bob", &PasswordChange::Generate { temporary_days: 0 }).unwrap();
    assert_eq!(password_state(&c, "bob"), (1, None));
}

#[test]
fn a_temporary_password_is_replaced_once_with_a_history_entry() {
    let mut c = db();
    add(&mut c, "saad1", "alice", None, false).unwrap();
    passwd(&mut c, now(), "alice", &PasswordChange::Generate { temporary_days: 5 }).unwrap();
    let temp = find_login(&c, "alice").unwrap().unwrap().password_hash.unwrap();
    let chosen = password::hash("Chosen2026").unwrap();
    let later = now() + chrono::Duration::hours(1);

    // Not the stored hash: nothing changes.
    assert!(!replace_temporary_password(&mut c, later, "alice", "$argon2id$other", &chosen).unwrap());
    assert!(replace_temporary_password(&mut c, later, "alice", &temp, &chosen).unwrap());
    let acc = find_login(&c, "alice").unwrap().unwrap();
    assert_eq!(acc.password_hash.as_deref(), Some(chosen.as_str()));
    assert_eq!(password_state(&c, "alice"), (0, None));
    // Once only: the password is no longer temporary.
    assert!(!replace_temporary_password(&mut c, later, "alice", &chosen, &chosen).unwrap());
    assert!(!replace_temporary_password(&mut c, later, "nobody", &temp, &chosen).unwrap());

    let comment: String = c
        .query_row(
            "SELECT comment FROM history WHERE kind='account' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        comment,
        "one-time password of account alice replaced by its user at login (SFTP)"
    );

    // A disabled account keeps its password.
    add(&mut c, "saad1", "bob", None, true).unwrap();
    let bob_temp = find_login(&c, "bob").unwrap().unwrap().password_hash.unwrap();
    disable(&mut c, now(), "bob").unwrap();
    assert!(!replace_temporary_password(&mut c, later, "bob", &bob_temp, &chosen).unwrap());
}

#[test]
fn an_unreadable_expiry_counts_as_past() {
    let mut c = db();
    add(&mut c, "saad1", "alice", None, false).unwrap();
    c.execute(
        "UPDATE users SET password_expires_at = 'someday' WHERE login = 'alice'",
        [],
    )
    .unwrap();
    let acc = find_login(&c, "alice").unwrap().unwrap();
    assert!(acc.password_expires_at.unwrap() < now());
}
