//! The embedded SFTP server against real clients (OpenSSH `sftp`/`ssh`,
//! paramiko through `scripts/sftp_client.py`): logins, algorithms, the
//! failed-login throttle, session limits and timeouts, the host key.
//! File rules are in `sftp_files`.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::sftp_support::*;

#[test]
fn openssh_key_login_upload_list_download() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    fs::create_dir_all(gw.outbound("saad1").join("reports")).unwrap();
    fs::write(gw.outbound("saad1").join("reports/r1.report.csv"), "verdict;accepted\n").unwrap();
    let local = gw.dir.path().join("bill.xml");
    fs::write(&local, "<factbord/>\n").unwrap();
    let got = gw.dir.path().join("got.csv");
    let batch = format!(
        "pwd\nls -l /\nput {} /in/bill.xml\nls -l /in\ncd /out/reports\nget r1.report.csv {}\nbye\n",
        local.display(),
        got.display()
    );
    let (ok, out) = gw.sftp_batch("alice", &key, &batch, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("Remote working directory: /"), "{out}");
    assert!(
        out.contains(" in\n") && out.contains(" out\n"),
        "root lists in and out: {out}"
    );
    assert!(out.contains("bill.xml"), "{out}");
    assert_eq!(
        fs::read_to_string(gw.inbound("saad1").join("bill.xml")).unwrap(),
        "<factbord/>\n"
    );
    assert_eq!(fs::read_to_string(&got).unwrap(), "verdict;accepted\n");
    assert_eq!(Gateway::names(&gw.inbound("saad1")), vec!["bill.xml"]);
    let ups = gw.events.uploads.lock().unwrap().clone();
    assert_eq!(ups, vec![("saad1".to_string(), gw.inbound("saad1").join("bill.xml"))]);
    Gateway::wait_until("download notice", || !gw.events.downloads.lock().unwrap().is_empty());
    let downs = gw.events.downloads.lock().unwrap().clone();
    assert_eq!(
        downs,
        vec![("alice".into(), "saad1".into(), "reports/r1.report.csv".into(), 17)]
    );
}

#[test]
fn paramiko_password_login_and_listing_ends_with_eof() {
    let gw = Gateway::start("");
    gw.user_with_password("bob", "ergo7", "secret12");
    // More entries than one READDIR batch.
    let reports = gw.outbound("ergo7").join("reports");
    fs::create_dir_all(&reports).unwrap();
    for i in 0..300 {
        fs::write(reports.join(format!("r{i:03}.pdf")), b"%PDF").unwrap();
    }
    let lines = gw.paramiko(
        "bob",
        Secret::Password("secret12"),
        json!([
            ["ls", "/"],
            ["ls", "/out/reports"],
            ["normalize", "."],
            ["ls_long", "/out"]
        ]),
    );
    assert!(ok(op(&lines, 0)), "{lines:?}");
    assert_eq!(op(&lines, 1)["result"], json!(["in", "out"]));
    let names = op(&lines, 2)["result"].as_array().unwrap();
    assert_eq!(names.len(), 300, "{:?}", op(&lines, 2));
    assert_eq!(op(&lines, 3)["result"], json!("/"));
    let long = op(&lines, 4)["result"][0].as_str().unwrap().to_string();
    assert!(long.starts_with("dr-xr-xr-x ") && long.ends_with(" reports"), "{long}");
    assert!(long.contains(" bob ") && long.contains(" ergo7 "), "{long}");
}

#[test]
fn refusals_look_the_same_for_unknown_disabled_and_wrong() {
    let gw = Gateway::start("failure_delay_ms = 400\n");
    gw.user_with_password("carol", "saad2", "right123");
    gw.add(ppas_gateway::sftp::SftpAccount {
        login: "dave".into(),
        provider: "saad2".into(),
        disabled: true,
        password_hash: Some(ppas_gateway::sftp::auth::hash_password("right123").unwrap()),
        ..Default::default()
    });
    // Each case from its own loopback address: none is slowed by the
    // failures of another.
    let cases = [
        ("carol", "wrong123", "127.0.0.2"),
        ("nobody", "right123", "127.0.0.3"),
        ("dave", "right123", "127.0.0.4"),
    ];
    let mut answers = Vec::new();
    for (login, pw, source) in cases {
        let mut cmd = gw.paramiko_cmd(login, Secret::Password(pw), &json!([]));
        cmd.args(["--source", source]);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let first: serde_json::Value =
            serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert!(!ok(&first), "{login} must be refused: {first}");
        answers.push((
            first["error"].as_str().unwrap().to_string(),
            first["seconds"].as_f64().unwrap(),
        ));
    }
    for (err, secs) in &answers {
        assert_eq!(err, &answers[0].0, "same answer for every refusal: {answers:?}");
        assert!(*secs >= 0.4, "refusals wait the configured delay: {answers:?}");
    }
    let (min, max) = answers
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), (_, s)| (a.min(*s), b.max(*s)));
    assert!(max - min < 0.3, "timings do not tell the cases apart: {answers:?}");
    let lines = gw.paramiko("carol", Secret::Password("right123"), json!([["ls", "/in"]]));
    assert!(ok(op(&lines, 1)), "the right password still works: {lines:?}");
}

#[test]
fn several_key_types_per_user_and_weak_ones_refused() {
    let gw = Gateway::start("");
    let dir = gw.dir.path();
    let ed = keygen(dir, "eve", "ed25519", None);
    let ec = keygen(dir, "eve", "ecdsa", Some(384));
    let rsa = keygen(dir, "eve", "rsa", Some(3072));
    let weak = keygen(dir, "eve", "rsa", Some(1024));
    gw.add(ppas_gateway::sftp::SftpAccount {
        login: "eve".into(),
        provider: "ergo1".into(),
        keys: [&ed, &ec, &rsa, &weak].iter().map(|k| pubkey(k)).collect(),
        ..Default::default()
    });
    for k in [&ed, &ec, &rsa] {
        let (ok, out) = gw.sftp_batch("eve", k, "ls /\n", &[]);
        assert!(ok, "{}: {out}", k.display());
    }
    let (ok, out) = gw.sftp_batch("eve", &weak, "ls /\n", &[]);
    assert!(!ok && out.contains("Permission denied"), "RSA 1024 refused: {out}");
    let (ok, out) = gw.sftp_batch("eve", &rsa, "ls /\n", &["-o", "PubkeyAcceptedAlgorithms=ssh-rsa"]);
    assert!(!ok, "ssh-rsa (SHA-1) signatures refused: {out}");
}

#[test]
fn legacy_algorithms_are_not_offered() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("frank", "saad3");
    for opt in [
        "Ciphers=aes128-cbc,aes256-cbc,3des-cbc",
        "MACs=hmac-sha1,hmac-sha1-etm@openssh.com",
        "KexAlgorithms=diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
        "HostKeyAlgorithms=ssh-rsa,ssh-dss",
    ] {
        let extra = ["-o", opt, "-o", "Ciphers=aes128-ctr"];
        let extra: &[&str] = if opt.starts_with("MACs") { &extra } else { &extra[..2] };
        let (ok, out) = gw.sftp_batch("frank", &key, "ls /\n", extra);
        assert!(!ok && out.contains("no matching"), "{opt} must be refused: {out}");
    }
    for cipher in ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr"] {
        let (ok, out) = gw.sftp_batch("frank", &key, "ls /\n", &["-c", cipher]);
        assert!(ok, "{cipher}: {out}");
    }
}

#[test]
fn no_shell_no_exec_no_other_subsystem_and_sftp_exits_cleanly() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("gina", "saad4");
    let ssh = |args: &[&str]| {
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(ssh_options(&key))
            .args(["-p", &gw.port().to_string(), "gina@127.0.0.1"])
            .args(args);
        run_with_timeout(cmd, Duration::from_secs(30))
    };
    let out = ssh(&["cat", "/etc/passwd"]);
    assert!(!out.status.success(), "exec refused: {}", text(&out));
    assert!(!text(&out).contains("root:"), "{}", text(&out));
    let out = ssh(&["-T"]);
    assert!(!out.status.success(), "shell refused: {}", text(&out));
    let out = ssh(&["-s", "netconf"]);
    assert!(!out.status.success(), "other subsystems refused: {}", text(&out));
    // The SFTP subsystem ends with exit-status 0: ssh reports 255 without it.
    let out = ssh(&["-s", "sftp"]);
    assert_eq!(out.status.code(), Some(0), "exit-status sent: {}", text(&out));
}

#[test]
fn lockout_refuses_even_the_right_key() {
    let gw = Gateway::start("lockout_after_failures = 3\nlockout_secs = 300\n");
    let key = gw.user_with_key("alice", "saad1");
    gw.user_with_password("bob", "saad1", "pass1234");
    let (ok0, out) = gw.sftp_batch("alice", &key, "ls /\n", &[]);
    assert!(ok0, "works before: {out}");
    for _ in 0..3 {
        let lines = gw.paramiko("bob", Secret::Password("wrong999"), json!([]));
        assert!(!ok(op(&lines, 0)));
    }
    let (ok1, out) = gw.sftp_batch("alice", &key, "ls /\n", &[]);
    assert!(!ok1 && !out.contains("Remote working directory"), "locked: {out}");
    let lines = gw.paramiko("bob", Secret::Password("pass1234"), json!([]));
    assert!(!ok(op(&lines, 0)), "the right password too: {lines:?}");
}

#[test]
fn lock_ends_after_lockout_secs_and_agents_with_many_keys_are_not_locked() {
    let gw = Gateway::start("lockout_after_failures = 2\nlockout_secs = 1\n");
    let key = gw.user_with_key("alice", "saad1");
    let other = keygen(gw.dir.path(), "stranger", "ed25519", None);
    // Offering a wrong key before the right one, several times over.
    for _ in 0..4 {
        let (ok, out) = gw.sftp_batch("alice", &other, "ls /\n", &["-i", &key.display().to_string()]);
        assert!(ok, "{out}");
    }
    for _ in 0..2 {
        let (ok, _) = gw.sftp_batch("alice", &other, "ls /\n", &[]);
        assert!(!ok);
    }
    let (ok1, _) = gw.sftp_batch("alice", &key, "ls /\n", &[]);
    assert!(!ok1, "locked");
    let start = std::time::Instant::now();
    Gateway::wait_until("lock to expire", || gw.sftp_batch("alice", &key, "ls /\n", &[]).0);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn host_key_is_generated_once_and_reused() {
    let mut gw = Gateway::start("");
    let key_path = gw.spool().join("state/ssh_host_ed25519_key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&key_path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(fs::read_to_string(&key_path)
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let scan = |port: u16| {
        let mut cmd = std::process::Command::new("ssh-keyscan");
        cmd.args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"]);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        line.split_whitespace().skip(1).take(2).collect::<Vec<_>>().join(" ")
    };
    let first = scan(gw.port());
    let public = fs::read_to_string(gw.spool().join("state/ssh_host_ed25519_key.pub")).unwrap();
    assert!(
        first.starts_with("ssh-ed25519 ") && public.starts_with(&first),
        "{first} / {public}"
    );
    let fp = gw.fingerprint.clone();
    gw.restart();
    assert_eq!(scan(gw.port()), first, "same key after a restart");
    assert_eq!(gw.fingerprint, fp);
}

#[test]
fn idle_sessions_are_closed() {
    let gw = Gateway::start("idle_timeout_secs = 1\n");
    gw.user_with_password("alice", "saad1", "pass1234");
    let lines = gw.paramiko(
        "alice",
        Secret::Password("pass1234"),
        json!([["ls", "/"], ["wait_closed", 20]]),
    );
    assert!(ok(op(&lines, 1)));
    let r = &op(&lines, 2)["result"];
    assert_eq!(r["closed"], json!(true), "{lines:?}");
    assert!(r["seconds"].as_f64().unwrap() < 10.0, "{lines:?}");
}

#[test]
fn sessions_per_login_are_limited() {
    let gw = Gateway::start("max_sessions_per_user = 1\n");
    gw.user_with_password("alice", "saad1", "pass1234");
    let mut first = gw.paramiko_spawn(
        "alice",
        Secret::Password("pass1234"),
        json!([["ls", "/"], ["hold", 30]]),
    );
    assert!(ok(&first.next()));
    assert!(ok(&first.next()));
    let lines = gw.paramiko("alice", Secret::Password("pass1234"), json!([["ls", "/"]]));
    assert!(lines.iter().any(|l| !ok(l)), "second session refused: {lines:?}");
    first.kill();
    Gateway::wait_until("slot released", || {
        let lines = gw.paramiko("alice", Secret::Password("pass1234"), json!([["ls", "/"]]));
        lines.len() == 2 && ok(&lines[1])
    });
}

#[test]
fn connections_that_never_log_in_are_closed_after_the_grace_time() {
    let gw = Gateway::start("login_grace_secs = 1\n");
    // Raw TCP, not even an SSH banner.
    let start = std::time::Instant::now();
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut sink);
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    // An SSH handshake, then nothing.
    let mut cmd = gw.paramiko_cmd("alice", Secret::Password("x"), &json!([]));
    cmd.arg("--no-auth").arg("20");
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let line: serde_json::Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(line["result"]["closed"], json!(true), "{line}");
    assert!(line["result"]["seconds"].as_f64().unwrap() < 10.0, "{line}");
}

#[test]
fn total_sessions_are_limited() {
    let gw = Gateway::start("max_sessions = 2\n");
    gw.user_with_password("alice", "saad1", "pass1234");
    gw.user_with_password("bob", "saad2", "pass5678");
    let mut a = gw.paramiko_spawn("alice", Secret::Password("pass1234"), json!([["hold", 30]]));
    let mut b = gw.paramiko_spawn("bob", Secret::Password("pass5678"), json!([["hold", 30]]));
    assert!(ok(&a.next()) && ok(&b.next()));
    let lines = gw.paramiko("bob", Secret::Password("pass5678"), json!([["ls", "/"]]));
    assert!(!ok(op(&lines, 0)), "third connection refused: {lines:?}");
    a.kill();
    b.kill();
    Gateway::wait_until("slots released", || {
        let lines = gw.paramiko("bob", Secret::Password("pass5678"), json!([["ls", "/"]]));
        lines.len() == 2 && ok(&lines[1])
    });
}

#[test]
fn openssh_sftp_interactive_session() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    let local = gw.dir.path().join("f.xml");
    fs::write(&local, "<f/>").unwrap();
    // sftp on a pseudo-terminal, typed commands, like a person at a prompt.
    let script = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sftp", sys.argv[1:])
out = b""
def until(marker, limit=30):
    global out
    end = time.time() + limit
    while marker not in out and time.time() < end:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
for cmd in [b"pwd", b"cd in", b"put " + os.environ["LOCAL"].encode() + b" f.xml", b"ls -l", b"cd ../nowhere", b"ls /", b"bye"]:
    until(b"sftp> ")
    out = out.replace(b"sftp> ", b"<prompt> ", 1)
    os.write(fd, cmd + b"\n")
until(b"\x00", 5)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.env("LOCAL", &local)
        .arg("-c")
        .arg(script)
        .arg("sftp")
        .args(ssh_options(&key))
        .args(["-P", &gw.port().to_string(), "alice@127.0.0.1"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let t = text(&out);
    assert!(t.contains("Remote working directory: /"), "{t}");
    assert!(t.contains("Uploading") && t.contains("f.xml"), "{t}");
    assert!(
        t.contains("-rw-r--r--") && t.contains("alice"),
        "ls -l shows the long names: {t}"
    );
    assert!(
        t.contains("nowhere"),
        "a failed cd is reported and the session goes on: {t}"
    );
    assert!(t.matches("<prompt>").count() >= 7, "{t}");
    assert_eq!(fs::read_to_string(gw.inbound("saad1").join("f.xml")).unwrap(), "<f/>");
}

/// SIGHUP's handle: new limits apply to the next sessions and uploads, the
/// session already open goes on; keys that need a restart are named.
#[test]
fn reloaded_limits_apply_to_the_next_sessions_and_uploads() {
    let gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    let mut first = gw.paramiko_spawn(
        "alice",
        Secret::Password("pass1234"),
        json!([["ls", "/"], ["hold", 4], ["put_size", "/in/late.xml", 5000]]),
    );
    assert!(ok(&first.next()));
    assert!(ok(&first.next()));

    let mut cfg = gw.cfg.clone();
    cfg.sftp.max_sessions_per_user = 1;
    cfg.limits.max_file_size = 1000;
    assert!(gw.reload.apply(&cfg).is_empty());
    let lines = gw.paramiko("alice", Secret::Password("pass1234"), json!([["ls", "/"]]));
    assert!(
        lines.iter().any(|l| !ok(l)),
        "a second session is one too many now: {lines:?}"
    );
    // The open session goes on; its next upload meets the new size limit.
    let rest = first.finish();
    let put = rest.last().expect("the upload's line");
    assert!(!ok(put), "{rest:?}");
    assert!(put["error"].as_str().unwrap().contains("1000 bytes"), "{rest:?}");

    cfg.sftp.max_sessions_per_user = 8;
    cfg.sftp.listen = "127.0.0.1:2299".into();
    assert_eq!(gw.reload.apply(&cfg), ["sftp.listen"]);
    let lines = gw.paramiko("alice", Secret::Password("pass1234"), json!([["ls", "/"]]));
    assert!(ok(op(&lines, 1)), "{lines:?}");
}
