//! What an operator finds after an install: the repository's top-level
//! `spool/` (the embedded default's spool root, with its README) used as
//! is by the binary, and the Debian package's configuration equal to the
//! shipped one but for its paths under /var/lib/ppas-gateway. (The package
//! itself is built and checked by `scripts/package-check`.)

use std::process::{Command, Stdio};

use ppas_gateway::config::Config;

use crate::support;

const SHIPPED: &str = include_str!("../../config/ppas-gateway.toml");
const PACKAGED: &str = include_str!("../../debian/ppas-gateway.toml");
const SPOOL_README: &str = include_str!("../../spool/README.md");

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(support::bin())
        .args(args)
        .current_dir(dir)
        .env("PPAS_GATEWAY_NOW", "2026-11-20T10:00:00+01:00")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run ppas-gateway")
}

#[test]
fn the_default_spool_with_its_readme_is_used_as_is() {
    // A checkout: no configuration file, so the embedded default applies
    // (spool = "spool"), and spool/ holds only its README.
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::write(spool.join("README.md"), SPOOL_README).unwrap();
    let out = run(dir.path(), &["process", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for sub in ["inbound", "outbound", "outbox", "work", "archive", "state/gateway.db"] {
        assert!(spool.join(sub).exists(), "spool/{sub} not created");
    }
    // The README is neither taken, moved nor reported, at every pass.
    let out = run(dir.path(), &["process", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(spool.join("README.md")).unwrap(), SPOOL_README);
    let out = run(dir.path(), &["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(!status.contains("README"), "{status}");
    // The README names every top-level folder the gateway makes.
    for entry in std::fs::read_dir(&spool).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "README.md" {
            assert!(
                SPOOL_README.contains(&format!("`{name}/")),
                "spool/README.md does not describe {name}/"
            );
        }
    }
}

#[test]
fn the_packaged_configuration_is_the_shipped_one_with_its_state_in_var_lib() {
    let packaged = Config::parse(PACKAGED).expect("debian/ppas-gateway.toml parses");
    let state = std::path::Path::new("/var/lib/ppas-gateway/spool");
    assert_eq!(packaged.paths.spool, state);
    assert_eq!(packaged.paths.database, state.join("state/gateway.db"));
    assert_eq!(packaged.sftp.host_key, state.join("state/ssh_host_ed25519_key"));
    // Every other key: the shipped (default) value.
    let mut same = packaged.clone();
    let shipped = Config::parse(SHIPPED).unwrap();
    same.paths = shipped.paths.clone();
    same.sftp.host_key = shipped.sftp.host_key.clone();
    assert_eq!(same.to_toml(), shipped.to_toml());
    // And as commented: the same text from [paths] on, but the three paths.
    let body = |t: &str| -> Vec<String> {
        t[t.find("[paths]").unwrap()..]
            .lines()
            .filter(|l| !l.starts_with("spool =") && !l.starts_with("database =") && !l.starts_with("host_key ="))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(body(PACKAGED), body(SHIPPED));
}
