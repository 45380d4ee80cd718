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
//!
//! Passwords are taken by `password` and by `keyboard-interactive` (one
//! prompt, the same for every login). A temporary password opens nothing
//! by `password`: it is refused like a wrong one (same answer, same delay),
//! but not counted as a failure, since whoever typed it knows it. Through
//! `keyboard-interactive` it leads to the change rounds of
//! [`first_login`](super::first_login); the new password is hashed, stored
//! through [`AccountSource::replace_temporary_password`], and the session
//! goes in. A password past its expiry is refused by both methods, likewise
//! not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect};
use tokio::time::Instant;

use super::auth::{account_has_key, hash_password, key_allowed, verify_password};
use super::channel::{self, End};
use super::first_login::{self, MAX_TRIES};
use super::ops::Ops;
use super::server::{methods, PendingSlot, Shared, UserSlot};
use super::space::{Space, SpaceConfig};
use super::SftpAccount;

const PASSWORD: &str = "password";
const KBD: &str = "keyboard-interactive";

/// Session channels one connection may hold open.
const MAX_CHANNELS: usize = 4;

enum Lookup {
    Found(SftpAccount),
    Unknown,
    /// The account store failed: refused, but not held against the client.
    Error,
}

/// What a typed password is worth.
enum PasswordCheck {
    /// Right and permanent: the account may log in.
    Permanent(SftpAccount),
    /// Right, temporary, not expired: to be replaced before the session.
    Temporary(SftpAccount),
    /// Right, but past its expiry.
    Expired,
    /// Wrong, unknown login or disabled account (why, for the log).
    Wrong(&'static str),
    /// The account store failed.
    StoreDown,
}

/// Where a keyboard-interactive exchange stands.
enum Kbd {
    /// The password prompt was sent.
    Password,
    /// The temporary password was right; the new one was asked `tries` times.
    NewPassword {
        account: SftpAccount,
        temporary: String,
        tries: u32,
    },
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
    kbd: Option<Kbd>,
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
            kbd: None,
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
                tracing::warn!(
                    event = "sftp.lockout",
                    peer = %self.peer,
                    secs = self.shared.defender.lockout_secs(),
                    "too many failed SFTP logins: source locked"
                );
            }
            crate::metrics::global().sftp_auth_failure(method, r.locked);
            id = Some(r.id);
        }
        tracing::info!(event = "sftp.login", outcome = "failed", peer = %self.peer, login, method, reason = why, "SFTP login refused: {why}");
        tokio::time::sleep_until(started + delay).await;
        let auth = Auth::Reject {
            proceed_with_methods: Some(methods()),
            partial_success: false,
        };
        (auth, id)
    }

    async fn refuse_password(&self, started: Instant, count: bool, login: &str, method: &str, why: &str) -> Auth {
        self.refuse(started, count, login, method, why).await.0
    }

    /// Checks a typed password: the same Argon2 work whether the login
    /// exists or not, is disabled or not.
    async fn check_password(&self, user: &str, password: &str) -> PasswordCheck {
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
        match found {
            Lookup::Error => PasswordCheck::StoreDown,
            Lookup::Found(a) if a.disabled => PasswordCheck::Wrong("account disabled"),
            Lookup::Found(a) if ok => {
                let now = self.shared.clock.now();
                if a.password_expires_at.is_some_and(|t| t <= now) {
                    PasswordCheck::Expired
                } else if a.password_temporary {
                    PasswordCheck::Temporary(a)
                } else {
                    PasswordCheck::Permanent(a)
                }
            }
            _ => PasswordCheck::Wrong("unknown login or wrong password"),
        }
    }

    /// The refusal of a password that was not accepted as it stands.
    async fn refuse_check(&self, started: Instant, user: &str, method: &str, check: PasswordCheck) -> Auth {
        let (count, why) = match check {
            PasswordCheck::Wrong(why) => (true, why),
            PasswordCheck::StoreDown => (false, "account store unavailable"),
            PasswordCheck::Expired => (false, "temporary password expired"),
            PasswordCheck::Temporary(_) => (
                false,
                "temporary password: it must be replaced through keyboard-interactive",
            ),
            // Callers accept this one; kept for the match to be whole.
            PasswordCheck::Permanent(_) => (false, "refused"),
        };
        self.refuse_password(started, count, user, method, why).await
    }

    /// Second and later keyboard-interactive rounds of a temporary password:
    /// the new one twice, checked, then stored.
    async fn change_round(
        &mut self,
        started: Instant,
        user: &str,
        answers: &[Bytes],
        account: SftpAccount,
        temporary: String,
        tries: u32,
    ) -> Auth {
        if account.login != user {
            return self
                .refuse_password(started, false, user, KBD, "login changed during the exchange")
                .await;
        }
        let new = match first_login::check_new(&temporary, answers) {
            Ok(new) => new,
            Err(problem) => {
                let tries = tries + 1;
                tracing::info!(
                    peer = %self.peer, login = user,
                    "SFTP new password refused: {}", problem.english()
                );
                if tries >= MAX_TRIES {
                    return self
                        .refuse_password(started, false, user, KBD, "new password refused too many times")
                        .await;
                }
                self.kbd = Some(Kbd::NewPassword {
                    account,
                    temporary,
                    tries,
                });
                return first_login::ask_new(Some(problem));
            }
        };
        let accounts = self.shared.accounts.clone();
        let login = account.login.clone();
        let temporary_hash = account.password_hash.clone().unwrap_or_default();
        let stored = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let new_hash = hash_password(&new)?;
            accounts.replace_temporary_password(&login, &temporary_hash, &new_hash)
        })
        .await;
        match stored {
            Ok(Ok(true)) => {
                tracing::info!(peer = %self.peer, login = user, "SFTP temporary password replaced by its user");
                self.accept(account, KBD)
            }
            Ok(Ok(false)) => {
                self.refuse_password(started, false, user, KBD, "password changed meanwhile")
                    .await
            }
            Ok(Err(e)) => {
                tracing::error!(login = user, "cannot store the new password: {e:#}");
                self.refuse_password(started, false, user, KBD, "account store unavailable")
                    .await
            }
            Err(e) => {
                tracing::error!(login = user, "new password task failed: {e}");
                self.refuse_password(started, false, user, KBD, "account store unavailable")
                    .await
            }
        }
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
            proceed_with_methods: Some(methods()),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        self.kbd = None;
        if self.shared.defender.is_locked(self.peer) {
            return Ok(self
                .refuse_password(started, false, user, PASSWORD, "source locked")
                .await);
        }
        Ok(match self.check_password(user, password).await {
            PasswordCheck::Permanent(a) => self.accept(a, PASSWORD),
            other => self.refuse_check(started, user, PASSWORD, other).await,
        })
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let started = Instant::now();
        let locked = self.shared.defender.is_locked(self.peer);
        let Some(response) = response else {
            // A new request: the one password prompt, whoever the login is.
            self.kbd = None;
            if locked {
                return Ok(self.refuse_password(started, false, user, KBD, "source locked").await);
            }
            self.kbd = Some(Kbd::Password);
            return Ok(first_login::ask_password());
        };
        let answers: Vec<Bytes> = response.collect();
        let state = self.kbd.take();
        if locked {
            return Ok(self.refuse_password(started, false, user, KBD, "source locked").await);
        }
        Ok(match state {
            Some(Kbd::Password) => {
                let typed = answers
                    .first()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                match self.check_password(user, &typed).await {
                    PasswordCheck::Permanent(a) => self.accept(a, KBD),
                    PasswordCheck::Temporary(account) => {
                        tracing::info!(
                            peer = %self.peer, login = user,
                            "SFTP login with a temporary password: asking for a new one"
                        );
                        self.kbd = Some(Kbd::NewPassword {
                            account,
                            temporary: typed,
                            tries: 0,
                        });
                        first_login::ask_new(None)
                    }
                    other => self.refuse_check(started, user, KBD, other).await,
                }
            }
            Some(Kbd::NewPassword {
                account,
                temporary,
                tries,
            }) => {
                self.change_round(started, user, &answers, account, temporary, tries)
                    .await
            }
            None => {
                self.refuse_password(started, false, user, KBD, "answer without a question")
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
                    event = "sftp.login", outcome = "ok",
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
