//! `ppas-gateway status`, run by an operator: on a fresh install, then on a
//! spool with files waiting and a database filled with rusqlite, checking
//! every count against what was put there.

use std::fs;

use rusqlite::{params, Connection};

use crate::import::{text, Gateway};

fn status_json(g: &Gateway) -> serde_json::Value {
    let out = g.run(&["status", "--json"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert_eq!(t.lines().count(), 1, "one JSON object: {t}");
    serde_json::from_str(&t).expect("JSON")
}

/// Creates the spool and the database the way an operator does: a first
/// pass of `process --once` (read-only commands never create them).
pub fn first_pass(g: &Gateway) {
    let out = g.run(&["process", "--once"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn read_only_commands_never_create_state_and_say_where_they_looked() {
    let g = Gateway::new();
    let db = g.db_path().display().to_string();
    let bill = g.dir.path().join("03_150521_100_21999000.xml");
    fs::write(&bill, b"<factbord/>").unwrap();
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["validate", bill.to_str().unwrap()],
        vec!["history", "--from", "2026-11-01", "--to", "2026-11-30"],
        vec!["retry", "--all"],
    ] {
        let out = g.run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(&db),
            "{args:?} does not say where it looked: {}",
            text(&out.stderr)
        );
        assert!(!g.db_path().exists(), "{args:?} created the database");
        assert!(!g.dir.path().join("spool").exists(), "{args:?} created the spool");
    }
}

#[test]
fn works_once_the_state_exists() {
    let g = Gateway::new();
    first_pass(&g);
    let out = g.run(&["status"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let db = g.db_path().display().to_string();
    for needle in [
        format!(
            "database        {db} (schema version {v}, this binary knows {v})",
            v = ppas_gateway::store::SCHEMA_VERSION
        ),
        "daemon          not running on this spool".into(),
        "quarantined     0".into(),
        "inbound waiting 0".into(),
        "in flight       0 (0 received, 0 decided)".into(),
        "outputs owed    0".into(),
        "mail            0 pending, 0 failed".into(),
        "last files processed\n  (none)\n".into(),
        "last errors\n  (none)\n".into(),
    ] {
        assert!(t.contains(&needle), "missing {needle:?} in:\n{t}");
    }
    let v = status_json(&g);
    assert_eq!(v["schema_version"], ppas_gateway::store::SCHEMA_VERSION);
    assert_eq!(v["database"], db.as_str());
    assert_eq!(v["inbound_total"], 0);
}

fn file(
    c: &Connection,
    provider: &str,
    name: &str,
    state: &str,
    verdict: Option<&str>,
    decided_at: Option<&str>,
) -> i64 {
    c.execute(
        "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state, verdict, lines, accepted_lines, decided_at)
         VALUES (?1, ?2, 'sftp', 'ab', 10, '2026-11-02T08:00:00Z', ?1 || '/' || ?2, ?3, ?4, 3, 2, ?5)",
        params![provider, name, state, verdict, decided_at],
    )
    .unwrap();
    c.last_insert_rowid()
}

fn fill(g: &Gateway) {
    let spool = g.dir.path().join("spool");
    for (provider, names) in [
        (
            "saad21",
            &[
                "a.xml",
                "b.xml",
                "c.XML",
                ".hidden.xml",
                "~lock.xml",
                "d.xml.part",
                "e.xml.TMP",
                "f.xml.filepart",
            ][..],
        ),
        ("ergo62", &["att.xml"][..]),
        ("saad03", &[][..]),
    ] {
        let dir = spool.join("inbound").join(provider);
        fs::create_dir_all(&dir).unwrap();
        for n in names {
            fs::write(dir.join(n), b"<x/>").unwrap();
        }
    }
    fs::create_dir_all(spool.join("inbound/saad21/sub")).unwrap();
    fs::write(spool.join("inbound/stray.xml"), b"").unwrap();
    fs::create_dir_all(spool.join("inbound/.ppas-tmp-1")).unwrap();

    let c = g.db();
    file(&c, "saad21", "taken.xml", "received", None, None);
    file(
        &c,
        "saad21",
        "decided.xml",
        "decided",
        Some("partial"),
        Some("2026-11-02T08:10:00Z"),
    );
    file(
        &c,
        "saad21",
        "decided2.xml",
        "decided",
        Some("rejected"),
        Some("2026-11-02T08:11:00Z"),
    );
    for (i, minute) in [1, 5, 2, 4, 3].iter().enumerate() {
        file(
            &c,
            "ergo62",
            &format!("done{i}.xml"),
            "done",
            Some("accepted"),
            Some(&format!("2026-11-01T07:0{minute}:00Z")),
        );
    }
    for (name, at) in [
        ("att-in.xml", "2026-11-01T09:00:00Z"),
        ("att-out.xml", "2026-11-01T08:59:59Z"),
    ] {
        let id = file(&c, "ergo62", name, "done", Some("accepted"), Some(at));
        c.execute("UPDATE received_files SET kind = 'attestations' WHERE id = ?1", [id])
            .unwrap();
    }
    let f = file(
        &c,
        "saad21",
        "owed.xml",
        "decided",
        Some("accepted"),
        Some("2026-10-30T07:00:00Z"),
    );
    for (kind, done) in [
        ("outbox", None),
        ("report-xml", None),
        ("report-csv", Some("2026-11-02T08:00:00Z")),
        ("report-pdf", None),
    ] {
        c.execute(
            "INSERT INTO outputs (file_id, kind, path, done_at) VALUES (?1, ?2, ?2, ?3)",
            params![f, kind, done],
        )
        .unwrap();
    }
    // [mail] max_attempts = 3 in this gateway's configuration.
    for (key, attempts, sent) in [
        ("a", 0, None),
        ("b", 2, None),
        ("c", 3, None),
        ("d", 7, None),
        ("e", 1, Some("2026-11-02T08:00:00Z")),
        ("f", 5, Some("2026-11-02T08:00:00Z")),
    ] {
        c.execute(
            "INSERT INTO mail_queue (dedup_key, created_at, recipients, subject, body, attempts, next_attempt_at, sent_at)
             VALUES (?1, '2026-11-02T08:00:00Z', 'x@example.org', 's', 'b', ?2, '2026-11-02T08:00:00Z', ?3)",
            params![key, attempts, sent],
        )
        .unwrap();
    }
    for i in 1..=7 {
        c.execute(
            "INSERT INTO errors (at, worker, message) VALUES (?1, 'intake', ?2)",
            params![format!("2026-11-02T0{i}:00:00Z"), format!("erreur {i}\u{1b}[2J")],
        )
        .unwrap();
    }
}

fn gateway_with_three_attempts() -> Gateway {
    let g = Gateway::new();
    let mut cfg = fs::read_to_string(&g.config).unwrap();
    cfg.push_str("\n[mail]\nmax_attempts = 3\n");
    fs::write(&g.config, cfg).unwrap();
    first_pass(&g);
    g
}

#[test]
fn counts_match_the_spool_and_the_database() {
    let g = gateway_with_three_attempts();
    fill(&g);
    let v = status_json(&g);
    assert_eq!(
        v["inbound"],
        serde_json::json!({"ergo62": 1, "saad03": 0, "saad21": 3}),
        "temporary names are not counted"
    );
    assert_eq!(v["inbound_total"], 4);
    assert_eq!(v["in_flight_received"], 1);
    assert_eq!(v["in_flight_decided"], 3);
    assert_eq!(v["outputs_owed"], 3);
    assert_eq!(v["mail_pending"], 2, "unsent, fewer than 3 attempts");
    assert_eq!(v["mail_failed"], 2, "unsent, 3 attempts or more");
    assert_eq!(v["mail_next_attempt_at"], "2026-11-02 09:00:00");
    assert_eq!(
        v["last_24h"],
        serde_json::json!([
            {"kind": "billing", "accepted": 0, "partial": 1, "rejected": 1},
            {"kind": "attestations", "accepted": 1, "partial": 0, "rejected": 0}
        ]),
        "decided since 2026-11-01 09:00 UTC (the clock is 2026-11-02 09:00 UTC)"
    );

    let files: Vec<(&str, &str)> = v["last_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files,
        [
            ("decided2.xml", "rejected"),
            ("decided.xml", "partial"),
            ("att-in.xml", "accepted"),
            ("att-out.xml", "accepted"),
            ("done1.xml", "accepted")
        ],
        "the 5 most recently decided, newest first"
    );
    assert_eq!(v["last_files"][0]["decided_at"], "2026-11-02 09:11:00", "Paris time");
    let errors: Vec<&str> = v["last_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 5);
    assert!(
        errors[0].starts_with("erreur 7") && errors[4].starts_with("erreur 3"),
        "{errors:?}"
    );

    let out = g.run(&["status"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    for needle in [
        "inbound waiting 4\n  ergo62                   1\n  saad21                   3\n",
        "in flight       4 (1 received, 3 decided)",
        "outputs owed    3",
        "mail            2 pending, 2 failed (next attempt 2026-11-02 09:00:00)",
        "last 24 hours   billing 0 accepted, 1 partial, 1 rejected; attestations 1 accepted, 0 partial, 0 rejected\n",
        "  2026-11-02 09:11:00  rejected  saad21/decided2.xml  (2/3 lines accepted)",
        "  2026-11-02 08:00:00  intake: erreur 7 [2J",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
    assert!(
        !t.contains("saad03"),
        "providers with nothing waiting are not listed:\n{t}"
    );
    assert!(!t.contains('\u{1b}'), "no escape sequence reaches the terminal");
}
