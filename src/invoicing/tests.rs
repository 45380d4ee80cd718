//! Invoicing: both sides of 48 hours and of 50 lines, once per line whatever
//! happens (two runs at one instant, the other mode, a crash between the
//! invoice's commit and its delivery, a delivery that fails), the file
//! written once and never again once the payment chain took it.

use chrono::{DateTime, Utc};

use super::*;
use crate::import::testkit::Kit;

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn at(s: &str) -> Clock {
    Clock::Fixed(instant(s))
}

/// Transmissions: T0 is 19 November 2026, 09:00 in Paris; its lines are due
/// on 21 November at 09:00 (08:00 UTC).
const T0: &str = "2026-11-19T08:00:00Z";
const DUE0: &str = "2026-11-21T09:00:00+01:00";
const JUST_BEFORE_DUE0: &str = "2026-11-21T08:59:59+01:00";

/// Orders: `n62` of ergo62 under 04/62739900 (A…), `n59` of ergo59 under
/// 04/59111100 (B…), `n03` of ergo62 under 03/62000003 (C…).
fn kit(n62: usize, n59: usize, n03: usize) -> Kit {
    let mut k = Kit::new();
    let mut rows = String::new();
    for i in 1..=n62 {
        rows.push_str(&format!(
            "A{i:03};04;62739900;15412999{i:05};NOM;Prenom;1 rue;03 21 00 00 01;PS;2026-09-01\n"
        ));
    }
    for i in 1..=n59 {
        rows.push_str(&format!(
            "B{i:03};04;59111100;26003210{i:05};NOM;Prenom;1 rue;03 20 00 00 01;C;2026-09-01\n"
        ));
    }
    for i in 1..=n03 {
        rows.push_str(&format!(
            "C{i:03};03;62000003;154122A9{i:05};NOM;Prenom;1 rue;03 21 00 00 01;PS;2026-09-01\n"
        ));
    }
    k.orders(&rows);
    k
}

/// What the attestation pipeline records for an accepted T attestation of
/// `rf` transmitted at `t`: the attestation and its invoice line (`amount`
/// hundredths), due 48 hours later.
fn attest_at(k: &Kit, rf: &str, t: &str, amount: i64) {
    let c = &k.conn;
    let o = crate::habitat::Order::load(c, rf).unwrap().unwrap();
    c.execute(
        "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state, kind)
         VALUES (?1, ?2, 'sftp', ?2, 1, ?3, ?4, 'done', 'attestations')",
        params![
            o.provider,
            format!("att-{rf}.xml"),
            t,
            format!("work/{}/att-{rf}.xml", o.provider)
        ],
    )
    .unwrap();
    let file = c.last_insert_rowid();
    c.execute(
        "INSERT INTO attestations (file_id, item, rf_commande, statut, dt_visite, transmitted_at)
         VALUES (?1, 1, ?2, 'T', '2026-11-10', ?3)",
        params![file, rf, t],
    )
    .unwrap();
    let att = c.last_insert_rowid();
    c.execute(
        "UPDATE orders SET state = 'transmise', transmitted_at = ?2 WHERE rf_commande = ?1",
        params![rf, t],
    )
    .unwrap();
    let due = stamp(instant(t) + chrono::Duration::hours(48));
    c.execute(
        "INSERT INTO invoice_lines (attestation_id, rf_commande, id_cram, code_convention, provider, nir_per, amount,
             created_at, due_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            att,
            rf,
            o.id_cram,
            o.code_convention,
            o.provider,
            o.nir_per,
            amount,
            t,
            due
        ],
    )
    .unwrap();
}

/// Attests orders `prefix` `from..=to` at `t`, 150 € each.
fn attest_range(k: &Kit, prefix: &str, from: usize, to: usize, t: &str) {
    for i in from..=to {
        attest_at(k, &format!("{prefix}{i:03}"), t, 15000);
    }
}

fn run_at(k: &mut Kit, mode: Mode, now: &str) -> InvoiceSummary {
    let cfg = k.cfg.clone();
    run(&mut k.conn, &cfg, &at(now), mode).unwrap()
}

fn invoices(k: &Kit) -> Vec<Invoice> {
    k.conn
        .prepare(&format!("SELECT {INVOICE_COLUMNS} FROM invoices ORDER BY id"))
        .unwrap()
        .query_map([], Invoice::from_row)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Files under `outbox/`, spool-relative, sorted.
fn outbox_files(k: &Kit) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                walk(root, &e.path(), out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&k.path(""), &k.path("outbox"), &mut out);
    out.sort();
    out
}

fn uninvoiced(k: &Kit) -> i64 {
    k.count("SELECT COUNT(*) FROM invoice_lines WHERE invoice_id IS NULL")
}

/// xmllint's verdict on `file` against `schema/facture.xsd`.
fn assert_valid(file: &std::path::Path) {
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/facture.xsd");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(file)
        .output()
        .expect("xmllint (libxml2-utils) is required");
    assert!(
        out.status.success(),
        "{}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

#[test]
fn a_line_is_invoiced_48_hours_after_its_transmission_not_a_second_before() {
    let mut k = kit(0, 2, 0);
    attest_range(&k, "B", 1, 2, T0);
    for mode in [Mode::Threshold, Mode::Weekly] {
        let s = run_at(&mut k, mode, JUST_BEFORE_DUE0);
        assert_eq!(s, InvoiceSummary::default(), "{mode:?}: nothing due yet");
    }
    assert!(invoices(&k).is_empty());
    let s = run_at(&mut k, Mode::Weekly, DUE0);
    assert_eq!((s.invoices, s.lines, s.amount), (1, 2, 30000), "{s:?}");
    assert_eq!(uninvoiced(&k), 0);
}

#[test]
fn the_hourly_check_invoices_a_convention_from_its_fiftieth_due_line() {
    let mut k = kit(50, 0, 0);
    // 49 lines due at DUE0, the 50th one hour later.
    attest_range(&k, "A", 1, 49, T0);
    attest_at(&k, "A050", "2026-11-19T09:00:00Z", 15000);
    let s = run_at(&mut k, Mode::Threshold, DUE0);
    assert_eq!((s.invoices, s.waiting), (0, 49), "{s:?}");
    let s = run_at(&mut k, Mode::Threshold, "2026-11-21T09:59:59+01:00");
    assert_eq!((s.invoices, s.waiting), (0, 49), "49 lines, the 50th not due: {s:?}");
    assert!(invoices(&k).is_empty());
    let s = run_at(&mut k, Mode::Threshold, "2026-11-21T10:00:00+01:00");
    assert_eq!((s.invoices, s.lines, s.amount, s.waiting), (1, 50, 750_000, 0), "{s:?}");
    let inv = &invoices(&k)[0];
    assert_eq!(inv.reference, format!("F04-62739900-20261121-{}", inv.id));
    assert_eq!(inv.mode, Mode::Threshold);
    assert_eq!((inv.lines, inv.amount), (50, 750_000));
    assert_eq!(inv.path, format!("outbox/04/invoices/{}.xml", inv.reference));
    assert!(inv.delivered_at.is_some() && inv.staged_path.is_some(), "{inv:?}");
    assert_eq!(outbox_files(&k), std::slice::from_ref(&inv.path));
    assert_valid(&k.path(&inv.path));
    assert_eq!(
        k.count(&format!(
            "SELECT COUNT(*) FROM invoice_lines WHERE invoice_id = {}",
            inv.id
        )),
        50
    );
    assert_eq!(s.to_string(), "1 facture(s), 50 ligne(s) facturée(s) pour 7 500,00 €");
}

#[test]
fn under_the_threshold_lines_wait_for_the_weekly_run_which_takes_every_due_line() {
    let mut k = kit(50, 5, 1);
    attest_range(&k, "A", 1, 50, T0);
    attest_range(&k, "B", 1, 3, T0);
    attest_range(&k, "C", 1, 1, T0);
    // Two lines of ergo59 transmitted later: not due at DUE0.
    attest_range(&k, "B", 4, 5, "2026-11-20T08:00:00Z");
    let s = run_at(&mut k, Mode::Threshold, DUE0);
    assert_eq!((s.invoices, s.lines, s.waiting), (1, 50, 4), "{s:?}");
    assert!(s.to_string().contains("4 ligne(s) due(s) sous le seuil de 50"), "{s}");
    let s = run_at(&mut k, Mode::Weekly, DUE0);
    assert_eq!((s.invoices, s.lines, s.waiting), (2, 4, 0), "{s:?}");
    let got: Vec<(String, String, String, i64)> = invoices(&k)
        .into_iter()
        .map(|i| (i.id_cram, i.code_convention, i.mode.as_str().to_string(), i.lines))
        .collect();
    assert_eq!(
        got,
        [
            ("04".into(), "62739900".into(), "threshold".into(), 50),
            ("03".into(), "62000003".into(), "weekly".into(), 1),
            ("04".into(), "59111100".into(), "weekly".into(), 3),
        ]
    );
    assert_eq!(uninvoiced(&k), 2, "not due yet");
    // The next week: the two late lines, in an invoice of their own.
    let s = run_at(&mut k, Mode::Weekly, "2026-11-28T09:00:00+01:00");
    assert_eq!((s.invoices, s.lines), (1, 2), "{s:?}");
    assert_eq!(uninvoiced(&k), 0);
    let refs: std::collections::BTreeSet<String> = invoices(&k).into_iter().map(|i| i.reference).collect();
    assert_eq!(refs.len(), 4, "references never shared: {refs:?}");
    for f in outbox_files(&k) {
        assert_valid(&k.path(&f));
    }
}

#[test]
fn a_second_run_at_the_same_instant_invoices_nothing_and_writes_nothing() {
    let mut k = kit(50, 2, 0);
    attest_range(&k, "A", 1, 50, T0);
    attest_range(&k, "B", 1, 2, T0);
    run_at(&mut k, Mode::Threshold, DUE0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let before = outbox_files(&k);
    assert_eq!(before.len(), 2);
    let bytes: Vec<Vec<u8>> = before.iter().map(|f| std::fs::read(k.path(f)).unwrap()).collect();
    let mails = k.count("SELECT COUNT(*) FROM mail_queue");
    let history = k.count("SELECT COUNT(*) FROM history");
    for mode in [Mode::Threshold, Mode::Weekly, Mode::Threshold] {
        assert_eq!(run_at(&mut k, mode, DUE0), InvoiceSummary::default(), "{mode:?}");
    }
    assert_eq!(outbox_files(&k), before);
    let again: Vec<Vec<u8>> = before.iter().map(|f| std::fs::read(k.path(f)).unwrap()).collect();
    assert_eq!(again, bytes);
    assert_eq!(invoices(&k).len(), 2);
    assert_eq!(k.count("SELECT COUNT(*) FROM mail_queue"), mails);
    assert_eq!(k.count("SELECT COUNT(*) FROM history"), history);
}

#[test]
fn an_invoiced_line_can_never_take_another_invoice() {
    let mut k = kit(0, 1, 0);
    attest_range(&k, "B", 1, 1, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let e = k
        .conn
        .execute("UPDATE invoice_lines SET invoice_id = invoice_id + 1", [])
        .unwrap_err();
    assert!(e.to_string().contains("already invoiced"), "{e}");
    // Nor is it taken off its invoice.
    assert!(k
        .conn
        .execute("UPDATE invoice_lines SET invoice_id = NULL", [])
        .is_err());
}

#[test]
fn the_file_is_rendered_from_the_database_in_the_documented_layout() {
    let mut k = kit(0, 2, 0);
    attest_at(&k, "B001", "2026-11-19T22:30:00Z", 15000);
    attest_at(&k, "B002", T0, 16250);
    run_at(&mut k, Mode::Weekly, "2026-11-23T09:00:00+01:00");
    let inv = &invoices(&k)[0];
    let got = std::fs::read_to_string(k.path(&inv.path)).unwrap();
    let want = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <facture version=\"1\">\n\
         \x20 <entete>\n\
         \x20   <rf-facture>F04-59111100-20261123-{id}</rf-facture>\n\
         \x20   <id-cram>04</id-cram>\n\
         \x20   <code-convention>59111100</code-convention>\n\
         \x20   <prestataire>ergo59</prestataire>\n\
         \x20   <dt-facture>2026-11-23</dt-facture>\n\
         \x20   <mode>hebdomadaire</mode>\n\
         \x20   <nb-lignes>2</nb-lignes>\n\
         \x20   <mt-total>312.50</mt-total>\n\
         \x20 </entete>\n\
         \x20 <ligne numero=\"1\">\n\
         \x20   <rf-commande>B001</rf-commande>\n\
         \x20   <nir-per>2600321000001</nir-per>\n\
         \x20   <dt-visite>2026-11-10</dt-visite>\n\
         \x20   <dt-transmission>2026-11-19</dt-transmission>\n\
         \x20   <mt-ligne>150.00</mt-ligne>\n\
         \x20 </ligne>\n\
         \x20 <ligne numero=\"2\">\n\
         \x20   <rf-commande>B002</rf-commande>\n\
         \x20   <nir-per>2600321000002</nir-per>\n\
         \x20   <dt-visite>2026-11-10</dt-visite>\n\
         \x20   <dt-transmission>2026-11-19</dt-transmission>\n\
         \x20   <mt-ligne>162.50</mt-ligne>\n\
         \x20 </ligne>\n\
         </facture>\n",
        id = inv.id
    );
    assert_eq!(got, want);
    // B001's transmission, 22:30 UTC on the 19th, is 23:30 in Paris: still
    // the 19th. The bytes depend on the database only.
    let mut again = Vec::new();
    render(&k.conn, inv.id, &mut again).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), want);
    assert_valid(&k.path(&inv.path));
}

#[test]
fn the_transmission_day_is_the_paris_day() {
    let mut k = kit(0, 1, 0);
    // 23:30 UTC on 19 November is 00:30 on the 20th in Paris.
    attest_at(&k, "B001", "2026-11-19T23:30:00Z", 15000);
    run_at(&mut k, Mode::Weekly, "2026-11-23T09:00:00+01:00");
    let text = std::fs::read_to_string(k.path(&invoices(&k)[0].path)).unwrap();
    assert!(text.contains("<dt-transmission>2026-11-20</dt-transmission>"), "{text}");
}

#[test]
fn each_invoice_is_mailed_to_its_provider_once_and_recorded_in_the_history() {
    let mut k = kit(0, 2, 1);
    attest_range(&k, "B", 1, 2, T0);
    attest_range(&k, "C", 1, 1, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    run_at(&mut k, Mode::Weekly, "2026-11-28T09:00:00+01:00");
    let inv = invoices(&k);
    let mails: Vec<(String, String, String, String)> = k
        .conn
        .prepare(
            "SELECT dedup_key, recipients, subject, body FROM mail_queue WHERE dedup_key LIKE 'invoice:%' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(mails.len(), 2, "{mails:?}");
    // 03/62000003 (ergo62, its user) comes first, then 04/59111100 (ergo59, no user).
    assert_eq!(mails[0].0, format!("invoice:{}", inv[0].reference));
    assert_eq!(mails[0].1, "alice@ergo62.example");
    assert_eq!(mails[1].1, "cabinet@ergo59.example");
    assert!(mails[1].2.contains(&inv[1].reference), "{:?}", mails[1]);
    assert!(
        mails[1].3.contains("2 ligne(s) de facture") && mails[1].3.contains("300,00 €"),
        "{}",
        mails[1].3
    );
    assert!(mails[1].3.contains("B001, B002"), "{}", mails[1].3);
    assert!(!mails[1].3.contains("260032100000"), "no NIR in a mail");
    let h: Vec<(String, String, String, String)> = k
        .conn
        .prepare(
            "SELECT kind, interface, convention, comment FROM history
             WHERE application = 'habitat' AND comment LIKE 'facture globale %' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let of = |kind: &str| h.iter().filter(|e| e.0 == kind).collect::<Vec<_>>();
    assert_eq!(of("job").len(), 2, "{h:?}");
    assert_eq!(of("outbox").len(), 2, "{h:?}");
    assert!(of("job")[1].3.starts_with(&format!(
        "facture globale {} établie (facturation hebdomadaire) : 2 ligne(s) de facture, 300.00 €",
        inv[1].reference
    )));
    assert_eq!(of("outbox")[1].1, "chaine-de-paiement");
    assert_eq!(
        of("outbox")[1].3,
        format!("facture globale {} déposée dans {}", inv[1].reference, inv[1].path)
    );
}

/// Sets invoice `id` back to "committed, not delivered" with `staged` as
/// its committed temporary name.
fn undeliver(k: &Kit, id: i64, staged: Option<&str>) {
    k.conn
        .execute(
            "UPDATE invoices SET delivered_at = NULL, staged_path = ?2 WHERE id = ?1",
            params![id, staged],
        )
        .unwrap();
}

#[test]
fn a_crash_before_the_file_was_staged_renders_it_again_identically() {
    let mut k = kit(0, 2, 0);
    attest_range(&k, "B", 1, 2, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let inv = invoices(&k).remove(0);
    let bytes = std::fs::read(k.path(&inv.path)).unwrap();
    // The invoice committed, the process killed before it wrote anything.
    std::fs::remove_file(k.path(&inv.path)).unwrap();
    undeliver(&k, inv.id, None);
    let s = run_at(&mut k, Mode::Threshold, "2026-11-21T10:00:00+01:00");
    assert_eq!((s.invoices, s.recovered), (0, 1), "{s:?}");
    assert_eq!(std::fs::read(k.path(&inv.path)).unwrap(), bytes);
    assert!(invoices(&k)[0].delivered_at.is_some());
    assert_eq!(
        k.count("SELECT COUNT(*) FROM history WHERE kind = 'outbox'"),
        2,
        "the delivery recorded once each time it happened"
    );
}

#[test]
fn a_crash_between_staging_and_the_rename_renames_the_staged_file_at_the_next_run() {
    let mut k = kit(0, 2, 0);
    attest_range(&k, "B", 1, 2, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let inv = invoices(&k).remove(0);
    let staged = inv.staged_path.clone().unwrap();
    assert!(staged.starts_with("outbox/04/invoices/.ppas-tmp-"), "{staged}");
    let bytes = std::fs::read(k.path(&inv.path)).unwrap();
    // Killed after the staged name was committed, before the rename.
    std::fs::rename(k.path(&inv.path), k.path(&staged)).unwrap();
    undeliver(&k, inv.id, Some(&staged));
    let cfg = k.cfg.clone();
    assert_eq!(deliver_pending(&mut k.conn, &cfg, &at(DUE0)).unwrap(), 1);
    assert_eq!(std::fs::read(k.path(&inv.path)).unwrap(), bytes);
    assert!(!k.path(&staged).exists());
    assert_eq!(outbox_files(&k), std::slice::from_ref(&inv.path));
    assert_eq!(deliver_pending(&mut k.conn, &cfg, &at(DUE0)).unwrap(), 0);
}

#[test]
fn a_crash_after_the_rename_never_writes_the_file_again() {
    let mut k = kit(0, 2, 0);
    attest_range(&k, "B", 1, 2, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let inv = invoices(&k).remove(0);
    // Renamed, then killed before the delivery was committed; meanwhile the
    // payment chain took the file.
    std::fs::remove_file(k.path(&inv.path)).unwrap();
    undeliver(&k, inv.id, inv.staged_path.as_deref());
    let s = run_at(&mut k, Mode::Weekly, "2026-11-21T10:00:00+01:00");
    assert_eq!((s.invoices, s.recovered), (0, 1), "{s:?}");
    assert!(outbox_files(&k).is_empty(), "never written again");
    assert!(invoices(&k)[0].delivered_at.is_some());
}

#[test]
fn a_file_the_payment_chain_took_is_never_written_again() {
    let mut k = kit(50, 1, 0);
    attest_range(&k, "A", 1, 50, T0);
    attest_range(&k, "B", 1, 1, T0);
    run_at(&mut k, Mode::Threshold, DUE0);
    run_at(&mut k, Mode::Weekly, DUE0);
    for f in outbox_files(&k) {
        std::fs::remove_file(k.path(&f)).unwrap();
    }
    for now in [DUE0, "2026-11-28T09:00:00+01:00", "2027-01-01T00:00:00Z"] {
        for mode in [Mode::Threshold, Mode::Weekly] {
            assert_eq!(run_at(&mut k, mode, now), InvoiceSummary::default());
        }
        let cfg = k.cfg.clone();
        assert_eq!(deliver_pending(&mut k.conn, &cfg, &at(now)).unwrap(), 0);
    }
    assert!(outbox_files(&k).is_empty());
}

#[test]
fn a_delivery_that_fails_leaves_the_invoice_committed_for_the_next_run() {
    let mut k = kit(0, 1, 2);
    attest_range(&k, "B", 1, 1, T0);
    attest_range(&k, "C", 1, 2, T0);
    // outbox/04/invoices cannot be a folder: caisse 04's delivery fails.
    std::fs::create_dir_all(k.path("outbox/04")).unwrap();
    std::fs::write(k.path("outbox/04/invoices"), b"in the way").unwrap();
    let cfg = k.cfg.clone();
    let e = run(&mut k.conn, &cfg, &at(DUE0), Mode::Weekly).unwrap_err();
    let msg = format!("{e:#}");
    let inv = invoices(&k);
    assert_eq!(inv.len(), 2, "both made: {msg}");
    let b = inv.iter().find(|i| i.id_cram == "04").unwrap();
    assert!(msg.contains(&b.reference) && msg.contains("2 facture(s)"), "{msg}");
    assert!(b.delivered_at.is_none());
    assert!(inv.iter().find(|i| i.id_cram == "03").unwrap().delivered_at.is_some());
    assert_eq!(uninvoiced(&k), 0, "the lines are taken");
    std::fs::remove_file(k.path("outbox/04/invoices")).unwrap();
    let s = run_at(&mut k, Mode::Threshold, "2026-11-21T10:00:00+01:00");
    assert_eq!((s.invoices, s.recovered), (0, 1), "{s:?}");
    assert!(k.path(&b.path).exists());
    assert_valid(&k.path(&b.path));
}

#[test]
fn references_are_never_reused() {
    let mut k = kit(0, 2, 0);
    attest_range(&k, "B", 1, 1, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let first = invoices(&k).remove(0);
    // Even were the row deleted, its number is not given again.
    k.conn
        .execute_batch("DROP TRIGGER invoice_lines_invoiced_once; UPDATE invoice_lines SET invoice_id = NULL;")
        .unwrap();
    k.conn.execute("DELETE FROM invoices", []).unwrap();
    k.conn
        .execute("DELETE FROM invoice_lines WHERE rf_commande = 'B001'", [])
        .unwrap();
    attest_range(&k, "B", 2, 2, T0);
    run_at(&mut k, Mode::Weekly, DUE0);
    let second = invoices(&k).remove(0);
    assert!(second.id > first.id);
    assert_ne!(second.reference, first.reference);
}

#[test]
fn amounts_are_written_with_two_decimals() {
    assert_eq!(amount_dot(0), "0.00");
    assert_eq!(amount_dot(5), "0.05");
    assert_eq!(amount_dot(16250), "162.50");
    assert_eq!(amount_dot(-105), "-1.05");
    assert_eq!(amount_fr(750_000), "7 500,00");
    assert_eq!(amount_fr(123_456_789), "1 234 567,89");
    assert_eq!(amount_fr(99), "0,99");
    assert_eq!(Mode::parse("weekly"), Some(Mode::Weekly));
    assert_eq!(Mode::parse("seuil"), None);
}

#[test]
fn the_documented_example_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/formats/invoices.md")).unwrap();
    let example = doc.split("```xml\n").nth(1).unwrap().split("```").next().unwrap();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("example.xml");
    std::fs::write(&f, example).unwrap();
    assert_valid(&f);
}
