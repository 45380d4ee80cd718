//! Operations metrics: what the gateway did (counters, a histogram) and
//! what it holds (gauges), in the Prometheus exposition format produced by
//! `prometheus-client`; served with `/healthz` by [`server`] when
//! `[metrics] listen` is set. The list, with types, labels and example
//! queries, is `docs/metrics.md`.
//!
//! In: events from the pipeline (a file recorded, a decision committed, a
//! file finished), the SFTP server (sessions, refused logins, locks), the
//! jobs (a run recorded), each reported **after** its commit, so that a
//! rolled-back transaction or a crash before the commit never counts and
//! an event is counted once per process life; and, at each scrape, the
//! queue read from the database ([`queue`]). Out: the text a scrape gets.
//!
//! Counters live in this process and restart at 0 with it (the Prometheus
//! convention: `rate()` and `increase()` handle the reset); the gauges are
//! read from the database at each scrape, so they are exact whatever
//! happened before the start. The counters are always kept (a few atomic
//! additions per file), whether or not the endpoint is on: one global
//! [`Metrics`], like the log.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::anomaly::{Code, FileKind};
use crate::billing::Verdict;
use crate::jobs::Job;

pub mod queue;
pub mod server;

pub use queue::Queue;

/// Upper bounds of the processing-time buckets, in seconds: a small file
/// takes milliseconds, a 100 000-line one tens of seconds.
pub const PROCESSING_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Received {
    kind: &'static str,
    channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Decided {
    kind: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnomalyCode {
    kind: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Stage {
    stage: &'static str,
}

fn processing_histogram() -> Histogram {
    Histogram::new(PROCESSING_BUCKETS)
}

/// Every metric of the gateway and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    files_received: Family<Received, Counter>,
    files_decided: Family<Decided, Counter>,
    anomalies: Family<AnomalyCode, Counter>,
    lines_received: Family<Kind, Counter>,
    lines_routed: Family<Kind, Counter>,
    processing: Family<Kind, Histogram, fn() -> Histogram>,
    sftp_sessions_open: Gauge,
    sftp_sessions: Counter,
    sftp_auth_failures: Family<Method, Counter>,
    sftp_lockouts: Counter,
    job_runs: Family<JobLabel, Counter>,
    job_errors: Family<JobLabel, Counter>,
    files_waiting: Family<Stage, Gauge>,
    outputs_owed: Gauge,
    quarantined: Gauge,
    mail_pending: Gauge,
    mail_failed: Gauge,
    database_up: Gauge,
}

const KINDS: [FileKind; 2] = [FileKind::Billing, FileKind::Attestations];
const VERDICTS: [Verdict; 3] = [Verdict::Accepted, Verdict::Partial, Verdict::Rejected];
/// Authentication methods a refused login is counted under.
pub const AUTH_METHODS: [&str; 3] = ["publickey", "password", "keyboard-interactive"];
/// The stages of `ppas_gateway_files_waiting`.
const STAGES: [&str; 3] = ["inbound", "received", "decided"];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric, the series of the known label values
    /// present at 0 (a dashboard sees them before the first event).
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("ppas_gateway");
        let m = Metrics {
            files_received: Family::default(),
            files_decided: Family::default(),
            anomalies: Family::default(),
            lines_received: Family::default(),
            lines_routed: Family::default(),
            processing: Family::new_with_constructor(processing_histogram),
            sftp_sessions_open: Gauge::default(),
            sftp_sessions: Counter::default(),
            sftp_auth_failures: Family::default(),
            sftp_lockouts: Counter::default(),
            job_runs: Family::default(),
            job_errors: Family::default(),
            files_waiting: Family::default(),
            outputs_owed: Gauge::default(),
            quarantined: Gauge::default(),
            mail_pending: Gauge::default(),
            mail_failed: Gauge::default(),
            database_up: Gauge::default(),
            registry: Registry::default(),
        };
        r.register(
            "files_received",
            "Files recorded as received (taken from a drop folder or an SFTP upload), by kind and channel",
            m.files_received.clone(),
        );
        r.register(
            "files_decided",
            "Files decided (verdict committed), by kind and verdict",
            m.files_decided.clone(),
        );
        r.register(
            "anomalies",
            "Anomalies found in decided files, by kind and anomaly code",
            m.anomalies.clone(),
        );
        r.register(
            "lines_received",
            "Lines (billing) or attestations (attestations) of decided files, as their reports count them",
            m.lines_received.clone(),
        );
        r.register(
            "lines_routed",
            "Lines accepted and routed on: billing lines to the payment chain, attestations to the caisse",
            m.lines_routed.clone(),
        );
        r.register_with_unit(
            "file_processing",
            "Time from the start of a file's decision to its outputs written and original archived, by kind",
            Unit::Seconds,
            m.processing.clone(),
        );
        r.register(
            "sftp_sessions_open",
            "SFTP sessions logged in right now",
            m.sftp_sessions_open.clone(),
        );
        r.register("sftp_sessions", "SFTP sessions logged in", m.sftp_sessions.clone());
        r.register(
            "sftp_auth_failures",
            "Refused SFTP logins counted against their source address, by method",
            m.sftp_auth_failures.clone(),
        );
        r.register(
            "sftp_lockouts",
            "Source addresses locked after too many refused SFTP logins",
            m.sftp_lockouts.clone(),
        );
        r.register("job_runs", "Job runs recorded, by job", m.job_runs.clone());
        r.register(
            "job_errors",
            "Job runs recorded as failed, by job",
            m.job_errors.clone(),
        );
        r.register(
            "files_waiting",
            "Files waiting: in the drop folders (inbound), taken without a verdict (received), \
             decided with outputs still owed (decided); quarantined files excluded",
            m.files_waiting.clone(),
        );
        r.register(
            "outputs_owed",
            "Outputs (payment-chain files, reports) committed but not yet written",
            m.outputs_owed.clone(),
        );
        r.register(
            "quarantined_files",
            "Files in quarantine (failed again and again; `ppas-gateway retry` puts them back)",
            m.quarantined.clone(),
        );
        r.register(
            "mail_pending",
            "E-mails waiting to be sent (still tried)",
            m.mail_pending.clone(),
        );
        r.register(
            "mail_failed",
            "E-mails no longer tried after [mail] max_attempts (`ppas-gateway mail retry` queues them again)",
            m.mail_failed.clone(),
        );
        r.register(
            "database_up",
            "1 when the last read of the queue from the database succeeded, 0 otherwise",
            m.database_up.clone(),
        );
        for kind in KINDS.map(FileKind::as_str) {
            for channel in ["sftp", "depot"] {
                let _ = m.files_received.get_or_create(&Received { kind, channel });
            }
            for verdict in VERDICTS.map(Verdict::as_str) {
                let _ = m.files_decided.get_or_create(&Decided { kind, verdict });
            }
            let _ = m.lines_received.get_or_create(&Kind { kind });
            let _ = m.lines_routed.get_or_create(&Kind { kind });
            let _ = m.processing.get_or_create(&Kind { kind });
        }
        for method in AUTH_METHODS {
            let _ = m.sftp_auth_failures.get_or_create(&Method { method });
        }
        for job in Job::ALL.map(Job::as_str) {
            let _ = m.job_runs.get_or_create(&JobLabel { job });
            let _ = m.job_errors.get_or_create(&JobLabel { job });
        }
        for stage in STAGES {
            let _ = m.files_waiting.get_or_create(&Stage { stage });
        }
        Metrics { registry: r, ..m }
    }

    /// A file recorded as received (after the commit of its record).
    pub fn file_received(&self, kind: FileKind, channel: crate::pipeline::Channel) {
        self.files_received
            .get_or_create(&Received {
                kind: kind.as_str(),
                channel: channel.as_str(),
            })
            .inc();
    }

    /// A decision committed: its verdict, every anomaly by code, its lines.
    pub fn file_decided(&self, kind: FileKind, verdict: Verdict, anomalies: &[Code], lines: u64, accepted: u64) {
        let k = kind.as_str();
        self.files_decided
            .get_or_create(&Decided {
                kind: k,
                verdict: verdict.as_str(),
            })
            .inc();
        for code in anomalies {
            self.anomalies
                .get_or_create(&AnomalyCode {
                    kind: k,
                    code: code.as_str(),
                })
                .inc();
        }
        self.lines_received.get_or_create(&Kind { kind: k }).inc_by(lines);
        self.lines_routed.get_or_create(&Kind { kind: k }).inc_by(accepted);
    }

    /// A file decided and finished in this process, and how long it took.
    pub fn file_processed(&self, kind: FileKind, took: Duration) {
        self.processing
            .get_or_create(&Kind { kind: kind.as_str() })
            .observe(took.as_secs_f64());
    }

    /// An SFTP login accepted: a session opens.
    pub fn sftp_session_opened(&self) {
        self.sftp_sessions.inc();
        self.sftp_sessions_open.inc();
    }

    /// A logged-in SFTP session ends.
    pub fn sftp_session_closed(&self) {
        self.sftp_sessions_open.dec();
    }

    /// A refused login counted against its source; `locked` when it locked
    /// the source.
    pub fn sftp_auth_failure(&self, method: &str, locked: bool) {
        let method = AUTH_METHODS.into_iter().find(|m| *m == method).unwrap_or("password");
        self.sftp_auth_failures.get_or_create(&Method { method }).inc();
        if locked {
            self.sftp_lockouts.inc();
        }
    }

    /// A job run recorded (after its commit), failed or not.
    pub fn job_run(&self, job: Job, ok: bool) {
        let label = JobLabel { job: job.as_str() };
        self.job_runs.get_or_create(&label).inc();
        if !ok {
            self.job_errors.get_or_create(&label).inc();
        }
    }

    /// The gauges read from the database (`None`: it could not be read;
    /// the gauges keep their last values and `database_up` says 0).
    pub fn set_queue(&self, q: Option<&Queue>) {
        let Some(q) = q else {
            self.database_up.set(0);
            return;
        };
        let g = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for (stage, n) in STAGES.into_iter().zip([q.inbound, q.received, q.decided]) {
            self.files_waiting.get_or_create(&Stage { stage }).set(g(n));
        }
        self.outputs_owed.set(g(q.outputs_owed));
        self.quarantined.set(g(q.quarantined));
        self.mail_pending.set(g(q.mail_pending));
        self.mail_failed.set(g(q.mail_failed));
        self.database_up.set(1);
    }

    /// The exposition: OpenMetrics text when `openmetrics`, else the
    /// Prometheus text format 0.0.4. Returns the body and its content type.
    pub fn encode(&self, openmetrics: bool) -> (String, &'static str) {
        let mut out = String::with_capacity(16 * 1024);
        if openmetrics {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
            (out, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        } else {
            let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
            (out, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
        }
    }
}

/// The metrics of this process.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

#[cfg(test)]
mod tests;
