//! Spec §6, "none is lost while the relay is down", across a restart: the
//! real binary (`serve`) with `[mail] smtp_url` on a port where no relay
//! listens, notices of rejected files queued and tried, the daemon stopped
//! and started again while the relay is still down, then the relay
//! (`scripts/smtp_sink.py`, aiosmtpd) started: every notice arrives once,
//! none twice, none lost, counted by Message-ID.
//!
//! Back-off is real time here (the daemon's clock runs): the first daemon
//! runs with its clock 30 s behind, so that the next attempt of every
//! notice, one minute after its failed one, falls 30 s after the test
//! started, once the second daemon runs and the relay is up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::mail::{free_port, Sink};
use crate::pipeline_support::*;

/// `serve` on the system clock (`PPAS_GATEWAY_NOW` unset), or at `now`.
fn serve(g: &Gw, log: &std::path::Path, now: Option<chrono::DateTime<chrono::Utc>>) -> Daemon {
    let mut cmd = g.cmd();
    match now {
        Some(t) => cmd.env("PPAS_GATEWAY_NOW", t.to_rfc3339()),
        None => cmd.env_remove("PPAS_GATEWAY_NOW"),
    };
    let mut d = Daemon::start_with(cmd, log);
    d.wait_ready(Duration::from_secs(30));
    d
}

fn stop(d: Daemon, log: &std::path::Path) {
    let (code, _) = d.terminate();
    assert_eq!(
        code,
        Some(0),
        "serve exit code; logs:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn notices_queued_while_the_relay_is_down_survive_a_restart_and_arrive_once() {
    let port = free_port();
    let g = Gw::new_with(&format!("smtp_url = \"smtp://127.0.0.1:{port}\"\n"));
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    // Four files rejected (no plan for the NIR: L04), from two providers:
    // four notices.
    let bills: Vec<(&str, Bill)> = vec![
        (
            "saadA",
            Bill::new(SITE_A, 2).line(BLine::month(NIR_NONE, SITE_A, 1, "5")),
        ),
        (
            "saadA",
            Bill::new(SITE_A, 3).line(BLine::month(NIR_NONE, SITE_A, 2, "5")),
        ),
        (
            "saadB",
            Bill::new(SITE_B, 4).line(BLine::month(NIR_NONE, SITE_B, 1, "5")),
        ),
        (
            "saadB",
            Bill::new(SITE_B, 5).line(BLine::month(NIR_NONE, SITE_B, 2, "5")),
        ),
    ];
    for (p, b) in &bills {
        g.drop_bill(p, b);
    }
    let log = g.dir.path().join("serve.log");

    // First daemon: the files are processed, the notices queued, and each
    // is tried once against the missing relay (one a pass: the pass stops
    // at an unreachable relay).
    let behind = chrono::Utc::now() - chrono::Duration::seconds(30);
    let d = serve(&g, &log, Some(behind));
    wait_for(Duration::from_secs(60), "every notice tried once", || {
        g.count("SELECT COUNT(*) FROM mail_queue WHERE attempts >= 1 AND sent_at IS NULL") == 4
    });
    stop(d, &log);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'"), 4);
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NOT NULL"), 0);
    let errors: Vec<Vec<String>> = g.rows("SELECT last_error FROM mail_queue");
    assert!(
        errors
            .iter()
            .all(|e| e[0].to_lowercase().contains("connection refused")),
        "{errors:?}"
    );

    // Second daemon, the relay still down: nothing is sent, nothing lost.
    let d = serve(&g, &log, None);
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL"), 4);

    // The relay comes up: the notices go out at their next attempt.
    let sink = Sink::start(port, &g.dir.path().join("received"));
    wait_for(Duration::from_secs(300), "every notice delivered", || {
        g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NOT NULL") == 4
    });
    // A few more passes (one a second), then a third daemon with the
    // relay up: nothing goes out again. Absence cannot be polled for.
    std::thread::sleep(Duration::from_secs(3));
    stop(d, &log);
    let d = serve(&g, &log, None);
    std::thread::sleep(Duration::from_secs(3));
    stop(d, &log);

    let got = sink.received();
    let ids: Vec<String> = got
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (4, 4), "each once: {ids:?}");
    // Each queued notice is one of them: `<ppas-<row id>-…>`.
    let rows: Vec<Vec<String>> = g.rows("SELECT id, recipients, subject FROM mail_queue ORDER BY id");
    assert_eq!(rows.len(), 4);
    let mut by_row: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        let row = id.trim_start_matches("<ppas-").split('-').next().unwrap().to_string();
        *by_row.entry(row).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = rows.iter().map(|r| (r[0].clone(), 1)).collect();
    assert_eq!(by_row, expected);
    for (p, b) in &bills {
        let about: Vec<&serde_json::Value> = got
            .iter()
            .filter(|m| m["subject"].as_str().unwrap().contains(&b.name()))
            .collect();
        assert_eq!(about.len(), 1, "{p} {}: {got:#?}", b.name());
        let to = if *p == "saadA" {
            "a@saada.example"
        } else {
            "b@saadb.example"
        };
        assert_eq!(about[0]["rcpt_tos"], serde_json::json!([to]));
    }
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'mail'"), 4);
    let logs = std::fs::read_to_string(&log).unwrap();
    for nir in ALL_NIRS {
        assert!(!logs.contains(nir), "NIR {nir} in the logs");
    }
}
