//! `serve` driven from a test: started with its stderr in a log file,
//! waited for, stopped by SIGTERM (or killed when dropped); and polling
//! with a deadline (no fixed sleeps).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Gw;

/// A running `serve`, with its stderr appended to a log file.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    /// Length of the log when this daemon started: its own lines follow.
    from: usize,
}

impl Daemon {
    pub fn start(g: &Gw, log: &Path) -> Daemon {
        Daemon::start_with(g.cmd(), log)
    }

    /// Starts `serve` from a prepared command (another clock, say).
    pub fn start_with(mut cmd: Command, log: &Path) -> Daemon {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let from = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let child = cmd
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("start serve");
        Daemon {
            child,
            log: log.to_path_buf(),
            from,
        }
    }

    /// Waits for this daemon's "ready" log line.
    pub fn wait_ready(&mut self, deadline: Duration) {
        let t = Instant::now();
        loop {
            let logs = std::fs::read(&self.log).unwrap_or_default();
            let mine = String::from_utf8_lossy(logs.get(self.from..).unwrap_or_default());
            if mine.contains("phase 4/4: ready") {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("serve exited early ({st}):\n{mine}");
            }
            assert!(t.elapsed() < deadline, "serve not ready after {deadline:?}:\n{mine}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; returns the exit code and how long it took. Every line
    /// this daemon logged is checked for NIRs first (spec: never logged).
    pub fn terminate(mut self) -> (Option<i32>, Duration) {
        let t = Instant::now();
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let logs = std::fs::read(&self.log).unwrap_or_default();
                let mine = String::from_utf8_lossy(logs.get(self.from..).unwrap_or_default());
                crate::support::assert_no_nir(&mine, &[], "the daemon's log");
                return (st.code(), t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return (None, t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every 10 ms until `deadline`; returns the time it took.
pub fn wait_for(deadline: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < deadline, "{what}: not done after {deadline:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}
