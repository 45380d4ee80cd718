//! The embedded SFTP server: providers log in, upload into `/in`, read
//! results from `/out`.
//!
//! In: the `[sftp]` and `[limits]` configuration, an [`AccountSource`]
//! (who may log in, with which keys or password hash) and an [`SftpEvents`]
//! sink. Out: complete files renamed into `<spool>/inbound/<provider>/`
//! (announced through [`SftpEvents::upload_complete`]) and download notices
//! for files of `<spool>/outbound/<provider>/`.
//!
//! The module knows nothing of SQLite or billing: the daemon adapts its
//! account table and its history to the two traits. The pieces:
//!
//! - [`server`]: listener, connection limits, shutdown;
//! - [`session`]: one SSH connection (authentication, channels);
//! - [`auth`], [`defender`]: credential checks and the failed-login throttle;
//! - [`first_login`]: the prompts and checks of a temporary password's
//!   replacement (keyboard-interactive);
//! - [`hostkey`]: the Ed25519 host key, generated once;
//! - [`channel`]: the SFTP byte stream of one channel (framing, dispatch);
//! - [`ops`], [`upload`]: the SFTP operations on the provider's two folders;
//! - [`space`]: the per-session `cap_std` folder capabilities;
//! - [`vfs`]: client paths → confined locations, attributes, listings.

use std::path::Path;

pub mod auth;
pub mod channel;
pub mod defender;
pub mod first_login;
pub mod hostkey;
pub mod ops;
pub mod server;
pub(crate) mod session;
pub mod space;
pub mod upload;
pub mod vfs;

pub use server::{Reload, SftpServer};

use chrono::{DateTime, Utc};

/// One SFTP login as the account store knows it.
#[derive(Debug, Clone, Default)]
pub struct SftpAccount {
    /// The SFTP login (ASCII letters and digits).
    pub login: String,
    /// The provider this login acts for: its folders are the only ones seen.
    pub provider: String,
    /// A disabled account is refused like an unknown one.
    pub disabled: bool,
    /// Argon2id PHC string, when the account may log in with a password.
    pub password_hash: Option<String>,
    /// A one-time password: refused by plain `password` authentication;
    /// `keyboard-interactive` has it replaced before letting the user in.
    pub password_temporary: bool,
    /// From this instant on the password opens nothing (by any method).
    pub password_expires_at: Option<DateTime<Utc>>,
    /// Authorised public keys, one OpenSSH line each (`ssh-ed25519 AAAA… comment`).
    pub keys: Vec<String>,
}

/// Where accounts come from (the daemon reads its SQLite table).
pub trait AccountSource: Send + Sync + 'static {
    /// `Ok(None)`: unknown login. Called off the async loop (it may hit SQLite).
    fn lookup(&self, login: &str) -> anyhow::Result<Option<SftpAccount>>;

    /// The user of `login` replaced a temporary password at login:
    /// `new_hash` (an Argon2id PHC string) becomes the account's permanent
    /// password, with no expiry. Only if the account still holds the
    /// temporary password `temporary_hash`; `Ok(false)` otherwise (changed
    /// meanwhile). Called off the async loop. The default refuses: a store
    /// that cannot write has no temporary passwords to replace.
    fn replace_temporary_password(&self, login: &str, temporary_hash: &str, new_hash: &str) -> anyhow::Result<bool> {
        let _ = (temporary_hash, new_hash);
        anyhow::bail!("this account store cannot change the password of {login}")
    }
}

/// What the server reports to the rest of the daemon. Both calls run on a
/// blocking thread, so they may write to SQLite; they must not panic.
pub trait SftpEvents: Send + Sync + 'static {
    /// A complete upload was renamed into the provider's inbound folder
    /// (`path` is the real path under `<spool>/inbound/<provider>/`).
    /// Only names the intake takes are announced (not `.…`, `~…`, `*.part`,
    /// `*.tmp`, `*.filepart`); those arrive when renamed to their final name.
    fn upload_complete(&self, provider: &str, path: &Path);
    /// Called just before a complete upload is renamed to `path`, so that
    /// whoever takes the file (possibly on a watcher event that comes
    /// before `upload_complete`) knows it came by SFTP.
    fn upload_arriving(&self, _provider: &str, _path: &Path) {}
    /// A file of `/out` was read to its end, or closed after reading:
    /// `rel_path` is relative to `/out` (`reports/x.report.pdf`), `bytes`
    /// how far it was read.
    fn downloaded(&self, login: &str, provider: &str, rel_path: &str, bytes: u64);
}
