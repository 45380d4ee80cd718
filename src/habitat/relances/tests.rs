//! Relances: both sides of the 60-day boundary on the Paris day, once per
//! order whatever happens, never for an order with an attestation.

use chrono::{DateTime, Utc};

use super::*;
use crate::import::testkit::Kit;

fn at(s: &str) -> Clock {
    Clock::Fixed(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

/// Orders of ergo62 dated 3 and 4 September 2026 (60 days before 2 and 3
/// November), one transmitted and one sans suite long ago, one closed;
/// one of ergo59 dated 1 August.
fn kit() -> Kit {
    let mut k = Kit::new();
    k.orders(
        "R03;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;2026-09-03\n\
         R04;04;62739900;1541299999001;MARTIN;Anne;2 rue;03 21 00 00 02;C;04/09/2026\n\
         T01;04;62739900;1541299999002;DURAND;Paul;3 rue;03 21 00 00 03;PS;2026-06-01\n\
         S01;04;62739900;1541299999003;PETIT;Luc;4 rue;03 21 00 00 04;PS;2026-06-01\n\
         K01;04;62739900;1541299999004;ROUX;Léa;5 rue;03 21 00 00 05;PS;2026-06-01\n\
         F01;04;59111100;2600321000002;BLANC;Marc;6 rue;03 20 00 00 06;C;2026-08-01\n",
    );
    k.attest("T01", "T", "att.xml", 1);
    k.attest("S01", "S", "att.xml", 2);
    k.conn
        .execute(
            "UPDATE orders SET state = 'clos', closed_at = '2026-10-01T00:00:00Z' WHERE rf_commande = 'K01'",
            [],
        )
        .unwrap();
    k
}

fn relance_mails(k: &Kit) -> Vec<(String, String, String)> {
    k.conn
        .prepare("SELECT dedup_key, recipients, subject FROM mail_queue WHERE dedup_key LIKE 'relance:%' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn job_entries(k: &Kit) -> Vec<String> {
    k.conn
        .prepare("SELECT comment FROM history WHERE kind = 'job' AND application = 'habitat' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_boundary_is_sixty_days_on_the_paris_day() {
    assert_eq!(
        due_on_or_before(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()),
        NaiveDate::from_ymd_opt(2026, 9, 3).unwrap()
    );
    let mut k = kit();
    // 1 November 23:30 UTC is already 2 November in Paris: R03 (3 September) is due, R04 not.
    let clock = at("2026-11-01T23:30:00Z");
    let cfg = k.cfg.clone();
    let s = run(&mut k.conn, &cfg, &clock).unwrap();
    assert_eq!((s.flagged, s.providers, s.mails), (2, 2, 2), "{s:?}");
    assert_eq!(k.state("R03"), "relance");
    assert_eq!(k.state("F01"), "relance");
    assert_eq!(k.state("R04"), "a_faire");
    for (rf, state) in [("T01", "transmise"), ("S01", "sans_suite"), ("K01", "clos")] {
        assert_eq!(k.state(rf), state, "{rf} is never flagged");
    }
    assert_eq!(
        k.text("SELECT relance_at FROM orders WHERE rf_commande = 'R03'"),
        "2026-11-01T23:30:00Z"
    );
    let m = relance_mails(&k);
    assert_eq!(
        m,
        [
            (
                "relance:F01".to_string(),
                "cabinet@ergo59.example".to_string(),
                "PPAS : relance de la commande d'intervention F01".to_string()
            ),
            (
                "relance:R03".to_string(),
                "alice@ergo62.example".to_string(),
                "PPAS : relance de la commande d'intervention R03".to_string()
            ),
        ]
    );
    let body = k.text("SELECT body FROM mail_queue WHERE dedup_key = 'relance:R03'");
    assert!(
        body.contains("La commande d'intervention R03 du 03/09/2026 (caisse 04, convention 62739900)"),
        "{body}"
    );
    assert!(!body.contains("1541299999000") && !body.contains("DUPONT"), "{body}");

    // Listings marked and written.
    assert_eq!(s.published.listings, 2);
    let csv = String::from_utf8(std::fs::read(k.path("outbound/ergo62/commandes.csv")).unwrap()).unwrap();
    assert!(
        csv.contains(
            "R03;04;62739900;1541299999000;DUPONT;Jean;1 rue;03 21 00 00 01;PS;03/09/2026;relance;02/11/2026;"
        ),
        "{csv}"
    );
    assert!(
        csv.contains("R04;04;62739900;1541299999001;MARTIN;Anne;2 rue;03 21 00 00 02;C;04/09/2026;à faire;;"),
        "{csv}"
    );

    // One history entry for the run.
    let h = job_entries(&k);
    assert_eq!(h.len(), 1);
    assert!(
        h[0].starts_with("relances : 2 commandes sans attestation transmise 60 jours après sa date signalées en relance (commandes datées du 03/09/2026 ou avant) : F01, R03"),
        "{h:?}"
    );

    // The next Paris day: R04 in turn, nothing again for the others.
    let s = run(&mut k.conn, &cfg, &at("2026-11-02T23:00:00Z")).unwrap();
    assert_eq!((s.flagged, s.mails), (1, 1));
    assert_eq!(k.state("R04"), "relance");
    assert_eq!(relance_mails(&k).len(), 3);
}

#[test]
fn a_run_again_flags_nothing_and_mails_nobody() {
    let mut k = kit();
    let cfg = k.cfg.clone();
    let clock = at("2026-11-10T09:00:00+01:00");
    let first = run(&mut k.conn, &cfg, &clock).unwrap();
    assert_eq!(first.flagged, 3);
    let listings = (k.listing("ergo62"), k.listing("ergo59"));
    for later in [
        "2026-11-10T09:00:00+01:00",
        "2026-11-11T09:00:00+01:00",
        "2027-03-01T09:00:00+01:00",
    ] {
        let s = run(&mut k.conn, &cfg, &at(later)).unwrap();
        assert_eq!(
            (s.flagged, s.providers, s.mails, s.published),
            (0, 0, 0, Published::default())
        );
    }
    assert_eq!(relance_mails(&k).len(), 3);
    assert_eq!((k.listing("ergo62"), k.listing("ergo59")), listings);
    let h = job_entries(&k);
    assert_eq!(h.len(), 4, "one entry per run");
    assert!(h[3].starts_with("relances : 0 commande sans attestation"), "{h:?}");

    // Even an order put back to "à faire" by hand is not mailed twice.
    k.conn
        .execute("UPDATE orders SET state = 'a_faire' WHERE rf_commande = 'R03'", [])
        .unwrap();
    let s = run(&mut k.conn, &cfg, &at("2027-03-02T09:00:00+01:00")).unwrap();
    assert_eq!((s.flagged, s.mails), (1, 0));
    assert_eq!(relance_mails(&k).len(), 3);
}

#[test]
fn an_order_whose_attestation_arrives_is_never_flagged() {
    let mut k = kit();
    let cfg = k.cfg.clone();
    // Before the boundary, the attestation arrives.
    let s = run(&mut k.conn, &cfg, &at("2026-10-01T09:00:00+02:00")).unwrap();
    assert_eq!(s.flagged, 1, "F01 (1 August) only");
    assert_eq!(k.state("R04"), "a_faire");
    k.attest("R04", "T", "att2.xml", 1);
    let s = run(&mut k.conn, &cfg, &at("2027-01-01T09:00:00+01:00")).unwrap();
    assert_eq!(s.flagged, 1, "R03 only");
    assert_eq!(k.state("R04"), "transmise");
    assert!(relance_mails(&k).iter().all(|(key, _, _)| key != "relance:R04"));
}
