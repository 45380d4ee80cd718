//! Account changes (`user add|disable|key-add|passwd`): each one checked,
//! then applied in one IMMEDIATE transaction with its history entry and, when
//! a password is made for the user, the e-mail that carries it.
//!
//! Argon2 hashing is done before the transaction opens, so the write lock is
//! held for milliseconds only.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::keys::{self, CheckedKey};
use super::{mails, password};
use crate::history::{self, Entry};
use crate::import::fields;
use crate::mail::{self, Message};

/// What `user add` gets.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub provider: &'a str,
    pub login: &'a str,
    pub email: &'a str,
    /// Text of an OpenSSH public-key file; without it a password is e-mailed.
    pub key: Option<&'a str>,
    /// Asked for administrator rights (the provider's first user gets them anyway).
    pub admin: bool,
    /// Days the one-time password stays valid (`[accounts]
    /// temporary_password_days`); 0: until it is changed.
    pub temporary_days: u32,
}

/// What `user add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub admin: bool,
    pub key: Option<CheckedKey>,
    /// A one-time password was generated and queued for e-mail.
    pub password_mailed: bool,
}

/// How `passwd` sets the password.
#[derive(Debug, Clone)]
pub enum PasswordChange {
    /// Given by the operator (checked against the rules).
    Given(String),
    /// Generated and e-mailed to the user: a one-time password, valid
    /// `temporary_days` days (0: until it is changed).
    Generate { temporary_days: u32 },
}

fn stamp(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// When a one-time password made at `now` expires (`None`: it does not).
fn expiry(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now + chrono::Duration::days(i64::from(days)))
}

fn begin(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .context("cannot start a database transaction")
}

/// One history entry for an account change of `provider`.
fn record(tx: &Connection, now: DateTime<Utc>, provider: &str, comment: String) -> Result<()> {
    let kind: Option<String> = tx
        .query_row("SELECT type FROM providers WHERE provider = ?1", [provider], |r| {
            r.get(0)
        })
        .optional()?;
    let application = if kind.as_deref() == Some("ergo") {
        "habitat"
    } else {
        "aide-a-domicile"
    };
    history::record(
        tx,
        now,
        &Entry {
            kind: "account",
            application,
            interface: "comptes",
            provider: Some(provider),
            comment,
            ..Default::default()
        },
    )
}

/// Refuses a key already given to any account.
fn check_key_unused(tx: &Connection, k: &CheckedKey) -> Result<()> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT login FROM user_keys WHERE fingerprint = ?1 LIMIT 1",
            [&k.fingerprint],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(owner) = owner {
        bail!("key {} is already registered for login {owner}", k.fingerprint);
    }
    Ok(())
}

fn insert_key(tx: &Connection, now: DateTime<Utc>, login: &str, k: &CheckedKey) -> Result<()> {
    tx.execute(
        "INSERT INTO user_keys (login, algorithm, fingerprint, openssh, comment, added_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![login, k.algorithm, k.fingerprint, k.openssh, k.comment, stamp(now)],
    )
    .with_context(|| format!("cannot store the key of {login}"))?;
    Ok(())
}

/// The provider of an existing account, with its disabled flag.
fn account(tx: &Connection, login: &str) -> Result<(String, String, bool)> {
    tx.query_row(
        "SELECT provider, email, disabled FROM users WHERE login = ?1",
        [login],
        |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)),
    )
    .optional()?
    .with_context(|| format!("no account with login {login}"))
}

/// Creates an account. Without a key, a one-time password is generated,
/// stored as temporary (with its expiry when `temporary_days` > 0) and
/// e-mailed (dedup key `user-created:<login>`); with a key, the e-mail only
/// tells the login. The provider's first enabled user is made administrator.
pub fn add_user(conn: &mut Connection, now: DateTime<Utc>, u: &NewUser<'_>) -> Result<Added> {
    let login = fields::login(u.login).map_err(|r| anyhow::anyhow!("login {r}"))?;
    let email = fields::email(u.email).map_err(|r| anyhow::anyhow!("e-mail {r}"))?;
    let key = u.key.map(keys::parse_file_text).transpose()?;
    // Hash outside the transaction: Argon2 is deliberately slow.
    let generated = match key {
        Some(_) => None,
        None => {
            let pw = password::generate();
            let phc = password::hash(&pw)?;
            Some((pw, phc))
        }
    };

    let tx = begin(conn)?;
    let known: bool = tx.query_row(
        "SELECT COUNT(*) FROM providers WHERE provider = ?1",
        [u.provider],
        |r| r.get::<_, i64>(0),
    )? > 0;
    if !known {
        bail!(
            "unknown provider {}: import it first (ppas-gateway import providers FILE)",
            u.provider
        );
    }
    let taken: Option<String> = tx
        .query_row("SELECT provider FROM users WHERE login = ?1", [&login], |r| r.get(0))
        .optional()?;
    if let Some(p) = taken {
        bail!("login {login} already exists (provider {p})");
    }
    if let Some(k) = &key {
        check_key_unused(&tx, k)?;
    }
    let has_admin: i64 = tx.query_row(
        "SELECT COUNT(*) FROM users WHERE provider = ?1 AND admin = 1 AND disabled = 0",
        [u.provider],
        |r| r.get(0),
    )?;
    let admin = u.admin || has_admin == 0;
    let at = stamp(now);
    let expires = generated.as_ref().and(expiry(now, u.temporary_days));
    tx.execute(
        "INSERT INTO users (login, provider, email, admin, disabled, password_hash, password_temporary,
                            password_expires_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?8)",
        params![
            login,
            u.provider,
            email,
            admin as i64,
            generated.as_ref().map(|g| &g.1),
            generated.is_some() as i64,
            expires.map(stamp),
            at
        ],
    )
    .with_context(|| format!("cannot create account {login}"))?;
    if let Some(k) = &key {
        insert_key(&tx, now, &login, k)?;
    }
    let (subject, body) = match (&generated, &key) {
        (Some((pw, _)), _) => mails::created_with_password(&login, pw, expires),
        (None, k) => mails::created_with_key(&login, k.as_ref().map_or("", |k| k.fingerprint.as_str())),
    };
    mail::enqueue(
        &tx,
        now,
        &Message {
            dedup_key: format!("user-created:{login}"),
            recipients: vec![email.clone()],
            subject,
            body,
            secret: generated.is_some(),
        },
    )?;
    let how = match &key {
        Some(k) => format!("key {} {}", k.algorithm, k.fingerprint),
        None => "one-time password e-mailed".to_string(),
    };
    let role = if admin { "administrator" } else { "user" };
    record(
        &tx,
        now,
        u.provider,
        format!("account {login} created ({role}, {email}, {how})"),
    )?;
    tx.commit().context("cannot commit the new account")?;
    Ok(Added {
        admin,
        key,
        password_mailed: generated.is_some(),
    })
}

/// Disables an account. Refuses to disable the provider's last enabled
/// administrator. Returns false when it was already disabled.
pub fn disable(conn: &mut Connection, now: DateTime<Utc>, login: &str) -> Result<bool> {
    let tx = begin(conn)?;
    let (provider, _, disabled) = account(&tx, login)?;
    if disabled {
        return Ok(false);
    }
    let admin: bool = tx.query_row("SELECT admin FROM users WHERE login = ?1", [login], |r| {
        r.get::<_, i64>(0)
    })? != 0;
    if admin {
        let others: i64 = tx.query_row(
            "SELECT COUNT(*) FROM users WHERE provider = ?1 AND admin = 1 AND disabled = 0 AND login <> ?2",
            params![provider, login],
            |r| r.get(0),
        )?;
        if others == 0 {
            bail!(
                "{login} is the last enabled administrator of provider {provider}: \
                 create another administrator first (user add --admin)"
            );
        }
    }
    tx.execute(
        "UPDATE users SET disabled = 1, updated_at = ?2 WHERE login = ?1",
        params![login, stamp(now)],
    )?;
    record(&tx, now, &provider, format!("account {login} disabled"))?;
    tx.commit().context("cannot commit the change")?;
    Ok(true)
}

/// Adds an SSH public key (text of a `.pub` file) to an account.
pub fn key_add(conn: &mut Connection, now: DateTime<Utc>, login: &str, key_text: &str) -> Result<CheckedKey> {
    let k = keys::parse_file_text(key_text)?;
    let tx = begin(conn)?;
    let (provider, _, _) = account(&tx, login)?;
    check_key_unused(&tx, &k)?;
    insert_key(&tx, now, login, &k)?;
    tx.execute(
        "UPDATE users SET updated_at = ?2 WHERE login = ?1",
        params![login, stamp(now)],
    )?;
    record(
        &tx,
        now,
        &provider,
        format!("key {} {} added to account {login}", k.algorithm, k.fingerprint),
    )?;
    tx.commit().context("cannot commit the new key")?;
    Ok(k)
}

/// Sets an account's password: the given one (checked against the rules),
/// permanent; or a generated one, one-time (temporary, with its expiry when
/// `temporary_days` > 0), e-mailed to the user.
pub fn passwd(conn: &mut Connection, now: DateTime<Utc>, login: &str, change: &PasswordChange) -> Result<()> {
    let (pw, generated, expires) = match change {
        PasswordChange::Given(pw) => {
            password::check_rules(pw)?;
            (pw.clone(), false, None)
        }
        PasswordChange::Generate { temporary_days } => (password::generate(), true, expiry(now, *temporary_days)),
    };
    let phc = password::hash(&pw)?;
    let tx = begin(conn)?;
    let (provider, email, _) = account(&tx, login)?;
    tx.execute(
        "UPDATE users SET password_hash = ?2, password_temporary = ?3, password_expires_at = ?4, updated_at = ?5
         WHERE login = ?1",
        params![login, phc, generated as i64, expires.map(stamp), stamp(now)],
    )?;
    let comment = if generated {
        let (subject, body) = mails::new_password(login, &pw, expires);
        // Each generated password is its own cause: the salted hash tells them apart.
        use sha2::Digest;
        let tag = hex::encode(&sha2::Sha256::digest(phc.as_bytes())[..8]);
        mail::enqueue(
            &tx,
            now,
            &Message {
                dedup_key: format!("password:{login}:{tag}"),
                recipients: vec![email],
                subject,
                body,
                secret: true,
            },
        )?;
        format!("password of account {login} generated and e-mailed")
    } else {
        format!("password of account {login} changed")
    };
    record(&tx, now, &provider, comment)?;
    tx.commit().context("cannot commit the new password")?;
    Ok(())
}

/// Replaces a temporary password with the one its owner chose at the first
/// login (SFTP keyboard-interactive): `new_phc` becomes the permanent
/// password, with no expiry, and a history entry records the change (never
/// the password). Only when the account, still enabled, still holds the
/// temporary password `temporary_phc`: `Ok(false)` otherwise (the caisse
/// set another one meanwhile, or another session already changed it).
pub fn replace_temporary_password(
    conn: &mut Connection,
    now: DateTime<Utc>,
    login: &str,
    temporary_phc: &str,
    new_phc: &str,
) -> Result<bool> {
    let tx = begin(conn)?;
    let n = tx.execute(
        "UPDATE users SET password_hash = ?3, password_temporary = 0, password_expires_at = NULL, updated_at = ?4
         WHERE login = ?1 AND password_hash = ?2 AND password_temporary = 1 AND disabled = 0",
        params![login, temporary_phc, new_phc, stamp(now)],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let (provider, _, _) = account(&tx, login)?;
    record(
        &tx,
        now,
        &provider,
        format!("one-time password of account {login} replaced by its user at login (SFTP)"),
    )?;
    tx.commit().context("cannot commit the new password")?;
    Ok(true)
}
