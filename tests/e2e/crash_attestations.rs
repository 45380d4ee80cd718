//! Crash test of the attestation kind (spec §4, §9): the same take →
//! decide → publish → recover steps as billing files, the same promise.
//!
//! `serve` runs while 30 files of visit attestations from two
//! ergothérapeutes are dropped (each answering two orders of its own, some
//! with an anomaly), and is killed with SIGKILL at random moments
//! (`PPAS_CRASH_SEED` replays a run), then restarted, 6 to 10 times. After a
//! final clean run: every order answered exactly once (an attestation is
//! never recorded twice), one invoice line per accepted T attestation, the
//! orders' states, one report triple per file, one notice per file with
//! anomalies, the order listings written, nothing left in flight.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::pipeline_support::*;

const FILES: usize = 30;
/// Attestations of unknown orders in each file.
const UNKNOWN: usize = 300;
const PROVIDERS: &str = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
ergo62;Cabinet Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n\
ergo59;Ergo Flandre;35600000049837;cabinet@ergo59.example;03 20 00 00 59;ergo;04;59111100;59111100\n";

/// The provider, convention and NIR of order `k`.
fn order(k: usize) -> (&'static str, &'static str, String) {
    let (p, c) = if k % 2 == 0 {
        ("ergo62", "62739900")
    } else {
        ("ergo59", "59111100")
    };
    (p, c, format!("1{:012}", 540_000 + k))
}

fn rf(k: usize) -> String {
    format!("C04-2026-{k:06}")
}

fn item(k: usize, statut: &str, nir: &str) -> String {
    let (_, conv, _) = order(k);
    let (date, motif) = if statut == "T" {
        ("2026-10-02", "")
    } else {
        ("", "REFUS")
    };
    format!(
        "<attvisite><rf-commande>{}</rf-commande><id-cram>04</id-cram><code-convention>{conv}</code-convention>\
         <nir-per>{nir}</nir-per><statut>{statut}</statut><dt-visite>{date}</dt-visite><motif>{motif}</motif>\
         <commentaire/></attvisite>\n",
        rf(k)
    )
}

/// File `f` answers two orders of one provider: files of a provider take
/// its orders two at a time. Every fifth file has a wrong NIR on its second
/// attestation (A07: rejected, its order left à faire). Every file also
/// carries attestations for orders nobody imported (A02): long reports,
/// so that kills land while files are in flight.
struct Planned {
    provider: &'static str,
    name: String,
    body: String,
    /// (order, statut) accepted.
    accepted: Vec<(usize, &'static str)>,
    anomalies: bool,
}

fn plan() -> Vec<Planned> {
    (0..FILES)
        .map(|f| {
            // Orders of the same provider: 4f and 4f + 2 (even: ergo62), or
            // 4f + 1 and 4f + 3 (odd: ergo59), by the file's parity.
            let base = 4 * (f / 2) + f % 2;
            let (a, b) = (base, base + 2);
            let (provider, _, _) = order(a);
            let sa = if f % 3 == 0 { "S" } else { "T" };
            let bad = f % 5 == 4;
            let nir_b = if bad { "1999999999999".to_string() } else { order(b).2 };
            let unknown: String = (0..UNKNOWN)
                .map(|i| item(10_000 + 1000 * f + i, "T", "1999999999998"))
                .collect();
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n{}{}{unknown}</attvisites>\n",
                item(a, sa, &order(a).2),
                item(b, "T", &nir_b)
            );
            let mut accepted = vec![(a, sa)];
            if !bad {
                accepted.push((b, "T"));
            }
            Planned {
                provider,
                name: format!("att-{provider}-{f:02}.xml"),
                body,
                accepted,
                anomalies: bad || UNKNOWN > 0,
            }
        })
        .collect()
}

#[test]
fn sigkill_while_attestations_arrive_records_each_once() {
    let seed: u64 = std::env::var("PPAS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201);
    eprintln!("attestation crash test seed {seed} (PPAS_CRASH_SEED to replay)");
    let started = Instant::now();
    let g = Gw::new();
    g.import("providers", PROVIDERS);
    let mut orders = String::from(
        "rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;telephone;ressources;dt-commande\n",
    );
    for k in 0..2 * FILES + 2 {
        let (_, conv, nir) = order(k);
        orders.push_str(&format!(
            "{};04;{conv};{nir};NOM{k};Jean;1 rue;03 21 00 00 01;PS;2026-09-01\n",
            rf(k)
        ));
    }
    g.import("orders", &orders);
    let files = plan();

    let mut rng = StdRng::seed_from_u64(seed);
    let kills = rng.random_range(6..=10);
    let drop_seed: u64 = rng.random();
    let log = g.dir.path().join("serve.log");
    let spool = g.spool.clone();
    let drops: Vec<(String, String, String)> = files
        .iter()
        .map(|f| (f.provider.to_string(), f.name.clone(), f.body.clone()))
        .collect();
    let dropper = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(drop_seed);
        for (provider, name, body) in drops {
            let dir: PathBuf = spool.join("inbound").join(&provider);
            std::fs::create_dir_all(&dir).unwrap();
            let tmp = dir.join(format!("{name}.part"));
            std::fs::write(&tmp, &body).unwrap();
            std::fs::rename(&tmp, dir.join(&name)).unwrap();
            if rng.random_bool(0.8) {
                std::thread::sleep(Duration::from_millis(rng.random_range(20..200)));
            }
        }
    });
    let mut in_flight = 0;
    for _ in 0..kills {
        let mut d = Daemon::start(&g, &log);
        std::thread::sleep(Duration::from_millis(rng.random_range(30..600)));
        d.child.kill().expect("SIGKILL");
        d.child.wait().expect("reap");
        let cut = g.count("SELECT COUNT(*) FROM received_files WHERE state != 'done'") > 0
            || !g.files("work").is_empty()
            || g.files("").iter().any(|f| f.contains("/.ppas-tmp-"));
        in_flight += usize::from(cut);
    }
    dropper.join().expect("dropper");

    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_NOW", "2026-11-20T11:00:00+01:00");
    let mut d = Daemon::start_with(cmd, &log);
    d.wait_ready(Duration::from_secs(20));
    let t = Instant::now();
    while !(g.files("inbound").is_empty()
        && g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'") >= FILES as i64
        && g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL") == 0
        && g.count("SELECT COUNT(*) FROM listings WHERE written < wanted") == 0)
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "final run: not done after 60 s: {:?}",
            g.rows("SELECT id, provider, name, state FROM received_files WHERE state != 'done'")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0), "final serve exit");
    eprintln!(
        "attestation crash test: {kills} kills, {in_flight} with work in flight, total {:?}",
        started.elapsed()
    );
    assert!(in_flight > 0, "no kill landed while work was in flight (seed {seed})");

    // Every file once, done, with its one report triple.
    let rows =
        g.rows("SELECT provider, name, kind, COUNT(*) FROM received_files GROUP BY provider, name ORDER BY name");
    assert_eq!(rows.len(), FILES, "{rows:?}");
    assert!(rows.iter().all(|r| r[2] == "attestations" && r[3] == "1"), "{rows:?}");
    let reports: BTreeSet<String> = g
        .files("outbound")
        .into_iter()
        .filter(|f| f.contains("/reports/"))
        .collect();
    assert_eq!(reports.len(), 3 * FILES, "{reports:?}");
    // Every order answered once at most; exactly the accepted ones.
    let expected: BTreeSet<(String, String)> = files
        .iter()
        .flat_map(|f| f.accepted.iter().map(|(k, s)| (rf(*k), s.to_string())))
        .collect();
    let recorded: Vec<Vec<String>> = g.rows("SELECT rf_commande, statut FROM attestations ORDER BY rf_commande");
    assert_eq!(recorded.len(), expected.len(), "an attestation recorded twice or lost");
    let recorded: BTreeSet<(String, String)> = recorded.into_iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(recorded, expected);
    // One invoice line per accepted T attestation; states as answered.
    let t_count = expected.iter().filter(|(_, s)| s == "T").count() as i64;
    assert_eq!(g.count("SELECT COUNT(*) FROM invoice_lines"), t_count);
    assert_eq!(
        g.count("SELECT COUNT(DISTINCT attestation_id) FROM invoice_lines"),
        t_count
    );
    for (rf, s) in &expected {
        let state = &g.rows(&format!("SELECT state FROM orders WHERE rf_commande = '{rf}'"))[0][0];
        assert_eq!(state, if s == "T" { "transmise" } else { "sans_suite" }, "{rf}");
    }
    // One notice per file with anomalies, none twice.
    let mails = g.mails();
    let ids: BTreeSet<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), mails.len(), "a Message-ID twice");
    for f in &files {
        let n = mails.iter().filter(|m| m.is_about(&f.name)).count();
        assert_eq!(n, usize::from(f.anomalies), "e-mails about {}", f.name);
    }
    // The listings are there, nothing is left in flight.
    for p in ["ergo62", "ergo59"] {
        assert!(g.exists(&format!("outbound/{p}/commandes.csv")) && g.exists(&format!("outbound/{p}/commandes.xml")));
    }
    for top in ["outbound", "mail"] {
        let temps: Vec<String> = g.files(top).into_iter().filter(|f| f.contains("/.ppas-tmp-")).collect();
        assert!(temps.is_empty(), "temp files left: {temps:?}");
    }
    assert!(g.files("work").is_empty() && g.files("inbound").is_empty());
    assert_eq!(g.files("archive").len(), FILES);
}
