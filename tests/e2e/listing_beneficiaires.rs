//! The beneficiary listing (`beneficiaires.csv` / `.xml`) over a state the
//! real binary made (`import`, `process --once`), read back by real tools:
//! `xmllint --schema schema/beneficiaires.xsd` and `--xpath` for the XML,
//! Python's `csv` module (as a spreadsheet import would) for the CSV.

use std::path::{Path, PathBuf};
use std::process::Command;

use ppas_gateway::listing::beneficiaires;
use ppas_gateway::listing::Rendered;

use crate::pipeline_support::*;
use crate::support::{have, repo};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Both forms written under `dir` as `<name>.csv` / `<name>.xml`.
fn write(dir: &Path, name: &str, r: &Rendered) -> (PathBuf, PathBuf) {
    let (csv, xml) = (dir.join(format!("{name}.csv")), dir.join(format!("{name}.xml")));
    std::fs::write(&csv, &r.csv).unwrap();
    std::fs::write(&xml, &r.xml).unwrap();
    (csv, xml)
}

fn assert_valid(xml: &Path) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(repo().join("schema/beneficiaires.xsd"))
        .arg(xml)
        .output()
        .expect("xmllint (libxml2-utils) is required");
    assert!(
        out.status.success(),
        "{} is not valid: {}",
        xml.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn xpath(file: &Path, expr: &str) -> String {
    let out = run(Command::new("xmllint").arg("--xpath").arg(expr).arg(file));
    out.strip_suffix('\n').unwrap_or(&out).to_string()
}

/// Python's csv module: `utf-8-sig` drops the BOM, `;` separates.
fn python_csv_rows(path: &Path) -> Vec<Vec<String>> {
    let script = concat!(
        "import csv, json, sys\n",
        "with open(sys.argv[1], newline='', encoding='utf-8-sig') as f:\n",
        "    print(json.dumps(list(csv.reader(f, delimiter=';'))))\n",
    );
    let out = run(Command::new("/usr/bin/python3").arg("-c").arg(script).arg(path));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn listings_of_a_processed_state_validate_and_read_back() {
    assert!(have("xmllint"), "xmllint (libxml2-utils) is required");
    let g = Gw::with_cast();
    // A hostile name on one of saadA's plans, as a caisse file could carry it.
    g.import(
        "beneficiaries",
        &format!(
            "id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n\
             03;{SITE_A};{NIR_A3};\"=1+2;<b>&amp;\"\"x\"\"\";@Paul;PPP100;2026-01-01;2026-06-30;100;0,5\n"
        ),
    );
    // Accepted: 12.5 h for Jean, 6 h for Anne. Partial: Anne's second line
    // goes over what is left (L07) and consumes nothing.
    g.drop_bill(
        "saadA",
        &Bill::new(SITE_A, 2)
            .line(BLine::month(NIR_A1, SITE_A, 3, "12.5"))
            .line(BLine::month(NIR_A2, SITE_A, 3, "6")),
    );
    g.drop_bill(
        "saadA",
        &Bill::new(SITE_A, 3)
            .line(BLine::month(NIR_A1, SITE_A, 4, "1.25"))
            .line(BLine::month(NIR_A2, SITE_A, 4, "10.01")),
    );
    let out = g.process();
    assert_eq!(out.status.code(), Some(1), "one partial file: exit 1");
    assert_eq!(g.count("SELECT COUNT(*) FROM accepted_lines"), 3);

    let d = tempfile::tempdir().unwrap();
    let conn = g.db();
    let a = beneficiaires::render(&conn, "saadA").unwrap();
    let (csv, xml) = write(d.path(), "saadA", &a);
    assert_valid(&xml);

    let rows = python_csv_rows(&csv);
    assert_eq!(rows[0], beneficiaires::CSV_HEADER);
    assert!(rows.iter().all(|r| r.len() == 11), "{rows:?}");
    // saadA's five plans (two sites), none of saadB's, by NIR whatever the site.
    let keys: Vec<(&str, &str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[5].as_str(), r[6].as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (SITE_A, NIR_A1, "PPP100", "01/01/2026"),
            (SITE_A, NIR_A1, "PPP119", "01/01/2026"),
            (SITE_A, NIR_A3, "PPP100", "01/01/2026"),
            (SITE_A2, NIR_A5, "PPP100", "01/01/2026"),
            (SITE_A, NIR_A2, "PPP100", "01/01/2026"),
        ]
    );
    let row = |nir: &str, prest: &str| rows.iter().find(|r| r[2] == nir && r[5] == prest).unwrap().clone();
    assert_eq!(row(NIR_A1, "PPP100")[7..], ["31/12/2026", "200,00", "13,75", "186,25"]);
    // 4 (caisse) + 6; the refused 10.01 h (L07: 10 h were left) counts for nothing.
    assert_eq!(row(NIR_A2, "PPP100")[8..], ["20,00", "10,00", "10,00"]);
    let paul = row(NIR_A3, "PPP100");
    assert_eq!(paul[3], "'=1+2;<b>&amp;\"x\"");
    assert_eq!(paul[4], "'@Paul");
    assert_eq!(paul[8..], ["100,00", "0,50", "99,50"]);
    assert!(!rows.iter().any(|r| r[2] == NIR_B1));

    // What a provider's XML parser reads back.
    let p = format!("//plan[nir-per='{NIR_A3}']");
    assert_eq!(xpath(&xml, &format!("string({p}/nom-per)")), "=1+2;<b>&amp;\"x\"");
    assert_eq!(xpath(&xml, &format!("string({p}/pn-per)")), "@Paul");
    assert_eq!(xpath(&xml, &format!("string({p}/heures-restantes)")), "99.50");
    assert_eq!(xpath(&xml, "count(//plan)"), "5");
    assert_eq!(xpath(&xml, "string(/beneficiaires/@prestataire)"), "saadA");
    let jean = format!("//plan[nir-per='{NIR_A1}'][rf-prstpap='PPP100']");
    assert_eq!(xpath(&xml, &format!("string({jean}/heures-consommees)")), "13.75");
    assert_eq!(xpath(&xml, &format!("string({jean}/dt-fin)")), "2026-12-31");

    // saadB sees its own plan only; saadC (caisse 04, no plan) and an
    // unknown account get a valid listing with no plan.
    let b = beneficiaires::render(&conn, "saadB").unwrap();
    let (csv, xml) = write(d.path(), "saadB", &b);
    assert_valid(&xml);
    let rows = python_csv_rows(&csv);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][2], NIR_B1);
    for provider in ["saadC", "nobody"] {
        let r = beneficiaires::render(&conn, provider).unwrap();
        let (csv, xml) = write(d.path(), provider, &r);
        assert_valid(&xml);
        assert_eq!(xpath(&xml, "count(//plan)"), "0");
        assert_eq!(python_csv_rows(&csv), [beneficiaires::CSV_HEADER]);
    }

    // Rendered again from the same state: the same bytes.
    assert_eq!(beneficiaires::render(&conn, "saadA").unwrap(), a);
}

#[test]
fn the_schema_refuses_what_the_listing_never_writes() {
    assert!(have("xmllint"), "xmllint (libxml2-utils) is required");
    let d = tempfile::tempdir().unwrap();
    let plan = |hours: &str| {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<beneficiaires version=\"1\" prestataire=\"p\">\n <plan>\n  \
             <id-cram>03</id-cram>\n  <id-site>1</id-site>\n  <nir-per>1</nir-per>\n  <nom-per>N</nom-per>\n  \
             <pn-per>P</pn-per>\n  <rf-prstpap>PPP100</rf-prstpap>\n  <dt-debut>2026-01-01</dt-debut>\n  \
             <dt-fin>2026-12-31</dt-fin>\n  <heures-plan>1.00</heures-plan>\n  <heures-consommees>0.00</heures-consommees>\n  \
             <heures-restantes>{hours}</heures-restantes>\n </plan>\n</beneficiaires>\n"
        )
    };
    let lint = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(repo().join("schema/beneficiaires.xsd"))
            .arg(&p)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(lint("ok.xml", &plan("-0.0001")));
    for (i, bad) in ["1", "1,00", "1.00001", "1e2", ""].iter().enumerate() {
        assert!(!lint(&format!("bad{i}.xml"), &plan(bad)), "{bad:?} accepted");
    }
}
