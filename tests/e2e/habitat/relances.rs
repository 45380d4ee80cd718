//! `run relances` with the clock set by `PPAS_GATEWAY_NOW`: both sides of
//! the 60-day boundary, one e-mail per order ever, never an order whose
//! attestation arrived, the listing rewritten, the spool lock.

use super::*;

/// Orders of ergo62 dated 21 and 22 September 2026: 60 days before 20 and
/// 21 November. One of ergo59 dated 1 October, one long attested.
fn gw_due() -> Gw {
    let g = gw();
    g.import(
        "orders",
        &orders_csv(&[
            "R21;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-21",
            "R22;04;62739900;1541299999001;MARTIN;Anne;2 rue;03 21 00 00 02;C;22/09/2026",
            "T01;04;62739900;1541299999002;DURAND;Paul;3 rue;03 21 00 00 03;PS;2026-06-01",
            "F01;04;59111100;2600321000002;BLANC;Marc;4 rue;03 20 00 00 04;C;2026-10-01",
        ]),
    );
    attest(&g, "T01", "T", "ergo62_att.xml", 1);
    g
}

fn relances(g: &Gw, now: &str) -> String {
    let out = run_at(g, now, &["run", "relances"]);
    expect(&out, 0);
    text(&out.stdout)
}

fn state(g: &Gw, rf: &str) -> String {
    g.rows(&format!("SELECT state FROM orders WHERE rf_commande = '{rf}'"))[0][0].clone()
}

fn relance_mails(g: &Gw) -> Vec<Mail> {
    sent_mails_at(g, "2027-06-01T00:00:00Z")
        .into_iter()
        .filter(|m| m.raw.contains("signal=C3=A9e en relance") || m.raw.contains("signalée en relance"))
        .collect()
}

#[test]
fn sixty_days_after_its_date_an_order_is_flagged_and_mailed_once() {
    let g = gw_due();
    // 19 November: nothing due yet (R21 + 60 days = 20 November).
    let out = relances(&g, "2026-11-19T18:00:00+01:00");
    assert!(
        out.starts_with("relances : 0 commande(s) signalée(s) en relance"),
        "{out}"
    );
    assert_eq!(state(&g, "R21"), "a_faire");

    // 20 November, 00:30 in Paris (23:30 UTC the day before): R21 is due, R22 not.
    let out = relances(&g, "2026-11-19T23:30:00Z");
    assert!(
        out.starts_with("relances : 1 commande(s) signalée(s) en relance (1 prestataire(s)), 1 e-mail(s) mis en file"),
        "{out}"
    );
    assert_eq!(
        (state(&g, "R21"), state(&g, "R22"), state(&g, "T01")),
        ("relance".into(), "a_faire".into(), "transmise".into())
    );
    let row = listing_row(&g, "ergo62", "R21");
    assert_eq!(row["État"], "relance");
    assert_eq!(row["Date de relance"], "20/11/2026");
    assert_eq!(listing_row(&g, "ergo62", "R22")["État"], "à faire");
    assert_listing_valid(&g, "ergo62");
    let mails = relance_mails(&g);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].is_about("R21") && mails[0].to.contains("cabinet@ergo62.example"),
        "{:?}",
        mails[0]
    );

    // Again the same day, and after a restart of nothing in particular: no second mail.
    relances(&g, "2026-11-20T09:00:00+01:00");
    relances(&g, "2026-11-20T17:00:00+01:00");
    assert_eq!(relance_mails(&g).len(), 1);

    // The next day R22 in turn; 1 December: F01 (1 October + 61 days).
    let out = relances(&g, "2026-11-21T08:00:00+01:00");
    assert!(out.starts_with("relances : 1 commande(s)"), "{out}");
    let out = relances(&g, "2026-12-01T08:00:00+01:00");
    assert!(out.starts_with("relances : 1 commande(s)"), "{out}");
    assert_eq!(state(&g, "F01"), "relance");
    assert_eq!(state(&g, "T01"), "transmise", "an attested order is never flagged");
    let mails = relance_mails(&g);
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(mails
        .iter()
        .any(|m| m.is_about("F01") && m.to.contains("cabinet@ergo59.example")));

    // One "job" history entry per run from the job, and one from the run's
    // record (interface "jobs").
    let h = g.rows(
        "SELECT interface, comment FROM history WHERE kind = 'job' AND application = 'habitat' AND interface = 'relances' ORDER BY id",
    );
    assert_eq!(h.len(), 6, "{h:?}");
    assert_eq!(
        g.count("SELECT COUNT(*) FROM history WHERE kind = 'job' AND application = 'habitat' AND interface = 'jobs'"),
        6
    );
    assert!(
        h[1][1].starts_with("relances : 1 commande sans attestation transmise 60 jours"),
        "{h:?}"
    );
    assert!(h[1][1].ends_with(": R21"), "{h:?}");
}

#[test]
fn an_attestation_arriving_before_the_date_prevents_the_relance() {
    let g = gw_due();
    relances(&g, "2026-11-19T12:00:00+01:00");
    attest(&g, "R21", "S", "ergo62_att_2.xml", 1);
    attest(&g, "R22", "T", "ergo62_att_2.xml", 2);
    let out = relances(&g, "2027-02-01T12:00:00+01:00");
    assert!(out.starts_with("relances : 1 commande(s)"), "F01 only: {out}");
    assert_eq!(
        (state(&g, "R21"), state(&g, "R22")),
        ("sans_suite".into(), "transmise".into())
    );
    assert!(relance_mails(&g)
        .iter()
        .all(|m| !m.is_about("R21") && !m.is_about("R22")));
    let row = listing_row(&g, "ergo62", "R21");
    assert_eq!(
        (row["État"].as_str(), row["Motif sans suite"].as_str()),
        ("sans suite", "INJOIGNABLE")
    );
}

#[test]
fn relances_wait_for_the_spool_lock() {
    let g = gw_due();
    let lock = ppas_gateway::pipeline::SpoolLock::try_acquire(&g.path("state/gateway.lock"))
        .unwrap()
        .expect("lock");
    let out = run_at(&g, "2026-12-01T08:00:00+01:00", &["run", "relances"]);
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains("another ppas-gateway instance is processing this spool"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(state(&g, "R21"), "a_faire");
    drop(lock);
    relances(&g, "2026-12-01T08:00:00+01:00");
    assert_eq!(state(&g, "R21"), "relance");
}
