//! The embedded SFTP server against real clients: OpenSSH `sftp`/`ssh`
//! and paramiko (`scripts/sftp_client.py`).

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
    assert!(out.contains(" in\n") && out.contains(" out\n"), "root lists in and out: {out}");
    assert!(out.contains("bill.xml"), "{out}");
    assert_eq!(fs::read_to_string(gw.inbound("saad1").join("bill.xml")).unwrap(), "<factbord/>\n");
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
        json!([["ls", "/"], ["ls", "/out/reports"], ["normalize", "."], ["ls_long", "/out"]]),
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
    let cases = [("carol", "wrong123", "127.0.0.2"), ("nobody", "right123", "127.0.0.3"), ("dave", "right123", "127.0.0.4")];
    let mut answers = Vec::new();
    for (login, pw, source) in cases {
        let mut cmd = gw.paramiko_cmd(login, Secret::Password(pw), &json!([]));
        cmd.args(["--source", source]);
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        let first: serde_json::Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert!(!ok(&first), "{login} must be refused: {first}");
        answers.push((first["error"].as_str().unwrap().to_string(), first["seconds"].as_f64().unwrap()));
    }
    for (err, secs) in &answers {
        assert_eq!(err, &answers[0].0, "same answer for every refusal: {answers:?}");
        assert!(*secs >= 0.4, "refusals wait the configured delay: {answers:?}");
    }
    let (min, max) = answers.iter().fold((f64::MAX, 0f64), |(a, b), (_, s)| (a.min(*s), b.max(*s)));
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

/// Layout with another provider's files and links planted on the server
/// side, to try to reach them.
fn planted(gw: &Gateway) {
    let (in1, out1, in2, out2) = (gw.inbound("saad1"), gw.outbound("saad1"), gw.inbound("saad2"), gw.outbound("saad2"));
    for d in [&in1, &in2, &out2.join("reports"), &out1.join("reports")] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(in2.join("secret.xml"), "saad2 data").unwrap();
    fs::write(out2.join("reports/b.pdf"), "saad2 report").unwrap();
    fs::write(out1.join("reports/ok.pdf"), "mine").unwrap();
    std::os::unix::fs::symlink("/etc", out1.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", out1.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../saad2", out1.join("other")).unwrap();
    std::os::unix::fs::symlink("../../inbound/saad2/secret.xml", out1.join("reports/s.xml")).unwrap();
}

#[test]
fn confinement_holds_against_every_escape_attempt() {
    let gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    planted(&gw);
    let attempts = json!([
        ["get", "/etc/passwd"],
        ["get", "/in/../../etc/passwd"],
        ["get", "../../../../etc/passwd"],
        ["get", "/out/passwd"],
        ["ls", "/out/etc"],
        ["get", "/out/etc/passwd"],
        ["ls", "/out/other"],
        ["get", "/out/other/reports/b.pdf"],
        ["get", "/out/reports/s.xml"],
        ["get", "/in/../../inbound/saad2/secret.xml"],
        ["get", "/saad2/in/secret.xml"],
        ["ls", "/in/../saad2"],
        ["get", "/in/../../../spool/inbound/saad2/secret.xml"],
        ["symlink", "/etc/passwd", "/in/link"],
        ["symlink", "/out/reports/ok.pdf", "/in/link2"],
        ["readlink", "/out/passwd"],
        ["put", "/in/a\u{0}b.xml", "x"],
        ["put", "/in/\u{202e}lmx.exe", "x"],
        ["put", "/in/a\nb.xml", "x"],
        ["put", "/out/x.xml", "x"],
        ["put", "/out/reports/ok.pdf", "overwrite"],
        ["put", "/etc/x", "x"],
        ["put", "/x.xml", "x"],
        ["put", "/in/sub/x.xml", "x"],
        ["mkdir", "/in/sub"],
        ["mkdir", "/out/sub"],
        ["rmdir", "/out/reports"],
        ["rm", "/out/reports/ok.pdf"],
        ["rename", "/out/reports/ok.pdf", "/in/ok.pdf"],
        ["rename", "/in/../../inbound/saad2/secret.xml", "/in/stolen.xml"],
        ["stat", "/in/.sftp-0000000000000000"],
        ["chmod", "/etc/passwd", 511],
    ]);
    let n = attempts.as_array().unwrap().len();
    let lines = gw.paramiko("alice", Secret::Password("pass1234"), attempts.clone());
    assert!(ok(op(&lines, 0)), "{lines:?}");
    for i in 1..=n {
        assert!(!ok(op(&lines, i)), "{} must fail: {:?}", attempts[i - 1], op(&lines, i));
    }
    // What is allowed still works, and the view is exactly in + out.
    let lines = gw.paramiko(
        "alice",
        Secret::Password("pass1234"),
        json!([
            ["ls", "/"], ["ls", ".."], ["ls", "/in/../../"], ["ls", "/out"], ["ls", "/out/reports"],
            ["get", "/out/reports/ok.pdf"],
            ["put", "/in/ok.xml", "x"], ["chmod", "/in/ok.xml", 511], ["utime", "/in/ok.xml"],
            ["ls", "/in"], ["rm", "/in/ok.xml"],
        ]),
    );
    for i in 1..=11 {
        assert!(ok(op(&lines, i)), "{:?}", op(&lines, i));
    }
    for i in 1..=3 {
        assert_eq!(op(&lines, i)["result"], json!(["in", "out"]));
    }
    assert_eq!(op(&lines, 4)["result"], json!(["reports"]), "links are not listed");
    assert_eq!(op(&lines, 5)["result"], json!(["ok.pdf"]));
    assert_eq!(op(&lines, 6)["result"]["text"], json!("mine"));
    assert_eq!(op(&lines, 10)["result"], json!(["ok.xml"]));
    // Nothing was created, changed or taken anywhere.
    assert_eq!(Gateway::names(&gw.inbound("saad1")), Vec::<String>::new());
    assert_eq!(Gateway::names(&gw.inbound("saad2")), vec!["secret.xml"]);
    assert_eq!(fs::read_to_string(gw.inbound("saad2").join("secret.xml")).unwrap(), "saad2 data");
    assert_eq!(fs::read_to_string(gw.outbound("saad1").join("reports/ok.pdf")).unwrap(), "mine");
    assert_eq!(Gateway::names(&gw.outbound("saad1")), vec!["etc", "other", "passwd", "reports"]);
    let downs = gw.events.downloads.lock().unwrap().clone();
    assert_eq!(downs, vec![("alice".into(), "saad1".into(), "reports/ok.pdf".into(), 4)]);
}

#[test]
fn confinement_with_openssh_sftp() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    planted(&gw);
    let loot = gw.dir.path().join("loot");
    let batch = format!(
        "-get /etc/passwd {l}\n-get ../../etc/passwd {l}\n-get /out/passwd {l}\n-get /out/etc/hostname {l}\n\
         -get /out/other/reports/b.pdf {l}\n-ln -s /etc/passwd /in/link\n-symlink /etc /in/etc\n\
         -mkdir /in/x\n-put {l}x /out/x\n-rename /out/reports/ok.pdf /in/ok.pdf\ncd /in/../..\npwd\nls -la\n",
        l = loot.display()
    );
    let (ok, out) = gw.sftp_batch("alice", &key, &batch, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("Remote working directory: /\n"), "{out}");
    assert!(!loot.exists(), "nothing was downloaded: {out}");
    assert_eq!(Gateway::names(&gw.inbound("saad1")), Vec::<String>::new());
    assert!(!out.contains("passwd") || !out.contains("root:"), "{out}");
}

#[test]
fn two_providers_side_by_side_never_see_each_other() {
    let gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    gw.user_with_password("bob", "saad2", "pass5678");
    let run = |login: &'static str, pw: &'static str| {
        let ops = json!([
            ["put", format!("/in/{login}-1.xml"), login],
            ["put", format!("/in/{login}-2.xml"), login],
            ["hold", 0.5],
            ["ls", "/in"],
            ["get", if login == "alice" { "/in/bob-1.xml" } else { "/in/alice-1.xml" }],
        ]);
        let cmd = gw.paramiko_cmd(login, Secret::Password(pw), &ops);
        std::thread::spawn(move || run_with_timeout(cmd, Duration::from_secs(60)))
    };
    let (a, b) = (run("alice", "pass1234"), run("bob", "pass5678"));
    for (login, h) in [("alice", a), ("bob", b)] {
        let out = h.join().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            op(&lines, 4)["result"],
            json!([format!("{login}-1.xml"), format!("{login}-2.xml")]),
            "{lines:?}"
        );
        assert!(!ok(op(&lines, 5)), "{lines:?}");
    }
    assert_eq!(Gateway::names(&gw.inbound("saad1")), vec!["alice-1.xml", "alice-2.xml"]);
    assert_eq!(Gateway::names(&gw.inbound("saad2")), vec!["bob-1.xml", "bob-2.xml"]);
    let mut ups = gw.events.uploads.lock().unwrap().clone();
    ups.sort();
    assert_eq!(ups.len(), 4);
    for (provider, path) in ups {
        assert_eq!(path.parent().unwrap(), gw.inbound(&provider), "announced in its own folder");
    }
}

fn temps(dir: &std::path::Path) -> Vec<String> {
    Gateway::names(dir).into_iter().filter(|n| n.starts_with(".sftp-")).collect()
}

#[test]
fn killed_client_mid_upload_leaves_nothing() {
    let gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    let mut client = gw.paramiko_spawn(
        "alice",
        Secret::Password("pass1234"),
        json!([["put_partial", "/in/big.xml", 3_000_000]]),
    );
    assert!(ok(&client.next()), "logged in");
    assert_eq!(client.next()["result"], json!("PARTIAL"));
    let inbound = gw.inbound("saad1");
    // Mid-transfer: only the hidden temporary file exists, and /in hides it.
    assert_eq!(temps(&inbound).len(), 1, "{:?}", Gateway::names(&inbound));
    assert!(!inbound.join("big.xml").exists());
    client.kill();
    Gateway::wait_until("temporary file removed", || Gateway::names(&inbound).is_empty());
    assert!(gw.events.uploads.lock().unwrap().is_empty());
}

#[test]
fn uploads_in_flight_are_discarded_on_shutdown() {
    let mut gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    let mut client = gw.paramiko_spawn(
        "alice",
        Secret::Password("pass1234"),
        json!([["put_partial", "/in/big.xml", 1_000_000]]),
    );
    assert!(ok(&client.next()));
    assert_eq!(client.next()["result"], json!("PARTIAL"));
    assert_eq!(temps(&gw.inbound("saad1")).len(), 1);
    gw.stop().unwrap();
    assert_eq!(Gateway::names(&gw.inbound("saad1")), Vec::<String>::new(), "nothing renamed, no temp");
    assert!(gw.events.uploads.lock().unwrap().is_empty());
    let rest = client.finish();
    assert!(rest.iter().all(|l| !ok(l)), "the client saw the connection end: {rest:?}");
}

#[test]
fn upload_over_the_size_limit_is_refused_and_cleaned() {
    let gw = Gateway::start("[limits]\nmax_file_size = 1000000\n");
    let key = gw.user_with_key("alice", "saad1");
    let (big, fits) = (gw.dir.path().join("big.xml"), gw.dir.path().join("fits.xml"));
    fs::write(&big, vec![b'x'; 1_000_001]).unwrap();
    fs::write(&fits, vec![b'x'; 1_000_000]).unwrap();
    let (ok1, out) = gw.sftp_batch("alice", &key, &format!("put {} /in/big.xml\n", big.display()), &[]);
    assert!(!ok1, "over the limit: {out}");
    let (ok2, out) = gw.sftp_batch("alice", &key, &format!("put {} /in/fits.xml\n", fits.display()), &[]);
    assert!(ok2, "at the limit: {out}");
    assert_eq!(Gateway::names(&gw.inbound("saad1")), vec!["fits.xml"]);
    // paramiko shows the server's reason.
    gw.user_with_password("bob", "saad1", "pass1234");
    let lines = gw.paramiko("bob", Secret::Password("pass1234"), json!([["put_size", "/in/b2.xml", 2_000_000]]));
    assert!(!ok(op(&lines, 1)), "{lines:?}");
    assert!(op(&lines, 1)["error"].as_str().unwrap().contains("file too large"), "{lines:?}");
    assert_eq!(Gateway::names(&gw.inbound("saad1")), vec!["fits.xml"]);
}

#[test]
fn client_side_temp_then_rename() {
    let gw = Gateway::start("");
    gw.user_with_password("alice", "saad1", "pass1234");
    let key = gw.user_with_key("alice2", "saad1");
    let lines = gw.paramiko(
        "alice",
        Secret::Password("pass1234"),
        json!([
            ["put_size", "/in/a.xml.filepart", 200_000],
            ["ls", "/in"],
            ["rename", "/in/a.xml.filepart", "/in/a.xml"],
            ["put", "/in/b.xml.filepart", "b"],
            ["posix_rename", "/in/b.xml.filepart", "/in/b.xml"],
            ["put", "/in/c.tmp", "c"],
            ["put", "/in/b2.xml", "b2"],
            ["rename", "/in/c.tmp", "/in/b2.xml"],
            ["posix_rename", "/in/c.tmp", "/in/b2.xml"],
            ["stat", "/in/a.xml"],
            ["ls", "/in"],
        ]),
    );
    for i in [1, 2, 3, 4, 5, 6, 7, 9, 10, 11] {
        assert!(ok(op(&lines, i)), "{:?}", op(&lines, i));
    }
    assert_eq!(op(&lines, 2)["result"], json!(["a.xml.filepart"]));
    assert!(!ok(op(&lines, 8)), "plain RENAME does not overwrite: {:?}", op(&lines, 8));
    assert_eq!(op(&lines, 10)["result"]["size"], json!(200_000));
    assert_eq!(op(&lines, 11)["result"], json!(["a.xml", "b.xml", "b2.xml"]));
    assert_eq!(fs::read_to_string(gw.inbound("saad1").join("b2.xml")).unwrap(), "c");
    // OpenSSH's rename (posix-rename@openssh.com when offered).
    let local = gw.dir.path().join("d.xml");
    fs::write(&local, "d").unwrap();
    let batch = format!("put {} /in/d.xml.filepart\nrename /in/d.xml.filepart /in/d.xml\n", local.display());
    let (ok, out) = gw.sftp_batch("alice2", &key, &batch, &[]);
    assert!(ok, "{out}");
    assert_eq!(Gateway::names(&gw.inbound("saad1")), vec!["a.xml", "b.xml", "b2.xml", "d.xml"]);
    // Only final names are announced to the intake.
    let ups: Vec<String> = gw
        .events
        .uploads
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ups, vec!["a.xml", "b.xml", "b2.xml", "b2.xml", "d.xml"]);
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
    assert!(fs::read_to_string(&key_path).unwrap().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let scan = |port: u16| {
        let mut cmd = std::process::Command::new("ssh-keyscan");
        cmd.args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"]);
        let out = run_with_timeout(cmd, Duration::from_secs(30));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        line.split_whitespace().skip(1).take(2).collect::<Vec<_>>().join(" ")
    };
    let first = scan(gw.port());
    let public = fs::read_to_string(gw.spool().join("state/ssh_host_ed25519_key.pub")).unwrap();
    assert!(first.starts_with("ssh-ed25519 ") && public.starts_with(&first), "{first} / {public}");
    let fp = gw.fingerprint.clone();
    gw.restart();
    assert_eq!(scan(gw.port()), first, "same key after a restart");
    assert_eq!(gw.fingerprint, fp);
}

#[test]
fn idle_sessions_are_closed() {
    let gw = Gateway::start("idle_timeout_secs = 1\n");
    gw.user_with_password("alice", "saad1", "pass1234");
    let lines = gw.paramiko("alice", Secret::Password("pass1234"), json!([["ls", "/"], ["wait_closed", 20]]));
    assert!(ok(op(&lines, 1)));
    let r = &op(&lines, 2)["result"];
    assert_eq!(r["closed"], json!(true), "{lines:?}");
    assert!(r["seconds"].as_f64().unwrap() < 10.0, "{lines:?}");
}

#[test]
fn sessions_per_login_are_limited() {
    let gw = Gateway::start("max_sessions_per_user = 1\n");
    gw.user_with_password("alice", "saad1", "pass1234");
    let mut first = gw.paramiko_spawn("alice", Secret::Password("pass1234"), json!([["ls", "/"], ["hold", 30]]));
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
fn large_transfers_both_ways_with_openssh_and_paramiko() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    gw.user_with_password("bob", "saad1", "pass1234");
    let data: Vec<u8> = (0..48u32 * 1024 * 1024).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let local = gw.dir.path().join("big.bin");
    fs::write(&local, &data).unwrap();
    fs::create_dir_all(gw.outbound("saad1")).unwrap();
    fs::write(gw.outbound("saad1").join("big.bin"), &data).unwrap();
    for cipher in ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"] {
        let got = gw.dir.path().join(format!("got-{cipher}"));
        let batch = format!(
            "put {} /in/big-{cipher}.bin\nget /out/big.bin {}\n",
            local.display(),
            got.display()
        );
        let (ok, out) = gw.sftp_batch("alice", &key, &batch, &["-c", cipher]);
        assert!(ok, "{cipher}: {out}");
        assert!(fs::read(&got).unwrap() == data, "download intact ({cipher})");
        assert!(fs::read(gw.inbound("saad1").join(format!("big-{cipher}.bin"))).unwrap() == data, "upload intact");
    }
    // paramiko's prefetch asks for the whole file at once.
    let lines = gw.paramiko("bob", Secret::Password("pass1234"), json!([["get", "/out/big.bin"]]));
    assert!(ok(op(&lines, 1)), "{lines:?}");
    assert_eq!(op(&lines, 1)["result"]["size"], json!(data.len()));
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
fn temporary_files_left_by_a_crash_are_removed_at_start() {
    let mut gw = Gateway::start("");
    let inbound = gw.inbound("saad1");
    fs::create_dir_all(&inbound).unwrap();
    fs::write(inbound.join(".sftp-0123456789abcdef"), "half an upload").unwrap();
    fs::write(inbound.join("complete.xml"), "<x/>").unwrap();
    gw.restart();
    assert_eq!(Gateway::names(&inbound), vec!["complete.xml"]);
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
    assert!(t.contains("-rw-r--r--") && t.contains("alice"), "ls -l shows the long names: {t}");
    assert!(t.contains("nowhere"), "a failed cd is reported and the session goes on: {t}");
    assert!(t.matches("<prompt>").count() >= 7, "{t}");
    assert_eq!(fs::read_to_string(gw.inbound("saad1").join("f.xml")).unwrap(), "<f/>");
}
