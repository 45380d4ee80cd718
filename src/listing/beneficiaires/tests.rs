//! The listing over a real pipeline: reference data imported, billing files
//! processed (accepted, partial, rejected), then the listing compared with
//! what the L07 control sees.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::import::{import_file, Kind};
use crate::pipeline::Pipeline;

const PROVIDERS: &str = "provider;raison-sociale;siret;email;telephone;type;id-cram;code-convention;id-site\n\
    saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;03;C1;21999000\n\
    saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;03;C2;21999001\n\
    saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;04;C3;21999000\n\
    saad1;SAAD Un;73282932000074;contact@saad1.example;03 21 00 00 01;saad;04;C4;21999001\n\
    saad2;SAAD Deux;44306184100047;contact@saad2.example;03 21 00 00 02;saad;03;C5;21888000\n\
    saad3;SAAD Trois;44306184100047;contact@saad3.example;03 21 00 00 03;saad;03;C6;21777000\n";

/// Plans given in no particular order (the listing orders them).
const PLANS: &str = "id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n\
    04;21999000;1541299999000;Dupont;Pierre;PPP100;2026-01-01;2026-12-31;10;0\n\
    03;21999001;1551199999000;Dupond;Marie;PPP100;2026-01-01;2026-12-31;200;0\n\
    03;21999000;1541299999000;Dupont;Pierre;PPP119;2026-01-01;2026-06-30;45;0\n\
    03;21888000;1661199999000;Autre;Prestataire;PPP100;2026-01-01;2026-12-31;50;1,5\n\
    03;21999000;1541299999000;Dupont;Pierre;PPP100;2026-01-01;2026-12-31;40;5\n\
    03;21999000;1541299999000;Dupont;Pierre;PPP100;2025-01-01;2025-12-31;30;30\n\
    03;21999000;154122A999000;Martin;Anne;PPP100;2026-01-01;2026-12-31;12,34;0\n";

fn now() -> Clock {
    Clock::Fixed(
        chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00+01:00")
            .unwrap()
            .with_timezone(&chrono::Utc),
    )
}

fn pipeline(dir: &Path) -> Pipeline {
    let mut cfg = Config::default();
    cfg.paths.spool = dir.join("spool");
    cfg.paths.database = dir.join("spool/state/gateway.db");
    let mut p = Pipeline::open(cfg, now()).unwrap();
    import(&mut p, Kind::Providers, PROVIDERS);
    import(&mut p, Kind::Beneficiaries, PLANS);
    p
}

fn import(p: &mut Pipeline, kind: Kind, csv: &str) {
    let at = p.clock.now();
    import_file(&mut p.conn, &p.cfg, kind, "ref.csv", csv.as_bytes(), at).unwrap();
}

/// A billing line: NIR, name, first name, intervening site, month of 2026, hours.
type L<'a> = (&'a str, &'a str, &'a str, &'a str, u32, &'a str);

/// A billing file of `lines` for caisse 03, site 21999000, PPP100, named
/// after `ddmmyy`; `nb_ligbor` as written in the footer.
fn factbord(ddmmyy: &str, lines: &[L<'_>], nb_ligbor: usize) -> (String, String) {
    let rf = format!("03_{ddmmyy}_100_21999000");
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<factbord>\n <rf-borfact>{rf}</rf-borfact>\n \
         <log-fact>t</log-fact>\n <id-cram>03</id-cram>\n <id-site>21999000</id-site>\n <rf-prstpap>PPP100</rf-prstpap>\n"
    );
    let mut total = rust_decimal::Decimal::ZERO;
    for (nir, nom, pn, site, month, q) in lines {
        let last = chrono::NaiveDate::from_ymd_opt(2026, month + 1, 1).unwrap() - chrono::Duration::days(1);
        total += q.parse::<rust_decimal::Decimal>().unwrap();
        x.push_str(&format!(
            " <factprest>\n  <nir-per>{nir}</nir-per>\n  <nom-per>{nom}</nom-per>\n  <pn-per>{pn}</pn-per>\n  \
             <rf-prstpap>PPP100</rf-prstpap>\n  <id-prest>{site}</id-prest>\n  <dtd-interv>2026-{month:02}-01</dtd-interv>\n  \
             <dtf-interv>{last}</dtf-interv>\n  <nb-quant>{q}</nb-quant>\n  <mt-tu>1</mt-tu>\n  <mt-total>0</mt-total>\n  \
             <bo-regul>F</bo-regul>\n </factprest>\n"
        ));
    }
    x.push_str(&format!(
        " <nb-ligbor>{nb_ligbor}</nb-ligbor>\n <mt-totamd>{total}</mt-totamd>\n <mt-totprest>0</mt-totprest>\n</factbord>\n"
    ));
    (format!("{rf}.xml"), x)
}

/// Drops a billing file of saad1 and processes it; returns the counts
/// (accepted lines) and the verdict.
fn process(p: &mut Pipeline, (name, body): (String, String)) -> (i64, String) {
    let path = drop(p, &name, &body);
    let a = p.process_file(&path, crate::pipeline::Channel::Sftp).unwrap();
    assert!(matches!(a, Some(crate::pipeline::Attempt::Finished(_))), "{a:?}");
    p.conn
        .query_row(
            "SELECT accepted_lines, verdict FROM received_files WHERE name = ?1 ORDER BY id DESC LIMIT 1",
            [&name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn drop(p: &Pipeline, name: &str, body: &str) -> PathBuf {
    let dir = p.spool.inbound().join("saad1");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path
}

/// The anomaly codes `validate` gives a file (the state is left as it is).
fn validate(p: &mut Pipeline, (name, body): (String, String)) -> Vec<&'static str> {
    let dir = p.spool.root().join("validate");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    let v = crate::pipeline::validate_path(&mut p.conn, &p.cfg, &p.clock, &path, Some("saad1")).unwrap();
    v.anomalies().iter().map(|a| a.code.as_str()).collect()
}

/// The CSV form's rows, without the BOM.
fn rows(r: &Rendered) -> Vec<Vec<String>> {
    let body = r.csv.strip_prefix("\u{FEFF}".as_bytes()).expect("BOM");
    csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The data rows keyed `caisse site nir prestation début` → (total, consumed, remaining).
fn hours(r: &Rendered) -> Vec<(String, [String; 3])> {
    rows(r)[1..]
        .iter()
        .map(|c| {
            (
                format!("{} {} {} {} {}", c[0], c[1], c[2], c[5], c[6]),
                [c[8].clone(), c[9].clone(), c[10].clone()],
            )
        })
        .collect()
}

fn h(total: &str, consumed: &str, remaining: &str) -> [String; 3] {
    [total.into(), consumed.into(), remaining.into()]
}

fn xml(r: &Rendered) -> String {
    String::from_utf8(r.xml.clone()).unwrap()
}

const PIERRE: &str = "03 21999000 1541299999000 PPP100 01/01/2026";

fn pierre(r: &Rendered) -> [String; 3] {
    hours(r).into_iter().find(|(k, _)| k == PIERRE).unwrap().1
}

#[test]
fn consumption_is_what_l07_counts_after_accepted_partial_and_rejected_files() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let before = render(&p.conn, "saad1").unwrap();
    assert_eq!(pierre(&before), h("40,00", "5,00", "35,00"));

    // Accepted: both lines.
    let f1 = factbord(
        "010726",
        &[
            ("1541299999000", "Dupont", "Pierre", "21999000", 3, "14.25"),
            ("1551199999000", "Dupond", "Marie", "21999001", 4, "10.75"),
        ],
        2,
    );
    assert_eq!(process(&mut p, f1), (2, "accepted".into()));
    // Partial: Pierre's line accepted, Marie's rejected (L06: above 30 h).
    let f2 = factbord(
        "010826",
        &[
            ("1541299999000", "Dupont", "Pierre", "21999000", 5, "3"),
            ("1551199999000", "Dupond", "Marie", "21999001", 5, "46"),
        ],
        2,
    );
    assert_eq!(process(&mut p, f2), (1, "partial".into()));
    // Rejected whole (F08: the footer's line count is wrong): nothing consumed.
    let f3 = factbord(
        "010926",
        &[("1541299999000", "Dupont", "Pierre", "21999000", 6, "2")],
        5,
    );
    assert_eq!(process(&mut p, f3), (0, "rejected".into()));

    let r = render(&p.conn, "saad1").unwrap();
    let all = hours(&r);
    let get = |k: &str| all.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    // 5 (caisse) + 14.25 + 3; the rejected line and file count for nothing.
    assert_eq!(get(PIERRE), h("40,00", "22,25", "17,75"));
    assert_eq!(
        get("03 21999001 1551199999000 PPP100 01/01/2026"),
        h("200,00", "10,75", "189,25")
    );
    // Another plan of the same beneficiary is not touched.
    assert_eq!(
        get("03 21999000 1541299999000 PPP119 01/01/2026"),
        h("45,00", "0,00", "45,00")
    );
    assert!(xml(&r).contains(
        "  <heures-plan>40.00</heures-plan>\n  <heures-consommees>22.25</heures-consommees>\n  <heures-restantes>17.75</heures-restantes>\n"
    ));

    // L07 agrees to the hundredth: the remaining 17.75 h can be billed,
    // 17.76 h cannot (validate runs the controls and changes nothing).
    let exact = |q| factbord("011026", &[("1541299999000", "Dupont", "Pierre", "21999000", 7, q)], 1);
    assert_eq!(validate(&mut p, exact("17.75")), Vec::<&str>::new());
    assert_eq!(validate(&mut p, exact("17.76")), ["L07"]);
    // The listing left by validate is the same, byte for byte.
    assert_eq!(render(&p.conn, "saad1").unwrap(), r);

    // Billed to the last hundredth: nothing left, and L07 refuses 0.01.
    assert_eq!(process(&mut p, exact("17.75")), (1, "accepted".into()));
    let r = render(&p.conn, "saad1").unwrap();
    assert_eq!(pierre(&r), h("40,00", "40,00", "0,00"));
    let more = factbord(
        "021026",
        &[("1541299999000", "Dupont", "Pierre", "21999000", 8, "0.01")],
        1,
    );
    assert_eq!(validate(&mut p, more), ["L07"]);

    // The caisse lowers the plan below what was billed: shown negative, as
    // it is (numbers are not formula-guarded).
    let lowered = PLANS.lines().next().unwrap().to_string()
        + "\n03;21999000;1541299999000;Dupont;Pierre;PPP100;2026-01-01;2026-12-31;20;5\n";
    import(&mut p, Kind::Beneficiaries, &lowered);
    let r = render(&p.conn, "saad1").unwrap();
    assert_eq!(pierre(&r), h("20,00", "40,00", "-20,00"));
    assert!(xml(&r).contains("<heures-restantes>-20.00</heures-restantes>"));
}

#[test]
fn only_the_plans_of_the_providers_validated_conventions_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = pipeline(d.path());
    let r = render(&p.conn, "saad1").unwrap();
    let keys: Vec<String> = hours(&r).into_iter().map(|(k, _)| k).collect();
    // By caisse, NIR, prestation, start date; saad2's plan is not there.
    assert_eq!(
        keys,
        [
            "03 21999000 154122A999000 PPP100 01/01/2026",
            "03 21999000 1541299999000 PPP100 01/01/2025",
            "03 21999000 1541299999000 PPP100 01/01/2026",
            "03 21999000 1541299999000 PPP119 01/01/2026",
            "03 21999001 1551199999000 PPP100 01/01/2026",
            "04 21999000 1541299999000 PPP100 01/01/2026",
        ]
    );
    assert_eq!(rows(&r)[0], CSV_HEADER);
    let other = render(&p.conn, "saad2").unwrap();
    assert_eq!(
        hours(&other),
        [(
            "03 21888000 1661199999000 PPP100 01/01/2026".to_string(),
            h("50,00", "1,50", "48,50")
        )]
    );
    assert!(!xml(&r).contains("1661199999000"));

    // Convention C3 (caisse 04, site 21999000) no longer validated: the
    // plan of caisse 04 at that site goes, although the site still has a
    // validated convention with caisse 03 (L04 would not find it either).
    p.conn
        .execute("UPDATE conventions SET validated = 0 WHERE code_convention = 'C3'", [])
        .unwrap();
    let keys: Vec<String> = hours(&render(&p.conn, "saad1").unwrap())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 5);
    assert!(keys.iter().all(|k| k.starts_with("03 ")), "{keys:?}");
    // No validated convention left for site 21999001: Marie's plan goes.
    p.conn
        .execute("UPDATE conventions SET validated = 0 WHERE id_site = '21999001'", [])
        .unwrap();
    let keys: Vec<String> = hours(&render(&p.conn, "saad1").unwrap())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| k.contains(" 21999000 ")), "{keys:?}");
}

#[test]
fn a_provider_without_plans_gets_the_header_and_no_row() {
    let d = tempfile::tempdir().unwrap();
    let p = pipeline(d.path());
    for provider in ["saad3", "inconnu"] {
        let r = render(&p.conn, provider).unwrap();
        let header = format!("\u{FEFF}{}\r\n", CSV_HEADER.join(";"));
        assert_eq!(String::from_utf8(r.csv.clone()).unwrap(), header);
        assert_eq!(
            xml(&r),
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<beneficiaires version=\"1\" prestataire=\"{provider}\">\n</beneficiaires>\n")
        );
    }
}

#[test]
fn the_same_state_gives_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let p = pipeline(d.path());
    let a = render(&p.conn, "saad1").unwrap();
    // Rows rewritten in another physical order: same listing.
    p.conn
        .execute_batch(
            "CREATE TEMP TABLE t AS SELECT * FROM plans ORDER BY id DESC;
             DELETE FROM plans; INSERT INTO plans SELECT * FROM t ORDER BY nom_per DESC; VACUUM;",
        )
        .unwrap();
    assert_eq!(render(&p.conn, "saad1").unwrap(), a);
    // What `write` streams is what `render` returns.
    let (mut c, mut x) = (Vec::new(), Vec::new());
    assert_eq!(write(&p.conn, "saad1", &mut c, &mut x).unwrap(), 6);
    assert_eq!((c, x), (a.csv, a.xml));
}

#[test]
fn hostile_names_are_guarded_in_csv_and_escaped_in_xml() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let plans = PLANS.lines().next().unwrap().to_string()
        + "\n03;21999000;1541299999000;\"=HYPERLINK(\"\"http://x\"\";\"\"y\"\")\";@SUM(A1);PPP100;2026-01-01;2026-12-31;40;5\n\
           03;21999001;1551199999000;\"<b>&amp;\"\"x\"\"</b>\";-1+2;PPP100;2026-01-01;2026-12-31;200;0\n\
           03;21999000;154122A999000;Martin\u{FFFE};+33 6;PPP100;2026-01-01;2026-12-31;12,34;0\n";
    import(&mut p, Kind::Beneficiaries, &plans);
    // What the import refuses but the state could still hold.
    p.conn
        .execute(
            "UPDATE plans SET pn_per = char(9) || 'Anne' || char(13, 10) || 'x' WHERE nir_per = '154122A999000'",
            [],
        )
        .unwrap();
    let r = render(&p.conn, "saad1").unwrap();
    let rows = rows(&r);
    let by_nir = |nir: &str| {
        rows.iter()
            .find(|c| c[2] == nir && c[5] == "PPP100" && c[6] == "01/01/2026")
            .unwrap()
    };
    let pierre = by_nir("1541299999000");
    assert_eq!(pierre[3], "'=HYPERLINK(\"http://x\";\"y\")");
    assert_eq!(pierre[4], "'@SUM(A1)");
    let marie = by_nir("1551199999000");
    assert_eq!(marie[3], "<b>&amp;\"x\"</b>");
    assert_eq!(marie[4], "'-1+2");
    let anne = by_nir("154122A999000");
    assert_eq!(anne[3], "Martin\u{FFFE}");
    // Controls become spaces, then the cell is guarded like any other.
    assert_eq!(anne[4], " Anne  x");
    // Every row has every column: the `;` inside a name was quoted.
    assert!(rows.iter().all(|c| c.len() == CSV_HEADER.len()));
    let text = String::from_utf8(r.csv.clone()).unwrap();
    assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());

    let x = xml(&r);
    assert!(
        x.contains("<nom-per>=HYPERLINK(&quot;http://x&quot;;&quot;y&quot;)</nom-per>"),
        "{x}"
    );
    assert!(
        x.contains("<nom-per>&lt;b&gt;&amp;amp;&quot;x&quot;&lt;/b&gt;</nom-per>"),
        "{x}"
    );
    assert!(x.contains("<pn-per>-1+2</pn-per>"), "{x}");
    assert!(x.contains("<nom-per>Martin\u{FFFD}</nom-per>"), "{x}");
    assert!(x.contains("<pn-per>&#9;Anne&#13;&#10;x</pn-per>"), "{x}");
}

#[test]
fn hours_are_exact_decimals_with_a_comma_or_a_point() {
    let s = |e4: i128, sep: u8| {
        let mut b = Vec::new();
        put_hours(&mut b, e4, sep);
        String::from_utf8(b).unwrap()
    };
    for (e4, fr) in [
        (0, "0,00"),
        (1_200_000, "120,00"),
        (142_500, "14,25"),
        (123_400, "12,34"),
        (1_234, "0,1234"),
        (1_230, "0,123"),
        (100, "0,01"),
        (-22_500, "-2,25"),
        (-1, "-0,0001"),
        (i128::from(i64::MAX) * 100, "92233720368547758,07"),
    ] {
        assert_eq!(s(e4, b','), fr);
        assert_eq!(s(e4, b'.'), fr.replace(',', "."));
        // The same value as rust_decimal reads it.
        let back: rust_decimal::Decimal = fr.replace(',', ".").parse().unwrap();
        assert_eq!(back, rust_decimal::Decimal::from_i128_with_scale(e4, 4), "{fr}");
    }
    assert!(is_iso_date(b"2026-01-31"));
    for bad in [&b"2026-1-31"[..], b"31/01/2026", b"2026-01-3x", b""] {
        assert!(!is_iso_date(bad));
    }
}

#[test]
fn a_plan_with_an_unreadable_date_fails_the_listing_without_its_nir() {
    let d = tempfile::tempdir().unwrap();
    let p = pipeline(d.path());
    p.conn
        .execute(
            "UPDATE plans SET dt_fin = '31/12/2026' WHERE nir_per = '1551199999000'",
            [],
        )
        .unwrap();
    let e = format!("{:#}", render(&p.conn, "saad1").unwrap_err());
    assert!(e.contains("is not YYYY-MM-DD"), "{e}");
    assert!(!e.contains("1551199999000"), "{e}");
}

#[test]
fn inside_a_transaction_it_reads_what_the_transaction_sees() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let before = render(&p.conn, "saad1").unwrap();
    let tx = p.conn.transaction().unwrap();
    tx.execute(
        "UPDATE plans SET mt_total = 100000 WHERE nir_per = '1541299999000' AND rf_prstpap = 'PPP100' AND id_cram = '03' AND dt_debut = '2026-01-01'",
        [],
    )
    .unwrap();
    let inside = render(&tx, "saad1").unwrap();
    assert_eq!(pierre(&inside), h("1000,00", "5,00", "995,00"));
    // The listing's savepoint is released, the caller's transaction goes on.
    assert!(!tx.is_autocommit());
    tx.rollback().unwrap();
    assert_eq!(render(&p.conn, "saad1").unwrap(), before);
    assert!(p.conn.is_autocommit());
}

#[test]
fn sqlite_reads_the_plans_in_index_order_and_sorts_nothing() {
    let conn = crate::store::open_in_memory().unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {PLANS_SQL}"))
        .unwrap()
        .query_map(["03", "21999000"], |r| r.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(plan.iter().all(|step| !step.contains("TEMP B-TREE")), "{plan:?}");
    assert!(
        plan.iter().any(|step| step.contains("INDEX sqlite_autoindex_plans_1")),
        "{plan:?}"
    );
    assert!(
        plan.iter()
            .any(|step| step.contains("SEARCH a USING PRIMARY KEY (nir_per=? AND rf_prstpap=?)")),
        "{plan:?}"
    );
}

#[test]
fn the_fast_path_of_the_xml_text_is_the_reports_escaping() {
    for s in [
        "Dupont",
        "Lefèvre Zoé",
        "a&b",
        "<x>",
        "\"q\"",
        "'a'",
        "tab\tcr\rlf\n",
        "\u{1}\u{1f}\u{7f}\u{85}",
        "\u{FFFD}\u{FFFE}\u{FFFF}\u{F000}",
        "😀",
        "",
    ] {
        let mut b = Vec::new();
        put_text(&mut b, s);
        assert_eq!(String::from_utf8(b).unwrap(), xml_text(s), "{s:?}");
    }
}

#[test]
fn the_plans_of_several_sites_of_a_caisse_are_merged_in_order() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let more = PLANS.lines().next().unwrap().to_string()
        + "\n03;21999001;1500000000000;Premier;Site2;PPP100;2026-01-01;2026-12-31;1;0\n\
           03;21999001;1541299999000;Dupont;Pierre;PPP100;2026-01-01;2026-12-31;2;0\n\
           03;21999001;1541299999000;Dupont;Pierre;PPP100;2025-06-01;2025-12-31;3;0\n\
           03;21999001;1999999999999;Dernier;Site2;PPP100;2026-01-01;2026-12-31;4;0\n\
           04;21999001;1000000000000;Autre;Caisse;PPP100;2026-01-01;2026-12-31;5;0\n";
    import(&mut p, Kind::Beneficiaries, &more);
    let keys: Vec<String> = hours(&render(&p.conn, "saad1").unwrap())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "03 21999001 1500000000000 PPP100 01/01/2026",
            "03 21999000 154122A999000 PPP100 01/01/2026",
            "03 21999000 1541299999000 PPP100 01/01/2025",
            // Dates compare as YYYY-MM-DD: June 2025 after January 2025.
            "03 21999001 1541299999000 PPP100 01/06/2025",
            // The same NIR, prestation and start at two sites: site order.
            "03 21999000 1541299999000 PPP100 01/01/2026",
            "03 21999001 1541299999000 PPP100 01/01/2026",
            "03 21999000 1541299999000 PPP119 01/01/2026",
            "03 21999001 1551199999000 PPP100 01/01/2026",
            "03 21999001 1999999999999 PPP100 01/01/2026",
            "04 21999001 1000000000000 PPP100 01/01/2026",
            "04 21999000 1541299999000 PPP100 01/01/2026",
        ]
    );
}

#[test]
fn the_fast_path_of_a_csv_cell_is_the_reports_cell() {
    // What the slow path writes: the shared cell, quoted when needed.
    let slow = |s: &str| {
        let cell = crate::report::csv_text_cell(s);
        if cell.contains([';', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.into_owned()
        }
    };
    for s in [
        "Dupont",
        "Lefèvre Zoé",
        "Élodie",
        "2A",
        "=1+1",
        "+33",
        "-1",
        "@a",
        "a;b",
        "a\"b",
        "a\tb",
        "a\u{7f}",
        "a\u{85}b",
        "a°b",
        "\u{a0}x",
        " x",
        "",
        "'x",
    ] {
        let mut b = Vec::new();
        csv_cell(&mut b, s);
        assert_eq!(String::from_utf8(b).unwrap(), slow(s), "{s:?}");
    }
}
