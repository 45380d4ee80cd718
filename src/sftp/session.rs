//! One SSH connection: authentication requests and channel requests in,
//! an SFTP session on the provider's folders out (and nothing else: no
//! shell, no exec, no forwarding, no subsystem but `sftp`).
//!
//! Authentication answers the same way, after the same delay, for an
//! unknown login, a disabled one and a wrong secret. Failures feed the
//! [`Defender`](super::defender::Defender): every wrong password counts;
//! rejected keys count once per connection (an agent offering several keys
//! before the right one is not an attack) and that one is forgiven when
//! the connection then gets in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use tokio::time::Instant;

use super::auth::{account_has_key, key_allowed, verify_password};
use super::channel::{self, End};
use super::ops::Ops;
use super::server::{PendingSlot, Shared, UserSlot};
use super::space::{Space, SpaceConfig};
use super::SftpAccount;

/// Session channels one connection may hold open.
const MAX_CHANNELS: usize = 4;

enum Lookup {
    Found(SftpAccount),
    Unknown,
    /// The account store failed: refused, but not held against the client.
    Error,
}

pub(crate) struct Connection {
    shared: Arc<Shared>,
    peer: IpAddr,
    /// Read by the listener to enforce the login grace time.
    authed: Arc<AtomicBool>,
    /// The account whose key was accepted at the probe stage, or that just
    /// authenticated (until `auth_succeeded` takes it).
    candidate: Option<SftpAccount>,
    method: &'static str,
    user: Option<(SftpAccount, UserSlot)>,
    /// The failure a rejected key recorded (once per connection).
    key_failure: Option<u64>,
    key_refused: bool,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// Counts this connection against its address until it logs in.
    pending: Option<PendingSlot>,
}

impl Connection {
    pub fn new(shared: Arc<Shared>, peer: IpAddr, authed: Arc<AtomicBool>, pending: PendingSlot) -> Connection {
        Connection {
            shared,
            peer,
            authed,
            candidate: None,
            method: "",
            user: None,
            key_failure: None,
            key_refused: false,
            channels: HashMap::new(),
            pending: Some(pending),
        }
    }

    async fn lookup(&self, login: &str) -> Lookup {
        // Logins are letters and digits: anything else cannot exist.
        if login.is_empty() || login.len() > 64 || !login.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Lookup::Unknown;
        }
        let accounts = self.shared.accounts.clone();
        let l = login.to_string();
        match tokio::task::spawn_blocking(move || accounts.lookup(&l)).await {
            Ok(Ok(Some(a))) => Lookup::Found(a),
            Ok(Ok(None)) => Lookup::Unknown,
            Ok(Err(e)) => {
                tracing::error!("SFTP account lookup failed: {e:#}");
                Lookup::Error
            }
            Err(e) => {
                tracing::error!("SFTP account lookup task failed: {e}");
                Lookup::Error
            }
        }
    }

    /// The one refusal: same methods offered, answered after the
    /// source's current delay (counted from when the request arrived).
    /// Returns the id of the failure recorded, if `count`.
    async fn refuse(&self, started: Instant, count: bool, login: &str, method: &str, why: &str) -> (Auth, Option<u64>) {
        let delay = self.shared.defender.delay(self.peer);
        let mut id = None;
        if count {
            let r = self.shared.defender.record_failure(self.peer);
            if r.locked {
                tracing::warn!(peer = %self.peer, "too many failed SFTP logins: source locked");
            }
            id = Some(r.id);
        }
        tracing::info!(peer = %self.peer, login, method, "SFTP login refused: {why}");
        tokio::time::sleep_until(started + delay).await;
        let auth = Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])),
            partial_success: false,
        };
        (auth, id)
    }

    async fn refuse_password(&self, started: Instant, count: bool, login: &str, why: &str) -> Auth {
        self.refuse(started, count, login, "password", why).await.0
    }

    /// A rejected key counts once per connection.
    async fn refuse_key(&mut self, started: Instant, login: &str, why: &str) -> Auth {
        let count = !self.key_refused;
        self.key_refused = true;
        let (auth, id) = self.refuse(started, count, login, "publickey", why).await;
        if id.is_some() {
            self.key_failure = id;
        }
        auth
    }

    fn accept(&mut self, account: SftpAccount, method: &'static str) -> Auth {
        if let Some(id) = self.key_failure.take() {
            self.shared.defender.forgive(self.peer, id);
        }
        self.method = method;
        self.candidate = Some(account);
        Auth::Accept
    }

    async fn account_with_key(
        &mut self,
        login: &str,
        key: &russh::keys::PublicKey,
    ) -> Result<SftpAccount, (bool, &'static str)> {
        let account = match self.candidate.take() {
            Some(a) if a.login == login => Lookup::Found(a),
            _ => self.lookup(login).await,
        };
        match account {
            Lookup::Found(a) if !a.disabled && account_has_key(&a, key) => Ok(a),
            Lookup::Found(a) if a.disabled => Err((true, "account disabled")),
            Lookup::Error => Err((false, "account store unavailable")),
            _ => Err((true, "unknown login or key")),
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = anyhow::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        if self.shared.defender.is_locked(self.peer) {
            return Ok(self.refuse_password(started, false, user, "source locked").await);
        }
        let found = self.lookup(user).await;
        let hash = match &found {
            Lookup::Found(a) if !a.disabled => a.password_hash.clone(),
            _ => None,
        };
        let dummy = self.shared.dummy_hash.clone();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), &pw, &dummy))
            .await
            .unwrap_or(false);
        Ok(match found {
            Lookup::Found(a) if ok && !a.disabled => self.accept(a, "password"),
            Lookup::Found(a) if a.disabled => self.refuse_password(started, true, user, "account disabled").await,
            Lookup::Error => {
                self.refuse_password(started, false, user, "account store unavailable")
                    .await
            }
            _ => {
                self.refuse_password(started, true, user, "unknown login or wrong password")
                    .await
            }
        })
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        if self.shared.defender.is_locked(self.peer) {
            return Ok(self.refuse(started, false, user, "publickey", "source locked").await.0);
        }
        if let Err(why) = key_allowed(offer.public_key, offer.algorithm) {
            return Ok(self.refuse_key(started, user, why).await);
        }
        Ok(match self.account_with_key(user, offer.public_key).await {
            Ok(a) => {
                // Keep it for the signed request that follows.
                self.candidate = Some(a);
                Auth::Accept
            }
            Err((true, why)) => self.refuse_key(started, user, why).await,
            Err((false, why)) => self.refuse(started, false, user, "publickey", why).await.0,
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        if self.shared.defender.is_locked(self.peer) {
            return Ok(self.refuse(started, false, user, "publickey", "source locked").await.0);
        }
        if let Err(why) = key_allowed(key.public_key, key.algorithm) {
            return Ok(self.refuse_key(started, user, why).await);
        }
        Ok(match self.account_with_key(user, key.public_key).await {
            Ok(a) => self.accept(a, "publickey"),
            Err((true, why)) => self.refuse_key(started, user, why).await,
            Err((false, why)) => self.refuse(started, false, user, "publickey", why).await.0,
        })
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some(account) = self.candidate.take() else {
            anyhow::bail!("authentication succeeded without an account");
        };
        match self.shared.user_slot(&account.login) {
            Some(slot) => {
                tracing::info!(
                    peer = %self.peer, login = %account.login, provider = %account.provider,
                    method = self.method, "SFTP login"
                );
                self.user = Some((account, slot));
                self.authed.store(true, Ordering::SeqCst);
                self.pending = None;
            }
            None => {
                tracing::warn!(peer = %self.peer, login = %account.login, "SFTP login refused: too many sessions for this login");
                session.disconnect(
                    Disconnect::TooManyConnections,
                    "too many sessions open for this login",
                    "en",
                )?;
            }
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.user.is_some() && self.channels.len() < MAX_CHANNELS {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        // Otherwise dropping `reply` refuses the channel.
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some((account, _)), true) = (&self.user, name == "sftp") else {
            tracing::info!(peer = %self.peer, "subsystem {name:?} refused");
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let Some(channel) = self.channels.remove(&channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let (login, provider) = (account.login.clone(), account.provider.clone());
        let shared = self.shared.clone();
        let (l, p) = (login.clone(), provider.clone());
        let space = tokio::task::spawn_blocking(move || {
            Space::open(
                SpaceConfig {
                    spool: &shared.spool,
                    limits: shared.uploads.clone(),
                    events: shared.events.clone(),
                    closing: shared.closing.clone(),
                },
                &l,
                &p,
            )
        })
        .await;
        let space = match space {
            Ok(Ok(s)) => Arc::new(s),
            Ok(Err(e)) => {
                tracing::error!(%login, "cannot open the SFTP folders: {e:#}");
                session.channel_failure(channel_id)?;
                return Ok(());
            }
            Err(e) => {
                tracing::error!(%login, "SFTP folder task failed: {e}");
                session.channel_failure(channel_id)?;
                return Ok(());
            }
        };
        session.channel_success(channel_id)?;
        let (read, write) = channel.split();
        let guard = self.shared.track();
        let stop = self.shared.stop_rx();
        let idle = self.shared.limits().idle;
        let handle = session.handle();
        tokio::spawn(async move {
            let _guard = guard;
            let end = channel::serve(read, write, Ops::new(space), idle, stop).await;
            tracing::debug!(%login, ?end, "SFTP session ended");
            let reason = match end {
                End::Idle => Some((Disconnect::ByApplication, "idle timeout")),
                End::Protocol => Some((Disconnect::ProtocolError, "malformed SFTP stream")),
                _ => None,
            };
            if let Some((why, text)) = reason {
                tracing::info!(%login, "SFTP session closed: {text}");
                let _ = handle.disconnect(why, text.into(), "en".into()).await;
            }
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, "exec refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, "shell refused");
        session.channel_failure(channel)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}
