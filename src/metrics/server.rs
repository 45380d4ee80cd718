//! The HTTP endpoint of `serve` for monitoring, on `[metrics] listen`.
//!
//! In: the global [`Metrics`](super::Metrics), the processor's
//! [`Progress`], the configuration in force (database, spool, mail
//! limits). Out: `GET /metrics` (the exposition, with the queue read from
//! the database at the scrape), `GET /healthz` (`200 ok`, or `503` with
//! the reason), `404` for any other path, `405` for another method.
//!
//! It runs on the daemon's async runtime and never touches the processor:
//! the counters are atomics, every read of the database is a blocking task
//! with a deadline on a read-only connection of its own. A read still
//! running past its deadline is not started again until it ends (a hung
//! disk costs one blocked thread, not one per request). Connections are
//! few (a Prometheus server, a health probe): at most
//! [`MAX_CONNECTIONS`] at once, each with a deadline to send its request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;

use super::{queue, Metrics};
use crate::config::Config;
use crate::pipeline::Progress;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read of the database may take before `/healthz` says it is
/// unreachable (and a scrape leaves the queue gauges as they were).
pub const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Blocking reads with a deadline, one at a time: concurrent requests wait
/// for each other (within the deadline), and a read that outlived its
/// deadline is not started again until it ends.
#[derive(Clone)]
struct Bounded {
    turn: Arc<tokio::sync::Mutex<()>>,
    running: Arc<AtomicBool>,
    deadline: Duration,
}

impl Bounded {
    fn new(deadline: Duration) -> Bounded {
        Bounded {
            turn: Arc::default(),
            running: Arc::default(),
            deadline,
        }
    }

    /// Runs `f` on a blocking thread; `Err` with the reason (French) when
    /// it fails, panics or misses the deadline, or when an earlier read
    /// that missed it is still going.
    async fn run<T: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let late = || format!("{what} : pas de réponse en {} ms", self.deadline.as_millis());
        let started = tokio::time::Instant::now();
        let Ok(_turn) = tokio::time::timeout(self.deadline, self.turn.lock()).await else {
            return Err(late());
        };
        if self.running.load(Ordering::SeqCst) {
            return Err(format!("{what} : une lecture précédente n'a toujours pas répondu"));
        }
        self.running.store(true, Ordering::SeqCst);
        let running = self.running.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = f();
            running.store(false, Ordering::SeqCst);
            r
        });
        match tokio::time::timeout_at(started + self.deadline, task).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(format!("{what} : {e:#}")),
            Ok(Err(e)) => {
                self.running.store(false, Ordering::SeqCst);
                Err(format!("{what} : erreur interne ({e})"))
            }
            Err(_) => Err(late()),
        }
    }
}

/// What `/healthz` checks: the processor's progress (the watchdog's rule)
/// and a read of the database.
#[derive(Clone)]
pub struct Health {
    progress: Progress,
    stall: Duration,
    database: PathBuf,
    probe: Bounded,
}

impl Health {
    /// `stall`: how long a busy processor may go without progress
    /// ([`crate::daemon::watchdog::stall_limit`]).
    pub fn new(progress: Progress, stall: Duration, database: PathBuf) -> Health {
        Health {
            progress,
            stall,
            database,
            probe: Bounded::new(DB_TIMEOUT),
        }
    }

    /// `Ok` when healthy, else every reason it is not (French, one line each).
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        if self.progress.stuck(self.stall) {
            reasons.push(format!(
                "processeur bloqué : du travail en cours et aucun progrès depuis {} s (limite {} s)",
                self.progress.since_beat().as_secs(),
                self.stall.as_secs()
            ));
        }
        let path = self.database.clone();
        let read = self.probe.run("base de données inaccessible", move || probe(&path));
        if let Err(e) = read.await {
            reasons.push(e);
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }
}

/// The cheap read of `/healthz`: a fresh read-only connection (the path as
/// configured, so a database moved or unreadable is seen) and one page.
fn probe(path: &std::path::Path) -> Result<()> {
    let conn = queue::open_read_only(path)?;
    conn.query_row("SELECT MAX(id) FROM received_files", [], |r| r.get::<_, Option<i64>>(0))
        .with_context(|| format!("cannot read database {}", path.display()))?;
    Ok(())
}

/// What the handlers share.
struct State {
    metrics: &'static Metrics,
    health: Health,
    cfg: watch::Receiver<Arc<Config>>,
    scrape: Bounded,
    /// Whether the last `/healthz` answered 200 (a change is logged).
    healthy: AtomicBool,
}

/// The bound endpoint.
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr` (port 0: any free port, see [`Server::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("[metrics] listen: cannot listen on {addr}"))?;
        let addr = listener.local_addr().context("[metrics] listen: bound address")?;
        Ok(Server { listener, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(
        self,
        metrics: &'static Metrics,
        health: Health,
        cfg: watch::Receiver<Arc<Config>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let state = Arc::new(State {
            metrics,
            health,
            cfg,
            scrape: Bounded::new(DB_TIMEOUT),
            healthy: AtomicBool::new(true),
        });
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (sock, peer) = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "metrics endpoint: too many connections, closed");
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(sock), service);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "metrics endpoint: connection ended");
                }
            });
        }
    }
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "introuvable : /metrics ou /healthz\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "méthode non permise\n".into());
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/healthz" {
        return healthz(state).await;
    }
    let cfg = state.cfg.borrow().clone();
    let q = state.scrape.run("file d'attente", move || queue::read(&cfg)).await;
    if let Err(e) = &q {
        tracing::warn!(error = e, "metrics: the queue could not be read from the database");
    }
    state.metrics.set_queue(q.as_ref().ok());
    let openmetrics = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = state.metrics.encode(openmetrics);
    text(StatusCode::OK, content_type, body)
}

async fn healthz(state: &State) -> Response<Full<Bytes>> {
    match state.health.check().await {
        Ok(()) => {
            if !state.healthy.swap(true, Ordering::SeqCst) {
                tracing::info!("health check: healthy again");
            }
            text(StatusCode::OK, PLAIN, "ok\n".into())
        }
        Err(reasons) => {
            if state.healthy.swap(false, Ordering::SeqCst) {
                tracing::warn!(reasons = reasons.join("; "), "health check: unhealthy");
            }
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("{}\n", reasons.join("\n")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn health_names_a_stuck_processor_and_a_missing_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gateway.db");
        crate::store::open(&db).unwrap();
        let progress = Progress::new();
        let health = Health::new(progress.clone(), Duration::ZERO, db.clone());
        rt().block_on(async {
            assert_eq!(health.check().await, Ok(()), "idle and readable");
            progress.set_busy(true);
            let reasons = health.check().await.unwrap_err();
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(reasons[0].starts_with("processeur bloqué"), "{reasons:?}");
            progress.set_busy(false);
            let gone = Health::new(progress.clone(), Duration::ZERO, dir.path().join("moved/gateway.db"));
            let reasons = gone.check().await.unwrap_err();
            assert!(reasons[0].starts_with("base de données inaccessible"), "{reasons:?}");
            assert!(reasons[0].contains("moved/gateway.db"), "{reasons:?}");
        });
    }

    #[test]
    fn concurrent_reads_wait_their_turn_and_a_late_one_is_not_started_again() {
        rt().block_on(async {
            let b = Bounded::new(Duration::from_secs(30));
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let first = tokio::spawn({
                let b = b.clone();
                async move {
                    b.run("lecture", move || {
                        let _ = rx.recv();
                        Ok(1)
                    })
                    .await
                }
            });
            let second = tokio::spawn({
                let b = b.clone();
                async move { b.run("lecture", || Ok(2)).await }
            });
            tokio::task::yield_now().await;
            tx.send(()).unwrap();
            assert_eq!((first.await.unwrap(), second.await.unwrap()), (Ok(1), Ok(2)));

            // A read that misses its deadline: the next one is refused
            // without being run, until the late one ends.
            let b = Bounded::new(Duration::from_millis(20));
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let late = b
                .run("lecture", move || {
                    let _ = rx.recv();
                    Ok(())
                })
                .await;
            assert!(late.unwrap_err().contains("pas de réponse en 20 ms"));
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let refused = b
                .run("lecture", move || {
                    r.store(true, Ordering::SeqCst);
                    Ok(())
                })
                .await;
            assert!(refused.unwrap_err().contains("n'a toujours pas répondu"));
            assert!(!ran.load(Ordering::SeqCst));
            tx.send(()).unwrap();
            let t = std::time::Instant::now();
            while b.running.load(Ordering::SeqCst) {
                assert!(t.elapsed() < Duration::from_secs(10), "the late read never ended");
                tokio::task::yield_now().await;
            }
            assert_eq!(b.run("lecture", || Ok(7)).await, Ok(7));
        });
    }
}
