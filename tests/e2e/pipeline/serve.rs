//! `serve` as systemd runs it: drops taken at once, a second processing
//! instance refused, SIGTERM; a stalled writer never has its file taken;
//! and no NIR in any log.

use std::io::Read;
use std::time::Duration;

use super::*;

/// When the log line with `message` about `file` was written (the log's own
/// timestamp, RFC 3339 at the start of the line, colours stripped).
fn log_time(logs: &str, message: &str, file: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    logs.lines().find_map(|l| {
        let plain = strip_ansi(l);
        if !(plain.contains(message) && plain.contains(file)) {
            return None;
        }
        let stamp = plain.split_whitespace().next()?;
        chrono::DateTime::parse_from_rfc3339(stamp)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn serve_processes_drops_refuses_a_second_instance_and_stops_on_sigterm() {
    let g = Gw::with_cast();
    // Present before start.
    let early = Bill::new(SITE_A, 25).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    g.drop_bill("saadA", &early);
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    wait_for(Duration::from_secs(10), "file present at start", || {
        g.exists(&report_rel("saadA", &early, 1, "pdf"))
    });

    // Dropped while running (written under a temp name, renamed in). The
    // daemon must take it at once (the rename is an event): measured from
    // its own log, so that a loaded machine slowing the processing itself
    // (fsyncs, a debug build) does not blur what is under test.
    let late = Bill::new(SITE_B, 26).line(BLine::month(NIR_B1, SITE_B, 2, "5"));
    let dropped_at = chrono::Utc::now();
    g.drop_bill("saadB", &late);
    let took = wait_for(Duration::from_secs(10), "file dropped while running", || {
        g.exists(&report_rel("saadB", &late, 1, "pdf"))
    });
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let taken_at =
        log_time(&logs, "file received", &late.name()).unwrap_or_else(|| panic!("no reception logged:\n{logs}"));
    let pickup = (taken_at - dropped_at).to_std().unwrap_or_default();
    eprintln!("serve: dropped file taken after {pickup:?}, outputs written after {took:?}");
    assert!(
        pickup < Duration::from_millis(1000),
        "a dropped file was taken after {pickup:?}; logs:\n{logs}"
    );
    assert_eq!(report(&g, "saadB", &late, 1).verdict, "accepted");
    assert_eq!(outbox_lines(&g, &late), vec![line_of(&late.lines[0])]);
    // The mail worker sends the notice of the partial file.
    wait_for(Duration::from_secs(10), "e-mail notice", || {
        g.mails().iter().any(|m| m.is_about(&early.name()))
    });

    // A second processing instance is refused while serve holds the spool.
    let out = g.process();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("lock"), "{}", text(&out.stderr));

    let (code, took) = d.terminate();
    assert_eq!(
        code,
        Some(0),
        "serve exit code; logs:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert_no_nir(&logs, "serve");
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'"), 2);
    assert!(g.files("inbound").is_empty() && g.files("work").is_empty());
    // Once it is stopped, process --once may run (and finds nothing).
    let out = g.process();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn serve_never_takes_a_file_still_open_for_writing() {
    use std::io::Write;
    let g = Gw::with_cast();
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    // A provider's program writes the file in place, slowly: it stalls
    // half-way for longer than a rescan and than the settle delay.
    let bill = Bill::new(SITE_A, 30).lines((1..=6).map(|m| BLine::month(NIR_A1, SITE_A, m, "2")));
    let xml = bill.xml();
    let (head, tail) = xml.split_at(xml.len() / 2);
    let dir = g.path("inbound/saadA");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::File::create(dir.join(bill.name())).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    // Absence cannot be polled for: wait past three rescans (1 s) and the
    // 2 s settle delay of files seen only by a rescan.
    std::thread::sleep(Duration::from_millis(3500));
    let taken = g.count("SELECT COUNT(*) FROM received_files");
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    wait_for(Duration::from_secs(10), "file processed once closed", || {
        g.exists(&report_rel("saadA", &bill, 1, "xml"))
    });
    let r = report(&g, "saadA", &bill, 1);
    let _ = d.terminate();
    assert_eq!(taken, 0, "the file was taken while still open for writing");
    assert_eq!(r.verdict, "accepted", "{r:?}");
}

#[test]
fn logs_never_show_a_nir_even_at_debug_level() {
    let g = Gw::new_with("\n[log]\nlevel = \"debug\"\n");
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let mut bad_nir = BLine::month(NIR_A1, SITE_A, 4, "1");
    bad_nir.nir = format!("{NIR_A1}9"); // L02, and the value echoed nowhere in the logs
    let bill = Bill::new(SITE_A, 27).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 2, "5"),
        BLine::month(NIR_A2, SITE_A, 3, "30"),
        bad_nir,
    ]);
    let p = g.drop_bill("saadA", &bill);
    let out = g.run(&["validate", p.to_str().unwrap()]);
    assert_no_nir(&text(&out.stderr), "validate");
    let logs = process(&g, 1);
    assert_no_nir(&logs, "process --once at debug level");
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "partial");
    let mut f = std::fs::File::open(g.path(&report_rel("saadA", &bill, 1, "xml"))).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert!(
        s.contains("L02") && s.contains("L08") && s.contains("L04") && s.contains("L07"),
        "{s}"
    );
}
