//! The server's identity: `[sftp] host_key` in, an Ed25519 private key out.
//!
//! Generated on first start (OpenSSH private key format, mode 0600, written
//! under a temporary name then renamed so that a crash never leaves half a
//! key) and reused on every restart: providers pin the host key, so it must
//! never change behind their back. The public half is written next to it
//! (`.pub`) for the caisse to hand out with its fingerprint.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

/// Loads the host key, generating it when the file does not exist.
pub fn load_or_create(path: &Path) -> Result<PrivateKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let key = PrivateKey::from_openssh(text.as_bytes())
                .with_context(|| format!("host key {} is not an OpenSSH private key", path.display()))?;
            if key.is_encrypted() {
                bail!("host key {} is encrypted: the daemon cannot unlock it", path.display());
            }
            if key.algorithm() != Algorithm::Ed25519 {
                bail!("host key {} is not an Ed25519 key", path.display());
            }
            let mode = fs::metadata(path)
                .with_context(|| format!("cannot read the permissions of {}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "host key {} is readable by others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(e).with_context(|| format!("cannot read host key {}", path.display())),
    }
}

/// SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

fn create(path: &Path) -> Result<PrivateKey> {
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut rand::rand_core::UnwrapErr(rand::rngs::SysRng), &mut seed);
    let key = PrivateKey::new(
        KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed)),
        "ppas-gateway host key",
    )
    .context("cannot build the host key")?;
    let private = key.to_openssh(LineEnding::LF).context("cannot encode the host key")?;
    let public = key
        .public_key()
        .to_openssh()
        .context("cannot encode the public host key")?;
    crate::fsutil::write_private(path, private.as_bytes(), crate::fsutil::Install::KeepExisting)?;
    let pub_path = PathBuf::from(format!("{}.pub", path.display()));
    crate::fsutil::write_atomic(&pub_path, format!("{public}\n").as_bytes())?;
    tracing::info!("generated SFTP host key {} ({})", path.display(), fingerprint(&key));
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state/ssh_host_ed25519_key");
        let a = load_or_create(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"), "{text}");
        let b = load_or_create(&p).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let public = fs::read_to_string(d.path().join("state/ssh_host_ed25519_key.pub")).unwrap();
        assert!(public.starts_with("ssh-ed25519 "), "{public}");
        let names: Vec<_> = fs::read_dir(d.path().join("state")).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left");
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_new_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        fs::write(&p, "not a key").unwrap();
        let e = load_or_create(&p).unwrap_err();
        assert!(format!("{e:#}").contains("not an OpenSSH private key"), "{e:#}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "not a key");
    }
}
