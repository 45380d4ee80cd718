//! The SFTP server's file rules against real clients: confinement, uploads
//! (temporary names, size limit, cut-off clients, shutdown), renames,
//! large transfers, two providers at once.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::sftp_support::*;

/// Layout with another provider's files and links planted on the server
/// side, to try to reach them.
fn planted(gw: &Gateway) {
    let (in1, out1, in2, out2) = (
        gw.inbound("saad1"),
        gw.outbound("saad1"),
        gw.inbound("saad2"),
        gw.outbound("saad2"),
    );
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
            ["ls", "/"],
            ["ls", ".."],
            ["ls", "/in/../../"],
            ["ls", "/out"],
            ["ls", "/out/reports"],
            ["get", "/out/reports/ok.pdf"],
            ["put", "/in/ok.xml", "x"],
            ["chmod", "/in/ok.xml", 511],
            ["utime", "/in/ok.xml"],
            ["ls", "/in"],
            ["rm", "/in/ok.xml"],
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
    assert_eq!(
        fs::read_to_string(gw.inbound("saad2").join("secret.xml")).unwrap(),
        "saad2 data"
    );
    assert_eq!(
        fs::read_to_string(gw.outbound("saad1").join("reports/ok.pdf")).unwrap(),
        "mine"
    );
    assert_eq!(
        Gateway::names(&gw.outbound("saad1")),
        vec!["etc", "other", "passwd", "reports"]
    );
    let downs = gw.events.downloads.lock().unwrap().clone();
    assert_eq!(
        downs,
        vec![("alice".into(), "saad1".into(), "reports/ok.pdf".into(), 4)]
    );
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
            [
                "get",
                if login == "alice" {
                    "/in/bob-1.xml"
                } else {
                    "/in/alice-1.xml"
                }
            ],
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
        assert_eq!(
            path.parent().unwrap(),
            gw.inbound(&provider),
            "announced in its own folder"
        );
    }
}

fn temps(dir: &std::path::Path) -> Vec<String> {
    Gateway::names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".sftp-"))
        .collect()
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
    assert_eq!(
        Gateway::names(&gw.inbound("saad1")),
        Vec::<String>::new(),
        "nothing renamed, no temp"
    );
    assert!(gw.events.uploads.lock().unwrap().is_empty());
    let rest = client.finish();
    assert!(
        rest.iter().all(|l| !ok(l)),
        "the client saw the connection end: {rest:?}"
    );
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
    let lines = gw.paramiko(
        "bob",
        Secret::Password("pass1234"),
        json!([["put_size", "/in/b2.xml", 2_000_000]]),
    );
    assert!(!ok(op(&lines, 1)), "{lines:?}");
    assert!(
        op(&lines, 1)["error"].as_str().unwrap().contains("file too large"),
        "{lines:?}"
    );
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
    assert!(
        !ok(op(&lines, 8)),
        "plain RENAME does not overwrite: {:?}",
        op(&lines, 8)
    );
    assert_eq!(op(&lines, 10)["result"]["size"], json!(200_000));
    assert_eq!(op(&lines, 11)["result"], json!(["a.xml", "b.xml", "b2.xml"]));
    assert_eq!(fs::read_to_string(gw.inbound("saad1").join("b2.xml")).unwrap(), "c");
    // OpenSSH's rename (posix-rename@openssh.com when offered).
    let local = gw.dir.path().join("d.xml");
    fs::write(&local, "d").unwrap();
    let batch = format!(
        "put {} /in/d.xml.filepart\nrename /in/d.xml.filepart /in/d.xml\n",
        local.display()
    );
    let (ok, out) = gw.sftp_batch("alice2", &key, &batch, &[]);
    assert!(ok, "{out}");
    assert_eq!(
        Gateway::names(&gw.inbound("saad1")),
        vec!["a.xml", "b.xml", "b2.xml", "d.xml"]
    );
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
fn large_transfers_both_ways_with_openssh_and_paramiko() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    gw.user_with_password("bob", "saad1", "pass1234");
    let data: Vec<u8> = (0..48u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
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
        assert!(
            fs::read(gw.inbound("saad1").join(format!("big-{cipher}.bin"))).unwrap() == data,
            "upload intact"
        );
    }
    // paramiko's prefetch asks for the whole file at once.
    let lines = gw.paramiko("bob", Secret::Password("pass1234"), json!([["get", "/out/big.bin"]]));
    assert!(ok(op(&lines, 1)), "{lines:?}");
    assert_eq!(op(&lines, 1)["result"]["size"], json!(data.len()));
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

/// The real daemon: `import providers`, `user add --key`, `serve`; an
/// upload through OpenSSH is taken by the intake, its report appears in
/// `/out` and its download lands in the exchange history.
#[test]
fn serve_takes_uploads_and_records_downloads() {
    let live = LiveServe::start("");
    let root = live.root().to_path_buf();
    let gw = |args: &[&str]| live.gw(args);
    let sftp = |batch: &str| {
        let out = live.sftp(batch);
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let local = root.join("bill.xml");
    fs::write(&local, "this is not XML\n").unwrap();
    sftp(&format!("put {} /in/03_311026_100_21999000.xml\n", local.display()));
    let reports = root.join("spool/outbound/saad21/reports");
    // A report under its final name (not the gateway's hidden temp file
    // being written, which the provider never sees).
    let published = |n: &String| n.ends_with(".report.csv") && !n.starts_with('.');
    Gateway::wait_until("the processing report", || {
        Gateway::names(&reports).iter().any(published)
    });
    let name = Gateway::names(&reports).into_iter().find(published).unwrap();
    let got = root.join("report.csv");
    let listing = sftp(&format!(
        "ls /in\nls /out/reports\nget /out/reports/{name} {}\n",
        got.display()
    ));
    assert!(listing.contains(&name), "{listing}");
    assert!(
        !Gateway::names(&root.join("spool/inbound/saad21"))
            .iter()
            .any(|n| n.ends_with(".xml")),
        "taken by the intake"
    );
    assert!(fs::read(&got).unwrap().len() > 10);
    Gateway::wait_until("the download in the history", || {
        gw(&[
            "history",
            "--from",
            "2000-01-01",
            "--to",
            "2100-12-31",
            "--interface",
            "sftp",
            "--format",
            "json",
        ])
        .contains(&name)
    });
    live.stop();
}

/// What the gateway is still writing into `/out` (a report under its
/// temporary name) is not there for the provider: not listed, not
/// readable, not stat-able; nor in `/in`.
#[test]
fn gateway_temporary_files_are_never_listed_or_served() {
    let gw = Gateway::start("");
    let key = gw.user_with_key("alice", "saad1");
    gw.user_with_password("bob", "saad1", "pass1234");
    let reports = gw.outbound("saad1").join("reports");
    fs::create_dir_all(&reports).unwrap();
    fs::write(reports.join("r1.report.csv"), "verdict;accepted\n").unwrap();
    let temp = ".ppas-tmp-4242-1-00000001-r2.report.pdf";
    fs::write(reports.join(temp), "%PDF-half").unwrap();
    fs::create_dir_all(gw.inbound("saad1")).unwrap();
    fs::write(gw.inbound("saad1").join(".ppas-tmp-4242-2-00000002-x.xml"), "<").unwrap();

    let (ok_ls, out) = gw.sftp_batch("alice", &key, "ls -la /out/reports\nls -la /in\n", &[]);
    assert!(ok_ls, "{out}");
    assert!(out.contains("r1.report.csv"), "{out}");
    assert!(!out.contains(".ppas-tmp-"), "not listed, even with -a: {out}");
    let got = gw.dir.path().join("got.pdf");
    let (ok_get, out) = gw.sftp_batch(
        "alice",
        &key,
        &format!("get /out/reports/{temp} {}\n", got.display()),
        &[],
    );
    assert!(!ok_get && !got.exists(), "get refused: {out}");

    let lines = gw.paramiko(
        "bob",
        Secret::Password("pass1234"),
        json!([
            ["ls", "/out/reports"],
            ["ls", "/in"],
            ["get", format!("/out/reports/{temp}")],
            ["stat", format!("/out/reports/{temp}")],
            ["get", "/out/reports/r1.report.csv"]
        ]),
    );
    assert_eq!(op(&lines, 1)["result"], json!(["r1.report.csv"]), "{lines:?}");
    assert_eq!(op(&lines, 2)["result"], json!([]), "{lines:?}");
    assert!(!ok(op(&lines, 3)) && !ok(op(&lines, 4)), "{lines:?}");
    assert!(ok(op(&lines, 5)), "{lines:?}");
    let downs = gw.events.downloads.lock().unwrap().clone();
    assert!(downs.iter().all(|d| !d.2.contains(".ppas-tmp-")), "{downs:?}");
}
