//! The logs as a collector reads them (`docs/logging.md`): the real binary
//! run through a representative day with `[log] format = "json"` at
//! `level = "debug"` — reference imports, an account, a billing file
//! uploaded by SFTP and one dropped, an attestation file, anomalies, the
//! outbox, the reports, the notices sent, refused SFTP logins up to a
//! lockout — and every line it wrote on stderr checked: one JSON object,
//! the typed events with their stable fields, and no NIR anywhere.
//! Also: `journald` without a journal falls back to stderr with one warning.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::habitat::{orders_csv, ORDERS};
use crate::pipeline_support::*;
use crate::sftp_support::{keygen, pubkey, run_with_timeout, ssh_options};
use crate::support::{self, assert_no_nir};

/// The ergothérapeute of the attestations, with the cast's providers.
const ERGO62: &str = "ergo62;Cabinet d'ergothérapie Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n";

/// The NIRs of the orders (the attestations name them, one wrongly).
const ORDER_NIRS: &[&str] = &["1541299999000", "154122A999000", "2600321000002"];
/// A NIR that matches no order (A07).
const WRONG_NIR: &str = "1541299999111";

fn attestations(items: &[(&str, &str)]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n");
    for (rf, nir) in items {
        s.push_str(&format!(
            "  <attvisite>\n    <rf-commande>{rf}</rf-commande>\n    <id-cram>04</id-cram>\n    \
             <code-convention>62739900</code-convention>\n    <nir-per>{nir}</nir-per>\n    <statut>T</statut>\n    \
             <dt-visite>02/10/2026</dt-visite>\n    <motif></motif>\n    <commentaire></commentaire>\n  </attvisite>\n"
        ));
    }
    s.push_str("</attvisites>\n");
    s
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The gateway of the test: the cast, SFTP on `port` with fast refusals
/// and a lock after 2 failures, JSON logs at debug level.
pub(crate) fn gateway(port: u16) -> Gw {
    let g = Gw::new_with("\n[log]\nformat = \"json\"\nlevel = \"debug\"\n");
    let text = std::fs::read_to_string(&g.config).unwrap();
    let sftp = format!(
        "[sftp]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\nhost_key = {:?}\nfailure_delay_ms = 20\n\
         lockout_after_failures = 2\n",
        g.spool.join("state/ssh_host_ed25519_key").display().to_string()
    );
    let text = text.replacen("[sftp]\nenabled = false\n", &sftp, 1);
    assert!(text.contains("lockout_after_failures"), "{text}");
    std::fs::write(&g.config, text).unwrap();
    g
}

/// The cast's providers and plans imported, and login `saada1` of provider
/// saadA with a new Ed25519 key, by the command line; returns the key.
pub(crate) fn cast_and_sftp_user(g: &Gw) -> std::path::PathBuf {
    g.import("providers", &providers_csv());
    g.import("beneficiaries", &beneficiaries_csv());
    let key = keygen(g.dir.path(), "saada", "ed25519", None);
    let pubfile = g.dir.path().join("saada.pub");
    std::fs::write(&pubfile, pubkey(&key)).unwrap();
    let mut logs = String::new();
    run(
        g,
        &[
            "user",
            "add",
            "--provider",
            "saadA",
            "--login",
            "saada1",
            "--email",
            "compta@saada.example",
            "--key",
            pubfile.to_str().unwrap(),
        ],
        0,
        &mut logs,
    );
    key
}

/// Runs a command of the gateway, expecting `code`; keeps its stderr.
fn run(g: &Gw, args: &[&str], code: i32, logs: &mut String) -> Output {
    let out = g.run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
    logs.push_str(&text(&out.stderr));
    out
}

/// `sftp` as `login` with `key`, running `batch`; whether it succeeded.
pub(crate) fn sftp(port: u16, login: &str, key: &Path, batch: &str, dir: &Path) -> (bool, String) {
    let file = dir.join(format!("batch-{login}"));
    std::fs::write(&file, batch).unwrap();
    let mut cmd = Command::new("sftp");
    cmd.args(ssh_options(key))
        .arg("-b")
        .arg(&file)
        .arg("-P")
        .arg(port.to_string())
        .arg(format!("{login}@127.0.0.1"));
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    (out.status.success(), text(&out.stderr))
}

/// The lines of the daemon's log, each parsed.
fn parse(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect()
}

fn events<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["event"] == name).collect()
}

/// Asserts that every event `name` carries `fields`, and returns them.
fn typed<'a>(lines: &'a [Value], name: &str, fields: &[&str]) -> Vec<&'a Value> {
    let found = events(lines, name);
    assert!(!found.is_empty(), "no {name} event");
    for e in &found {
        for f in fields {
            assert!(!e[f].is_null(), "{name} without {f}: {e}");
        }
    }
    found
}

#[test]
fn json_logs_of_a_day_carry_the_typed_events_and_no_nir() {
    for tool in ["sftp", "ssh-keygen"] {
        assert!(support::have(tool), "{tool} is needed (apt-get install openssh-client)");
    }
    let port = free_port();
    let g = gateway(port);
    let mut cli = String::new();
    let providers = providers_csv() + ERGO62;
    for (kind, csv) in [
        ("providers", providers),
        ("beneficiaries", beneficiaries_csv()),
        ("orders", orders_csv(&ORDERS[..2])),
    ] {
        let f = g.dir.path().join(format!("{kind}.csv"));
        std::fs::write(&f, csv).unwrap();
        run(&g, &["import", kind, f.to_str().unwrap()], 0, &mut cli);
    }
    let key = keygen(g.dir.path(), "saada", "ed25519", None);
    let pubfile = g.dir.path().join("saada.pub");
    std::fs::write(&pubfile, pubkey(&key)).unwrap();
    run(
        &g,
        &[
            "user",
            "add",
            "--provider",
            "saadA",
            "--login",
            "saada1",
            "--email",
            "compta@saada.example",
            "--key",
            pubfile.to_str().unwrap(),
        ],
        0,
        &mut cli,
    );

    let log = g.dir.path().join("serve.log");
    let mut d = Daemon::start(&g, &log);
    d.wait_ready(Duration::from_secs(60));

    // saadA uploads a partial file by SFTP (L04 on its third line).
    let by_sftp = Bill::new(SITE_A, 2).lines([
        BLine::month(NIR_A1, SITE_A, 1, "12.5"),
        BLine::month(NIR_A5, SITE_A2, 2, "7.25").id_prest(SITE_A2),
        BLine::month(NIR_NONE, SITE_A, 3, "3"),
    ]);
    let local = g.dir.path().join(by_sftp.name());
    std::fs::write(&local, by_sftp.xml()).unwrap();
    let (ok, err) = sftp(
        port,
        "saada1",
        &key,
        &format!("put {} /in/{}\n", local.display(), by_sftp.name()),
        g.dir.path(),
    );
    assert!(ok, "sftp put: {err}");
    // saadB drops an accepted file; ergo62 an attestation file with a wrong NIR (A07).
    let dropped = Bill::new(SITE_B, 3).lines([BLine::month(NIR_B1, SITE_B, 3, "10")]);
    g.drop_bill("saadB", &dropped);
    let att = "attestations-ergo62-1.xml";
    g.drop_file(
        "ergo62",
        att,
        attestations(&[("C04-2026-000123", ORDER_NIRS[0]), ("C04-2026-000124", WRONG_NIR)]).as_bytes(),
    );
    let reports = [
        format!("outbound/saadA/reports/{}.report.xml", by_sftp.rf_borfact()),
        format!("outbound/saadB/reports/{}.report.xml", dropped.rf_borfact()),
        format!("outbound/ergo62/reports/{}", att.replace(".xml", ".report.xml")),
    ];
    wait_for(Duration::from_secs(60), "the three reports", || {
        reports.iter().all(|r| g.exists(r))
    });

    // Someone tries keys that no account holds, until the source is locked.
    let stranger = keygen(g.dir.path(), "stranger", "ed25519", None);
    for _ in 0..6 {
        let (ok, _) = sftp(port, "saada1", &stranger, "ls /\n", g.dir.path());
        assert!(!ok, "an unknown key logged in");
        if std::fs::read_to_string(&log).unwrap().contains("sftp.lockout") {
            break;
        }
    }
    // The notices of the two files with anomalies, written as .eml.
    wait_for(Duration::from_secs(60), "the notices sent", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("\"key\":\"report:")
            .count()
            >= 2
    });
    let (code, _) = d.terminate();
    assert_eq!(code, Some(0));
    run(&g, &["status"], 0, &mut cli);

    let served = std::fs::read_to_string(&log).unwrap();
    let all = format!("{cli}{served}");
    let lines = parse(&all);
    // Every line: the collector's fixed fields.
    for v in &lines {
        for f in ["timestamp", "level", "target"] {
            assert!(v[f].is_string(), "no {f}: {v}");
        }
    }
    // debug was on: lines of that level were written.
    assert!(lines.iter().any(|v| v["level"] == "DEBUG"), "no debug line");

    let received = typed(&lines, "file.received", &["file", "provider", "id", "size"]);
    let names: BTreeSet<&str> = received.iter().map(|e| e["file"].as_str().unwrap()).collect();
    let expected: BTreeSet<String> = [by_sftp.name(), dropped.name(), att.to_string()].into();
    assert_eq!(names, expected.iter().map(String::as_str).collect());
    let processed = typed(
        &lines,
        "file.processed",
        &[
            "id",
            "file",
            "provider",
            "kind",
            "verdict",
            "lines",
            "accepted",
            "anomalies",
        ],
    );
    let verdict = |name: &str| {
        let e = processed.iter().find(|e| e["file"] == name).expect("processed");
        (
            e["kind"].as_str().unwrap().to_string(),
            e["verdict"].as_str().unwrap().to_string(),
            e["lines"].as_u64(),
        )
    };
    assert_eq!(verdict(&by_sftp.name()), ("billing".into(), "partial".into(), Some(3)));
    assert_eq!(verdict(&dropped.name()), ("billing".into(), "accepted".into(), Some(1)));
    assert_eq!(verdict(att), ("attestations".into(), "partial".into(), Some(2)));
    let outbox = typed(&lines, "outbox.written", &["id", "file", "provider", "outbox"]);
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    let published = typed(
        &lines,
        "report.published",
        &["id", "file", "provider", "report", "forms"],
    );
    let mut paths: Vec<&str> = published.iter().map(|e| e["report"].as_str().unwrap()).collect();
    paths.sort();
    let mut want: Vec<&str> = reports.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(paths, want);
    assert!(published.iter().all(|e| e["forms"] == 3), "{published:?}");
    let sent = typed(&lines, "mail.sent", &["id", "key", "recipients", "attempts", "via"]);
    assert!(
        sent.iter().all(|e| e["via"] == "eml" && e["recipients"] == 1),
        "{sent:?}"
    );
    let notices = sent
        .iter()
        .filter(|e| e["key"].as_str().unwrap().starts_with("report:"));
    assert_eq!(notices.count(), 2, "{sent:?}");
    let logins = typed(&lines, "sftp.login", &["outcome", "peer", "login", "method"]);
    assert!(
        logins.iter().any(|e| e["outcome"] == "ok" && e["provider"] == "saadA"),
        "{logins:?}"
    );
    assert!(
        logins.iter().filter(|e| e["outcome"] == "failed").count() >= 2,
        "{logins:?}"
    );
    typed(&lines, "sftp.lockout", &["peer", "secs"]);

    let mut nirs: Vec<&str> = ALL_NIRS.to_vec();
    nirs.extend_from_slice(ORDER_NIRS);
    nirs.push(WRONG_NIR);
    assert_no_nir(&all, &nirs, "the logs");
}

#[test]
fn journald_without_a_journal_logs_to_stderr_after_one_warning() {
    let g = Gw::new_with("\n[log]\nformat = \"journald\"\n");
    g.import("providers", &providers_csv());
    let out = g.run(&["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let warnings = err.matches("the journal cannot be reached").count();
    if Path::new("/run/systemd/journal/socket").exists() {
        assert_eq!(warnings, 0, "{err}");
    } else {
        assert_eq!(warnings, 1, "{err}");
    }
}
