//! Provider accounts (spec §5, §8): the SFTP logins of each provider, their
//! passwords and SSH keys.
//!
//! In: the operator's `user` commands (see [`manage`]) and the SFTP
//! server's and notices' look-ups. Out: `users` and `user_keys` rows, a
//! history entry per change, and e-mails queued in the same transaction
//! (a one-time password is only ever sent by e-mail, never printed or
//! logged). A one-time password is stored as temporary (and, with
//! `[accounts] temporary_password_days`, with an expiry): the SFTP server
//! makes its owner replace it at the first login
//! ([`replace_temporary_password`]).
//!
//! Invariants kept here: logins are unique ASCII letters and digits;
//! passwords are stored only as Argon2id PHC strings; every provider with
//! users keeps at least one enabled administrator.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

pub mod keys;
mod mails;
pub mod manage;
pub mod password;

pub use manage::{add_user, disable, key_add, passwd, replace_temporary_password, NewUser, PasswordChange};
pub use password::verify_password;

/// An account as the SFTP server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub provider: String,
    pub email: String,
    pub admin: bool,
    pub disabled: bool,
    /// Argon2id PHC string; `None` for a key-only account.
    pub password_hash: Option<String>,
    /// The password is a one-time one (made by the caisse): it must be
    /// replaced at the first login, through keyboard-interactive.
    pub password_temporary: bool,
    /// When the password stops opening the account (a temporary one only).
    pub password_expires_at: Option<DateTime<Utc>>,
    /// Authorised public keys, one OpenSSH line each (`<algorithm> <base64>`).
    pub keys: Vec<String>,
}

/// The account of `login`, with its keys; `None` if there is none.
pub fn find_login(conn: &Connection, login: &str) -> Result<Option<Account>> {
    let acc = conn
        .query_row(
            "SELECT login, provider, email, admin, disabled, password_hash, password_temporary, password_expires_at
             FROM users WHERE login = ?1",
            [login],
            |r| {
                Ok(Account {
                    login: r.get(0)?,
                    provider: r.get(1)?,
                    email: r.get(2)?,
                    admin: r.get::<_, i64>(3)? != 0,
                    disabled: r.get::<_, i64>(4)? != 0,
                    password_hash: r.get(5)?,
                    password_temporary: r.get::<_, i64>(6)? != 0,
                    password_expires_at: r.get::<_, Option<String>>(7)?.map(|t| expiry(login, &t)),
                    keys: Vec::new(),
                })
            },
        )
        .optional()
        .with_context(|| format!("reading account {login}"))?;
    let Some(mut acc) = acc else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT openssh FROM user_keys WHERE login = ?1 ORDER BY id")?;
    acc.keys = stmt
        .query_map([login], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading keys of account {login}"))?;
    Ok(Some(acc))
}

/// A stored expiry date. One that cannot be read counts as already past:
/// the password is refused, never valid for ever.
fn expiry(login: &str, text: &str) -> DateTime<Utc> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => {
            tracing::warn!(login, "unreadable password expiry date {text:?}: {e}");
            DateTime::<Utc>::MIN_UTC
        }
    }
}

/// Who receives a provider's notices: the e-mails of its enabled users, or
/// the provider's own e-mail when it has no enabled user. Empty for an
/// unknown provider.
pub fn recipients(conn: &Connection, provider: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT email FROM users WHERE provider = ?1 AND disabled = 0 ORDER BY email")?;
    let users: Vec<String> = stmt
        .query_map([provider], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading users of provider {provider}"))?;
    if !users.is_empty() {
        return Ok(users);
    }
    let own: Option<String> = conn
        .query_row("SELECT email FROM providers WHERE provider = ?1", [provider], |r| {
            r.get(0)
        })
        .optional()
        .with_context(|| format!("reading provider {provider}"))?;
    Ok(own.into_iter().collect())
}

/// One line of `user list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub login: String,
    pub provider: String,
    pub email: String,
    pub admin: bool,
    pub disabled: bool,
    pub keys: i64,
    pub password: bool,
}

/// Every account (of one provider if given), by provider then login.
pub fn list(conn: &Connection, provider: Option<&str>) -> Result<Vec<UserRow>> {
    let mut stmt = conn.prepare(
        "SELECT u.login, u.provider, u.email, u.admin, u.disabled,
                (SELECT COUNT(*) FROM user_keys k WHERE k.login = u.login),
                u.password_hash IS NOT NULL
         FROM users u WHERE ?1 IS NULL OR u.provider = ?1
         ORDER BY u.provider, u.login",
    )?;
    let rows = stmt.query_map(params![provider], |r| {
        Ok(UserRow {
            login: r.get(0)?,
            provider: r.get(1)?,
            email: r.get(2)?,
            admin: r.get::<_, i64>(3)? != 0,
            disabled: r.get::<_, i64>(4)? != 0,
            keys: r.get(5)?,
            password: r.get::<_, i64>(6)? != 0,
        })
    })?;
    rows.collect::<rusqlite::Result<_>>().context("listing accounts")
}

#[cfg(test)]
mod tests;
