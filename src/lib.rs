//! ppas-gateway: the file-exchange gateway between a caisse (pension fund)
//! and its home-care providers.
//!
//! # Layout
//!
//! - [`config`], [`clock`], [`logging`], [`fsutil`]: the foundation — typed
//!   configuration, the one clock, logs, atomic durable writes.
//! - [`xml`]: the streaming XML input layer (encoding, well-formedness,
//!   line numbers) shared by every XML format the gateway reads.
//! - [`billing`]: billing files — streaming parse, schema conformance,
//!   stateless controls, the verdict. Pure: bytes in, a report out.
//! - [`attestation`]: visit-attestation files, read the same way: streaming
//!   parse, schema conformance, stateless controls, the verdict.
//! - [`store`]: the SQLite state and its migrations.
//! - [`history`], [`mail`]: the exchange history and the mail queue,
//!   written in the same transaction as what they record.
//! - [`sftp`]: the embedded SFTP server (providers' `/in` and `/out`).
//! - [`metrics`]: the Prometheus metrics and the `/metrics` and `/healthz`
//!   endpoint of `serve`.
//! - [`cli`]: the `ppas-gateway` command line.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view and the invariants.

pub mod accounts;
pub mod anomaly;
pub mod attestation;
pub mod billing;
pub mod bordereaux;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod fault;
pub mod fsutil;
pub mod habitat;
pub mod history;
pub mod import;
pub mod intake;
pub mod invoicing;
pub mod jobs;
pub mod listing;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod outbound;
pub mod outbox;
pub mod pipeline;
pub mod report;
pub mod retention;
pub mod sftp;
pub mod spool;
pub mod store;
pub mod xml;
