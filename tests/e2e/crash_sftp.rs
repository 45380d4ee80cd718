//! Crash test under SFTP load: a provider's software uploads billing files
//! one after the other with OpenSSH's `sftp` while the daemon is killed with
//! SIGKILL at random moments (seeded: `PPAS_CRASH_SEED` replays a run) and
//! started again; an upload that failed is sent again, as such software
//! does. Every upload the server acknowledged is processed, none is taken
//! twice (a resend of a file already received is F09, never a second
//! acceptance), the payment chain gets each accepted line once, and no
//! partial file is ever visible under its final name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::logs::{cast_and_sftp_user, free_port, gateway, sftp};
use crate::pipeline_support::*;
use crate::support;

const FILES: u32 = 20;

#[test]
fn sigkill_under_sftp_uploads_loses_no_acknowledged_file_and_doubles_no_line() {
    for tool in ["sftp", "ssh-keygen"] {
        assert!(support::have(tool), "{tool} is needed (apt-get install openssh-client)");
    }
    let seed: u64 = std::env::var("PPAS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261202);
    eprintln!("SFTP crash test seed {seed} (PPAS_CRASH_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);
    let port = free_port();
    let g = gateway(port);
    let key = cast_and_sftp_user(&g);

    // One hour a month for one beneficiary, a file per day of the month.
    let local = g.dir.path().join("to-send");
    std::fs::create_dir_all(&local).unwrap();
    let mut names = Vec::new();
    for day in 1..=FILES {
        let b = Bill::new(SITE_A, day).line(BLine::month(NIR_A1, SITE_A, (day - 1) % 12 + 1, "1"));
        std::fs::write(local.join(b.name()), b.xml()).unwrap();
        names.push(b.name());
    }

    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(60));

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let uploader = {
        let (acked, names, local, key, dir) = (
            acked.clone(),
            names.clone(),
            local.clone(),
            key.clone(),
            g.dir.path().to_path_buf(),
        );
        std::thread::spawn(move || {
            let mut failures = 0;
            for name in names {
                let batch = format!("put {} /in/{name}\n", local.join(&name).display());
                loop {
                    if sftp(port, "saada1", &key, &batch, &dir).0 {
                        acked.lock().unwrap().push(name);
                        break;
                    }
                    failures += 1;
                    assert!(failures < 400, "uploads keep failing");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            failures
        })
    };
    let started = Instant::now();
    let mut kills = 0;
    while !uploader.is_finished() && kills < 8 {
        std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(d.child.id() as i32, libc::SIGKILL) };
        let _ = d.child.wait();
        kills += 1;
        // Nothing half-written under a final name, even now.
        for rel in g.files("inbound/saadA") {
            let name = rel.rsplit('/').next().unwrap_or("");
            if !name.starts_with('.') {
                let bytes = std::fs::read(g.path(&rel)).unwrap_or_default();
                assert!(
                    bytes.is_empty() || String::from_utf8_lossy(&bytes).trim_end().ends_with("</factbord>"),
                    "{rel} is visible but not whole"
                );
            }
        }
        d = Daemon::start(&g, &log);
        d.wait_ready(Duration::from_secs(60));
    }
    let failures = uploader.join().expect("the uploader");
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "{kills} kill(s), {failures} failed upload(s) sent again, in {:?}",
        started.elapsed()
    );
    assert_eq!(acked.len(), FILES as usize, "every file acknowledged in the end");

    wait_for(Duration::from_secs(60), "every acknowledged file processed", || {
        g.count("SELECT COUNT(DISTINCT name) FROM received_files WHERE state = 'done'") == FILES as i64
            && g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'") == 0
    });
    assert_eq!(d.terminate().0, Some(0));

    // Each file taken once: a second reception of one is a refused duplicate.
    let rows = g.rows(
        "SELECT name, verdict, EXISTS (SELECT 1 FROM anomalies a WHERE a.file_id = r.id AND a.code = 'F09')
         FROM received_files r ORDER BY id",
    );
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        if r[1] != "rejected" || r[2] != "1" {
            *taken.entry(r[0].clone()).or_default() += 1;
        }
    }
    assert!(taken.values().all(|n| *n == 1), "{rows:?}");
    assert_eq!(taken.len(), FILES as usize);
    // The payment chain: each accepted line once.
    let lines: usize = g
        .files("outbox")
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .map(|f| g.read(&f).matches("<factprest>").count())
        .sum();
    assert_eq!(
        lines as i64,
        g.count("SELECT COALESCE(SUM(accepted_lines), 0) FROM received_files"),
        "outbox lines against the accepted lines"
    );
    let visible: Vec<String> = g
        .files("inbound/saadA")
        .into_iter()
        .filter(|f| !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
}
