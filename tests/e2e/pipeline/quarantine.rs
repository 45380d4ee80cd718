//! A file that keeps failing (here: a panic provoked inside the decision,
//! through the debug build's fault hook) is caught at every attempt, on
//! every path, and quarantined after `[intake] max_attempts`; `retry` puts
//! it back. `process --once` exits 2, never with a crash code.

use std::time::Duration;

use super::*;

fn gateway(max_attempts: u32) -> Gw {
    let g = Gw::new_intake(&format!("settle_ms = 300\nmax_attempts = {max_attempts}\n"), "");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    g
}

/// `process --once` with a panic provoked in the decision of `bad`.
fn process_with_panic(g: &Gw, bad: &Bill) -> std::process::Output {
    g.cmd()
        .env("PPAS_GATEWAY_FAULT", format!("decide:{}", bad.rf_borfact()))
        .args(["process", "--once"])
        .output()
        .unwrap()
}

fn status(g: &Gw) -> serde_json::Value {
    let out = g.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_str(text(&out.stdout).trim()).unwrap()
}

#[test]
fn a_file_that_panics_is_caught_each_time_then_quarantined_and_retried() {
    let g = gateway(3);
    let bad = Bill::new(SITE_A, 5).line(BLine::month(NIR_A1, SITE_A, 5, "2"));
    let good = Bill::new(SITE_A, 6).line(BLine::month(NIR_A1, SITE_A, 6, "2"));
    g.drop_bill("saadA", &bad);
    g.drop_bill("saadA", &good);
    for attempt in 1..=3 {
        let out = process_with_panic(&g, &bad);
        assert_eq!(out.status.code(), Some(2), "attempt {attempt}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("fault injected"), "{}", text(&out.stderr));
    }
    assert_eq!(
        report(&g, "saadA", &good, 1).verdict,
        "accepted",
        "the other file is not held up"
    );
    let quarantined = g.files("quarantine/saadA");
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(g.files("work").is_empty(), "{:?}", g.files("work"));
    let s = status(&g);
    let q = &s["quarantined"][0];
    assert_eq!(
        (q["name"].as_str(), q["attempts"].as_u64()),
        (Some(bad.name().as_str()), Some(3))
    );
    assert!(q["last_error"].as_str().unwrap().contains("panic"), "{q}");
    let human = text(&g.run(&["status"]).stdout);
    assert!(
        human.contains("quarantined     1") && human.contains(&bad.name()),
        "{human}"
    );

    // No longer retried: a pass with the fault still on exits 0.
    let out = process_with_panic(&g, &bad);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("fault injected"),
        "a quarantined file was retried"
    );

    let out = g.run(&["retry", "nothing-like-it.xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = g.run(&["retry", &bad.name()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&bad.name()), "{}", text(&out.stdout));
    process(&g, 0);
    assert_eq!(report(&g, "saadA", &bad, 1).verdict, "accepted");
    assert!(g.files("quarantine").is_empty(), "{:?}", g.files("quarantine"));
    assert_eq!(status(&g)["quarantined"].as_array().unwrap().len(), 0);
}

#[test]
fn the_daemon_survives_a_panicking_file_at_start_and_at_every_rescan() {
    let g = gateway(3);
    let bad = Bill::new(SITE_A, 7).line(BLine::month(NIR_A1, SITE_A, 7, "2"));
    let early = Bill::new(SITE_A, 8).line(BLine::month(NIR_A1, SITE_A, 8, "2"));
    let late = Bill::new(SITE_B, 9).line(BLine::month(NIR_B1, SITE_B, 9, "2"));
    g.drop_bill("saadA", &bad);
    g.drop_bill("saadA", &early);
    let log = g.dir.path().join("serve.log");
    let mut cmd = g.cmd();
    cmd.env("PPAS_GATEWAY_FAULT", format!("decide:{}", bad.rf_borfact()));
    let mut d = Daemon::start_with(cmd, &log);
    d.wait_ready(Duration::from_secs(20));
    wait_for(Duration::from_secs(20), "the bad file quarantined", || {
        g.files("quarantine/saadA").len() == 1
    });
    g.drop_bill("saadB", &late);
    wait_for(Duration::from_secs(15), "a file dropped afterwards", || {
        g.exists(&report_rel("saadB", &late, 1, "pdf"))
    });
    assert!(g.exists(&report_rel("saadA", &early, 1, "pdf")));
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon died");
    let s = status(&g);
    assert_eq!(s["daemon_running"], true);
    assert_eq!(s["quarantined"].as_array().unwrap().len(), 1);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logs.matches("quarantined after failing again and again").count(),
        1,
        "logged once:\n{logs}"
    );
    // Put back while the daemon runs: tried again (and quarantined again,
    // the fault being still there).
    let out = g.run(&["retry", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("le service les reprend"),
        "{}",
        text(&out.stdout)
    );
    wait_for(Duration::from_secs(20), "retried by the daemon", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("quarantined after failing again and again")
            .count()
            == 2
    });
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
}
