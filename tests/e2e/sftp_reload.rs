//! SIGHUP reaches the SFTP server of the real daemon: the signal sent to
//! `serve`, a limit lowered in the configuration file, and OpenSSH `sftp`
//! meets the new limit at its next upload; the log names the key.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::sftp_support::*;

#[test]
fn sighup_lowers_the_upload_limit_of_the_running_sftp_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = root.join("ppas-gateway.toml");
    let config = |max: u64| {
        format!(
            "[paths]\nspool = {:?}\ndatabase = {:?}\n[sftp]\nlisten = \"127.0.0.1:0\"\nhost_key = {:?}\n[limits]\nmax_file_size = {max}\n",
            root.join("spool"),
            root.join("spool/state/gateway.db"),
            root.join("spool/state/ssh_host_ed25519_key"),
        )
    };
    fs::write(&cfg, config(1_000_000)).unwrap();
    let gw = |args: &[&str]| {
        let out = Command::new(crate::support::bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    let providers = crate::support::repo().join("tests/fixtures/import/providers.csv");
    gw(&["import", "providers", providers.to_str().unwrap()]);
    let key = keygen(root, "saad21", "ed25519", None);
    let public = format!("{}.pub", key.display());
    gw(&[
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
    ]);

    let mut serve = Command::new(crate::support::bin())
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = serve.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let port = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("serve starts");
        if let Some(rest) = line.split("SFTP server listening on 127.0.0.1:").nth(1) {
            break rest.split_whitespace().next().unwrap().parse::<u16>().unwrap();
        }
    };
    let put = |name: &str| {
        let local = root.join("upload.bin");
        fs::write(&local, vec![b'x'; 4096]).unwrap();
        let batch = root.join("batch");
        fs::write(&batch, format!("put {} /in/{name}\n", local.display())).unwrap();
        let mut cmd = Command::new("sftp");
        cmd.args(ssh_options(&key))
            .arg("-b")
            .arg(&batch)
            .args(["-P", &port.to_string(), "saad21a@127.0.0.1"]);
        run_with_timeout(cmd, Duration::from_secs(60))
    };
    let out = put("a.xml");
    assert!(out.status.success(), "4 KiB under a 1 MB limit: {}", text(&out));

    fs::write(&cfg, config(1000)).unwrap();
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(serve.id() as i32, libc::SIGHUP) }, 0);
    let reloaded = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the reload is logged");
        if line.contains("SIGHUP: configuration reloaded") {
            break line;
        }
    };
    assert!(reloaded.contains("limits.max_file_size"), "{reloaded}");
    let out = put("b.xml");
    assert!(
        !out.status.success(),
        "4 KiB over the reloaded 1000-byte limit went through: {}",
        text(&out)
    );

    assert_eq!(unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) }, 0);
    assert!(serve.wait().unwrap().success());
}
