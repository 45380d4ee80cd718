//! End-to-end tests: the `ppas-gateway` binary driven as a user runs it,
//! with real peers (xmllint, OpenSSH, paramiko, an SMTP server, pdftotext).
//! One test binary; one module per area; shared helpers in `support`.

mod support;
mod accounts;
mod import;
mod mail;
mod report;
mod config;
mod history;
mod status;
mod check_support;
mod check_spec;
mod check_cli;
mod check_oracle;
mod check_props;
mod sftp;
mod sftp_files;
mod sftp_support;
mod pipeline_support;
mod pipeline;
mod crash;
