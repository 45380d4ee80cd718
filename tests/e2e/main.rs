//! End-to-end tests: the `ppas-gateway` binary driven as a user runs it,
//! with real peers (xmllint, OpenSSH, paramiko, an SMTP server, pdftotext).
//! One test binary; one module per area; shared helpers in `support`.

mod accounts;
mod attestations;
mod bordereaux;
mod bordereaux_daemon;
mod check_cli;
mod check_oracle;
mod check_props;
mod check_spec;
mod check_support;
mod config;
mod crash;
mod crash_attestations;
mod crash_jobs;
mod crash_sftp;
mod faults;
mod habitat;
mod history;
mod import;
mod install;
mod invoicing;
mod jobs;
mod listing_beneficiaires;
mod logs;
mod mail;
mod mail_restart;
mod mail_secrets;
mod metrics;
mod pipeline;
mod pipeline_support;
mod report;
mod retention;
mod sftp;
mod sftp_files;
mod sftp_first_login;
mod sftp_reload;
mod sftp_support;
mod status;
mod support;
