use super::*;
use crate::pipeline::Channel;

/// The value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn known_series_are_there_at_zero_with_help_and_type() {
    let m = Metrics::new();
    let (text, content_type) = m.encode(false);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    for (series, kind) in [
        (
            "ppas_gateway_files_received_total{kind=\"billing\",channel=\"sftp\"}",
            "counter",
        ),
        (
            "ppas_gateway_files_decided_total{kind=\"attestations\",verdict=\"partial\"}",
            "counter",
        ),
        ("ppas_gateway_lines_routed_total{kind=\"billing\"}", "counter"),
        ("ppas_gateway_sftp_sessions_open", "gauge"),
        (
            "ppas_gateway_sftp_auth_failures_total{method=\"keyboard-interactive\"}",
            "counter",
        ),
        ("ppas_gateway_job_errors_total{job=\"purge\"}", "counter"),
        ("ppas_gateway_files_waiting{stage=\"inbound\"}", "gauge"),
        ("ppas_gateway_mail_failed", "gauge"),
        (
            "ppas_gateway_file_processing_seconds_count{kind=\"attestations\"}",
            "histogram",
        ),
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series} in:\n{text}");
        let family = series.split('{').next().unwrap().trim_end_matches("_count").to_string();
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "# TYPE {family} {kind} in:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {family} ")), "# HELP {family}");
    }
    // No anomaly code before one is seen.
    assert!(!text.contains("ppas_gateway_anomalies_total{"), "{text}");
}

#[test]
fn events_count_by_label_and_the_histogram_buckets_accumulate() {
    let m = Metrics::new();
    m.file_received(FileKind::Billing, Channel::Depot);
    m.file_received(FileKind::Billing, Channel::Depot);
    m.file_received(FileKind::Attestations, Channel::Sftp);
    m.file_decided(
        FileKind::Billing,
        Verdict::Partial,
        &[Code::L05, Code::L05, Code::F09],
        10,
        8,
    );
    m.file_decided(FileKind::Attestations, Verdict::Rejected, &[Code::A09], 0, 0);
    m.file_processed(FileKind::Billing, Duration::from_millis(30));
    m.file_processed(FileKind::Billing, Duration::from_secs(400));
    m.sftp_session_opened();
    m.sftp_session_opened();
    m.sftp_session_closed();
    m.sftp_auth_failure("publickey", false);
    m.sftp_auth_failure("password", true);
    m.job_run(Job::Relances, true);
    m.job_run(Job::Relances, false);
    let (text, _) = m.encode(false);
    let at = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} missing in:\n{text}"));
    assert_eq!(
        at("ppas_gateway_files_received_total{kind=\"billing\",channel=\"depot\"}"),
        2.0
    );
    assert_eq!(
        at("ppas_gateway_files_received_total{kind=\"attestations\",channel=\"sftp\"}"),
        1.0
    );
    assert_eq!(
        at("ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"partial\"}"),
        1.0
    );
    assert_eq!(
        at("ppas_gateway_files_decided_total{kind=\"billing\",verdict=\"accepted\"}"),
        0.0
    );
    assert_eq!(at("ppas_gateway_anomalies_total{kind=\"billing\",code=\"L05\"}"), 2.0);
    assert_eq!(at("ppas_gateway_anomalies_total{kind=\"billing\",code=\"F09\"}"), 1.0);
    assert_eq!(
        at("ppas_gateway_anomalies_total{kind=\"attestations\",code=\"A09\"}"),
        1.0
    );
    assert_eq!(at("ppas_gateway_lines_received_total{kind=\"billing\"}"), 10.0);
    assert_eq!(at("ppas_gateway_lines_routed_total{kind=\"billing\"}"), 8.0);
    assert_eq!(at("ppas_gateway_file_processing_seconds_count{kind=\"billing\"}"), 2.0);
    assert_eq!(
        at("ppas_gateway_file_processing_seconds_bucket{kind=\"billing\",le=\"0.05\"}"),
        1.0
    );
    assert_eq!(
        at("ppas_gateway_file_processing_seconds_bucket{kind=\"billing\",le=\"300\"}"),
        1.0
    );
    assert_eq!(
        at("ppas_gateway_file_processing_seconds_bucket{kind=\"billing\",le=\"+Inf\"}"),
        2.0
    );
    assert!((at("ppas_gateway_file_processing_seconds_sum{kind=\"billing\"}") - 400.03).abs() < 1e-9);
    assert_eq!(at("ppas_gateway_sftp_sessions_total"), 2.0);
    assert_eq!(at("ppas_gateway_sftp_sessions_open"), 1.0);
    assert_eq!(at("ppas_gateway_sftp_auth_failures_total{method=\"publickey\"}"), 1.0);
    assert_eq!(at("ppas_gateway_sftp_auth_failures_total{method=\"password\"}"), 1.0);
    assert_eq!(at("ppas_gateway_sftp_lockouts_total"), 1.0);
    assert_eq!(at("ppas_gateway_job_runs_total{job=\"relances\"}"), 2.0);
    assert_eq!(at("ppas_gateway_job_errors_total{job=\"relances\"}"), 1.0);
}

#[test]
fn the_queue_sets_the_gauges_and_a_failed_read_says_so() {
    let m = Metrics::new();
    let q = Queue {
        inbound: 3,
        received: 1,
        decided: 2,
        outputs_owed: 6,
        quarantined: 4,
        mail_pending: 5,
        mail_failed: 7,
    };
    m.set_queue(Some(&q));
    let (text, _) = m.encode(false);
    let at = |t: &str, s: &str| sample(t, s).unwrap_or_else(|| panic!("{s} missing in:\n{t}"));
    assert_eq!(at(&text, "ppas_gateway_files_waiting{stage=\"inbound\"}"), 3.0);
    assert_eq!(at(&text, "ppas_gateway_files_waiting{stage=\"received\"}"), 1.0);
    assert_eq!(at(&text, "ppas_gateway_files_waiting{stage=\"decided\"}"), 2.0);
    assert_eq!(at(&text, "ppas_gateway_outputs_owed"), 6.0);
    assert_eq!(at(&text, "ppas_gateway_quarantined_files"), 4.0);
    assert_eq!(at(&text, "ppas_gateway_mail_pending"), 5.0);
    assert_eq!(at(&text, "ppas_gateway_mail_failed"), 7.0);
    assert_eq!(at(&text, "ppas_gateway_database_up"), 1.0);
    m.set_queue(None);
    let (text, _) = m.encode(false);
    assert_eq!(at(&text, "ppas_gateway_database_up"), 0.0);
    assert_eq!(at(&text, "ppas_gateway_mail_pending"), 5.0, "last values kept");
    assert_eq!(
        q.status_line(),
        "en attente : 6 fichier(s), 5 e-mail(s) ; quarantaine : 4 ; e-mails en échec : 7"
    );
    assert_eq!(
        Queue::default().status_line(),
        "en attente : 0 fichier(s), 0 e-mail(s) ; quarantaine : 0"
    );
}

#[test]
fn openmetrics_is_served_to_who_asks_for_it() {
    let m = Metrics::new();
    m.file_received(FileKind::Billing, Channel::Sftp);
    let (text, content_type) = m.encode(true);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE ppas_gateway_files_received counter\n"), "{text}");
    assert!(
        text.contains("ppas_gateway_files_received_total{kind=\"billing\",channel=\"sftp\"} 1\n"),
        "{text}"
    );
}

#[test]
fn the_queue_is_read_from_the_database_and_the_drop_folders() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(&format!(
        "[paths]\nspool = {:?}\ndatabase = {:?}\n",
        dir.path().join("spool"),
        dir.path().join("spool/state/gateway.db")
    ))
    .unwrap();
    let conn = crate::store::open(&cfg.paths.database).unwrap();
    let insert = |name: &str, state: &str, quarantined: bool| {
        conn.execute(
            "INSERT INTO received_files (provider, name, channel, sha256, size, received_at, work_path, state,
                                         quarantined_at)
             VALUES ('p', ?1, 'depot', ?1, 1, '2026-11-20T09:00:00Z', 'work/p/' || ?1, ?2, ?3)",
            rusqlite::params![name, state, quarantined.then_some("2026-11-20T09:01:00Z")],
        )
        .unwrap();
    };
    insert("a", "received", false);
    insert("b", "decided", false);
    insert("c", "decided", false);
    insert("d", "received", true);
    insert("e", "done", false);
    let inbound = dir.path().join("spool/inbound/p");
    std::fs::create_dir_all(&inbound).unwrap();
    std::fs::write(inbound.join("f.xml"), "x").unwrap();
    std::fs::write(inbound.join("g.xml.part"), "x").unwrap();
    let q = queue::read(&cfg).unwrap();
    assert_eq!(
        (
            q.inbound,
            q.received,
            q.decided,
            q.quarantined,
            q.mail_pending,
            q.mail_failed
        ),
        (1, 1, 2, 1, 0, 0)
    );
    assert_eq!(q.files(), 4);
}

use crate::config::Config;
