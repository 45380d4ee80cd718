//! The ergothérapeute side as the caisse runs it: orders, evaluations and
//! decisions imported by the CLI or dropped into `caisse/inbound/<kind>/`,
//! the order listing and the documents found in `outbound/<provider>/`
//! (read back with xmllint and a CSV reader), `run relances` under
//! `PPAS_GATEWAY_NOW`, the e-mails written by `run mail`.

use std::path::PathBuf;
use std::process::Output;

use crate::pipeline_support::*;

mod attestations;
mod documents;
mod orders;
mod relances;

/// Two ergothérapeutes (ergo62 on two conventions, ergo59 on one) and a
/// home-care provider, none with a user: their own addresses get the mails.
pub const PROVIDERS: &str = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
ergo62;Cabinet d'ergothérapie Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n\
ergo62;Cabinet d'ergothérapie Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;03;62000003;62000003\n\
ergo59;Ergo Flandre;35600000049837;cabinet@ergo59.example;03 20 00 00 59;ergo;04;59111100;59111100\n\
saad21;Aide Dijon;73282932000074;contact@saad21.example;03 80 00 00 21;saad;03;21999000;21999000\n";

pub const O_HEADER: &str =
    "rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;telephone;ressources;dt-commande\n";

/// Three orders: two of ergo62 (one in the Corsica NIR form), one of ergo59.
pub const ORDERS: &[&str] = &[
    "C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas 62000 Arras;03 21 00 00 01;PS;2026-09-01",
    "C04-2026-000124;04;62739900;154122A999000;MARTIN;Anne;3 place d'Armes 62000 Arras;03 21 00 00 02;C;15/10/2026",
    "C04-2026-000200;04;59111100;2600321000002;BLANC;Marc;7 rue Nationale 59000 Lille;03 20 00 00 07;C;2026-10-01",
];

/// A gateway with the providers imported.
pub fn gw() -> Gw {
    let g = Gw::new();
    g.import("providers", PROVIDERS);
    g
}

/// A gateway with the providers and [`ORDERS`] imported.
pub fn gw_with_orders() -> Gw {
    let g = gw();
    g.import("orders", &orders_csv(ORDERS));
    g
}

pub fn orders_csv(rows: &[&str]) -> String {
    let mut s = O_HEADER.to_string();
    for r in rows {
        s.push_str(r);
        s.push('\n');
    }
    s
}

/// A small file that passes the PDF checks; `tag` makes its bytes differ.
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {tag}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").into_bytes()
}

/// Writes `bytes` as `name` in a folder of the test (outside the spool)
/// and runs `import KIND` on it.
pub fn import_bytes(g: &Gw, kind: &str, name: &str, bytes: &[u8]) -> Output {
    let dir = g.dir.path().join("caisse-files");
    std::fs::create_dir_all(&dir).unwrap();
    let f: PathBuf = dir.join(name);
    std::fs::write(&f, bytes).unwrap();
    g.run(&["import", kind, f.to_str().unwrap()])
}

/// Runs the binary with the clock at `now` (RFC 3339).
pub fn run_at(g: &Gw, now: &str, args: &[&str]) -> Output {
    g.cmd()
        .env("PPAS_GATEWAY_NOW", now)
        .args(args)
        .output()
        .expect("run ppas-gateway")
}

/// Asserts the exit code, showing both streams otherwise.
pub fn expect(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The rows of a CSV listing as a French spreadsheet reads it: UTF-8 with a
/// BOM, `;`, CRLF line ends.
pub fn read_listing_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let body = bytes
        .strip_prefix("\u{FEFF}".as_bytes())
        .expect("a BOM, so that Excel reads UTF-8");
    let s = std::str::from_utf8(body).expect("UTF-8");
    assert_eq!(
        s.matches("\r\n").count(),
        s.matches('\n').count(),
        "CRLF line ends only"
    );
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The row of order `rf` in the provider's `commandes.csv`, by column name.
pub fn listing_row(g: &Gw, provider: &str, rf: &str) -> std::collections::BTreeMap<String, String> {
    let rows = read_listing_csv(&std::fs::read(g.path(&format!("outbound/{provider}/commandes.csv"))).unwrap());
    let header = rows[0].clone();
    let row = rows
        .iter()
        .find(|r| r[0] == rf)
        .unwrap_or_else(|| panic!("{rf} not in the listing of {provider}: {rows:?}"));
    header.into_iter().zip(row.iter().cloned()).collect()
}

/// `commandes.xml` of `provider` is valid against `schema/commandes.xsd`.
pub fn assert_listing_valid(g: &Gw, provider: &str) {
    let f = g.path(&format!("outbound/{provider}/commandes.xml"));
    if let Err(e) = xmllint_schema("commandes.xsd", &f) {
        panic!(
            "{} is not valid: {e}\n{}",
            f.display(),
            std::fs::read_to_string(&f).unwrap()
        );
    }
}

/// What the attestation pipeline records for an accepted attestation of
/// `rf` (statut T or S) from the received file `file`, item `item`.
pub fn attest(g: &Gw, rf: &str, statut: &str, file: &str, item: i64) {
    let c = g.db();
    let provider: String = c
        .query_row("SELECT provider FROM orders WHERE rf_commande = ?1", [rf], |r| r.get(0))
        .unwrap();
    c.execute(
        "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state, kind)
         VALUES (?1, ?2, 'sftp', ?3, 1, '2026-11-19T08:00:00Z', ?4, 'done', 'attestations')",
        rusqlite::params![
            provider,
            file,
            format!("{rf}{file}"),
            format!("work/{provider}/{rf}-{file}")
        ],
    )
    .unwrap();
    let id = c.last_insert_rowid();
    let (state, motif) = if statut == "T" {
        ("transmise", None)
    } else {
        ("sans_suite", Some("INJOIGNABLE"))
    };
    c.execute(
        "INSERT INTO attestations (file_id, item, rf_commande, statut, dt_visite, motif, transmitted_at)
         VALUES (?1, ?2, ?3, ?4, '2026-11-10', ?5, '2026-11-19T08:00:00Z')",
        rusqlite::params![id, item, rf, statut, motif],
    )
    .unwrap();
    c.execute(
        "UPDATE orders SET state = ?2, transmitted_at = '2026-11-19T08:00:00Z',
                closed_at = CASE WHEN ?2 = 'sans_suite' THEN '2026-11-19T08:00:00Z' ELSE closed_at END
         WHERE rf_commande = ?1",
        rusqlite::params![rf, state],
    )
    .unwrap();
    c.execute(
        "INSERT INTO listings (provider, kind, wanted) VALUES (?1, 'commandes', 1)
         ON CONFLICT (provider, kind) DO UPDATE SET wanted = wanted + 1",
        [&provider],
    )
    .unwrap();
}

/// Every e-mail written so far as an `.eml` file, after a `run mail` pass
/// with the tests' clock.
pub fn sent_mails(g: &Gw) -> Vec<Mail> {
    sent_mails_at(g, NOW)
}

/// Same, the pass run with the clock at `now` (a mail queued at a later
/// instant than the tests' clock is not due before it).
pub fn sent_mails_at(g: &Gw, now: &str) -> Vec<Mail> {
    expect(&run_at(g, now, &["run", "mail"]), 0);
    g.mails()
}
