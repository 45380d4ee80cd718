//! Invoicing as the caisse runs it (spec §6): attestation files dropped by
//! the ergothérapeutes and processed at chosen instants, then `run
//! invoice-threshold` and `run invoice-weekly` under `PPAS_GATEWAY_NOW`:
//! both sides of 48 hours and of 50 lines, each line in one invoice ever,
//! the files in `outbox/<id-cram>/invoices/` valid against
//! `schema/facture.xsd`, written once (a crash between the invoice's commit
//! and its delivery, the payment chain taking the file away), the e-mails
//! and the history.

use std::collections::BTreeMap;

use crate::habitat::{expect, orders_csv, run_at, sent_mails_at, PROVIDERS};
use crate::pipeline_support::*;

/// Attestations transmitted on 20 November 2026 at 10:00 in Paris (the
/// tests' clock): due on 22 November at 10:00.
const DUE: &str = "2026-11-22T10:00:00+01:00";
const JUST_BEFORE_DUE: &str = "2026-11-22T09:59:59+01:00";
/// A day later: due on 23 November at 10:00.
const LATER: &str = "2026-11-21T10:00:00+01:00";

/// Orders: `n62` of ergo62 under 04/62739900 (A001…), `n59` of ergo59
/// under 04/59111100 (B001…).
fn gw(n62: usize, n59: usize) -> Gw {
    let g = Gw::new_with("\n[habitat]\nvisit_fee = 140\n[habitat.visit_fees]\n04 = 150\n");
    g.import("providers", PROVIDERS);
    let mut rows = Vec::new();
    for i in 1..=n62 {
        rows.push(format!(
            "A{i:03};04;62739900;15412999{i:05};NOM;Prenom;1 rue 62000 Arras;03 21 00 00 01;PS;2026-09-01"
        ));
    }
    for i in 1..=n59 {
        rows.push(format!(
            "B{i:03};04;59111100;26003210{i:05};NOM;Prenom;1 rue 59000 Lille;03 20 00 00 01;C;2026-09-01"
        ));
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    g.import("orders", &orders_csv(&rows));
    g
}

/// An attestation file of visits (statut T, 10 November) for orders
/// `prefix` `from..=to` of convention `conv`, NIRs as [`gw`] made them.
fn visits(prefix: &str, conv: &str, nir: &str, from: usize, to: usize) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n");
    for i in from..=to {
        s.push_str(&format!(
            "  <attvisite>\n    <rf-commande>{prefix}{i:03}</rf-commande>\n    <id-cram>04</id-cram>\n    \
             <code-convention>{conv}</code-convention>\n    <nir-per>{nir}{i:05}</nir-per>\n    \
             <statut>T</statut>\n    <dt-visite>10/11/2026</dt-visite>\n  </attvisite>\n"
        ));
    }
    s.push_str("</attvisites>\n");
    s
}

/// ergo62 attests A`from..=to`, processed with the clock at `now`.
fn attest62(g: &Gw, name: &str, from: usize, to: usize, now: &str) {
    g.drop_file("ergo62", name, visits("A", "62739900", "15412999", from, to).as_bytes());
    expect(&run_at(g, now, &["process", "--once"]), 0);
}

/// ergo59 attests B`from..=to`, processed with the clock at `now`.
fn attest59(g: &Gw, name: &str, from: usize, to: usize, now: &str) {
    g.drop_file("ergo59", name, visits("B", "59111100", "26003210", from, to).as_bytes());
    expect(&run_at(g, now, &["process", "--once"]), 0);
}

/// `run invoice-threshold|invoice-weekly` at `now`: its line of output.
fn invoice(g: &Gw, job: &str, now: &str) -> String {
    let out = run_at(g, now, &["run", job]);
    expect(&out, 0);
    text(&out.stdout).trim_end().to_string()
}

/// The invoice files the payment chain takes (not the hidden ones),
/// spool-relative.
fn invoice_files(g: &Gw) -> Vec<String> {
    g.files("outbox")
        .into_iter()
        .filter(|f| f.contains("/invoices/") && !f.rsplit('/').next().unwrap_or("").starts_with('.'))
        .collect()
}

/// The text of each `<name>` element of `xml`, in order.
fn all<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    xml.split(open.as_str())
        .skip(1)
        .map(|s| s.split(close.as_str()).next().unwrap())
        .collect()
}

fn one<'a>(xml: &'a str, name: &str) -> &'a str {
    let v = all(xml, name);
    assert_eq!(v.len(), 1, "{name} in {xml}");
    v[0]
}

/// Reads invoice file `rel`, checked against the schema and its header.
fn read_invoice(g: &Gw, rel: &str) -> String {
    let f = g.path(rel);
    if let Err(e) = xmllint_schema("facture.xsd", &f) {
        panic!("{rel} is not valid: {e}\n{}", g.read(rel));
    }
    let xml = g.read(rel);
    let reference = one(&xml, "rf-facture");
    assert!(rel.ends_with(&format!("/invoices/{reference}.xml")), "{rel}");
    let amounts: Vec<i64> = all(&xml, "mt-ligne")
        .iter()
        .map(|a| a.replace('.', "").parse::<i64>().unwrap())
        .collect();
    assert_eq!(one(&xml, "nb-lignes"), amounts.len().to_string());
    let total: i64 = amounts.iter().sum();
    assert_eq!(one(&xml, "mt-total"), format!("{}.{:02}", total / 100, total % 100));
    xml
}

#[test]
fn the_hourly_check_takes_a_convention_from_50_due_lines_and_the_weekly_run_every_due_line() {
    let g = gw(52, 3);
    // 20 November 10:00: 50 visits of ergo62, 2 of ergo59.
    attest62(&g, "ergo62-1.xml", 1, 50, NOW);
    attest59(&g, "ergo59-1.xml", 1, 2, NOW);
    // 21 November 10:00: 2 more of ergo62, 1 more of ergo59.
    attest62(&g, "ergo62-2.xml", 51, 52, LATER);
    attest59(&g, "ergo59-2.xml", 3, 3, LATER);
    assert_eq!(g.count("SELECT COUNT(*) FROM invoice_lines"), 55);

    // One second before 48 hours: nothing is due, in either mode.
    for job in ["invoice-threshold", "invoice-weekly"] {
        let out = invoice(&g, job, JUST_BEFORE_DUE);
        assert!(out.ends_with(": 0 facture(s), 0 ligne(s) facturée(s)"), "{out}");
    }
    assert!(invoice_files(&g).is_empty());

    // 48 hours: ergo62's 50 lines are invoiced; ergo59's 2 wait.
    let out = invoice(&g, "invoice-threshold", DUE);
    assert_eq!(
        out,
        "invoice-threshold : 1 facture(s), 50 ligne(s) facturée(s) pour 7 500,00 € ; \
         2 ligne(s) due(s) sous le seuil de 50 par convention, laissée(s) à la facturation hebdomadaire"
    );
    let files = invoice_files(&g);
    assert_eq!(files, ["outbox/04/invoices/F04-62739900-20261122-1.xml"]);
    let xml = read_invoice(&g, &files[0]);
    assert_eq!(
        (
            one(&xml, "id-cram"),
            one(&xml, "code-convention"),
            one(&xml, "prestataire"),
            one(&xml, "dt-facture"),
            one(&xml, "mode")
        ),
        ("04", "62739900", "ergo62", "2026-11-22", "seuil")
    );
    let want: Vec<String> = (1..=50).map(|i| format!("A{i:03}")).collect();
    assert_eq!(all(&xml, "rf-commande"), want);
    assert_eq!(all(&xml, "nir-per")[0], "1541299900001");
    assert_eq!(all(&xml, "dt-visite")[0], "2026-11-10");
    assert_eq!(all(&xml, "dt-transmission")[0], "2026-11-20");
    assert_eq!(all(&xml, "mt-ligne")[0], "150.00");

    // The same hour again: nothing more.
    let out = invoice(&g, "invoice-threshold", DUE);
    assert!(
        out.contains(": 0 facture(s), 0 ligne(s) facturée(s) ; 2 ligne(s) due(s)"),
        "{out}"
    );
    // The weekly run at that instant: ergo59's 2 due lines, not the later ones.
    let out = invoice(&g, "invoice-weekly", DUE);
    assert_eq!(
        out,
        "invoice-weekly : 1 facture(s), 2 ligne(s) facturée(s) pour 300,00 €"
    );
    let out = invoice(&g, "invoice-weekly", DUE);
    assert_eq!(out, "invoice-weekly : 0 facture(s), 0 ligne(s) facturée(s)");
    assert_eq!(invoice_files(&g).len(), 2);

    // A week later: the 3 lines transmitted on the 21st, one invoice per convention.
    let out = invoice(&g, "invoice-weekly", "2026-11-29T10:00:00+01:00");
    assert!(out.starts_with("invoice-weekly : 2 facture(s), 3 ligne(s)"), "{out}");
    assert_eq!(
        g.count("SELECT COUNT(*) FROM invoice_lines WHERE invoice_id IS NULL"),
        0
    );

    // Every line in exactly one invoice; every file valid; references distinct.
    let files = invoice_files(&g);
    assert_eq!(files.len(), 4, "{files:?}");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for f in &files {
        let xml = read_invoice(&g, f);
        for rf in all(&xml, "rf-commande") {
            assert!(seen.insert(rf.to_string(), f.clone()).is_none(), "{rf} twice");
        }
    }
    assert_eq!(seen.len(), 55);
    let modes = g.rows("SELECT reference, mode, lines FROM invoices ORDER BY id");
    assert_eq!(
        modes,
        [
            ["F04-62739900-20261122-1", "threshold", "50"],
            ["F04-59111100-20261122-2", "weekly", "2"],
            ["F04-59111100-20261129-3", "weekly", "1"],
            ["F04-62739900-20261129-4", "weekly", "2"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );

    // Each ergothérapeute is told of each of its invoices, once.
    let mails: Vec<Mail> = sent_mails_at(&g, "2026-12-01T00:00:00Z")
        .into_iter()
        .filter(|m| m.is_about("facture globale"))
        .collect();
    assert_eq!(mails.len(), 4, "{mails:?}");
    for (reference, to) in [
        ("F04-62739900-20261122-1", "cabinet@ergo62.example"),
        ("F04-59111100-20261122-2", "cabinet@ergo59.example"),
        ("F04-62739900-20261129-4", "cabinet@ergo62.example"),
    ] {
        let m: Vec<&Mail> = mails.iter().filter(|m| m.is_about(reference)).collect();
        assert_eq!(m.len(), 1, "{reference}: {mails:?}");
        assert!(m[0].to.contains(to), "{:?}", m[0]);
    }

    // The history lists each delivery to the payment chain.
    let out = g.run(&[
        "history",
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-31",
        "--interface",
        "chaine-de-paiement",
        "--format",
        "csv",
    ]);
    expect(&out, 0);
    let h = text(&out.stdout);
    for f in &files {
        assert!(h.contains(f.as_str()), "{f} not in the history:\n{h}");
    }
}

#[test]
fn an_invoice_is_written_once_across_a_crash_and_after_the_payment_chain_took_it() {
    let g = gw(0, 3);
    attest59(&g, "ergo59-1.xml", 1, 2, NOW);
    attest59(&g, "ergo59-2.xml", 3, 3, LATER);
    invoice(&g, "invoice-weekly", DUE);
    let first = "outbox/04/invoices/F04-59111100-20261122-1.xml";
    assert_eq!(invoice_files(&g), [first]);

    // The payment chain takes it: never written again, whatever runs.
    std::fs::remove_file(g.path(first)).unwrap();
    for now in [DUE, "2026-11-23T10:00:00+01:00", "2026-11-30T10:00:00+01:00"] {
        for job in ["invoice-threshold", "invoice-weekly"] {
            invoice(&g, job, now);
        }
        expect(&run_at(&g, now, &["process", "--once"]), 0);
    }
    let second = "outbox/04/invoices/F04-59111100-20261123-2.xml";
    assert_eq!(invoice_files(&g), [second], "B003's invoice only, made on the 23rd");
    let bytes = std::fs::read(g.path(second)).unwrap();

    // A crash after the staged name was committed, before the rename: the
    // file is still under its hidden temporary name.
    let staged = g.rows("SELECT staged_path FROM invoices WHERE id = 2")[0][0].clone();
    assert!(staged.starts_with("outbox/04/invoices/.ppas-tmp-"), "{staged}");
    std::fs::rename(g.path(second), g.path(&staged)).unwrap();
    g.db()
        .execute("UPDATE invoices SET delivered_at = NULL WHERE id = 2", [])
        .unwrap();
    // A start of the pipeline delivers it (its rename is owed): the same
    // bytes under the final name, once.
    expect(&g.process(), 0);
    assert!(!g.exists(&staged), "the staged invoice stayed hidden after the start");
    assert_eq!(std::fs::read(g.path(second)).unwrap(), bytes);
    assert_eq!(g.count("SELECT COUNT(*) FROM invoices WHERE delivered_at IS NULL"), 0);
    let out = invoice(&g, "invoice-weekly", "2026-11-30T10:30:00+01:00");
    assert!(!out.contains("interrompu"), "{out}");
    assert_eq!(invoice_files(&g), [second]);

    // The same crash with no start in between: the next run of either job
    // renames it, the same bytes.
    std::fs::rename(g.path(second), g.path(&staged)).unwrap();
    g.db()
        .execute("UPDATE invoices SET delivered_at = NULL WHERE id = 2", [])
        .unwrap();
    let out = invoice(&g, "invoice-threshold", "2026-11-30T11:00:00+01:00");
    assert!(
        out.ends_with("; 1 facture(s) d'un passage interrompu déposée(s)"),
        "{out}"
    );
    assert_eq!(std::fs::read(g.path(second)).unwrap(), bytes);
    assert!(!g.exists(&staged));

    // A crash after the rename, and the payment chain took the file before
    // the restart: recorded as delivered by the start, not written again.
    std::fs::remove_file(g.path(second)).unwrap();
    g.db()
        .execute("UPDATE invoices SET delivered_at = NULL WHERE id = 2", [])
        .unwrap();
    expect(&g.process(), 0);
    assert_eq!(g.count("SELECT COUNT(*) FROM invoices WHERE delivered_at IS NULL"), 0);
    let out = invoice(&g, "invoice-weekly", "2026-11-30T12:00:00+01:00");
    assert!(!out.contains("interrompu"), "{out}");
    assert!(g.files("outbox").is_empty(), "{:?}", g.files("outbox"));

    // The same with no start in between: the job records it as delivered.
    g.db()
        .execute("UPDATE invoices SET delivered_at = NULL WHERE id = 2", [])
        .unwrap();
    let out = invoice(&g, "invoice-weekly", "2026-11-30T12:30:00+01:00");
    assert!(
        out.ends_with("; 1 facture(s) d'un passage interrompu déposée(s)"),
        "{out}"
    );
    assert!(g.files("outbox").is_empty(), "{:?}", g.files("outbox"));
    assert_eq!(g.count("SELECT COUNT(*) FROM invoices WHERE delivered_at IS NULL"), 0);

    // A crash right after the invoice's commit, before anything was
    // written: rendered again from the database, the same bytes.
    g.db()
        .execute(
            "UPDATE invoices SET delivered_at = NULL, staged_path = NULL WHERE id = 2",
            [],
        )
        .unwrap();
    invoice(&g, "invoice-weekly", "2026-11-30T13:00:00+01:00");
    assert_eq!(std::fs::read(g.path(second)).unwrap(), bytes);
    assert_eq!(g.count("SELECT COUNT(*) FROM invoices"), 2);
    assert_eq!(
        g.count("SELECT COUNT(*) FROM mail_queue WHERE dedup_key LIKE 'invoice:%'"),
        2,
        "one e-mail per invoice, whatever the deliveries"
    );
}

#[test]
fn invoicing_by_hand_waits_for_the_spool_lock() {
    let g = gw(0, 1);
    attest59(&g, "ergo59-1.xml", 1, 1, NOW);
    let lock = ppas_gateway::pipeline::SpoolLock::try_acquire(&g.path("state/gateway.lock"))
        .unwrap()
        .expect("lock");
    let out = run_at(&g, DUE, &["run", "invoice-weekly"]);
    expect(&out, 2);
    assert!(
        text(&out.stderr).contains("another ppas-gateway instance is processing this spool"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(g.count("SELECT COUNT(*) FROM invoices"), 0);
    drop(lock);
    let out = invoice(&g, "invoice-weekly", DUE);
    assert!(
        out.ends_with(": 1 facture(s), 1 ligne(s) facturée(s) pour 150,00 €"),
        "{out}"
    );
}
