//! Spec §6, "none is lost while the relay is down", across restarts: the
//! real binary (`serve`) with `[mail] smtp_url` on a port where no relay
//! listens, notices of rejected files queued and tried, the daemon stopped,
//! started again and killed (SIGKILL) while the relay is still down, then
//! the relay (`scripts/smtp_sink.py`, aiosmtpd) started and the daemon
//! with it: every notice arrives once, none twice, none lost, counted by
//! what the relay received and by Message-ID; a later start with the relay
//! up sends only what is new.
//!
//! Time is the fixed clock of each start (`PPAS_GATEWAY_NOW`): the back-off
//! of a failed attempt is passed by starting the next daemon later, never
//! by waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::mail::{free_port, Sink};
use crate::pipeline_support::*;

/// `serve` with the clock at `now`, ready.
fn serve(g: &Gw, log: &std::path::Path, now: &str) -> Daemon {
    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_NOW", now);
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

fn sent(g: &Gw) -> i64 {
    g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NOT NULL")
}

/// A file with one line without a plan (L04): rejected, one notice.
fn rejected(site: &str, dd: u32, month: u32) -> Bill {
    Bill::new(site, dd).line(BLine::month(NIR_NONE, site, month, "5"))
}

#[test]
fn notices_queued_while_the_relay_is_down_survive_restarts_and_arrive_once() {
    let port = free_port();
    let g = Gw::new_with(&format!("smtp_url = \"smtp://127.0.0.1:{port}\"\n"));
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    // Four files rejected, from two providers: four notices.
    let mut bills: Vec<(&str, Bill)> = vec![
        ("saadA", rejected(SITE_A, 2, 1)),
        ("saadA", rejected(SITE_A, 3, 2)),
        ("saadB", rejected(SITE_B, 4, 1)),
        ("saadB", rejected(SITE_B, 5, 2)),
    ];
    for (p, b) in &bills {
        g.drop_bill(p, b);
    }
    let log = g.dir.path().join("serve.log");
    let tried = |n: i64| {
        g.count(&format!(
            "SELECT COUNT(*) FROM mail_queue WHERE attempts >= {n} AND sent_at IS NULL AND failed_at IS NULL"
        ))
    };

    // First daemon (10:00): the files are processed, the notices queued,
    // and each is tried once against the missing relay (one a pass: a pass
    // stops at an unreachable relay; the clock does not move, so the one
    // tried is not due again in this run).
    let d = serve(&g, &log, "2026-11-20T10:00:00+01:00");
    wait_for(Duration::from_secs(60), "every notice tried once", || tried(1) == 4);
    stop(d, &log);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'"), 4);
    assert_eq!(sent(&g), 0);
    let errors: Vec<Vec<String>> = g.rows("SELECT last_error FROM mail_queue");
    assert!(
        errors
            .iter()
            .all(|e| e[0].to_lowercase().contains("connection refused")),
        "{errors:?}"
    );

    // Second daemon (10:10, past the first back-off), the relay still
    // down: tried again, then killed outright, whatever it was doing.
    let mut d = serve(&g, &log, "2026-11-20T10:10:00+01:00");
    wait_for(Duration::from_secs(60), "every notice tried twice", || tried(2) == 4);
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert_eq!(g.count("SELECT COUNT(*) FROM mail_queue WHERE sent_at IS NULL"), 4);

    // The relay comes up, and a third daemon (11:00, past the back-off and
    // any lease the kill left): every notice goes out.
    let sink = Sink::start(port, &g.dir.path().join("received"));
    let d = serve(&g, &log, "2026-11-20T11:00:00+01:00");
    wait_for(Duration::from_secs(60), "every notice delivered", || sent(&g) == 4);
    stop(d, &log);
    assert_eq!(sink.received().len(), 4);

    // A fourth daemon (12:00) with the relay up and a new rejected file:
    // its notice goes out, and it alone — once it has arrived, the passes
    // that sent it found nothing else due.
    let fifth = ("saadA", rejected(SITE_A, 6, 3));
    g.drop_bill(fifth.0, &fifth.1);
    let d = serve(&g, &log, "2026-11-20T12:00:00+01:00");
    wait_for(Duration::from_secs(60), "the fifth notice delivered", || {
        sent(&g) == 5 && sink.received().len() >= 5
    });
    stop(d, &log);
    bills.push(fifth);
    // By hand, later still: nothing is due.
    let out = g
        .cmd()
        .env("PPAS_GATEWAY_NOW", "2026-11-20T15:00:00+01:00")
        .args(["run", "mail"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("mail : 0 envoyé(s), 0 à réessayer, 0 en échec, 0 différé(s)"),
        "{}",
        text(&out.stdout)
    );

    let got = sink.received();
    let ids: Vec<String> = got
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (5, 5), "each once: {ids:?}");
    // Each queued notice is one of them: `<ppas-<row id>-…>`.
    let rows: Vec<Vec<String>> = g.rows("SELECT id FROM mail_queue ORDER BY id");
    assert_eq!(rows.len(), 5);
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
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'mail'"), 5);
    let logs = std::fs::read_to_string(&log).unwrap();
    for nir in ALL_NIRS {
        assert!(!logs.contains(nir), "NIR {nir} in the logs");
    }
}
