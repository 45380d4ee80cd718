//! The listener: configuration and the two daemon traits in, SSH
//! connections served until shutdown.
//!
//! [`SftpServer::new`] does the start-up work that must succeed before the
//! daemon reports ready (host key, stale temporary uploads removed, port
//! bound — port 0 in tests, see [`SftpServer::local_addr`]). [`SftpServer::run`]
//! accepts connections, enforces the total session limit and the login
//! grace time, and on shutdown stops accepting, disconnects every client,
//! waits for the sessions to discard their unfinished uploads, and sweeps
//! whatever temporary file a straggler left.
//!
//! [`SftpServer::reload_handle`] gives the daemon a [`Reload`]: on SIGHUP it
//! applies the new `[sftp]` limits and `[limits] max_file_size` to every
//! connection, login and upload that starts afterwards (what is under way
//! keeps the values it started with), and tells which changed keys need a
//! restart (`listen`, `host_key`, `enabled`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::Config as SshConfig;
use russh::{cipher, compression, mac, Disconnect, MethodKind, MethodSet, Preferred, SshId};
use tokio::sync::{watch, Notify};

use super::channel::shutdown_flipped;
use super::defender::{Defender, Policy};
use super::session::Connection;
use super::space::UploadLimits;
use super::{auth, hostkey, space, AccountSource, SftpEvents};
use crate::clock::Clock;
use crate::config::Config;

/// How long shutdown waits for sessions to end before sweeping.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The authentication methods offered, in every answer.
pub(crate) fn methods() -> MethodSet {
    MethodSet::from(
        &[
            MethodKind::PublicKey,
            MethodKind::KeyboardInteractive,
            MethodKind::Password,
        ][..],
    )
}

/// The connection and session limits of `[sftp]` a reload may change
/// (upload limits are in [`UploadLimits`], the throttle's in the defender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub idle: Duration,
    pub max_sessions_per_user: u32,
    pub max_sessions: usize,
    pub login_grace: Duration,
    pub max_unauthenticated: u32,
}

impl Limits {
    fn from_config(s: &crate::config::Sftp) -> Limits {
        Limits {
            idle: Duration::from_secs(s.idle_timeout_secs),
            max_sessions_per_user: s.max_sessions_per_user,
            max_sessions: s.max_sessions as usize,
            login_grace: Duration::from_secs(s.login_grace_secs),
            max_unauthenticated: s.max_unauthenticated_per_source,
        }
    }
}

/// State every connection of the server shares.
pub(crate) struct Shared {
    pub accounts: Arc<dyn AccountSource>,
    pub events: Arc<dyn SftpEvents>,
    pub defender: Defender,
    pub spool: PathBuf,
    /// The one clock: temporary passwords expire by it.
    pub clock: Clock,
    pub uploads: Arc<UploadLimits>,
    limits: RwLock<Limits>,
    /// The russh settings for new connections (rebuilt by a reload).
    ssh: RwLock<Arc<SshConfig>>,
    host_key: PrivateKey,
    /// What unknown logins' passwords are checked against (same cost).
    pub dummy_hash: String,
    per_user: Mutex<HashMap<String, u32>>,
    unauthenticated: Mutex<HashMap<IpAddr, u32>>,
    connections: AtomicUsize,
    pub closing: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    live: AtomicUsize,
    drained: Notify,
}

impl Shared {
    /// The limits in force now.
    pub fn limits(&self) -> Limits {
        *self.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    fn ssh(&self) -> Arc<SshConfig> {
        self.ssh.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A receiver that flips when the server shuts down.
    pub fn stop_rx(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Marks a task (connection or SFTP session) as running until the guard drops.
    pub fn track(self: &Arc<Self>) -> TaskGuard {
        self.live.fetch_add(1, Ordering::SeqCst);
        TaskGuard(self.clone())
    }

    async fn wait_drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A session slot for `login`, or `None` when it has too many.
    pub fn user_slot(self: &Arc<Self>, login: &str) -> Option<UserSlot> {
        let mut m = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(login.to_string()).or_insert(0);
        if *n >= self.limits().max_sessions_per_user {
            return None;
        }
        *n += 1;
        crate::metrics::global().sftp_session_opened();
        Some(UserSlot {
            shared: self.clone(),
            login: login.to_string(),
        })
    }
}

impl Shared {
    /// A slot for a connection from `ip` that has not logged in yet.
    fn unauthenticated_slot(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let mut m = self.unauthenticated.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits().max_unauthenticated {
            return None;
        }
        *n += 1;
        Some(PendingSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// Held by a connection until it logs in (or ends).
pub(crate) struct PendingSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut m = self.shared.unauthenticated.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

pub(crate) struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// One open session of a login (released on drop).
pub(crate) struct UserSlot {
    shared: Arc<Shared>,
    login: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        crate::metrics::global().sftp_session_closed();
        let mut m = self.shared.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.login) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.login);
            }
        }
    }
}

struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct SftpServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    fingerprint: String,
    started: Arc<StartedWith>,
}

/// The keys a running server cannot change.
#[derive(Debug)]
struct StartedWith {
    enabled: bool,
    listen: String,
    host_key: PathBuf,
}

impl SftpServer {
    /// Loads (or generates) the host key, removes temporary uploads a crash
    /// left, binds `[sftp] listen`. Blocking: call it at start-up. `clock`
    /// is the one the expiry of temporary passwords is read on.
    pub fn new(
        cfg: &Config,
        clock: Clock,
        accounts: Arc<dyn AccountSource>,
        events: Arc<dyn SftpEvents>,
    ) -> Result<SftpServer> {
        let s = &cfg.sftp;
        let key = hostkey::load_or_create(&s.host_key)?;
        let fingerprint = hostkey::fingerprint(&key);
        let spool = cfg.paths.spool.clone();
        let stale = space::remove_stale_uploads(&spool)?;
        if stale > 0 {
            tracing::info!("removed {stale} unfinished SFTP upload(s) left by an earlier run");
        }
        let addr: SocketAddr = s
            .listen
            .parse()
            .with_context(|| format!("[sftp] listen: {:?} is not an address:port", s.listen))?;
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for SFTP"))?;
        listener
            .set_nonblocking(true)
            .context("cannot make the SFTP socket non-blocking")?;
        let addr = listener.local_addr().context("cannot read the SFTP socket address")?;
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            accounts,
            events,
            defender: Defender::new(Policy::from_config(s)),
            spool,
            clock,
            uploads: Arc::new(UploadLimits::new(cfg.limits.max_file_size, s.fsync_uploads)),
            limits: RwLock::new(Limits::from_config(s)),
            ssh: RwLock::new(Arc::new(ssh_config(s, key.clone()))),
            host_key: key,
            dummy_hash: auth::dummy_hash()?,
            per_user: Mutex::new(HashMap::new()),
            unauthenticated: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            closing: Arc::new(AtomicBool::new(false)),
            stop,
            live: AtomicUsize::new(0),
            drained: Notify::new(),
        });
        Ok(SftpServer {
            listener,
            addr,
            shared,
            fingerprint,
            started: Arc::new(StartedWith {
                enabled: s.enabled,
                listen: s.listen.clone(),
                host_key: s.host_key.clone(),
            }),
        })
    }

    /// What the daemon calls on SIGHUP (see [`Reload::apply`]).
    pub fn reload_handle(&self) -> Reload {
        Reload {
            shared: self.shared.clone(),
            started: self.started.clone(),
        }
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the host key, as OpenSSH prints it.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Serves until `shutdown` becomes true, then closes every session
    /// (uploads in flight are discarded) and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener).context("cannot register the SFTP socket")?;
        tracing::info!("SFTP server listening on {} (host key {})", self.addr, self.fingerprint);
        loop {
            tokio::select! {
                biased;
                _ = shutdown_flipped(&mut shutdown) => break,
                r = listener.accept() => match r {
                    Ok((sock, peer)) => spawn_connection(&self.shared, sock, peer),
                    Err(e) => {
                        // Out of file descriptors and the like: do not spin.
                        tracing::warn!("SFTP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        drop(listener);
        tracing::info!("SFTP server stopping");
        let shared = self.shared;
        shared.closing.store(true, Ordering::SeqCst);
        let _ = shared.stop.send(true);
        if tokio::time::timeout(DRAIN_TIMEOUT, shared.wait_drained())
            .await
            .is_err()
        {
            tracing::warn!("some SFTP sessions did not end in time");
        }
        let spool = shared.spool.clone();
        let swept = tokio::task::spawn_blocking(move || space::remove_stale_uploads(&spool))
            .await
            .context("SFTP clean-up task failed")??;
        if swept > 0 {
            tracing::info!("removed {swept} unfinished SFTP upload(s)");
        }
        Ok(())
    }
}

/// Applies a reloaded configuration to a running server. Cheap to clone;
/// keeps the server's shared state alive while held.
#[derive(Clone)]
pub struct Reload {
    shared: Arc<Shared>,
    started: Arc<StartedWith>,
}

impl Reload {
    /// Applies at once, to the connections, logins and uploads that start
    /// afterwards, every `[sftp]` limit (`idle_timeout_secs`,
    /// `max_sessions_per_user`, `max_sessions`, `lockout_after_failures`,
    /// `lockout_secs`, `failure_window_secs`, `failure_delay_ms`,
    /// `login_grace_secs`, `max_unauthenticated_per_source`, `fsync_uploads`)
    /// and `[limits] max_file_size`. Returns the keys that differ from the
    /// ones the server started with but need a restart: `"sftp.listen"`,
    /// `"sftp.host_key"`, `"sftp.enabled"`.
    pub fn apply(&self, cfg: &Config) -> Vec<&'static str> {
        let s = &cfg.sftp;
        let shared = &self.shared;
        let mut changed = Vec::new();
        let old = shared.limits();
        let new = Limits::from_config(s);
        for (name, differs) in [
            ("idle_timeout_secs", old.idle != new.idle),
            (
                "max_sessions_per_user",
                old.max_sessions_per_user != new.max_sessions_per_user,
            ),
            ("max_sessions", old.max_sessions != new.max_sessions),
            ("login_grace_secs", old.login_grace != new.login_grace),
            (
                "max_unauthenticated_per_source",
                old.max_unauthenticated != new.max_unauthenticated,
            ),
            ("fsync_uploads", shared.uploads.fsync() != s.fsync_uploads),
        ] {
            if differs {
                changed.push(format!("sftp.{name}"));
            }
        }
        if shared.uploads.max_file_size() != cfg.limits.max_file_size {
            changed.push("limits.max_file_size".into());
        }
        changed.extend(shared.defender.set_policy(Policy::from_config(s)));
        *shared.limits.write().unwrap_or_else(|p| p.into_inner()) = new;
        shared.uploads.set(cfg.limits.max_file_size, s.fsync_uploads);
        *shared.ssh.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ssh_config(s, shared.host_key.clone()));
        if !changed.is_empty() {
            tracing::info!("SFTP limits reloaded: {}", changed.join(", "));
        }

        let started = &self.started;
        let mut restart = Vec::new();
        if s.listen != started.listen {
            restart.push("sftp.listen");
        }
        if s.host_key != started.host_key {
            restart.push("sftp.host_key");
        }
        if s.enabled != started.enabled {
            restart.push("sftp.enabled");
        }
        restart
    }
}

fn spawn_connection(shared: &Arc<Shared>, sock: tokio::net::TcpStream, peer: SocketAddr) {
    let Limits {
        max_sessions,
        login_grace,
        ..
    } = shared.limits();
    // A locked source is dropped before any SSH work, like OpenSSH's
    // per-source penalties: it costs the server nothing and holds no slot.
    if shared.defender.is_locked(peer.ip()) {
        // Logged once when the lock starts; not for every retry.
        tracing::debug!(%peer, "SFTP connection refused: source locked after failed logins");
        return;
    }
    let Some(pending) = shared.unauthenticated_slot(peer.ip()) else {
        tracing::warn!(%peer, "SFTP connection refused: too many unauthenticated connections from this address");
        return;
    };
    if shared.connections.fetch_add(1, Ordering::SeqCst) >= max_sessions {
        shared.connections.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(%peer, "SFTP connection refused: {max_sessions} sessions already open");
        return;
    }
    let slot = ConnectionSlot(shared.clone());
    let guard = shared.track();
    let shared = shared.clone();
    let ssh = shared.ssh();
    tokio::spawn(async move {
        let _slot = slot;
        let _guard = guard;
        let _ = sock.set_nodelay(true);
        let authed = Arc::new(AtomicBool::new(false));
        let handler = Connection::new(shared.clone(), peer.ip(), authed.clone(), pending);
        let mut stop = shared.stop_rx();
        let grace = tokio::time::sleep(login_grace);
        tokio::pin!(grace);
        let session = tokio::select! {
            r = russh::server::run_stream(ssh, sock, handler) => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, "SSH handshake failed: {e:#}");
                    return;
                }
            },
            _ = shutdown_flipped(&mut stop) => return,
            _ = &mut grace => return,
        };
        let handle = session.handle();
        tokio::pin!(session);
        let mut grace_armed = true;
        loop {
            tokio::select! {
                r = &mut session => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "SSH connection ended: {e:#}");
                    }
                    break;
                }
                _ = shutdown_flipped(&mut stop) => {
                    let _ = handle
                        .disconnect(Disconnect::ByApplication, "server shutting down".into(), "en".into())
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(5), &mut session).await;
                    break;
                }
                _ = &mut grace, if grace_armed => {
                    grace_armed = false;
                    if !authed.load(Ordering::SeqCst) {
                        tracing::info!(%peer, "SFTP login grace time over");
                        let _ = handle
                            .disconnect(Disconnect::ByApplication, "login grace time over".into(), "en".into())
                            .await;
                    }
                }
            }
        }
    });
}

/// Modern algorithms only: no CBC, no SHA-1 MACs, no `ssh-rsa` (SHA-1)
/// signatures, no compression.
fn ssh_config(s: &crate::config::Sftp, key: russh::keys::PrivateKey) -> SshConfig {
    let preferred = Preferred {
        kex: Preferred::DEFAULT.kex,
        key: Cow::Owned(vec![
            Algorithm::Ed25519,
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
        ]),
        host_key_certificates: Cow::Borrowed(&[]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
            cipher::AES_256_CTR,
            cipher::AES_192_CTR,
            cipher::AES_128_CTR,
        ]),
        mac: Cow::Borrowed(&[
            mac::HMAC_SHA512_ETM,
            mac::HMAC_SHA256_ETM,
            mac::HMAC_SHA512,
            mac::HMAC_SHA256,
        ]),
        compression: Cow::Borrowed(&[compression::NONE]),
    };
    SshConfig {
        server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-ppas-gateway")),
        methods: methods(),
        auth_rejection_time: Duration::from_millis(s.failure_delay_ms),
        // OpenSSH clients open with a "none" probe: answering it at once
        // reveals nothing (every login gets the same method list).
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        inactivity_timeout: Some(Duration::from_secs(s.idle_timeout_secs)),
        max_auth_attempts: 6,
        nodelay: true,
        preferred,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sftp::space::{Space, SpaceConfig};
    use crate::sftp::SftpAccount;

    struct NoAccounts;
    impl AccountSource for NoAccounts {
        fn lookup(&self, _: &str) -> Result<Option<SftpAccount>> {
            Ok(None)
        }
    }
    struct NoEvents;
    impl SftpEvents for NoEvents {
        fn upload_complete(&self, _: &str, _: &std::path::Path) {}
        fn downloaded(&self, _: &str, _: &str, _: &str, _: u64) {}
    }

    fn config(root: &std::path::Path, sftp: &str, limits: &str) -> Config {
        Config::parse(&format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n[sftp]\nlisten = \"127.0.0.1:0\"\nhost_key = {:?}\n{sftp}\n[limits]\n{limits}\n",
            root.join("spool"),
            root.join("spool/state/gateway.db"),
            root.join("spool/state/key"),
        ))
        .unwrap()
    }

    #[test]
    fn reload_applies_limits_to_what_starts_next_and_reports_restart_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "", "");
        let server = SftpServer::new(&cfg, Clock::System, Arc::new(NoAccounts), Arc::new(NoEvents)).unwrap();
        let reload = server.reload_handle();
        let shared = server.shared.clone();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();

        // Defaults: 8 sessions per login, 10 unauthenticated per source.
        let held: Vec<_> = (0..3).map(|_| shared.user_slot("alice").unwrap()).collect();
        let pending: Vec<_> = (0..3).map(|_| shared.unauthenticated_slot(ip).unwrap()).collect();
        assert!(!shared.defender.is_locked(ip));

        // Nothing changed: nothing to restart.
        assert!(reload.apply(&cfg).is_empty());

        let new = config(
            dir.path(),
            "idle_timeout_secs = 7\nmax_sessions_per_user = 3\nmax_sessions = 5\n\
             lockout_after_failures = 2\nlockout_secs = 60\nfailure_window_secs = 30\n\
             failure_delay_ms = 20\nlogin_grace_secs = 9\nmax_unauthenticated_per_source = 3\n\
             fsync_uploads = false",
            "max_file_size = 1000",
        );
        assert!(reload.apply(&new).is_empty(), "only limits changed");
        // The next login and the next connection see the new limits; the
        // sessions already open keep their slots.
        assert!(shared.user_slot("alice").is_none(), "3 sessions is the new maximum");
        assert!(shared.user_slot("bob").is_some());
        assert!(shared.unauthenticated_slot(ip).is_none());
        drop(held);
        drop(pending);
        assert!(shared.user_slot("alice").is_some());
        let l = shared.limits();
        assert_eq!(
            (l.idle, l.max_sessions, l.login_grace),
            (Duration::from_secs(7), 5, Duration::from_secs(9))
        );
        let ssh = shared.ssh();
        assert_eq!(ssh.inactivity_timeout, Some(Duration::from_secs(7)));
        assert_eq!(ssh.auth_rejection_time, Duration::from_millis(20));
        // The throttle: two failures now lock, and the delay base is 20 ms.
        assert_eq!(shared.defender.delay(ip), Duration::from_millis(20));
        shared.defender.record_failure(ip);
        assert!(shared.defender.record_failure(ip).locked);
        // Uploads: a session opened now (or an upload started now) reads the new values.
        let space = Space::open(
            SpaceConfig {
                spool: &shared.spool,
                limits: shared.uploads.clone(),
                events: shared.events.clone(),
                closing: shared.closing.clone(),
            },
            "alice",
            "saad1",
        )
        .unwrap();
        assert_eq!((space.limits.max_file_size(), space.limits.fsync()), (1000, false));

        // Keys a running server cannot take are reported, every time they differ.
        let mut moved = new.clone();
        moved.sftp.listen = "127.0.0.1:2223".into();
        moved.sftp.host_key = dir.path().join("other_key");
        moved.sftp.enabled = false;
        assert_eq!(reload.apply(&moved), ["sftp.listen", "sftp.host_key", "sftp.enabled"]);
        assert_eq!(
            reload.clone().apply(&moved).len(),
            3,
            "compared with the start, not the last reload"
        );
        assert!(reload.apply(&cfg).is_empty(), "back to the started values");
        assert_eq!(shared.limits().max_sessions_per_user, 8);

        fn send_sync<T: Send + Sync + Clone>(_: &T) {}
        send_sync(&reload);
    }
}
