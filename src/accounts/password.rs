//! Passwords of provider accounts: the rules, Argon2id hashing, verification
//! and generation.
//!
//! The rules are the seed's (8 to 12 characters, letters and digits only,
//! at least one digit) plus at least one letter. Only the Argon2id PHC
//! string is stored (argon2 defaults: m=19456 KiB, t=2, p=1, random salt).
//! A password is never logged.

use anyhow::{anyhow, bail, Result};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::Rng;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 12;

/// Checks the password rules; the error says which one failed (never the
/// password itself).
pub fn check_rules(pw: &str) -> Result<()> {
    let n = pw.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        bail!("the password must have {MIN_LEN} to {MAX_LEN} characters (it has {n})");
    }
    if !pw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("the password must contain only letters and digits (no accent, space or special character)");
    }
    if !pw.bytes().any(|b| b.is_ascii_digit()) {
        bail!("the password must contain at least one digit");
    }
    if !pw.bytes().any(|b| b.is_ascii_alphabetic()) {
        bail!("the password must contain at least one letter");
    }
    Ok(())
}

/// The Argon2id PHC string of a password (a fresh random salt each time).
pub fn hash(pw: &str) -> Result<String> {
    Argon2::default()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string. A malformed PHC string never
/// matches. The comparison of the derived hashes is constant-time (argon2).
pub fn verify_password(phc: &str, password: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Letters and digits a person can read back without doubt (no 0/O, 1/l/I).
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// A random password of 12 characters meeting the rules.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    loop {
        let pw: String = (0..MAX_LEN)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect();
        if check_rules(&pw).is_ok() {
            return pw;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(check_rules("abcdefg1").is_ok());
        assert!(check_rules("ABCDEFGHIJ12").is_ok());
        let err = |p: &str| check_rules(p).unwrap_err().to_string();
        assert!(err("abcdef1").contains("8 to 12"));
        assert!(err("abcdefghijk12").contains("8 to 12"));
        assert!(err("abcdefgh").contains("one digit"));
        assert!(err("12345678").contains("one letter"));
        assert!(err("abcdéfg1").contains("only letters and digits"));
        assert!(err("abcd efg1").contains("only letters and digits"));
        assert!(err("abcd-efg1").contains("only letters and digits"));
        assert!(!err("abcd-efg1").contains("abcd"), "the password is never repeated");
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = hash("Secret123").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "Secret123"));
        assert!(!verify_password(&h, "Secret124"));
        assert!(!verify_password("not a phc string", "Secret123"));
        assert_ne!(hash("Secret123").unwrap(), h, "a fresh salt each time");
    }

    #[test]
    fn generated_passwords_meet_the_rules_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for _ in 0..200 {
            check_rules(&generate()).unwrap();
        }
    }
}
