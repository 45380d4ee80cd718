//! `/metrics` and `/healthz` of the real `serve`, scraped over TCP the way
//! Prometheus and a health probe do, while files flow: billing files
//! dropped and uploaded by SFTP (accepted, partial, rejected), an
//! attestation file, a file that fails and is quarantined, refused SFTP
//! logins up to a lock, notices queued for an SMTP relay that does not
//! answer. Every counter is checked against what happened (the database
//! for the anomaly codes and lines), every gauge against the state; then
//! the database is moved away under the running daemon and `/healthz`
//! says so. The service's `STATUS=` line is read from a real notify
//! socket.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::pipeline_support::*;
use crate::sftp_support::{keygen, run_with_timeout, ssh_options};

const ERGO: &str = "ergo62;Cabinet d'ergothérapie Artois;44306184100047;cabinet@ergo62.example;03 21 00 00 62;ergo;04;62739900;62739900\n";
const ORDER: &str =
    "rf-commande;id-cram;code-convention;nir-per;nom-per;pn-per;adresse;telephone;ressources;dt-commande\n\
C04-2026-000123;04;62739900;1541299999000;DUPONT;Jean;12 rue des Lilas 62000 Arras;03 21 00 00 01;PS;2026-09-01\n";

/// A gateway with SFTP and the metrics endpoint on free loopback ports,
/// its database in a folder of its own (moved away later), files taken
/// once quiet for 300 ms, quarantined at the first failure, two refused
/// logins locking a source, and a relay that refuses connections.
fn gateway() -> (Gw, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let config = dir.path().join("ppas-gateway.toml");
    let db = dir.path().join("db/gateway.db");
    let text = format!(
        "[paths]\nspool = {:?}\ndatabase = {:?}\n\n\
         [sftp]\nlisten = \"127.0.0.1:0\"\nhost_key = {:?}\nlockout_after_failures = 2\nfailure_delay_ms = 10\n\n\
         [intake]\nrescan_secs = 1\nsettle_ms = 300\nmax_attempts = 1\n\n\
         [mail]\npoll_secs = 1\nsmtp_url = \"smtp://127.0.0.1:1\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
        spool.display().to_string(),
        db.display().to_string(),
        dir.path().join("host_key").display().to_string(),
    );
    std::fs::write(&config, text).expect("write config");
    let g = Gw { dir, config, spool };
    g.import("providers", &format!("{}{ERGO}", providers_csv()));
    g.import("beneficiaries", &beneficiaries_csv());
    g.import("orders", ORDER);
    (g, db)
}

/// One HTTP/1.1 request; returns the status code, the headers (lower-case
/// names) and the body.
fn http(port: u16, method: &str, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {raw}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, headers, body) = http(port, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    samples(&body)
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

/// The port in the log line that says where `what` listens.
fn port_in_log(log: &Path, what: &str) -> u16 {
    let mut port = None;
    wait_for(Duration::from_secs(30), what, || {
        let logs = std::fs::read_to_string(log).unwrap_or_default();
        port = logs
            .lines()
            .find_map(|l| l.split(what).nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok());
        port.is_some()
    });
    port.unwrap()
}

fn attestations() -> String {
    let item = |rf: &str| {
        format!(
            "<attvisite><rf-commande>{rf}</rf-commande><id-cram>04</id-cram><code-convention>62739900</code-convention>\
             <nir-per>1541299999000</nir-per><statut>T</statut><dt-visite>2026-10-02</dt-visite><motif></motif>\
             <commentaire/></attvisite>\n"
        )
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<attvisites>\n{}{}</attvisites>\n",
        item("C04-2026-000123"),
        item("C04-2026-999999")
    )
}

fn sftp_batch(key: &Path, port: u16, login: &str, batch: &str) -> std::process::Output {
    let file = key.with_extension("batch");
    std::fs::write(&file, batch).unwrap();
    let mut cmd = std::process::Command::new("sftp");
    cmd.args(ssh_options(key))
        .arg("-b")
        .arg(&file)
        .args(["-P", &port.to_string(), &format!("{login}@127.0.0.1")]);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn metrics_and_health_follow_files_logins_and_the_database() {
    let (g, db) = gateway();
    let key = keygen(g.dir.path(), "saadb1", "ed25519", None);
    let out = g.run(&[
        "user",
        "add",
        "--provider",
        "saadB",
        "--login",
        "saadb1",
        "--email",
        "b1@saadb.example",
        "--key",
        &format!("{}.pub", key.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let socket_path = g.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let notes: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (notes, stop) = (notes.clone(), stop.clone());
        move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    notes
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
        }
    });

    let log = g.dir.path().join("serve.log");
    let mut cmd = g.cmd();
    // A panic while deciding this file: quarantined at once (max_attempts = 1).
    cmd.env("NOTIFY_SOCKET", &socket_path)
        .env("PPAS_GATEWAY_FAULT", "decide:QUARANTINE");
    let mut d = Daemon::start_with(cmd, &log);
    d.wait_ready(Duration::from_secs(30));
    let port = port_in_log(&log, "metrics endpoint listening on 127.0.0.1:");
    let sftp_port = port_in_log(&log, "SFTP server listening on 127.0.0.1:");

    let before = scrape(port);
    assert_eq!(
        value(
            &before,
            "ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"accepted\"}"
        ),
        0.0
    );
    assert_eq!(value(&before, "ppas_gateway_database_up"), 1.0);
    let (status, _, body) = http(port, "GET", "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Billing: partial and rejected dropped, accepted uploaded by SFTP; one
    // that fails; an attestation file (one accepted, one unknown order).
    let partial = Bill::new(SITE_A, 25).lines([
        BLine::month(NIR_A1, SITE_A, 1, "5"),
        BLine::month(NIR_NONE, SITE_A, 1, "5"),
    ]);
    let rejected = Bill::new(SITE_A, 24).line(BLine::month(NIR_NONE, SITE_A, 2, "5"));
    let accepted = Bill::new(SITE_B, 26).line(BLine::month(NIR_B1, SITE_B, 2, "5"));
    g.drop_bill("saadA", &partial);
    g.drop_bill("saadA", &rejected);
    g.drop_file("saadA", "QUARANTINE.xml", partial.xml().as_bytes());
    g.drop_file("ergo62", "att-ergo62-01.xml", attestations().as_bytes());
    let local = g.dir.path().join(accepted.name());
    std::fs::write(&local, accepted.xml()).unwrap();
    let up = sftp_batch(
        &key,
        sftp_port,
        "saadb1",
        &format!("put {} /in/{}\n", local.display(), accepted.name()),
    );
    assert!(up.status.success(), "upload: {}", String::from_utf8_lossy(&up.stderr));
    // Two logins with a key nobody registered: refused, then the source is locked.
    let stranger = keygen(g.dir.path(), "stranger", "ed25519", None);
    for _ in 0..2 {
        let out = sftp_batch(&stranger, sftp_port, "saadb1", "ls /\n");
        assert!(!out.status.success(), "a stranger's key is refused");
    }

    let conn = Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    wait_for(Duration::from_secs(60), "every file finished or quarantined", || {
        count("SELECT COUNT(*) FROM received_files") == 5
            && count("SELECT COUNT(*) FROM received_files WHERE state = 'done' OR quarantined_at IS NOT NULL") == 5
    });
    // Every e-mail tried once against the silent relay (the clock is
    // frozen: the next attempt never comes): the three notices of the
    // files with anomalies, the new order's and the new account's.
    wait_for(Duration::from_secs(30), "the e-mails tried once", || {
        count("SELECT COUNT(*) FROM mail_queue WHERE attempts = 1 AND sent_at IS NULL") == 5
    });
    assert_eq!(
        count("SELECT COUNT(*) FROM mail_queue WHERE dedup_key LIKE 'report:%'"),
        3
    );
    let mut m = BTreeMap::new();
    wait_for(Duration::from_secs(30), "the SFTP session closed", || {
        m = scrape(port);
        m.get("ppas_gateway_sftp_sessions_open") == Some(&0.0)
    });

    let verdicts: Vec<(String, String)> = {
        let mut st = conn
            .prepare("SELECT kind, COALESCE(verdict, 'none') FROM received_files ORDER BY kind, verdict")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        verdicts,
        [
            ("attestations".into(), "partial".into()),
            ("billing".into(), "none".into()),
            ("billing".into(), "accepted".into()),
            ("billing".into(), "partial".into()),
            ("billing".into(), "rejected".into()),
        ],
        "the files went where this test means them to"
    );
    for (series, want) in [
        (
            "ppas_gateway_files_received_total{kind=\"billing\",channel=\"depot\"}",
            3.0,
        ),
        (
            "ppas_gateway_files_received_total{kind=\"billing\",channel=\"sftp\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_received_total{kind=\"attestations\",channel=\"depot\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_received_total{kind=\"attestations\",channel=\"sftp\"}",
            0.0,
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"accepted\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"partial\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"rejected\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"attestations\",verdict=\"partial\"}",
            1.0,
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"attestations\",verdict=\"accepted\"}",
            0.0,
        ),
        ("ppas_gateway_file_processing_seconds_count{kind=\"billing\"}", 3.0),
        ("ppas_gateway_file_processing_seconds_count{kind=\"attestations\"}", 1.0),
        (
            "ppas_gateway_file_processing_seconds_bucket{kind=\"billing\",le=\"+Inf\"}",
            3.0,
        ),
        ("ppas_gateway_lines_routed_total{kind=\"billing\"}", 2.0),
        ("ppas_gateway_lines_received_total{kind=\"billing\"}", 4.0),
        ("ppas_gateway_lines_routed_total{kind=\"attestations\"}", 1.0),
        ("ppas_gateway_lines_received_total{kind=\"attestations\"}", 2.0),
        ("ppas_gateway_sftp_sessions_total", 1.0),
        ("ppas_gateway_sftp_sessions_open", 0.0),
        ("ppas_gateway_sftp_auth_failures_total{method=\"publickey\"}", 2.0),
        ("ppas_gateway_sftp_lockouts_total", 1.0),
        ("ppas_gateway_files_waiting{stage=\"inbound\"}", 0.0),
        ("ppas_gateway_files_waiting{stage=\"received\"}", 0.0),
        ("ppas_gateway_files_waiting{stage=\"decided\"}", 0.0),
        ("ppas_gateway_outputs_owed", 0.0),
        ("ppas_gateway_quarantined_files", 1.0),
        ("ppas_gateway_mail_pending", 5.0),
        ("ppas_gateway_mail_failed", 0.0),
        ("ppas_gateway_database_up", 1.0),
    ] {
        assert_eq!(value(&m, series), want, "{series}");
    }
    // The anomaly codes, exactly as the database holds them.
    let mut st = conn
        .prepare(
            "SELECT f.kind, a.code, COUNT(*) FROM anomalies a JOIN received_files f ON f.id = a.file_id
             GROUP BY f.kind, a.code",
        )
        .unwrap();
    let codes: Vec<(String, String, i64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        codes.iter().any(|(k, c, _)| k == "attestations" && c == "A02"),
        "{codes:?}"
    );
    for (kind, code, n) in &codes {
        let series = format!("ppas_gateway_anomalies_total{{kind=\"{kind}\",code=\"{code}\"}}");
        assert_eq!(value(&m, &series), *n as f64, "{series}");
    }
    let listed = m
        .keys()
        .filter(|k| k.starts_with("ppas_gateway_anomalies_total{"))
        .count();
    assert_eq!(listed, codes.len(), "no other code counted: {m:#?}");
    // Job runs as recorded (none is due under this frozen clock).
    for job in [
        "invoice-threshold",
        "invoice-weekly",
        "relances",
        "bordereaux",
        "purge",
        "mail",
    ] {
        let runs: i64 = conn
            .query_row("SELECT COUNT(*) FROM job_runs WHERE job = ?1", [job], |r| r.get(0))
            .unwrap();
        assert_eq!(
            value(&m, &format!("ppas_gateway_job_runs_total{{job=\"{job}\"}}")),
            runs as f64
        );
    }

    // The same numbers in `status`.
    let out = g.run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["quarantined"].as_array().unwrap().len(), 1);
    assert_eq!(
        (st["mail_pending"].as_u64(), st["mail_failed"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        st["last_24h"],
        serde_json::json!([
            {"kind": "billing", "accepted": 1, "partial": 1, "rejected": 1},
            {"kind": "attestations", "accepted": 0, "partial": 1, "rejected": 0}
        ])
    );

    // The service's status line tells the queue.
    wait_for(Duration::from_secs(10), "STATUS= with the queue", || {
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("STATUS=en attente : 0 fichier(s), 5 e-mail(s) ; quarantaine : 1"))
    });
    assert!(notes.lock().unwrap().iter().any(|n| n.contains("READY=1")));

    // Other paths and methods.
    let (status, _, _) = http(port, "GET", "/");
    assert_eq!(status, 404);
    let (status, _, _) = http(port, "GET", "/metrics/x");
    assert_eq!(status, 404);
    let (status, headers, _) = http(port, "POST", "/metrics");
    assert_eq!(
        (status, headers.get("allow").map(String::as_str)),
        (405, Some("GET, HEAD"))
    );

    // The database moved away under the running daemon: unhealthy, with the
    // reason; back in place: healthy again.
    let away = db.parent().unwrap().with_file_name("db-away");
    std::fs::rename(db.parent().unwrap(), &away).unwrap();
    let (status, _, body) = http(port, "GET", "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("base de données inaccessible"), "{body}");
    assert!(body.contains("gateway.db"), "{body}");
    assert_eq!(value(&scrape(port), "ppas_gateway_database_up"), 0.0);
    std::fs::rename(&away, db.parent().unwrap()).unwrap();
    let (status, _, body) = http(port, "GET", "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(value(&scrape(port), "ppas_gateway_database_up"), 1.0);

    let (code, _) = d.terminate();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(code, Some(0));
}
