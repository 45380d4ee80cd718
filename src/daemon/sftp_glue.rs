//! Wires the SFTP server to the rest of the daemon: accounts read from the
//! state (and a temporary password replaced there by its user at login),
//! completed uploads handed to the processor at once, downloads recorded in
//! the history ("récupération"). [`start`] also hands back the server's
//! [`Reload`] handle for SIGHUP.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::Work;
use crate::clock::Clock;
use crate::config::Config;
use crate::history::{self, Entry};
use crate::pipeline::Channel;
use crate::sftp::{AccountSource, Reload, SftpAccount, SftpEvents, SftpServer};

struct DbAccounts {
    conn: Mutex<Connection>,
    clock: Clock,
}

impl AccountSource for DbAccounts {
    fn lookup(&self, login: &str) -> Result<Option<SftpAccount>> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("account store poisoned"))?;
        Ok(crate::accounts::find_login(&conn, login)?.map(|a| SftpAccount {
            login: a.login,
            provider: a.provider,
            disabled: a.disabled,
            password_hash: a.password_hash,
            password_temporary: a.password_temporary,
            password_expires_at: a.password_expires_at,
            keys: a.keys,
        }))
    }

    fn replace_temporary_password(&self, login: &str, temporary_hash: &str, new_hash: &str) -> Result<bool> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("account store poisoned"))?;
        crate::accounts::replace_temporary_password(&mut conn, self.clock.now(), login, temporary_hash, new_hash)
    }
}

struct Events {
    work: mpsc::Sender<Work>,
    arriving: super::Arriving,
    conn: Mutex<Connection>,
    clock: Clock,
}

impl SftpEvents for Events {
    fn upload_arriving(&self, _provider: &str, path: &Path) {
        if let Ok(mut set) = self.arriving.lock() {
            // Entries are removed when the file is taken; a rename that
            // failed leaves one behind: keep the set bounded.
            if set.len() > 10_000 {
                set.clear();
            }
            set.insert(super::arriving_key(path));
        }
    }

    fn upload_complete(&self, _provider: &str, path: &Path) {
        let _ = self.work.send(Work::File(path.to_path_buf(), Channel::Sftp));
    }

    fn downloaded(&self, login: &str, provider: &str, rel_path: &str, bytes: u64) {
        let Ok(conn) = self.conn.lock() else { return };
        let entry = Entry {
            kind: "recuperation",
            application: "aide-a-domicile",
            interface: "sftp",
            provider: Some(provider),
            comment: format!("{rel_path} récupéré par {login} ({bytes} octets)"),
            ..Default::default()
        };
        if let Err(e) = history::record(&conn, self.clock.now(), &entry) {
            tracing::warn!(error = format!("{e:#}"), "download not recorded in the history");
        }
    }
}

/// Binds the SFTP server and runs it until `shutdown`; returns its task and
/// the handle that applies a reloaded configuration to it.
pub async fn start(
    cfg: &Config,
    clock: Clock,
    work: mpsc::Sender<Work>,
    arriving: super::Arriving,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(tokio::task::JoinHandle<()>, Reload)> {
    let cfg = cfg.clone();
    let server = tokio::task::spawn_blocking(move || -> Result<SftpServer> {
        let accounts = Arc::new(DbAccounts {
            conn: Mutex::new(crate::store::open(&cfg.paths.database)?),
            clock,
        });
        let events = Arc::new(Events {
            work,
            arriving,
            conn: Mutex::new(crate::store::open(&cfg.paths.database)?),
            clock,
        });
        SftpServer::new(&cfg, clock, accounts, events)
    })
    .await
    .context("SFTP start-up task")??;
    let reload = server.reload_handle();
    let task = tokio::spawn(async move {
        if let Err(e) = server.run(shutdown).await {
            tracing::error!(error = format!("{e:#}"), "SFTP server stopped with an error");
        }
    });
    Ok((task, reload))
}
