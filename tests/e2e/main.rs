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
mod pipeline_support;
mod pipeline;
mod crash;
