//! The shipped configuration file and systemd unit, checked as an operator
//! would use them: the file parses, equals the built-in defaults key for
//! key, documents every key; the unit carries its confinement and passes
//! `systemd-analyze verify`.

use std::collections::BTreeSet;
use std::process::Command;

use ppas_gateway::config::Config;

use crate::import::{text, Gateway};
use crate::support;

const SHIPPED: &str = include_str!("../../config/ppas-gateway.toml");
const UNIT: &str = include_str!("../../systemd/ppas-gateway.service");

#[test]
fn shipped_config_parses_and_equals_the_defaults() {
    let shipped = Config::parse(SHIPPED).expect("config/ppas-gateway.toml parses");
    assert_eq!(shipped.to_toml(), Config::default().to_toml());
    assert_eq!(
        shipped.to_toml(),
        Config::parse("").unwrap().to_toml(),
        "an empty file runs the same"
    );
}

/// `section.key` of every key a TOML text sets (tables flattened).
fn keys(v: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in v {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => keys(t, &name, out),
            _ => {
                out.insert(name);
            }
        }
    }
}

#[test]
fn shipped_config_sets_and_comments_every_key() {
    let mut want = BTreeSet::new();
    keys(&toml::from_str(&Config::default().to_toml()).unwrap(), "", &mut want);
    let mut have = BTreeSet::new();
    keys(&toml::from_str(SHIPPED).unwrap(), "", &mut have);
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "keys of src/config.rs missing from the shipped file: {missing:?}"
    );
    // Keys whose default is "absent" are shown commented out.
    assert!(SHIPPED.contains("\n# smtp_url = \""), "[mail] smtp_url is documented");

    // Every setting outside the two lookup tables has a comment just above
    // it (a commented-out setting such as `# smtp_url = …` does not count).
    let commented_setting = |l: &str| {
        l.strip_prefix("# ")
            .and_then(|rest| rest.split_once(" = "))
            .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    let mut section = String::new();
    let mut previous = "";
    for line in SHIPPED.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            section = l.to_string();
        } else if !l.starts_with('#') && l.contains('=') && !section.starts_with("[billing.") {
            assert!(
                previous.starts_with('#') && !commented_setting(previous),
                "{section} {l:?} has no comment above it"
            );
        }
        previous = l;
    }
}

#[test]
fn config_check_prints_the_same_values_for_the_shipped_and_an_empty_file() {
    let g = Gateway::new();
    let shipped = support::repo().join("config/ppas-gateway.toml");
    let empty = g.dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let run = |cfg: &std::path::Path, args: &[&str]| {
        let out = Command::new(support::bin())
            .arg("--config")
            .arg(cfg)
            .args(args)
            .current_dir(g.dir.path())
            .output()
            .expect("run ppas-gateway");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // The state the configuration names must exist: a first pass creates it.
    run(&empty, &["process", "--once"]);
    let run = |cfg: &std::path::Path| run(cfg, &["config", "check"]);
    let a = run(&shipped);
    assert!(a.contains("listen = \"127.0.0.1:2222\""), "{a}");
    assert_eq!(a, run(&empty));
}

#[test]
fn config_check_on_a_fresh_install_prints_the_values_and_says_the_database_is_missing() {
    let g = Gateway::new();
    let out = g.run(&["config", "check"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("listen = "), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("configuration is valid") && err.contains(&g.db_path().display().to_string()),
        "{err}"
    );
    assert!(
        !g.db_path().exists() && !g.dir.path().join("spool").exists(),
        "config check created state"
    );
}

/// A relay password, recognisable wherever it would leak.
const RELAY_PASSWORD: &str = "Tr3s-S3cret-Relais";

#[test]
fn config_check_masks_the_relay_password_and_its_output_reads_back() {
    let g = Gateway::new();
    let base = std::fs::read_to_string(&g.config).unwrap();
    std::fs::write(
        &g.config,
        format!("{base}[mail]\nsmtp_url = \"smtp://gw-caisse:{RELAY_PASSWORD}@relay.caisse.fr:587?tls=required\"\n"),
    )
    .unwrap();
    let out = g.run(&["process", "--once"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = g.run(&["config", "check"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("smtp_url = \"smtp://gw-caisse:***@relay.caisse.fr:587?tls=required\""),
        "{printed}"
    );
    assert!(!printed.contains(RELAY_PASSWORD) && !text(&out.stderr).contains(RELAY_PASSWORD));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    // The printout is a valid configuration...
    let masked = Config::parse(&printed).expect("config check output parses");
    assert!(masked.mail.smtp_url.as_ref().unwrap().has_masked_password());
    std::fs::write(&g.config, &printed).unwrap();
    let out = g.run(&["config", "check"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), printed, "the same effective values");
    assert!(text(&out.stderr).contains("warning") && text(&out.stderr).contains("mask"));
    // ... but the mask is never sent as the password.
    let out = g.run(&["run", "mail"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("the password is the mask"), "{err}");
}

#[test]
fn a_refused_relay_url_is_quoted_masked() {
    let g = Gateway::new();
    let base = std::fs::read_to_string(&g.config).unwrap();
    for bad in [
        format!("smtp_url = \"smtp://gw-caisse:{RELAY_PASSWORD}@relay:25?tls=never\""),
        format!("smtp_url = \"smtp://gw-caisse:{RELAY_PASSWORD}/x@relay:25\""),
        format!("smtp_url = \"smtp://gw-caisse:{RELAY_PASSWORD}@relay:25\" trailing words\n"),
    ] {
        std::fs::write(&g.config, format!("{base}[mail]\n{bad}\n")).unwrap();
        let out = g.run(&["config", "check"], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(!err.contains(RELAY_PASSWORD), "{err}");
        assert!(err.contains("gw-caisse:***@"), "{err}");
    }
}

/// `Key=value` lines of the unit (comments and sections left out).
fn directives() -> Vec<(String, String)> {
    UNIT.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[test]
fn unit_runs_confined_as_a_notify_service() {
    let d = directives();
    let get = |k: &str| -> Vec<&str> { d.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect() };
    for (k, v) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30"),
        ("User", "ppas-gateway"),
        (
            "ExecStart",
            "/usr/bin/ppas-gateway --config /etc/ppas-gateway/ppas-gateway.toml serve",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("WorkingDirectory", "/var/lib/ppas-gateway"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/ppas-gateway"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("TimeoutStopSec", "15"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(get(k), [v], "{k}");
    }
    // Nothing else is writable: the state folder is the only ReadWritePaths.
    assert_eq!(get("ReadWritePaths").len(), 1);
    assert!(get("ReadOnlyPaths").is_empty() && get("PrivateNetwork").is_empty());
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if !support::have("systemd-analyze") {
        eprintln!(
            "SKIPPED unit_passes_systemd_analyze_verify: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    }
    // verify checks that ExecStart= names an executable: point it at the
    // binary under test; every other line is the shipped unit as is.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("ppas-gateway.service");
    let bin = support::bin();
    let patched = UNIT.replace("/usr/bin/ppas-gateway", bin.to_str().expect("utf-8 path"));
    assert_ne!(patched, UNIT);
    std::fs::write(&unit, patched).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "systemd-analyze verify failed:\n{err}");
    // An unknown key or a bad value is only a warning (exit 0): refuse those too.
    let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("ppas-gateway.service")).collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify warns:\n{err}");
}
