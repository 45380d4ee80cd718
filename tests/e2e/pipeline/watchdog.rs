//! The systemd watchdog never kills a daemon that is working: with a
//! watchdog period of half a second, a backlog that takes several seconds
//! at start (files whose reports run to many pages) must not open a gap of
//! a period between two WATCHDOG=1 notifications. The notify socket is a real
//! datagram socket, read the way systemd reads it.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::time::Duration;

use super::*;

#[test]
fn a_long_backlog_at_start_keeps_the_watchdog_fed() {
    let g = Gw::with_cast();
    // Every line for a NIR without a plan: rejected lines, long reports.
    let bills: Vec<Bill> = (1..=12)
        .map(|d| {
            Bill::new(SITE_A, d).lines((0..2000).map(|i| {
                BLine::new(
                    NIR_NONE,
                    SITE_A,
                    &format!("2026-0{}-01", 1 + i % 9),
                    &format!("2026-0{}-02", 1 + i % 9),
                    "1",
                )
            }))
        })
        .collect();
    for b in &bills {
        g.drop_bill("saadA", b);
    }
    let socket_path = g.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let seen: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (seen, stop) = (seen.clone(), stop.clone());
        move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    seen.lock().unwrap().push((Instant::now(), msg));
                }
            }
        }
    });
    let log = g.dir.path().join("serve.log");
    let mut cmd = g.cmd();
    let period = Duration::from_millis(500);
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", period.as_micros().to_string());
    let started = Instant::now();
    let d = Daemon::start_with(cmd, &log);
    wait_for(Duration::from_secs(120), "the backlog", || {
        bills.iter().all(|b| g.exists(&report_rel("saadA", b, 1, "pdf")))
    });
    let backlog = started.elapsed();
    // Some more pings while idle.
    std::thread::sleep(Duration::from_millis(1200));
    let (code, _) = d.terminate();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(code, Some(0));
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|(_, m)| m.contains("READY=1")), "{seen:?}");
    let pings: Vec<Instant> = seen
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        backlog > period * 4,
        "the backlog took only {backlog:?}: too short to prove anything"
    );
    assert!(!pings.is_empty(), "no WATCHDOG=1 at all: {seen:?}");
    let first_gap = pings[0] - started;
    let worst = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    eprintln!(
        "backlog {backlog:?}, {} pings, first after {first_gap:?}, worst gap {worst:?}",
        pings.len()
    );
    assert!(first_gap < Duration::from_secs(1), "first ping after {first_gap:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a gap of {worst:?} between pings: systemd would have killed it"
    );
    assert!(
        *pings.last().unwrap() > started + backlog,
        "pings stopped before the backlog was done"
    );
}
