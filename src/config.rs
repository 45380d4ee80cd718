//! Typed configuration: one TOML file in, one validated [`Config`] out.
//!
//! Every key has a default, so an empty file (or no file at all when the
//! default path is missing) runs the gateway on the embedded default: spool
//! under `./spool`, SQLite state, SFTP on 127.0.0.1:2222, e-mail written as
//! `.eml` files. The keys of `[paths]`, `[sftp] listen/host_key` and
//! `[mail] from/smtp_url` are fixed by the product specification (§8);
//! the rest are documented in `config/ppas-gateway.toml`.
//!
//! Unknown keys are refused: a typo in a production config must not silently
//! fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

mod ops;
pub use ops::{Jobs, Metrics, Retention};

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "config/ppas-gateway.toml";

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub paths: Paths,
    pub sftp: Sftp,
    pub mail: Mail,
    pub limits: Limits,
    pub intake: Intake,
    pub billing: Billing,
    pub accounts: Accounts,
    pub habitat: Habitat,
    pub retention: Retention,
    pub jobs: Jobs,
    pub log: Log,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Root of the spool (inbound, outbound, outbox, work, archive, state, mail).
    pub spool: PathBuf,
    /// The SQLite state database.
    pub database: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            spool: PathBuf::from("spool"),
            database: PathBuf::from("spool/state/gateway.db"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sftp {
    /// Start the SFTP server with `serve`.
    pub enabled: bool,
    /// Address the SFTP server listens on.
    pub listen: String,
    /// Ed25519 host key, generated (mode 0600) when missing.
    pub host_key: PathBuf,
    /// Seconds without any client traffic before a session is closed.
    pub idle_timeout_secs: u64,
    /// Concurrent sessions allowed for one login.
    pub max_sessions_per_user: u32,
    /// Concurrent sessions allowed in total.
    pub max_sessions: u32,
    /// Failed logins from one source address before it is locked.
    pub lockout_after_failures: u32,
    /// How long a locked source stays locked (seconds).
    pub lockout_secs: u64,
    /// Window over which failures are counted (seconds).
    pub failure_window_secs: u64,
    /// Delay before a refused login is answered (milliseconds), the same for
    /// an unknown login and a wrong secret; it doubles with each recent
    /// failure from the same source address, up to 16 times this value.
    pub failure_delay_ms: u64,
    /// Seconds a connection may stay unauthenticated before it is closed.
    pub login_grace_secs: u64,
    /// Connections one source address may hold open before they have
    /// logged in (one host cannot fill the server with half-open logins).
    pub max_unauthenticated_per_source: u32,
    /// Flush each upload to disk before it is renamed into `/in` and the
    /// client is told it is complete (a crash then never leaves a
    /// truncated file where a complete one was acknowledged).
    pub fsync_uploads: bool,
}

impl Default for Sftp {
    fn default() -> Self {
        Sftp {
            enabled: true,
            listen: "127.0.0.1:2222".into(),
            host_key: PathBuf::from("spool/state/ssh_host_ed25519_key"),
            idle_timeout_secs: 600,
            max_sessions_per_user: 8,
            max_sessions: 128,
            lockout_after_failures: 5,
            lockout_secs: 900,
            failure_window_secs: 600,
            failure_delay_ms: 1000,
            login_grace_secs: 60,
            max_unauthenticated_per_source: 10,
            fsync_uploads: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// Sender address of every notice.
    pub from: String,
    /// SMTP relay (`smtp://host:port`, `smtps://…`, credentials as
    /// `smtp://user:password@host:587?tls=required`); absent: `.eml` files
    /// under `spool/mail/`. Shown everywhere with its password masked.
    pub smtp_url: Option<crate::mail::SmtpUrl>,
    /// Attempts before a message is marked failed (it stays in the queue).
    pub max_attempts: u32,
    /// Seconds between two passes of the daemon's mail worker.
    pub poll_secs: u64,
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            from: "ppas-gateway@localhost".into(),
            smtp_url: None,
            max_attempts: 20,
            poll_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest file accepted (bytes): larger billing files get F11; SFTP
    /// uploads are cut off when they pass it.
    pub max_file_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_size: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intake {
    /// Watch drop folders for close-after-write and rename-in events.
    pub watch: bool,
    /// Seconds between two full rescans of the inbound folders.
    pub rescan_secs: u64,
    /// A dropped file (provider or caisse folder) is taken only once its
    /// size and modification time have stayed unchanged for this long
    /// (milliseconds), whoever writes it. SFTP uploads, which the gateway
    /// itself completes, are taken at once.
    pub settle_ms: u64,
    /// Attempts to finish a received file that keeps failing (an error, not
    /// an anomaly of the file) before it is moved to `quarantine/`.
    pub max_attempts: u32,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            watch: true,
            rescan_secs: 30,
            settle_ms: 2000,
            max_attempts: 5,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Accounts {
    /// Days a temporary (one-time) password stays valid; 0: no expiry.
    pub temporary_password_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Billing {
    /// The prestation table (code → monthly maximum of `nb-quant`, in hours).
    pub prestations: BTreeMap<String, rust_decimal::Decimal>,
    /// Known caisses (`id-cram` → name), from the billing specification.
    pub caisses: BTreeMap<String, String>,
}

impl Default for Billing {
    fn default() -> Self {
        let prestations = [("PPP100", 30u32), ("PPP119", 45)]
            .into_iter()
            .map(|(c, m)| (c.to_string(), m.into()))
            .collect();
        let caisses = [
            ("01", "Carsat Aquitaine"),
            ("02", "Carsat Auvergne"),
            ("03", "Carsat Bourgogne et Franche-Comté"),
            ("04", "Carsat Nord-Picardie"),
            ("05", "Carsat Centre-Ouest"),
            ("06", "Carsat Rhône-Alpes"),
            ("07", "Carsat Sud-Est"),
            ("08", "Carsat Languedoc-Roussillon"),
            ("09", "Carsat Nord-Est"),
            ("10", "Carsat Pays de la Loire"),
            ("11", "Carsat Centre"),
            ("12", "Carsat Ile de France"),
            ("13", "Carsat Bretagne"),
            ("14", "Carsat Normandie"),
            ("15", "Crav Alsace-Moselle"),
            ("16", "Carsat Midi-Pyrénées"),
            ("20", "CGSS Guadeloupe"),
            ("21", "CGSS Martinique"),
            ("22", "CGSS Guyane"),
            ("23", "CGSS Réunion"),
            ("26", "CAVIMAC"),
            ("27", "DGAFP"),
            ("66", "CNRACL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Billing { prestations, caisses }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Habitat {
    /// Fee of one visit (an accepted T attestation creates one invoice line
    /// of this amount for its convention), in euros.
    pub visit_fee: rust_decimal::Decimal,
    /// Fee per caisse (`id-cram` → euros), where it differs from `visit_fee`.
    pub visit_fees: BTreeMap<String, rust_decimal::Decimal>,
}

impl Default for Habitat {
    fn default() -> Self {
        Habitat {
            visit_fee: rust_decimal::Decimal::new(150, 0),
            visit_fees: BTreeMap::new(),
        }
    }
}

impl Habitat {
    /// The fee of a visit for caisse `id_cram`.
    pub fn fee_for(&self, id_cram: &str) -> rust_decimal::Decimal {
        self.visit_fees.get(id_cram).copied().unwrap_or(self.visit_fee)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
    /// Straight to the systemd journal (`tracing-journald`), fields as
    /// journal fields; human on stderr when the journal cannot be reached.
    Journald,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `human` (default), `json` or `journald`.
    pub format: LogFormat,
    /// Filter in `tracing` syntax, e.g. `info` or `ppas_gateway=debug`.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads and validates the configuration. A missing file is only
    /// tolerated at the default path (the embedded default then applies).
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let cfg = match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text).with_context(|| format!("configuration {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Config::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read configuration {}", path.display())),
        };
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Config> {
        // A TOML error quotes the offending line: mask a relay password in it.
        let cfg: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!(crate::mail::smtp_url::mask_in_text(&e.to_string())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if self.paths.spool.as_os_str().is_empty() {
            bail!("[paths] spool must not be empty");
        }
        if self.paths.database.as_os_str().is_empty() {
            bail!("[paths] database must not be empty");
        }
        self.sftp
            .listen
            .parse::<SocketAddr>()
            .with_context(|| format!("[sftp] listen: {:?} is not an address:port", self.sftp.listen))?;
        if self.mail.from.parse::<lettre::Address>().is_err() {
            bail!("[mail] from: {:?} is not an e-mail address", self.mail.from);
        }
        if let Some(url) = &self.mail.smtp_url {
            url.validate()?;
        }
        if self.limits.max_file_size == 0 {
            bail!("[limits] max_file_size must be positive");
        }
        if self.mail.poll_secs == 0 {
            bail!("[mail] poll_secs must be positive");
        }
        if self.intake.rescan_secs == 0 {
            bail!("[intake] rescan_secs must be positive");
        }
        if self.intake.settle_ms > 600_000 {
            bail!("[intake] settle_ms must be at most 600000 (ten minutes)");
        }
        if self.intake.max_attempts == 0 {
            bail!("[intake] max_attempts must be at least 1");
        }
        for (what, fee) in std::iter::once(("visit_fee".to_string(), &self.habitat.visit_fee)).chain(
            self.habitat
                .visit_fees
                .iter()
                .map(|(k, v)| (format!("visit_fees.{k}"), v)),
        ) {
            if fee.is_sign_negative() || fee.scale() > 2 || *fee > rust_decimal::Decimal::new(1_000_000, 0) {
                bail!("[habitat] {what}: {fee} must be an amount in euros, 0 to 1000000, at most 2 decimals");
            }
        }
        for id in self.habitat.visit_fees.keys() {
            if !self.billing.caisses.contains_key(id) {
                bail!("[habitat] visit_fees: id-cram {id:?} is not a caisse of [billing.caisses]");
            }
        }
        if self.billing.prestations.is_empty() {
            bail!("[billing] prestations must list at least one prestation");
        }
        for (code, max) in &self.billing.prestations {
            if code.is_empty() || code.chars().count() > 6 {
                bail!("[billing] prestations: code {code:?} must have 1 to 6 characters");
            }
            if *max <= rust_decimal::Decimal::ZERO {
                bail!("[billing] prestations: monthly maximum of {code} must be positive");
            }
        }
        for id in self.billing.caisses.keys() {
            if id.chars().count() != 2 {
                bail!("[billing] caisses: id-cram {id:?} must have 2 characters");
            }
        }
        if self.sftp.lockout_after_failures == 0 {
            bail!("[sftp] lockout_after_failures must be at least 1");
        }
        if self.sftp.max_sessions == 0
            || self.sftp.max_sessions_per_user == 0
            || self.sftp.max_unauthenticated_per_source == 0
        {
            bail!("[sftp] session limits must be at least 1");
        }
        if self.sftp.idle_timeout_secs == 0 || self.sftp.login_grace_secs == 0 {
            bail!("[sftp] idle_timeout_secs and login_grace_secs must be at least 1");
        }
        if self.sftp.failure_window_secs == 0 {
            bail!("[sftp] failure_window_secs must be at least 1");
        }
        if self.sftp.failure_delay_ms > 60_000 {
            bail!("[sftp] failure_delay_ms must be at most 60000 (one minute)");
        }
        for (key, months) in [
            ("outbound_months", self.retention.outbound_months),
            ("history_months", self.retention.history_months),
            ("archive_months", self.retention.archive_months),
            ("mail_months", self.retention.mail_months),
        ] {
            if months > Retention::MAX_MONTHS {
                bail!(
                    "[retention] {key}: {months} months is more than {} (50 years); 0 keeps for ever",
                    Retention::MAX_MONTHS
                );
            }
        }
        crate::jobs::Schedules::from_config(&self.jobs)?;
        self.metrics.address()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .with_context(|| format!("[log] level: {:?}", self.log.level))?;
        Ok(())
    }

    /// The effective configuration as TOML (what `config check` prints),
    /// secrets masked (the password of `[mail] smtp_url`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print: {e}"))
    }

    /// Monthly maximum of a prestation, if the code is in the table.
    pub fn prestation_max(&self, code: &str) -> Option<rust_decimal::Decimal> {
        self.billing.prestations.get(code).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_embedded_default() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.sftp.listen, "127.0.0.1:2222");
        assert_eq!(c.paths.database, PathBuf::from("spool/state/gateway.db"));
        assert_eq!(c.prestation_max("PPP119"), Some(45.into()));
        assert_eq!(c.billing.caisses.len(), 23);
    }

    #[test]
    fn unknown_key_and_bad_values_are_refused() {
        let e = Config::parse("[paths]\nspoll = \"x\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("spoll"), "{e:#}");
        let e = Config::parse("[sftp]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("[sftp] listen"), "{e:#}");
        let e = Config::parse("[mail]\nfrom = \"not an address\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("[mail] from"), "{e:#}");
    }

    #[test]
    fn retention_periods_default_to_the_spec_and_are_bounded() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            c.retention,
            Retention {
                outbound_months: 12,
                history_months: 6,
                archive_months: 12,
                mail_months: 6
            }
        );
        let c = Config::parse("[retention]\nhistory_months = 0\narchive_months = 600\n").unwrap();
        assert_eq!((c.retention.history_months, c.retention.archive_months), (0, 600));
        let e = Config::parse("[retention]\nmail_months = 601\n").unwrap_err();
        assert!(format!("{e:#}").contains("[retention] mail_months"), "{e:#}");
        for bad in [
            "outbound_months = -1",
            "history_months = \"6\"",
            "documents_months = 12",
        ] {
            assert!(Config::parse(&format!("[retention]\n{bad}\n")).is_err(), "{bad}");
        }
    }

    #[test]
    fn jobs_have_defaults_can_be_disabled_and_a_bad_one_is_named() {
        let c = Config::parse("[jobs]\nrelances = \"0 8 * * mon-fri\"\nbordereaux = \"\"\n").unwrap();
        assert_eq!(c.jobs.relances, "0 8 * * mon-fri");
        assert_eq!(c.jobs.purge, "30 3 * * *");
        let s = crate::jobs::Schedules::from_config(&c.jobs).unwrap();
        assert!(s.get(crate::jobs::Job::Bordereaux).is_none());
        let e = Config::parse("[jobs]\ninvoice_weekly = \"0 6 * * 8\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("[jobs] invoice_weekly"), "{e:#}");
        let e = Config::parse("[jobs]\nmail = \"* * * * *\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("mail"), "{e:#}");
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.jobs, c.jobs);
    }

    #[test]
    fn metrics_are_off_by_default_and_loopback_unless_allowed() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.metrics.address().unwrap(), None);
        let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9187\"\n").unwrap();
        assert_eq!(c.metrics.address().unwrap(), Some("127.0.0.1:9187".parse().unwrap()));
        assert!(Config::parse("[metrics]\nlisten = \"[::1]:9187\"\n").is_ok());
        let e = Config::parse("[metrics]\nlisten = \"0.0.0.0:9187\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("allow_remote"), "{e:#}");
        let e = Config::parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("[metrics] listen"), "{e:#}");
        let c = Config::parse("[metrics]\nlisten = \"0.0.0.0:9187\"\nallow_remote = true\n").unwrap();
        assert_eq!(Config::parse(&c.to_toml()).unwrap().metrics, c.metrics);
    }

    #[test]
    fn effective_values_round_trip() {
        let c = Config::parse("[limits]\nmax_file_size = 1000\n").unwrap();
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.limits.max_file_size, 1000);
    }
}
