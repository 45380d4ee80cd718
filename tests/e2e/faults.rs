//! Bad days provoked on the real binary: a spool on a small tmpfs that
//! fills up under the daemon (a provider's drop, a caisse file, an SFTP
//! upload, the publication of reports and outbox), and a database held
//! locked by another process. Nothing half-written is ever visible under
//! a final name, no file is lost, a clear error is logged and shown by
//! `status`, and all is finished by the daemon itself once the fault is
//! gone.
//!
//! The tmpfs needs root (CI runs as root); elsewhere the test says so and
//! stops early.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pipeline_support::*;

/// A tmpfs mounted over a folder for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when not root: mounting is not allowed.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: a plain query of this process's effective uid.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: a tmpfs cannot be mounted, the disk-full test is not run here");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount a tmpfs on {}", dir.display());
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `path` with a file of zeros, to the last byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [64 * 1024, 4096, 1] {
        let zeros = vec![0u8; chunk];
        while f.write_all(&zeros).is_ok() {}
    }
}

/// Every file under the spool's `outbound/` and `outbox/` that a reader
/// can see (no hidden temporary name) is whole: XML well-formed, PDF ended.
fn visible_outputs_are_whole(g: &Gw) {
    for top in ["outbound", "outbox"] {
        for rel in g.files(top) {
            let name = rel.rsplit('/').next().unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(g.path(&rel)).unwrap();
            if name.ends_with(".xml") {
                let st = Command::new("xmllint")
                    .arg("--noout")
                    .arg(g.path(&rel))
                    .status()
                    .expect("run xmllint");
                assert!(st.success(), "{rel} is visible but not whole");
            } else if name.ends_with(".pdf") {
                assert!(
                    bytes.windows(5).any(|w| w == b"%%EOF"),
                    "{rel} is visible but not whole"
                );
            }
        }
    }
}

fn status_text(g: &Gw) -> String {
    let out = g.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "status: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_full_spool_leaves_files_waiting_and_all_is_finished_once_space_is_back() {
    let g = Gw::new();
    let Some(_fs) = Tmpfs::mount(&g.spool, "24m") else {
        return;
    };
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(30));

    // A provider's file and a caisse file are being written (temporary
    // names, which the intake leaves alone) when the disk fills up; then
    // they are renamed in, which takes no space.
    let bill = Bill::new(SITE_A, 20).lines((1..=3).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    let inbound = g.path("inbound/saadA");
    let caisse = g.path("caisse/inbound/beneficiaries");
    for dir in [&inbound, &caisse] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(inbound.join(format!("{}.part", bill.name())), bill.xml()).unwrap();
    std::fs::write(caisse.join("plans.csv.part"), beneficiaries_csv()).unwrap();
    let filler = g.path("filler");
    fill(&filler);
    assert!(status_text(&g).contains("FULL"), "status shows the full spool");
    std::fs::rename(inbound.join(format!("{}.part", bill.name())), inbound.join(bill.name())).unwrap();
    std::fs::rename(caisse.join("plans.csv.part"), caisse.join("plans.csv")).unwrap();

    // The daemon tries, fails for want of space, says so, and goes on.
    wait_for(Duration::from_secs(30), "an error for want of space in the log", || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        l.contains("No space left on device") || l.contains("database or disk is full")
    });
    visible_outputs_are_whole(&g);
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon runs on");
    let st = status_text(&g);
    assert!(st.contains("FULL"), "{st}");

    // Space is back: everything is finished, once, without a hand on it.
    std::fs::remove_file(&filler).unwrap();
    wait_for(Duration::from_secs(60), "the file processed once space is back", || {
        g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'") == 1
            && g.count("SELECT COUNT(*) FROM caisse_imports WHERE outcome = 'applied'") >= 1
    });
    assert_eq!(
        g.rows("SELECT verdict FROM received_files"),
        [["accepted"]],
        "decided once, on the whole file"
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM caisse_imports WHERE name = 'plans.csv'"),
        1
    );
    assert!(g.files("caisse/inbound/beneficiaries").is_empty());
    let outbox: Vec<String> = g
        .files("outbox")
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .collect();
    assert_eq!(outbox.len(), 1, "one outbox file: {outbox:?}");
    let lines = g.read(&outbox[0]).matches("<factprest>").count();
    assert_eq!(lines, 3, "each line once in {}", outbox[0]);
    let reports: Vec<String> = g
        .files("outbound/saadA/reports")
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .collect();
    assert_eq!(reports.len(), 3, "{reports:?}");
    visible_outputs_are_whole(&g);
    assert!(!status_text(&g).contains("FULL"));
    assert_eq!(d.terminate().0, Some(0));
}

#[test]
fn a_database_locked_by_another_process_delays_and_never_loses_a_decision() {
    let g = Gw::with_cast();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(30));

    // Another process (an operator's sqlite3 session, a backup) holds the
    // write lock while files arrive.
    let holder = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(float(sys.argv[2]))\n\
             c.execute('COMMIT')\n",
        )
        .arg(g.path("state/gateway.db"))
        .arg("4")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut holder = holder;
    let mut first = [0u8; 6];
    std::io::Read::read_exact(holder.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"locked");
    let bills: Vec<Bill> = (20..23)
        .map(|dd| Bill::new(SITE_A, dd).line(BLine::month(NIR_A1, SITE_A, dd - 19, "1")))
        .collect();
    for b in &bills {
        g.drop_bill("saadA", b);
    }
    // The lock is released after 4 seconds: the daemon, which waited (or
    // retried), decides every file once.
    assert!(holder.wait().unwrap().success());
    wait_for(Duration::from_secs(60), "the files decided after the lock", || {
        g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'") == 3
    });
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files WHERE verdict = 'accepted'"),
        3
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files WHERE quarantined_at IS NOT NULL"),
        0
    );
    let outbox = g
        .files("outbox")
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .count();
    assert_eq!(outbox, 3, "one outbox file per file");
    assert_eq!(d.terminate().0, Some(0));
}

#[test]
fn an_upload_into_a_full_spool_fails_cleanly_and_succeeds_once_space_is_back() {
    use crate::logs::{cast_and_sftp_user, free_port, gateway, sftp};
    let port = free_port();
    let g = gateway(port);
    let Some(_fs) = Tmpfs::mount(&g.spool, "24m") else {
        return;
    };
    let key = cast_and_sftp_user(&g);
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(60));

    // A file of 400 lines (far more than the few bytes left).
    let bill = Bill::new(SITE_A, 20).lines((0..400).map(|i| BLine::month(NIR_A1, SITE_A, i % 12 + 1, "0.01")));
    let local = g.dir.path().join(bill.name());
    std::fs::write(&local, bill.xml()).unwrap();
    let batch = format!("put {} /in/{}\n", local.display(), bill.name());
    let filler = g.path("filler");
    fill(&filler);
    let (ok, err) = sftp(port, "saada1", &key, &batch, g.dir.path());
    assert!(!ok, "the upload into a full disk is refused: {err}");
    assert!(g.files("inbound/saadA").is_empty(), "{:?}", g.files("inbound/saadA"));
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("upload failed"), "the operator reads why");
    assert!(logs.to_lowercase().contains("no space left"), "the operator reads why");
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon runs on");

    // Space is back: the same upload goes through and is processed once.
    std::fs::remove_file(&filler).unwrap();
    let (ok, err) = sftp(port, "saada1", &key, &batch, g.dir.path());
    assert!(ok, "{err}");
    wait_for(Duration::from_secs(60), "the upload processed", || {
        g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'") == 1
    });
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files"), 1);
    visible_outputs_are_whole(&g);
    assert_eq!(d.terminate().0, Some(0));
}
