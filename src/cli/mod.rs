//! Command line: clap definitions in, a process exit code out.
//!
//! Each subcommand lives in its own file and returns an [`Outcome`]; this
//! module only parses arguments, loads the configuration and the clock, and
//! maps errors to exit code 2 with their whole context chain (spec §8:
//! 0 success, 1 some file partial or rejected, 2 usage/configuration/I/O).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::clock::Clock;
use crate::config::Config;

mod check;
mod config_cmd;
mod history;
mod import;
mod mail;
mod process;
mod retry;
mod serve;
mod status;
mod user;

/// What a command ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: done, every file accepted.
    Ok,
    /// Exit 1: some file partial or rejected.
    Anomalies,
}

#[derive(Parser, Debug)]
#[command(
    name = "ppas-gateway",
    version,
    about = "File-exchange gateway between a caisse and its home-care providers"
)]
pub struct Cli {
    /// Configuration file (TOML). Missing default file: the embedded default.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Logs as one JSON object per line (same as `[log] format = "json"`).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: SFTP server, drop-folder watch, jobs.
    Serve,
    /// Process what is waiting in every inbound folder, then exit.
    Process(ProcessArgs),
    /// Stateless conformance check of billing and visit-attestation files (no database needed).
    Check(FilesArgs),
    /// Dry run of every control against the current state; changes nothing.
    Validate(ValidateArgs),
    /// Import caisse reference data (providers, beneficiaries, …).
    Import(ImportArgs),
    /// Provider accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Run one scheduled job now.
    Run(RunArgs),
    /// Exchange history for a period.
    History(HistoryArgs),
    /// Queue depths, job runs, pending e-mails, last errors.
    Status {
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Put quarantined files back in the queue (the next pass resumes them).
    Retry(RetryArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The e-mail queue.
    #[command(subcommand)]
    Mail(MailCommand),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["file", "all"])))]
pub struct RetryArgs {
    /// A quarantined file: its name as delivered, `<provider>/<name>`, its
    /// path under quarantine/, or its id (as `status` lists it).
    pub file: Option<String>,
    /// Every quarantined file.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct ProcessArgs {
    /// Drain every inbound folder once and exit (cron-style use).
    #[arg(long)]
    pub once: bool,
}

#[derive(Args, Debug)]
pub struct FilesArgs {
    /// One JSON object per file, one per line, on stdout.
    #[arg(long)]
    pub json: bool,
    /// Billing or visit-attestation files to check (the kind is read from the root element).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// One JSON object per file, one per line, on stdout.
    #[arg(long)]
    pub json: bool,
    /// Provider account the files would come from (default: the owner of
    /// the header's id-site).
    #[arg(long)]
    pub provider: Option<String>,
    /// Billing or visit-attestation files to validate.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// providers, beneficiaries, orders, payments, report-anomalies, evaluations, decisions.
    pub kind: String,
    pub file: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account (a one-time password is e-mailed when no key is given).
    Add {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        login: String,
        #[arg(long)]
        email: String,
        /// OpenSSH public key file.
        #[arg(long, value_name = "PUBKEY_FILE")]
        key: Option<PathBuf>,
        /// Administrator of the provider account.
        #[arg(long)]
        admin: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        provider: Option<String>,
    },
    /// Disable an account (its sessions are refused from then on).
    Disable { login: String },
    /// Add an SSH public key to an account.
    KeyAdd { login: String, pubkey_file: PathBuf },
    /// Set a password (read from stdin, or generated and e-mailed with --generate).
    Passwd {
        login: String,
        #[arg(long)]
        generate: bool,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// invoice-threshold, invoice-weekly, relances, bordereaux, purge, mail.
    pub job: String,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// First day of the period (YYYY-MM-DD or JJ/MM/AAAA).
    #[arg(long)]
    pub from: String,
    /// Last day of the period (inclusive).
    #[arg(long)]
    pub to: String,
    /// Provider account name (exact).
    #[arg(long)]
    pub provider: Option<String>,
    /// Convention code (exact).
    #[arg(long)]
    pub convention: Option<String>,
    /// Interface, e.g. facturation, attestations, referentiel, sftp (exact).
    #[arg(long)]
    pub interface: Option<String>,
    /// Text the comment contains (case-insensitive).
    #[arg(long)]
    pub comment: Option<String>,
    /// Oldest first (asc) or newest first (desc).
    #[arg(long, default_value = "desc", value_parser = ["asc", "desc"])]
    pub order: String,
    /// table (aligned, Paris time), json (one object per line) or csv (`;`, UTF-8 BOM).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    pub format: String,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// Queue again e-mails that failed after their last attempt (`status` lists them).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["all", "id"])))]
    Retry {
        /// Every failed e-mail.
        #[arg(long)]
        all: bool,
        /// The id of one failed e-mail.
        #[arg(value_name = "ID")]
        id: Option<i64>,
    },
}

/// What every command gets: the validated configuration and the clock.
pub struct Ctx {
    pub cfg: Config,
    /// The `--config` given, for reloads.
    pub config_path: Option<PathBuf>,
    pub clock: Clock,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bug must not end a command outside its exit codes (spec §8): a
    // panic is an error like any other (exit 2), after its message.
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(Outcome::Ok)) => ExitCode::SUCCESS,
        Ok(Ok(Outcome::Anomalies)) => ExitCode::from(1),
        Ok(Err(e)) => {
            eprintln!("ppas-gateway: error: {e:#}");
            ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("ppas-gateway: error: internal error (panic, see above)");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let cfg = Config::load(cli.config.as_deref())?;
    crate::logging::init(&cfg, cli.log_json);
    let ctx = Ctx {
        cfg,
        config_path: cli.config.clone(),
        clock: Clock::from_env()?,
    };
    match cli.command {
        Command::Check(a) => check::run(&ctx, &a),
        Command::Config(ConfigCommand::Check) => config_cmd::run(&ctx),
        Command::History(a) => history::run(&ctx, &a),
        Command::Import(a) => import::run(&ctx, &a),
        Command::Mail(m) => mail::run(&ctx, m),
        Command::Status { json } => status::run(&ctx, json),
        Command::User(u) => user::run(&ctx, u),
        Command::Validate(a) => process::validate(&ctx, &a),
        Command::Process(a) => process::run(&ctx, &a),
        Command::Run(a) => process::run_job(&ctx, &a),
        Command::Retry(a) => retry::run(&ctx, &a),
        Command::Serve => serve::run(ctx),
    }
}
