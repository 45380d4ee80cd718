//! Crash test (spec §9): "a crash or kill at any moment loses no accepted
//! file and duplicates no outbox line, report or e-mail".
//!
//! `serve` runs while 60 billing files from three providers (accepted,
//! partial and rejected ones) are dropped the careful way (temp name, then
//! renamed in), and is killed with SIGKILL at random moments (seeded: set
//! `PPAS_CRASH_SEED` to replay a run) then restarted, 8 to 15 times. After
//! a final clean run, every invariant is checked from the outside: the
//! database, the spool, the outbox read back line by line, the `.eml` files.
//!
//! Every file bills its own beneficiary, so its verdict does not depend on
//! the order in which the files happen to be processed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::pipeline_support::*;

const FILES: usize = 60;
const PROVIDERS: [(&str, &str, &str); 3] = [
    ("saadA", SITE_A, "03"),
    ("saadB", SITE_B, "03"),
    ("saadC", SITE_C, "04"),
];

/// A file to drop and what must come of it.
struct Planned {
    provider: &'static str,
    bill: Bill,
    /// Lines that must reach the outbox, in file order.
    accepted: Vec<OutLine>,
    anomalies: bool,
}

fn nir(k: usize) -> String {
    format!("2{:012}", 710_000 + k)
}

fn plan() -> (Vec<Planned>, String) {
    let mut csv =
        String::from("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n");
    let mut files = Vec::new();
    for k in 0..FILES {
        let (provider, site, cram) = PROVIDERS[k % 3];
        let n = nir(k);
        csv.push_str(&format!(
            "{cram};{site};{n};NOM{k};Prenom;PPP100;2026-01-01;2026-12-31;1000;0\n"
        ));
        let day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap() + chrono::Duration::days((k / 3) as i64);
        let mut bill = Bill::dated(site, day).cram(cram);
        let good = |m: u32| BLine::month(&n, site, m, "3.5");
        let (accepted, anomalies) = match k % 5 {
            0..=2 => {
                bill = bill.lines((1..=(2 + k as u32 % 3)).map(good));
                (bill.lines.clone(), false)
            }
            3 => {
                bill = bill.lines([good(1), good(2), good(3).regul(), BLine::month(NIR_NONE, site, 4, "1")]);
                (bill.lines[..2].to_vec(), true)
            }
            _ => {
                if (k / 5) % 2 == 0 {
                    bill = bill.lines([good(1), good(2)]);
                    bill.nb_ligbor = Some("3".into()); // F08
                } else {
                    bill = bill.lines([BLine::month(NIR_NONE, site, 1, "1"), good(2).regul()]);
                }
                (Vec::new(), true)
            }
        };
        let accepted = accepted
            .iter()
            .map(|l| (l.nir.clone(), l.dtd.clone(), l.dtf.clone(), l.nb_quant.clone()))
            .collect();
        files.push(Planned {
            provider,
            bill,
            accepted,
            anomalies,
        });
    }
    (files, csv)
}

#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let seed: u64 = std::env::var("PPAS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261120);
    eprintln!("crash test seed {seed} (PPAS_CRASH_SEED to replay)");
    let started = Instant::now();
    let g = Gw::new();
    g.import("providers", &providers_csv());
    let (files, csv) = plan();
    g.import("beneficiaries", &csv);

    let mut rng = StdRng::seed_from_u64(seed);
    let kills = rng.random_range(8..=15);
    let drop_seed: u64 = rng.random();
    let log = g.dir.path().join("serve.log");

    // The providers: one file after another, at random intervals.
    let spool = g.spool.clone();
    let drops: Vec<(String, String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.provider.to_string(), f.bill.name(), f.bill.xml().into_bytes()))
        .collect();
    let dropper = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(drop_seed);
        for (provider, name, bytes) in drops {
            let dir: PathBuf = spool.join("inbound").join(&provider);
            std::fs::create_dir_all(&dir).unwrap();
            let tmp = dir.join(format!("{name}.part"));
            std::fs::write(&tmp, &bytes).unwrap();
            std::fs::rename(&tmp, dir.join(&name)).unwrap();
            // Bursts now and then, so that a backlog builds up.
            if rng.random_bool(0.8) {
                std::thread::sleep(Duration::from_millis(rng.random_range(20..200)));
            }
        }
    });

    // The daemon, killed at random moments and restarted. After each kill,
    // note whether it cut work in flight (a file taken but not finished, a
    // temp file, an e-mail queued but not written): the kills are only
    // worth something if some land there.
    let mut in_flight = 0;
    for _ in 0..kills {
        let mut d = Daemon::start(&g, &log);
        std::thread::sleep(Duration::from_millis(rng.random_range(30..700)));
        d.child.kill().expect("SIGKILL");
        d.child.wait().expect("reap");
        let cut = g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'") > 0
            || !g.files("work").is_empty()
            || g.files("").iter().any(|f| f.contains("/.ppas-tmp-"));
        in_flight += usize::from(cut);
    }
    dropper.join().expect("dropper");
    let killed_at = started.elapsed();

    // What the kills left in flight, for the record.
    let unfinished = g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'");
    let unsent = g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL");
    let temps = g
        .files("")
        .into_iter()
        .filter(|f| f.rsplit('/').next().unwrap_or("").starts_with(".ppas-tmp-"))
        .count();

    // A final clean run. Its clock is one hour later: a message claimed by a
    // worker killed before it wrote it is leased for 10 minutes (see
    // mail::deliver), and a frozen clock would never see the lease expire.
    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_NOW", "2026-11-20T11:00:00+01:00");
    let mut d = Daemon::start_with(cmd, &log);
    d.wait_ready(Duration::from_secs(20));
    let t = Instant::now();
    while !(g.files("inbound").is_empty()
        && g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'") >= FILES as i64
        && g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL") == 0)
    {
        if t.elapsed() > Duration::from_secs(60) {
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            panic!(
                "final run: not done after 60 s\ninbound: {:?}\nwork: {:?}\nunfinished: {:?}\nunsent: {:?}\nerrors: {:?}\nlog tail:\n{}",
                g.files("inbound"),
                g.files("work"),
                g.rows("SELECT id, provider, name, state FROM received_files WHERE state != 'done'"),
                g.rows("SELECT id, attempts, next_attempt_at, COALESCE(last_error, '') FROM mail_queue WHERE sent_at IS NULL"),
                g.rows("SELECT at, worker, message FROM errors ORDER BY id DESC LIMIT 10"),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, took) = d.terminate();
    assert_eq!(code, Some(0), "final serve exit");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("0 fichier(s) traité(s)"),
        "{}",
        text(&out.stdout)
    );
    let logs = std::fs::read_to_string(&log).unwrap();
    let recovered = logs.matches("files in flight brought to their end").count();
    eprintln!(
        "crash test: {kills} kills in {killed_at:?}, {in_flight} with work in flight; left by the last kill: {unfinished} file(s) unfinished, {unsent} e-mail(s) unsent, \
         {temps} temp file(s); {recovered} recovery pass(es) with work to finish; total {:?}",
        started.elapsed()
    );

    assert!(
        in_flight > 0,
        "no kill landed while work was in flight: the run proved nothing (seed {seed})"
    );

    // Every dropped file: exactly one received_files row, done.
    let rows = g.rows(
        "SELECT provider, name, state, COUNT(*) FROM received_files GROUP BY provider, name ORDER BY provider, name",
    );
    assert_eq!(rows.len(), FILES, "{rows:?}");
    for f in &files {
        let row = rows.iter().find(|r| r[0] == f.provider && r[1] == f.bill.name());
        assert_eq!(
            row.map(|r| (r[2].as_str(), r[3].as_str())),
            Some(("done", "1")),
            "{} from {}: {row:?}",
            f.bill.name(),
            f.provider
        );
    }

    // Exactly one report triple per file, with the expected verdict.
    let reports: Vec<String> = g
        .files("outbound")
        .into_iter()
        .filter(|f| f.contains("/reports/"))
        .collect();
    assert_eq!(reports.len(), 3 * FILES, "{reports:?}");
    let mut xml_reports = Vec::new();
    for f in &files {
        let stem = f.bill.rf_borfact();
        for ext in ["xml", "csv", "pdf"] {
            let rel = format!("outbound/{}/reports/{stem}.report.{ext}", f.provider);
            assert!(reports.contains(&rel), "missing {rel}");
        }
        let pdf = std::fs::read(g.path(&format!("outbound/{}/reports/{stem}.report.pdf", f.provider))).unwrap();
        assert!(
            pdf.starts_with(b"%PDF-") && pdf.windows(5).rev().take(64).any(|w| w == b"%%EOF"),
            "{stem}: PDF not complete"
        );
        let r = read_report(&g.read(&format!("outbound/{}/reports/{stem}.report.xml", f.provider)));
        let verdict = if f.accepted.is_empty() {
            "rejected"
        } else if f.anomalies {
            "partial"
        } else {
            "accepted"
        };
        assert_eq!(
            (r.verdict.as_str(), r.accepted as usize),
            (verdict, f.accepted.len()),
            "{stem}"
        );
        xml_reports.push(g.path(&format!("outbound/{}/reports/{stem}.report.xml", f.provider)));
    }
    assert_xsd("report.xsd", &xml_reports);

    // The outbox holds exactly the accepted lines: none missing, none doubled.
    let outbox = g.files("outbox");
    let expected_outbox: BTreeSet<String> = files
        .iter()
        .filter(|f| !f.accepted.is_empty())
        .map(|f| format!("outbox/{}/{}", f.bill.id_cram, f.bill.name()))
        .collect();
    assert_eq!(outbox.iter().cloned().collect::<BTreeSet<_>>(), expected_outbox);
    assert_xsd(
        "FactficTrans.xsd",
        &outbox.iter().map(|f| g.path(f)).collect::<Vec<_>>(),
    );
    let mut per_borfact: BTreeMap<String, usize> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.accepted.is_empty()) {
        let (lines, footer) = read_outbox(&g.read(&format!("outbox/{}/{}", f.bill.id_cram, f.bill.name())));
        assert_eq!(lines, f.accepted, "outbox lines of {}", f.bill.name());
        assert_eq!(footer.0, f.accepted.len().to_string(), "nb-ligbor of {}", f.bill.name());
        *per_borfact.entry(f.bill.rf_borfact()).or_default() += lines.len();
    }
    let in_db: BTreeMap<String, usize> = g
        .rows("SELECT r.rf_borfact, COUNT(*) FROM accepted_lines a JOIN received_files r ON r.id = a.file_id GROUP BY r.rf_borfact")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(
        in_db, per_borfact,
        "accepted lines in the database = lines in the outbox"
    );

    // One e-mail per file with anomalies, none for the others.
    let mails = g.mails();
    let ids: BTreeSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), mails.len(), "a Message-ID twice");
    for f in &files {
        let n = mails.iter().filter(|m| m.is_about(&f.bill.name())).count();
        assert_eq!(n, usize::from(f.anomalies), "e-mails about {}", f.bill.name());
    }
    assert_eq!(mails.len(), files.iter().filter(|f| f.anomalies).count());

    // No temp file left, nothing in work/ or inbound/, every original archived.
    for top in ["outbox", "outbound", "mail"] {
        let temps: Vec<String> = g.files(top).into_iter().filter(|f| f.contains("/.ppas-tmp-")).collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
    }
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
    assert!(g.files("inbound").is_empty(), "{:?}", g.files("inbound"));
    assert_eq!(g.files("archive").len(), FILES);
    let nirs: Vec<String> = (0..FILES).map(nir).collect();
    let nirs: Vec<&str> = nirs.iter().map(String::as_str).collect();
    crate::support::assert_no_nir(&logs, &nirs, "the logs of the crash runs");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "crash test took {:?}",
        started.elapsed()
    );
}

/// `xmllint --schema` over many files at once.
fn assert_xsd(xsd: &str, files: &[PathBuf]) {
    if files.is_empty() {
        return;
    }
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(crate::support::repo().join("schema").join(xsd))
        .args(files)
        .output()
        .expect("xmllint (libxml2-utils) is required");
    assert!(out.status.success(), "{xsd}: {}", text(&out.stderr));
}
