//! Provider accounts (spec §5, §8): the SFTP logins of each provider, their
//! passwords and SSH keys.
//!
//! In: the operator's `user` commands (see [`manage`]) and the SFTP
//! server's and notices' look-ups. Out: `users` and `user_keys` rows, a
//! history entry per change, and e-mails queued in the same transaction
//! (a one-time password is only ever sent by e-mail, never printed or
//! logged).
//!
//! Invariants kept here: logins are unique ASCII letters and digits;
//! passwords are stored only as Argon2id PHC strings; every provider with
//! users keeps at least one enabled administrator.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

pub mod keys;
mod mails;
pub mod manage;
pub mod password;

pub use manage::{add_user, disable, key_add, passwd, NewUser, PasswordChange};
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
    /// Authorised public keys, one OpenSSH line each (`<algorithm> <base64>`).
    pub keys: Vec<String>,
}

/// The account of `login`, with its keys; `None` if there is none.
pub fn find_login(conn: &Connection, login: &str) -> Result<Option<Account>> {
    let acc = conn
        .query_row(
            "SELECT login, provider, email, admin, disabled, password_hash FROM users WHERE login = ?1",
            [login],
            |r| {
                Ok(Account {
                    login: r.get(0)?,
                    provider: r.get(1)?,
                    email: r.get(2)?,
                    admin: r.get::<_, i64>(3)? != 0,
                    disabled: r.get::<_, i64>(4)? != 0,
                    password_hash: r.get(5)?,
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
