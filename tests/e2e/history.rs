//! `ppas-gateway history`, run as the caisse IT team runs it: entries written
//! by the real commands (imports) and rows inserted into the real database,
//! read back through the binary in the three formats.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use rusqlite::{params, Connection};

use crate::import::{text, Gateway};
use crate::support;

/// A gateway whose database exists (created by a first `process --once`).
fn gateway() -> Gateway {
    let g = Gateway::new();
    crate::status::first_pass(&g);
    g
}

#[allow(clippy::too_many_arguments)]
fn add(
    c: &Connection,
    at: &str,
    kind: &str,
    id_cram: Option<&str>,
    interface: &str,
    provider: &str,
    convention: &str,
    comment: &str,
) {
    c.execute(
        "INSERT INTO history (at, kind, id_cram, application, interface, provider, convention, comment)
         VALUES (?1, ?2, ?3, 'aide-a-domicile', ?4, ?5, ?6, ?7)",
        params![at, kind, id_cram, interface, provider, convention, comment],
    )
    .unwrap();
}

/// November 2026 in Paris is UTC+1: 01/11 00:00 Paris = 31/10 23:00 UTC.
fn november(g: &Gateway) {
    let c = g.db();
    add(
        &c,
        "2026-10-31T22:59:59Z",
        "received",
        Some("04"),
        "sftp",
        "saad21",
        "62739900",
        "octobre: 03_311026_100_21999000.xml",
    );
    add(
        &c,
        "2026-10-31T23:00:00Z",
        "received",
        Some("04"),
        "sftp",
        "saad21",
        "62739900",
        "reçu 03_011126_100_21999000.xml",
    );
    add(
        &c,
        "2026-11-05T08:00:00Z",
        "processed",
        Some("66"),
        "facturation",
        "saad21",
        "62739900",
        "Traité: partiel, 1 ligne REJETÉE",
    );
    add(
        &c,
        "2026-11-05T08:00:00Z",
        "chargement",
        Some("26"),
        "facturation",
        "ergo62",
        "11112222",
        "=rapport publié",
    );
    add(
        &c,
        "2026-11-20T12:00:00Z",
        "recuperation",
        None,
        "sftp",
        "ergo62",
        "11112222",
        "récupéré bordereau; ligne \"2\"",
    );
    add(
        &c,
        "2026-11-30T22:59:59Z",
        "mail",
        Some("27"),
        "messagerie",
        "saad21",
        "62739901",
        "avis envoyé: rejetée",
    );
    add(
        &c,
        "2026-11-30T23:00:00Z",
        "mail",
        Some("27"),
        "messagerie",
        "saad21",
        "62739901",
        "décembre",
    );
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn comments(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["comment"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_period_in_either_date_form_includes_both_days_in_paris_time() {
    let g = gateway();
    november(&g);
    let asc = json_lines(&g.run(
        &[
            "history",
            "--from",
            "01/11/2026",
            "--to",
            "2026-11-30",
            "--order",
            "asc",
            "--format",
            "json",
        ],
        None,
    ));
    assert_eq!(
        comments(&asc),
        [
            "reçu 03_011126_100_21999000.xml",
            "Traité: partiel, 1 ligne REJETÉE",
            "=rapport publié",
            "récupéré bordereau; ligne \"2\"",
            "avis envoyé: rejetée",
        ]
    );
    let first = &asc[0];
    assert_eq!(first["at"], "2026-11-01T00:00:00+01:00");
    assert_eq!(first["period"], "2026-11");
    assert_eq!(first["kind"], "received");
    assert_eq!(first["regime"], "Régime général");
    assert_eq!(first["id_cram"], "04");
    assert_eq!(first["caisse"], "Carsat Nord-Picardie");
    assert_eq!(first["application"], "aide-a-domicile");
    assert_eq!(first["interface"], "sftp");
    assert_eq!(first["provider"], "saad21");
    assert_eq!(first["convention"], "62739900");
    let regimes: Vec<Option<&str>> = asc.iter().map(|r| r["regime"].as_str()).collect();
    assert_eq!(
        regimes,
        [
            Some("Régime général"),
            Some("CNRACL"),
            Some("CAVIMAC"),
            None,
            Some("Fonction publique d'État")
        ]
    );

    // Default order: newest first; same instant: last recorded first.
    let desc = json_lines(&g.run(
        &[
            "history",
            "--from",
            "2026-11-01",
            "--to",
            "30/11/2026",
            "--format",
            "json",
        ],
        None,
    ));
    let mut reversed = comments(&asc);
    reversed.reverse();
    assert_eq!(comments(&desc), reversed);

    // One day, the last one.
    let last = json_lines(&g.run(
        &[
            "history",
            "--from",
            "30/11/2026",
            "--to",
            "30/11/2026",
            "--format",
            "json",
        ],
        None,
    ));
    assert_eq!(comments(&last), ["avis envoyé: rejetée"]);
}

#[test]
fn filters_are_exact_except_the_comment() {
    let g = gateway();
    november(&g);
    let q = |extra: &[&str]| {
        let mut args = vec![
            "history",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--format",
            "json",
            "--order",
            "asc",
        ];
        args.extend_from_slice(extra);
        comments(&json_lines(&g.run(&args, None)))
    };
    assert_eq!(
        q(&["--provider", "ergo62"]),
        ["=rapport publié", "récupéré bordereau; ligne \"2\""]
    );
    assert!(q(&["--provider", "ergo6"]).is_empty());
    assert_eq!(q(&["--convention", "62739901"]), ["avis envoyé: rejetée"]);
    assert_eq!(
        q(&["--interface", "sftp"]),
        ["reçu 03_011126_100_21999000.xml", "récupéré bordereau; ligne \"2\""]
    );
    assert!(q(&["--interface", "SFTP"]).is_empty());
    // Case-insensitive, accents included: "rejetée" matches "REJETÉE".
    assert_eq!(
        q(&["--comment", "rejetée"]),
        ["Traité: partiel, 1 ligne REJETÉE", "avis envoyé: rejetée"]
    );
    assert_eq!(
        q(&[
            "--comment",
            "REJETÉE",
            "--provider",
            "saad21",
            "--interface",
            "messagerie"
        ]),
        ["avis envoyé: rejetée"]
    );
}

#[test]
fn csv_is_for_a_french_spreadsheet() {
    let g = gateway();
    november(&g);
    let out = g.run(
        &[
            "history",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--format",
            "csv",
            "--order",
            "asc",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.starts_with(b"\xEF\xBB\xBF"), "UTF-8 BOM");
    let body = std::str::from_utf8(&out.stdout[3..]).unwrap();
    assert_eq!(body.matches("\r\n").count(), 6, "header + 5 rows, CRLF:\n{body}");
    let mut r = csv::ReaderBuilder::new().delimiter(b';').from_reader(body.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header,
        [
            "horodatage (Paris)",
            "période",
            "type",
            "régime",
            "id-cram",
            "caisse",
            "application",
            "interface",
            "prestataire",
            "convention",
            "commentaire"
        ]
    );
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(&rows[0][0], "2026-11-01 00:00:00");
    assert_eq!(&rows[0][1], "2026-11");
    assert_eq!(&rows[1][3], "CNRACL");
    assert_eq!(&rows[2][10], "'=rapport publié", "a formula is neutralised");
    assert_eq!(
        &rows[3][10], "récupéré bordereau; ligne \"2\"",
        "separator and quotes survive"
    );
    assert_eq!(&rows[3][5], "", "no caisse recorded");

    // An empty period still gives the header.
    let out = g.run(
        &[
            "history",
            "--from",
            "2027-01-01",
            "--to",
            "2027-01-31",
            "--format",
            "csv",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout[3..]).lines().count(), 1);
}

#[test]
fn table_is_aligned_in_paris_time() {
    let g = gateway();
    november(&g);
    let out = g.run(&["history", "--from", "2026-11-05", "--to", "2026-11-05"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 4, "header, rule, 2 entries:\n{t}");
    for title in [
        "horodatage (Paris)",
        "période",
        "régime",
        "caisse",
        "application",
        "interface",
        "prestataire",
        "convention",
        "commentaire",
    ] {
        assert!(lines[0].contains(title), "{title} in {}", lines[0]);
    }
    // Same instant, newest recorded first; 08:00 UTC is 09:00 in Paris.
    assert!(lines[2].starts_with("2026-11-05 09:00:00  2026-11  CAVIMAC "), "{t}");
    assert!(lines[2].ends_with("=rapport publié"), "{t}");
    assert!(
        lines[3].contains("CNRACL") && lines[3].ends_with("Traité: partiel, 1 ligne REJETÉE"),
        "{t}"
    );
    let start = |l: &str, c: &str| l.chars().count() - c.chars().count();
    assert_eq!(
        start(lines[2], "=rapport publié"),
        start(lines[0], "commentaire"),
        "{t}"
    );

    let out = g.run(&["history", "--from", "2027-01-01", "--to", "2027-01-31"], None);
    assert_eq!(
        text(&out.stdout),
        "Aucun échange enregistré du 01/01/2027 au 31/01/2027.\n"
    );
}

#[test]
fn entries_recorded_by_real_commands_are_listed() {
    let g = Gateway::new().with_providers();
    // The import ran at 2026-11-02T10:00:00+01:00 (the fixed clock of the tests).
    let rows = json_lines(&g.run(
        &[
            "history",
            "--from",
            "02/11/2026",
            "--to",
            "02/11/2026",
            "--interface",
            "referentiel",
            "--format",
            "json",
        ],
        None,
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["kind"], "import");
    assert_eq!(rows[0]["at"], "2026-11-02T10:00:00+01:00");
    assert!(
        rows[0]["comment"].as_str().unwrap().contains("providers.csv"),
        "{rows:?}"
    );
    let none = json_lines(&g.run(
        &[
            "history",
            "--from",
            "01/11/2026",
            "--to",
            "01/11/2026",
            "--format",
            "json",
        ],
        None,
    ));
    assert!(none.is_empty());
}

#[test]
fn bad_periods_and_dates_exit_2_with_a_clear_message() {
    let g = gateway();
    for (args, needle) in [
        (
            &["--from", "2026-11-30", "--to", "01/11/2026"][..],
            "the period ends before it starts: --to 01/11/2026 is before --from 30/11/2026",
        ),
        (
            &["--from", "31/02/2026", "--to", "2026-03-01"][..],
            "--from: \"31/02/2026\" is not a real date",
        ),
        (
            &["--from", "2026-11-01", "--to", "1/12/2026"][..],
            "--to: \"1/12/2026\" is not a date (YYYY-MM-DD or JJ/MM/AAAA)",
        ),
        (&["--to", "2026-11-30"][..], "--from"),
        (
            &["--from", "2026-11-01", "--to", "2026-11-30", "--order", "up"][..],
            "--order",
        ),
        (
            &["--from", "2026-11-01", "--to", "2026-11-30", "--format", "xml"][..],
            "--format",
        ),
    ] {
        let mut all = vec!["history"];
        all.extend_from_slice(args);
        let out = g.run(&all, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(text(&out.stderr).contains(needle), "{args:?}: {}", text(&out.stderr));
    }
}

/// Every file of the state folder with its content.
fn state_files(g: &Gateway) -> Vec<(String, Vec<u8>)> {
    let dir = g.db_path().parent().unwrap().to_path_buf();
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_query_never_writes() {
    let fresh = Gateway::new();
    let out = fresh.run(&["history", "--from", "2026-11-01", "--to", "2026-11-30"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));
    assert!(!fresh.db_path().exists(), "no database is created by a query");

    let g = gateway();
    november(&g);
    let before = state_files(&g);
    assert_eq!(
        before.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["gateway.db", "gateway.lock", "in-hand"],
        "only the database file (and the spool lock and the in-hand note of the first pass)"
    );
    for format in ["table", "json", "csv"] {
        let out = g.run(
            &[
                "history",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-30",
                "--format",
                format,
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0));
    }
    assert!(state_files(&g) == before, "the database and its folder are unchanged");
}

#[test]
fn output_stops_quietly_when_the_reader_goes_away() {
    let g = gateway();
    {
        let mut c = g.db();
        let tx = c.transaction().unwrap();
        for i in 0..20_000 {
            add(
                &tx,
                "2026-11-10T10:00:00Z",
                "received",
                Some("04"),
                "sftp",
                "saad21",
                "62739900",
                &format!("fichier {i}"),
            );
        }
        tx.commit().unwrap();
    }
    for format in ["json", "csv", "table"] {
        let mut child = Command::new(support::bin())
            .arg("--config")
            .arg(&g.config)
            .args([
                "history",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-30",
                "--format",
                format,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped here, like `| head -1`.
        let out = child.wait_with_output().unwrap();
        assert!(!first.is_empty());
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{format}: {}", text(&out.stderr));
    }
}
