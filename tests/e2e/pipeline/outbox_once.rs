//! The payment chain receives each outbox file once (spec §2): a failure
//! after the outbox file is written — here a reports folder that cannot be
//! written, even by root — never makes a later pass write it again, even
//! though the payment chain has taken it away meanwhile.

use std::time::Duration;

use super::*;

/// Puts a file where `outbound/<provider>/reports/` should be: every write
/// there fails, root included. Returns its path, to lift the block.
fn block_reports(g: &Gw, provider: &str) -> std::path::PathBuf {
    let reports = g.path(&format!("outbound/{provider}/reports"));
    std::fs::create_dir_all(reports.parent().unwrap()).unwrap();
    std::fs::write(&reports, b"blocked").unwrap();
    reports
}

#[test]
fn an_outbox_file_taken_by_the_payment_chain_never_comes_back() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "12.5"),
        BLine::month(NIR_A1, SITE_A, 2, "3"),
    ]);
    let blocked = block_reports(&g, "saadA");
    g.drop_bill("saadA", &bill);
    let out = g.process();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        g.exists(&outbox_rel(&bill)),
        "the outbox file is delivered before the reports"
    );
    let delivered = g.read(&outbox_rel(&bill));

    // The payment chain consumes it: moved away.
    let chain = g.dir.path().join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::rename(g.path(&outbox_rel(&bill)), chain.join(bill.name())).unwrap();

    // Passes while the folder is still blocked, then once it is lifted.
    for _ in 0..2 {
        let out = g.process();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            !g.exists(&outbox_rel(&bill)),
            "the outbox file came back while reports failed"
        );
    }
    std::fs::remove_file(&blocked).unwrap();
    process(&g, 0);
    assert!(
        !g.exists(&outbox_rel(&bill)),
        "the outbox file came back once the reports could be written"
    );
    assert!(g.files("outbox").is_empty(), "{:?}", g.files("outbox"));
    assert_eq!(std::fs::read_to_string(chain.join(bill.name())).unwrap(), delivered);
    assert_eq!(report(&g, "saadA", &bill, 1).verdict, "accepted");
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'outbox'"), 1);
    assert_eq!(g.count("SELECT COUNT(*) FROM received_files WHERE state = 'done'"), 1);
    // Nothing staged or hidden left behind in the payment chain's folder.
    let hidden: Vec<_> = std::fs::read_dir(g.path("outbox/03"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn the_daemon_does_not_write_it_again_at_its_rescans_either() {
    let g = Gw::with_cast();
    let bill = Bill::new(SITE_A, 3).line(BLine::month(NIR_A1, SITE_A, 3, "4"));
    let blocked = block_reports(&g, "saadA");
    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(20));
    g.drop_bill("saadA", &bill);
    wait_for(Duration::from_secs(15), "outbox file delivered", || {
        g.exists(&outbox_rel(&bill))
    });
    std::fs::remove_file(g.path(&outbox_rel(&bill))).unwrap();
    // Rescans every second retry the reports; the outbox stays taken.
    wait_for(Duration::from_secs(15), "two more failed attempts", || {
        g.count("SELECT attempts FROM received_files") >= 3
    });
    assert!(!g.exists(&outbox_rel(&bill)));
    std::fs::remove_file(&blocked).unwrap();
    wait_for(Duration::from_secs(15), "reports once unblocked", || {
        g.exists(&report_rel("saadA", &bill, 1, "pdf"))
    });
    assert!(!g.exists(&outbox_rel(&bill)), "the outbox file came back");
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(g.count("SELECT COUNT(*) FROM history WHERE kind = 'outbox'"), 1);
}
