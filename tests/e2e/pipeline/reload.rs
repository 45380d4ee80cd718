//! SIGHUP reloads what it says it reloads: the signal sent to the real
//! process, the configuration file rewritten by the operator. The log names
//! every changed key as applied or needing a restart, and the new values
//! are in force for what follows (log level, quiet period, mail sender); a
//! file that does not validate changes nothing.

use std::time::Duration;

use super::*;

/// The test gateway's configuration with the given section bodies.
fn config(g: &Gw, sftp: &str, intake: &str, mail: &str, log: &str) -> String {
    format!(
        "[paths]\nspool = {:?}\ndatabase = {:?}\n\n[sftp]\nenabled = false\n{sftp}\n[intake]\nrescan_secs = 1\n{intake}\n[mail]\npoll_secs = 1\n{mail}\n[log]\n{log}",
        g.spool.display().to_string(),
        g.spool.join("state/gateway.db").display().to_string()
    )
}

fn hup(d: &Daemon) {
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) }, 0);
}

fn log_of(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn sighup_applies_the_new_values_and_names_the_keys_needing_a_restart() {
    let g = Gw::with_cast();
    std::fs::write(&g.config, config(&g, "", "settle_ms = 300\n", "", "level = \"info\"\n")).unwrap();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    let first = Bill::new(SITE_A, 14).line(BLine::month(NIR_NONE, SITE_A, 1, "1"));
    g.drop_bill("saadA", &first);
    wait_for(Duration::from_secs(15), "first report", || {
        g.exists(&report_rel("saadA", &first, 1, "pdf"))
    });
    assert!(!log_of(&log).contains("DEBUG"), "debug lines before the reload");

    let new = config(
        &g,
        "listen = \"127.0.0.1:2299\"\n",
        "settle_ms = 200\nmax_attempts = 7\n",
        "from = \"passerelle@caisse.example\"\n",
        "level = \"debug\"\n",
    );
    std::fs::write(&g.config, new).unwrap();
    hup(&d);
    wait_for(Duration::from_secs(10), "the reload logged", || {
        log_of(&log).contains("SIGHUP: configuration reloaded")
    });
    let logs = log_of(&log);
    let line = logs
        .lines()
        .find(|l| l.contains("SIGHUP: configuration reloaded"))
        .unwrap();
    for key in ["log.level", "intake.settle_ms", "intake.max_attempts", "mail.from"] {
        assert!(line.contains(key), "{key} not named as applied: {line}");
    }
    assert!(
        line.contains("restart_needed") && line.contains("sftp.listen"),
        "{line}"
    );

    // The new level and sender are in force for what follows.
    let second = Bill::new(SITE_A, 15).line(BLine::month(NIR_NONE, SITE_A, 2, "1"));
    g.drop_bill("saadA", &second);
    wait_for(Duration::from_secs(15), "second report", || {
        g.exists(&report_rel("saadA", &second, 1, "pdf"))
    });
    wait_for(Duration::from_secs(15), "debug lines after the reload", || {
        log_of(&log).contains("DEBUG")
    });
    wait_for(Duration::from_secs(15), "the second notice", || {
        g.mails().iter().any(|m| m.is_about(&second.name()))
    });
    let mail = g.mails().into_iter().find(|m| m.is_about(&second.name())).unwrap();
    assert!(
        mail.raw.contains("passerelle@caisse.example"),
        "sender not reloaded:\n{}",
        mail.raw
    );

    // A configuration that does not validate changes nothing.
    std::fs::write(&g.config, "[intake]\nsettle_ms = \"soon\"\n").unwrap();
    hup(&d);
    wait_for(Duration::from_secs(10), "the refusal logged", || {
        log_of(&log).contains("SIGHUP: configuration refused, keeping the running one")
    });
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon stopped");
    let third = Bill::new(SITE_A, 16).line(BLine::month(NIR_A1, SITE_A, 3, "1"));
    g.drop_bill("saadA", &third);
    wait_for(Duration::from_secs(15), "third report", || {
        g.exists(&report_rel("saadA", &third, 1, "pdf"))
    });
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
}
