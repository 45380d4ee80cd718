//! The provider's history listing: its own entries of the last 6 months
//! (Paris days, both ends), newest first, in the form of `history --format
//! csv`; marked owed by every entry of the provider; written by the
//! outbound publisher as `historique.csv` alone.

use super::*;
use crate::habitat::Listing;
use crate::history::format::CSV_COLUMNS;
use crate::history::{record, Entry};
use chrono::{DateTime, Utc};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn add(c: &Connection, t: &str, provider: Option<&str>, comment: &str) {
    record(
        c,
        at(t),
        &Entry {
            kind: "processed",
            id_cram: Some("03"),
            application: "aide-a-domicile",
            interface: "facturation",
            provider,
            convention: Some("21999000"),
            comment: comment.into(),
            ..Default::default()
        },
    )
    .unwrap();
}

fn caisses() -> Caisses {
    crate::config::Config::default().billing.caisses
}

/// The rows of a rendered listing (BOM checked and dropped).
fn rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(bytes.starts_with("\u{FEFF}".as_bytes()), "BOM");
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(!text.replace("\r\n", "").contains('\n'), "CRLF line ends: {text:?}");
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn wanted(c: &Connection, provider: &str) -> i64 {
    c.query_row(
        "SELECT wanted FROM listings WHERE provider = ?1 AND kind = 'historique'",
        [provider],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn six_months_of_its_own_entries_newest_first_in_paris_days() {
    let c = crate::store::open_in_memory().unwrap();
    // Today is 25/11/2026 in Paris: the window is 25/05/2026 – 25/11/2026.
    add(
        &c,
        "2026-05-24T21:59:59Z",
        Some("saad21"),
        "24/05 23:59:59 Paris: too old",
    );
    add(
        &c,
        "2026-05-24T22:00:00Z",
        Some("saad21"),
        "25/05 00:00 Paris: first kept",
    );
    add(&c, "2026-08-01T08:00:00Z", Some("saad42"), "another provider's");
    add(&c, "2026-08-01T09:00:00Z", None, "nobody's (a job)");
    add(
        &c,
        "2026-11-25T22:59:59Z",
        Some("saad21"),
        "=25/11 23:59:59 Paris: last kept",
    );
    add(&c, "2026-11-25T23:00:00Z", Some("saad21"), "26/11 Paris: not yet");

    let out = render(&c, "saad21", day("2026-11-25"), &caisses()).unwrap();
    let got = rows(&out);
    assert_eq!(got[0], CSV_COLUMNS, "the columns of `history --format csv`");
    let listed: Vec<(&str, &str)> = got[1..].iter().map(|r| (r[0].as_str(), r[10].as_str())).collect();
    assert_eq!(
        listed,
        [
            ("2026-11-25 23:59:59", "'=25/11 23:59:59 Paris: last kept"),
            ("2026-05-25 00:00:00", "25/05 00:00 Paris: first kept"),
        ],
        "newest first, Paris time, formulas guarded"
    );
    let r = &got[1];
    assert_eq!(
        (
            &r[1][..],
            &r[2][..],
            &r[3][..],
            &r[4][..],
            &r[5][..],
            &r[8][..],
            &r[9][..]
        ),
        (
            "2026-11",
            "processed",
            "Régime général",
            "03",
            "Carsat Bourgogne et Franche-Comté",
            "saad21",
            "21999000"
        )
    );

    // Exactly what the history command writes for that period and provider.
    let mut f = crate::history::query::Filter::period(day("2026-05-25"), day("2026-11-25")).unwrap();
    f.provider = Some("saad21".into());
    let mut expected = Vec::new();
    let mut w = CsvOut::new(&mut expected).unwrap();
    query::for_each(&c, &f, |r| Ok(w.row(&r, &caisses())?)).unwrap();
    w.finish().unwrap();
    assert_eq!(out, expected);

    // A provider without entries gets the header alone.
    let empty = render(&c, "ergo62", day("2026-11-25"), &caisses()).unwrap();
    assert_eq!(rows(&empty), [CSV_COLUMNS.map(str::to_string).to_vec()]);
}

#[test]
fn the_window_moves_with_the_day_and_clamps_to_short_months() {
    assert_eq!(
        crate::retention::keep_from(day("2026-08-31"), MONTHS),
        day("2026-02-28")
    );
    assert_eq!(
        crate::retention::keep_from(day("2028-08-31"), MONTHS),
        day("2028-02-29")
    );
    let c = crate::store::open_in_memory().unwrap();
    add(&c, "2026-05-25T08:00:00Z", Some("saad21"), "25/05");
    let n = |d: &str| rows(&render(&c, "saad21", day(d), &caisses()).unwrap()).len() - 1;
    assert_eq!(n("2026-11-25"), 1);
    assert_eq!(n("2026-11-26"), 0, "out of the window the next day");
}

#[test]
fn an_entry_of_a_provider_marks_its_listing_in_the_same_transaction() {
    let mut c = crate::store::open_in_memory().unwrap();
    add(&c, "2026-11-02T09:00:00Z", Some("saad21"), "autocommit");
    assert_eq!(wanted(&c, "saad21"), 1);
    add(&c, "2026-11-02T09:00:00Z", None, "nobody's");
    add(&c, "2026-11-02T09:00:00Z", Some(""), "empty provider");
    assert_eq!(
        c.query_row("SELECT COUNT(*) FROM listings", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        1,
        "no listing for an entry without a provider"
    );

    // Rolled back with the change it records: neither entry nor mark.
    let tx = c.transaction().unwrap();
    add(&tx, "2026-11-02T10:00:00Z", Some("saad21"), "rolled back");
    add(&tx, "2026-11-02T10:00:00Z", Some("ergo62"), "rolled back");
    assert_eq!(wanted(&tx, "saad21"), 2);
    drop(tx);
    assert_eq!((wanted(&c, "saad21"), wanted(&c, "ergo62")), (1, 0));
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM history WHERE comment = 'rolled back'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 0);

    let tx = c.transaction().unwrap();
    add(&tx, "2026-11-02T10:00:00Z", Some("saad21"), "committed");
    tx.commit().unwrap();
    assert_eq!(wanted(&c, "saad21"), 2);
}

#[test]
fn the_publisher_writes_the_csv_alone_and_again_after_each_entry() {
    let k = crate::import::testkit::Kit::new();
    let mut conn = k.conn;
    let cfg = k.cfg;
    // What the providers import left owed is written first.
    let now = at("2026-11-25T09:00:00Z");
    crate::outbound::publish_due(&mut conn, &cfg, now).unwrap();
    let path = cfg.paths.spool.join("outbound/saad21/historique.csv");

    add(&conn, "2026-11-20T08:00:00Z", Some("saad21"), "fichier A traité");
    add(&conn, "2026-11-20T08:00:00Z", Some("ergo62"), "fichier de ergo62");
    let p = crate::outbound::publish_due(&mut conn, &cfg, now).unwrap();
    assert_eq!(p.listings, 2);
    let first = std::fs::read(&path).unwrap();
    assert_eq!(first, render(&conn, "saad21", day("2026-11-25"), &caisses()).unwrap());
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("fichier A traité") && !text.contains("ergo62"), "{text}");
    assert!(!cfg.paths.spool.join("outbound/saad21/historique.xml").exists());

    // Nothing new: nothing written.
    assert_eq!(crate::outbound::publish_due(&mut conn, &cfg, now).unwrap().listings, 0);

    // A new exchange of saad21: rewritten with it, ergo62's left alone.
    add(&conn, "2026-11-25T08:30:00Z", Some("saad21"), "fichier B traité");
    let p = crate::outbound::publish_due(&mut conn, &cfg, now).unwrap();
    assert_eq!(p.listings, 1);
    let again = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    let b = again.find("fichier B").unwrap();
    let a = again.find("fichier A").unwrap();
    assert!(b < a, "newest first: {again}");
    assert_eq!(
        conn.query_row(
            "SELECT COUNT(*) FROM listings WHERE kind = ?1 AND written < wanted",
            [Listing::Historique.as_str()],
            |r| r.get::<_, i64>(0)
        )
        .unwrap(),
        0
    );
}
