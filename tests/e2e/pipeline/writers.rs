//! Files are taken only when complete, whoever writes them: a slow writer
//! running under another account (a caisse script, `cp` as root), which
//! closes the file between its chunks or holds it open, in a billing drop
//! folder and in a caisse folder, with the daemon running as root or as an
//! unprivileged service user (where the kernel's lease check cannot see a
//! writer of another owner). The quiet period alone must hold the file
//! back until its writer is done.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use std::time::Duration;

use super::*;

const NOBODY: &str = "65534";

fn require_root() {
    // SAFETY: getuid has no preconditions.
    assert_eq!(
        unsafe { libc::getuid() },
        0,
        "these tests switch users: run the suite as root (scripts/test)"
    );
}

/// Opens every folder on the way to the spool to other users.
fn open_up(g: &Gw, dirs: &[&str]) {
    for p in [g.dir.path().to_path_buf(), g.spool.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for d in dirs {
        let p = g.path(d);
        std::fs::create_dir_all(&p).unwrap();
        let mut at = p.as_path();
        while at != g.spool.as_path() {
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o777)).unwrap();
            at = at.parent().unwrap();
        }
    }
}

/// Writes `chunks` to `target` as user `uid`, pausing `pause_ms` between
/// them: reopening the file for each chunk (`>>`), or holding it open.
fn slow_writer(uid: &str, target: &Path, chunks: &[String], pause_ms: u64, hold_open: bool) -> std::process::Child {
    let dir = tempfile::Builder::new()
        .prefix("chunks")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut names = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let p = dir.join(format!("{i:04}"));
        std::fs::write(&p, c).unwrap();
        names.push(p.display().to_string());
    }
    let pause = format!("{}.{:03}", pause_ms / 1000, pause_ms % 1000);
    let t = target.display();
    let script = if hold_open {
        format!(
            "exec 3>>'{t}'; for f in {}; do cat \"$f\" >&3; sleep {pause}; done; exec 3>&-",
            names.join(" ")
        )
    } else {
        format!(
            "for f in {}; do cat \"$f\" >> '{t}'; sleep {pause}; done",
            names.join(" ")
        )
    };
    Command::new("setpriv")
        .args(["--reuid", uid, "--regid", uid, "--clear-groups", "sh", "-c", &script])
        .spawn()
        .expect("setpriv")
}

/// `bill`'s XML cut into `n` chunks at line ends.
fn chunks_of(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let per = lines.len().div_ceil(n);
    lines.chunks(per).map(|c| c.concat()).collect()
}

/// Ten months of one beneficiary (all before the test clock's day).
fn big_bill(day: u32) -> Bill {
    Bill::new(SITE_A, day).lines((1..=10).map(|m| BLine::month(NIR_A1, SITE_A, m, "1")))
}

#[test]
fn a_slow_writer_of_another_account_is_never_cut_short_by_the_daemon() {
    require_root();
    let g = Gw::new_intake("settle_ms = 1500\n", "");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    open_up(&g, &["inbound/saadA", "caisse/inbound/beneficiaries"]);
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));

    // A billing file appended chunk by chunk (a close after each), and one
    // written through a descriptor held open, both as `nobody`.
    let a = big_bill(10);
    let b = Bill::new(SITE_A2, 11).lines((1..=6).map(|m| BLine::month(NIR_A5, SITE_A2, m, "1").id_prest(SITE_A2)));
    let wa = slow_writer(
        NOBODY,
        &g.path(&format!("inbound/saadA/{}", a.name())),
        &chunks_of(&a.xml(), 6),
        500,
        false,
    );
    let wb = slow_writer(
        NOBODY,
        &g.path(&format!("inbound/saadA/{}", b.name())),
        &chunks_of(&b.xml(), 6),
        500,
        true,
    );
    // A caisse CSV appended row by row: a prefix cut at a row end is a
    // valid file, which must not be imported in part.
    let mut csv =
        String::from("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n");
    for i in 0..6 {
        csv.push_str(&format!(
            "03;{SITE_A};17003210000{i:02};NOUVEAU{i};Jean;PPP100;2026-01-01;2026-12-31;100;0\n"
        ));
    }
    let wc = slow_writer(
        NOBODY,
        &g.path("caisse/inbound/beneficiaries/plans.csv"),
        &chunks_of(&csv, 7),
        500,
        false,
    );
    for mut w in [wa, wb, wc] {
        assert!(w.wait().unwrap().success());
    }
    wait_for(Duration::from_secs(20), "both reports and the import", || {
        g.exists(&report_rel("saadA", &a, 1, "xml"))
            && g.exists(&report_rel("saadA", &b, 1, "xml"))
            && g.count("SELECT COUNT(*) FROM caisse_imports") > 0
    });
    for bill in [&a, &b] {
        let r = report(&g, "saadA", bill, 1);
        assert_eq!(
            (r.verdict.as_str(), r.lines as usize),
            ("accepted", bill.lines.len()),
            "{r:?}"
        );
    }
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files"),
        2,
        "a file was taken in part, then again"
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM caisse_imports"), 1);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM plans WHERE nom_per LIKE 'NOUVEAU%'"),
        6,
        "the CSV was imported in part"
    );
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn a_service_user_daemon_waits_for_roots_writer_holding_the_file_open() {
    require_root();
    let g = Gw::new_intake("settle_ms = 1500\n", "");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    std::fs::create_dir_all(g.path("inbound/saadA")).unwrap();
    // The whole installation belongs to the service user (here `nobody`);
    // the file is written by root, which the service user cannot lease.
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(g.dir.path())
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(g.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bill = big_bill(12);
    let target = g.path(&format!("inbound/saadA/{}", bill.name()));
    let log = g.dir.path().join("serve.log");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(crate::support::bin())
        .arg("--config")
        .arg(&g.config)
        .current_dir(g.dir.path())
        .env("PPAS_GATEWAY_NOW", NOW)
        .env_remove("RUST_LOG");
    let mut d = Daemon::start_with(cmd, &log);
    d.wait_ready(Duration::from_secs(20));
    let mut w = slow_writer("0", &target, &chunks_of(&bill.xml(), 6), 500, true);
    assert!(w.wait().unwrap().success());
    wait_for(Duration::from_secs(20), "the report", || {
        g.exists(&report_rel("saadA", &bill, 1, "xml"))
    });
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(
        (r.verdict.as_str(), r.lines as usize),
        ("accepted", bill.lines.len()),
        "{r:?}"
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files"), 1);
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn process_once_leaves_a_file_still_being_written_for_the_next_pass() {
    require_root();
    let g = Gw::new_intake("settle_ms = 1500\n", "");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    open_up(&g, &["inbound/saadA"]);
    let bill = big_bill(13);
    let target = g.path(&format!("inbound/saadA/{}", bill.name()));
    let mut w = slow_writer(NOBODY, &target, &chunks_of(&bill.xml(), 10), 600, false);
    wait_for(Duration::from_secs(10), "the writer started", || target.exists());
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("encore en cours d'écriture"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        g.count("SELECT COUNT(*) FROM received_files"),
        0,
        "taken while being written"
    );
    assert!(w.wait().unwrap().success());
    process(&g, 0);
    let r = report(&g, "saadA", &bill, 1);
    assert_eq!(
        (r.verdict.as_str(), r.lines as usize),
        ("accepted", bill.lines.len()),
        "{r:?}"
    );
}
