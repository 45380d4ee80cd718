//! Credential checks: a login plus a public key or a password in, a yes or
//! no out, with the same work and the same answer for an unknown login, a
//! disabled one and a wrong secret (no user enumeration).
//!
//! Key policy: Ed25519, ECDSA (P-256/384/521) and RSA of at least 2048 bits
//! signed with SHA-2 (`rsa-sha2-256`/`-512`); never `ssh-rsa` (SHA-1), DSA
//! or anything else. Passwords are Argon2id PHC strings checked with the
//! `argon2` crate; when there is no usable hash the same verification runs
//! against a dummy hash so that the time spent does not tell.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKey};

use super::SftpAccount;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// Whether a key, offered with this signature algorithm, may be used at all.
pub fn key_allowed(key: &PublicKey, algorithm: &Algorithm) -> Result<(), &'static str> {
    match algorithm {
        Algorithm::Ed25519 => Ok(()),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521,
        } => Ok(()),
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256 | HashAlg::Sha512),
        } => match key.key_data() {
            KeyData::Rsa(rsa) if rsa.key_size() >= MIN_RSA_BITS => Ok(()),
            KeyData::Rsa(_) => Err("RSA key shorter than 2048 bits"),
            _ => Err("key does not match its algorithm"),
        },
        Algorithm::Rsa { .. } => Err("ssh-rsa (SHA-1) signatures are refused"),
        _ => Err("key type not accepted"),
    }
}

/// Whether the account lists this public key (comments do not matter).
/// Lines that do not parse are skipped: a damaged entry must not lock the
/// account out of its other keys.
pub fn account_has_key(account: &SftpAccount, key: &PublicKey) -> bool {
    account
        .keys
        .iter()
        .any(|line| match PublicKey::from_openssh(line.trim()) {
            Ok(k) => k.key_data() == key.key_data(),
            Err(e) => {
                tracing::warn!(login = %account.login, "unreadable public key in account: {e}");
                false
            }
        })
}

/// A hash of a random secret with the default Argon2id parameters: what
/// an unknown login's password is checked against.
pub fn dummy_hash() -> anyhow::Result<String> {
    let mut secret = [0u8; 24];
    rand::Rng::fill_bytes(&mut rand::rand_core::UnwrapErr(rand::rngs::SysRng), &mut secret);
    let hash = Argon2::default()
        .hash_password(&secret)
        .map_err(|e| anyhow::anyhow!("cannot compute the reference password hash: {e}"))?;
    Ok(hash.to_string())
}

/// Checks a password against an account's PHC string (or, when the account
/// has none or it cannot be read, against `dummy` so that the same work is
/// done). Blocking: call from a blocking thread.
pub fn verify_password(hash: Option<&str>, password: &str, dummy: &str) -> bool {
    let parsed = hash.and_then(|h| match PasswordHash::new(h) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("unreadable password hash in account: {e}");
            None
        }
    });
    match parsed {
        Some(p) => Argon2::default().verify_password(password.as_bytes(), &p).is_ok(),
        None => {
            if let Ok(p) = PasswordHash::new(dummy) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &p);
            }
            false
        }
    }
}

/// Computes a PHC string for a password (used by tests and by account tools
/// that want the same parameters as the verifier).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
    use russh::keys::PrivateKey;

    fn ed25519(seed: u8) -> PublicKey {
        let kp = Ed25519Keypair::from_seed(&[seed; 32]);
        PrivateKey::new(KeypairData::Ed25519(kp), "t")
            .unwrap()
            .public_key()
            .clone()
    }

    #[test]
    fn keys_match_on_key_data_only() {
        let k = ed25519(1);
        let mut line = k.to_openssh().unwrap();
        line.push_str(" some-comment");
        let acc = SftpAccount {
            login: "a".into(),
            keys: vec!["garbage".into(), line],
            ..Default::default()
        };
        assert!(account_has_key(&acc, &k));
        assert!(!account_has_key(&acc, &ed25519(2)));
    }

    #[test]
    fn legacy_algorithms_are_refused() {
        let k = ed25519(1);
        assert!(key_allowed(&k, &Algorithm::Ed25519).is_ok());
        assert!(key_allowed(&k, &Algorithm::Rsa { hash: None }).is_err());
        assert!(key_allowed(&k, &Algorithm::Dsa).is_err());
        // An Ed25519 key presented as RSA is not an RSA key.
        assert!(key_allowed(
            &k,
            &Algorithm::Rsa {
                hash: Some(HashAlg::Sha256)
            }
        )
        .is_err());
    }

    #[test]
    fn passwords_verify_and_unknown_hashes_fail() {
        let dummy = dummy_hash().unwrap();
        let h = hash_password("secret12").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(Some(&h), "secret12", &dummy));
        assert!(!verify_password(Some(&h), "secret13", &dummy));
        assert!(!verify_password(None, "secret12", &dummy));
        assert!(!verify_password(Some("not a hash"), "secret12", &dummy));
    }
}
