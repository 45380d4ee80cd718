//! Helpers for the SFTP tests: the server run in-process on 127.0.0.1:0
//! with a temporary spool, an in-memory account list and an event
//! recorder; real clients (OpenSSH `sftp`, `ssh`, paramiko) as
//! subprocesses, OpenSSH on a pseudo-terminal through `scripts/pty_session.py`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ppas_gateway::clock::Clock;
use ppas_gateway::config::Config;
use ppas_gateway::sftp::{AccountSource, Reload, SftpAccount, SftpEvents, SftpServer};
use serde_json::Value;

use crate::support;

#[derive(Default)]
pub struct Accounts(Mutex<HashMap<String, SftpAccount>>);

impl AccountSource for Accounts {
    fn lookup(&self, login: &str) -> anyhow::Result<Option<SftpAccount>> {
        Ok(self.0.lock().unwrap().get(login).cloned())
    }

    fn replace_temporary_password(&self, login: &str, temporary_hash: &str, new_hash: &str) -> anyhow::Result<bool> {
        let mut m = self.0.lock().unwrap();
        match m.get_mut(login) {
            Some(a) if a.password_temporary && a.password_hash.as_deref() == Some(temporary_hash) => {
                a.password_hash = Some(new_hash.to_string());
                a.password_temporary = false;
                a.password_expires_at = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Accounts {
    pub fn get(&self, login: &str) -> SftpAccount {
        self.0.lock().unwrap().get(login).cloned().expect("known login")
    }
}

#[derive(Default)]
pub struct Events {
    pub uploads: Mutex<Vec<(String, PathBuf)>>,
    pub downloads: Mutex<Vec<(String, String, String, u64)>>,
}

impl SftpEvents for Events {
    fn upload_complete(&self, provider: &str, path: &Path) {
        self.uploads
            .lock()
            .unwrap()
            .push((provider.to_string(), path.to_path_buf()));
    }
    fn downloaded(&self, login: &str, provider: &str, rel_path: &str, bytes: u64) {
        self.downloads
            .lock()
            .unwrap()
            .push((login.to_string(), provider.to_string(), rel_path.to_string(), bytes));
    }
}

/// A running server and its surroundings.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub accounts: Arc<Accounts>,
    pub events: Arc<Events>,
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub clock: Clock,
    /// What the daemon calls on SIGHUP.
    pub reload: Reload,
    rt: tokio::runtime::Runtime,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Test settings: fast refusals, small limits.
pub fn test_config(root: &Path, extra: &str) -> Config {
    let mut sftp = String::from("listen = \"127.0.0.1:0\"\n");
    for (k, v) in [("failure_delay_ms", "50")] {
        if !extra.contains(k) {
            sftp.push_str(&format!("{k} = {v}\n"));
        }
    }
    let text = format!(
        "[paths]\nspool = {spool:?}\ndatabase = {db:?}\n\
         [sftp]\nhost_key = {key:?}\n{sftp}{extra}",
        spool = root.join("spool"),
        db = root.join("spool/state/gateway.db"),
        key = root.join("spool/state/ssh_host_ed25519_key"),
    );
    Config::parse(&text).expect("test configuration")
}

impl Gateway {
    /// Starts a server; `extra` is appended to the `[sftp]` section (or
    /// opens further sections, e.g. `[limits]`).
    pub fn start(extra: &str) -> Gateway {
        Gateway::start_at(extra, Clock::System)
    }

    /// Likewise, with the server's clock fixed (what `PPAS_GATEWAY_NOW` does
    /// to the daemon).
    pub fn start_at(extra: &str, clock: Clock) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let cfg = test_config(dir.path(), extra);
        Gateway::start_with(dir, cfg, clock, Arc::default(), Arc::default())
    }

    pub fn start_with(
        dir: tempfile::TempDir,
        cfg: Config,
        clock: Clock,
        accounts: Arc<Accounts>,
        events: Arc<Events>,
    ) -> Gateway {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = SftpServer::new(&cfg, clock, accounts.clone(), events.clone()).expect("server starts");
        let addr = server.local_addr();
        let fingerprint = server.host_key_fingerprint().to_string();
        let reload = server.reload_handle();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let task = rt.spawn(server.run(rx));
        Gateway {
            dir,
            cfg,
            accounts,
            events,
            addr,
            fingerprint,
            clock,
            reload,
            rt,
            stop,
            task: Some(task),
        }
    }

    /// Flips the shutdown flag and waits for `run` to return.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(t) => self.rt.block_on(t).expect("server task"),
            None => Ok(()),
        }
    }

    /// Stops this server and starts another on the same spool and config
    /// (the listen port changes: it was 0).
    pub fn restart(&mut self) {
        self.stop().unwrap();
        let server = SftpServer::new(&self.cfg, self.clock, self.accounts.clone(), self.events.clone())
            .expect("server restarts");
        self.reload = server.reload_handle();
        self.addr = server.local_addr();
        self.fingerprint = server.host_key_fingerprint().to_string();
        let (stop, rx) = tokio::sync::watch::channel(false);
        self.stop = stop;
        self.task = Some(self.rt.spawn(server.run(rx)));
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn spool(&self) -> PathBuf {
        self.cfg.paths.spool.clone()
    }

    pub fn inbound(&self, provider: &str) -> PathBuf {
        self.spool().join("inbound").join(provider)
    }

    pub fn outbound(&self, provider: &str) -> PathBuf {
        self.spool().join("outbound").join(provider)
    }

    pub fn add(&self, account: SftpAccount) {
        self.accounts.0.lock().unwrap().insert(account.login.clone(), account);
    }

    /// An account with a fresh Ed25519 key (returns the private key path).
    pub fn user_with_key(&self, login: &str, provider: &str) -> PathBuf {
        let key = keygen(self.dir.path(), login, "ed25519", None);
        self.add(SftpAccount {
            login: login.into(),
            provider: provider.into(),
            keys: vec![pubkey(&key)],
            ..Default::default()
        });
        key
    }

    /// An account with a password.
    pub fn user_with_password(&self, login: &str, provider: &str, password: &str) {
        self.add(SftpAccount {
            login: login.into(),
            provider: provider.into(),
            password_hash: Some(ppas_gateway::sftp::auth::hash_password(password).unwrap()),
            ..Default::default()
        });
    }

    /// An account with a one-time password (to be replaced at the first
    /// login), valid until `expires` when given.
    pub fn user_with_temporary_password(
        &self,
        login: &str,
        provider: &str,
        password: &str,
        expires: Option<DateTime<Utc>>,
    ) {
        self.add(SftpAccount {
            login: login.into(),
            provider: provider.into(),
            password_hash: Some(ppas_gateway::sftp::auth::hash_password(password).unwrap()),
            password_temporary: true,
            password_expires_at: expires,
            ..Default::default()
        });
    }

    /// OpenSSH `sftp` on a pseudo-terminal, driven by `steps` (see
    /// [`pty_session`]), authenticating by password only through `method`
    /// (`keyboard-interactive` or `password`). Returns (exit status, transcript).
    pub fn sftp_pty(&self, login: &str, method: &str, steps: &[(&str, &str)]) -> (Option<i32>, String) {
        let args: Vec<String> = [
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "IdentityAgent=none",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("PreferredAuthentications={method}"),
            "-P".into(),
            self.port().to_string(),
            format!("{login}@127.0.0.1"),
        ])
        .collect();
        let mut argv = vec!["sftp".to_string()];
        argv.extend(args);
        pty_session(&argv, steps)
    }

    /// Names in a folder (empty when it does not exist).
    pub fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// OpenSSH `sftp -b` with a key; returns (success, stdout + stderr).
    pub fn sftp_batch(&self, login: &str, key: &Path, batch: &str, extra: &[&str]) -> (bool, String) {
        let file = self.dir.path().join(format!("batch-{}", rand_suffix()));
        std::fs::write(&file, batch).unwrap();
        let mut cmd = Command::new("sftp");
        cmd.args(ssh_options(key))
            .args(extra)
            .arg("-b")
            .arg(&file)
            .arg("-P")
            .arg(self.port().to_string())
            .arg(format!("{login}@127.0.0.1"));
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        (out.status.success(), text(&out))
    }

    /// The paramiko driver; returns one JSON value per line it printed.
    pub fn paramiko(&self, login: &str, secret: Secret<'_>, ops: Value) -> Vec<Value> {
        let out = run_with_timeout(self.paramiko_cmd(login, secret, &ops), Duration::from_secs(90));
        parse_lines(&out)
    }

    pub fn paramiko_cmd(&self, login: &str, secret: Secret<'_>, ops: &Value) -> Command {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(support::repo().join("scripts/sftp_client.py"))
            .arg("--port")
            .arg(self.port().to_string())
            .arg("--user")
            .arg(login);
        match secret {
            Secret::Password(p) => cmd.arg("--password").arg(p),
            Secret::Key(k) => cmd.arg("--key").arg(k),
            Secret::Interactive(rounds) => cmd.arg("--interactive").arg(serde_json::to_string(rounds).unwrap()),
        };
        cmd.arg(ops.to_string());
        cmd
    }

    /// Starts the paramiko driver in the background, piping its stdout.
    pub fn paramiko_spawn(&self, login: &str, secret: Secret<'_>, ops: Value) -> Running {
        let mut cmd = self.paramiko_cmd(login, secret, &ops);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("python3");
        let lines = BufReader::new(child.stdout.take().unwrap());
        Running { child, lines }
    }

    /// Polls `cond` until it holds (the server works on its own threads).
    pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[derive(Clone, Copy)]
pub enum Secret<'a> {
    Password(&'a str),
    Key(&'a Path),
    /// `keyboard-interactive`: the answers to each round of prompts, in order
    /// (rounds past these are answered with empty strings).
    Interactive(&'a [&'a [&'a str]]),
}

/// A background client.
pub struct Running {
    pub child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl Running {
    /// Next JSON line (panics on end of output).
    pub fn next(&mut self) -> Value {
        let mut line = String::new();
        let n = self.lines.read_line(&mut line).unwrap();
        assert!(n > 0, "client ended early");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process; returns the JSON lines it printed after the
    /// ones already read.
    pub fn finish(mut self) -> Vec<Value> {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.lines, &mut rest).unwrap();
        let _ = self.child.wait();
        rest.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

pub fn ssh_options(key: &Path) -> Vec<String> {
    [
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=20",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["-i".to_string(), key.display().to_string()])
    .collect()
}

/// `ssh-keygen` a key pair in `dir`; returns the private key path.
pub fn keygen(dir: &Path, name: &str, kind: &str, bits: Option<u32>) -> PathBuf {
    let path = dir.join(format!("key-{name}-{kind}-{}", rand_suffix()));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-t", kind, "-f"]).arg(&path);
    if let Some(b) = bits {
        cmd.arg("-b").arg(b.to_string());
    }
    let out = cmd.output().expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
    path
}

/// The OpenSSH public key line of a private key made by [`keygen`].
pub fn pubkey(private: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", private.display()))
        .unwrap()
        .trim()
        .to_string()
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn parse_lines(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!v.is_empty(), "paramiko driver printed nothing: {}", text(out));
    v
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Runs `argv` on a pseudo-terminal, like a person at a keyboard: for each
/// step, waits for its text in the output (since the previous one), then
/// types its line. Returns the child's exit status (`None` when a text never
/// came, or the child was killed) and the transcript.
pub fn pty_session(argv: &[String], steps: &[(&str, &str)]) -> (Option<i32>, String) {
    let steps: Vec<[&str; 2]> = steps.iter().map(|(w, t)| [*w, *t]).collect();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(support::repo().join("scripts/pty_session.py"))
        .arg(serde_json::to_string(&steps).unwrap())
        .args(argv);
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    (out.status.code(), text(&out))
}

/// Runs a client; kills it if it hangs (a test must fail, not stall).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("client starts");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("client output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("client {cmd:?} did not finish within {limit:?}");
        }
    }
}

/// The result of operation `i` (0 is the authentication line).
pub fn op(lines: &[Value], i: usize) -> &Value {
    lines.get(i).unwrap_or_else(|| panic!("no line {i} in {lines:?}"))
}

pub fn ok(v: &Value) -> bool {
    v["ok"].as_bool() == Some(true)
}

/// The real `serve`, SFTP on 127.0.0.1:0, in a temporary folder: the
/// fixture providers imported and login `saad21a` (provider `saad21`) with
/// an Ed25519 key, both through the command line.
pub struct LiveServe {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub key: PathBuf,
    pub serve: Child,
    pub port: u16,
    /// Every line the daemon prints.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl LiveServe {
    /// The configuration text for `root`, with `extra` appended.
    pub fn config_text(root: &Path, extra: &str) -> String {
        format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n[sftp]\nlisten = \"127.0.0.1:0\"\nhost_key = {:?}\n{extra}",
            root.join("spool"),
            root.join("spool/state/gateway.db"),
            root.join("spool/state/ssh_host_ed25519_key"),
        )
    }

    pub fn start(extra: &str) -> LiveServe {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let config = root.join("ppas-gateway.toml");
        std::fs::write(&config, LiveServe::config_text(&root, extra)).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(support::bin())
                .arg("--config")
                .arg(&config)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", text(&out));
        };
        let providers = support::repo().join("tests/fixtures/import/providers.csv");
        run(&["import", "providers", providers.to_str().unwrap()]);
        let key = keygen(&root, "saad21", "ed25519", None);
        let public = format!("{}.pub", key.display());
        run(&[
            "user",
            "add",
            "--provider",
            "saad21",
            "--login",
            "saad21a",
            "--email",
            "a@saad21.example",
            "--key",
            &public,
            "--admin",
        ]);
        let mut serve = Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(serve.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(serve.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        // The port is in the start-up line (listen asked for port 0).
        let port = loop {
            let line = lines.recv_timeout(Duration::from_secs(30)).expect("serve starts");
            if let Some(rest) = line.split("SFTP server listening on 127.0.0.1:").nth(1) {
                break rest.split_whitespace().next().unwrap().parse::<u16>().unwrap();
            }
        };
        LiveServe {
            dir,
            config,
            key,
            serve,
            port,
            lines,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a command of the same installation; asserts it succeeds.
    pub fn gw(&self, args: &[&str]) -> String {
        let out = Command::new(support::bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// OpenSSH `sftp -b` as `saad21a`.
    pub fn sftp(&self, batch: &str) -> Output {
        let file = self.root().join("batch");
        std::fs::write(&file, batch).unwrap();
        let mut cmd = Command::new("sftp");
        cmd.args(ssh_options(&self.key))
            .arg("-b")
            .arg(&file)
            .args(["-P", &self.port.to_string(), "saad21a@127.0.0.1"]);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.serve.id() as i32, signal) }, 0);
    }

    /// The next line containing `needle` (within 30 s).
    pub fn wait_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// SIGTERM; asserts a clean stop.
    pub fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let status = self.serve.wait().unwrap();
        assert!(status.success(), "SIGTERM stops serve cleanly: {status:?}");
    }
}
