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
use rand::RngExt;

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 12;

/// The first rule a password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Fewer than [`MIN_LEN`] or more than [`MAX_LEN`] characters (how many it has).
    Length(usize),
    /// Something else than ASCII letters and digits.
    Charset,
    NoDigit,
    NoLetter,
}

impl Broken {
    /// The rule, in English (never the password itself).
    pub fn english(self) -> String {
        match self {
            Broken::Length(n) => format!("the password must have {MIN_LEN} to {MAX_LEN} characters (it has {n})"),
            Broken::Charset => {
                "the password must contain only letters and digits (no accent, space or special character)".into()
            }
            Broken::NoDigit => "the password must contain at least one digit".into(),
            Broken::NoLetter => "the password must contain at least one letter".into(),
        }
    }

    /// The rule, in French, in plain ASCII (SSH clients escape other
    /// characters in the texts a server sends).
    pub fn french(self) -> String {
        match self {
            Broken::Length(n) => {
                format!("le mot de passe doit avoir de {MIN_LEN} a {MAX_LEN} caracteres (il en a {n})")
            }
            Broken::Charset => {
                "le mot de passe ne doit contenir que des lettres et des chiffres (ni accent, ni espace, ni signe)"
                    .into()
            }
            Broken::NoDigit => "le mot de passe doit contenir au moins un chiffre".into(),
            Broken::NoLetter => "le mot de passe doit contenir au moins une lettre".into(),
        }
    }
}

/// The first rule `pw` breaks, if any.
pub fn broken_rule(pw: &str) -> Option<Broken> {
    let n = pw.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Some(Broken::Length(n));
    }
    if !pw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some(Broken::Charset);
    }
    if !pw.bytes().any(|b| b.is_ascii_digit()) {
        return Some(Broken::NoDigit);
    }
    if !pw.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Some(Broken::NoLetter);
    }
    None
}

/// Checks the password rules; the error says which one failed (never the
/// password itself).
pub fn check_rules(pw: &str) -> Result<()> {
    match broken_rule(pw) {
        Some(b) => bail!("{}", b.english()),
        None => Ok(()),
    }
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
    let mut rng = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
    loop {
        let pw: String = (0..MAX_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
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
    fn broken_rules_are_told_in_both_languages_in_ascii() {
        assert_eq!(broken_rule("abcdefg1"), None);
        assert_eq!(broken_rule("abc1"), Some(Broken::Length(4)));
        assert_eq!(broken_rule("abcdefg-1"), Some(Broken::Charset));
        assert_eq!(broken_rule("abcdefgh"), Some(Broken::NoDigit));
        assert_eq!(broken_rule("12345678"), Some(Broken::NoLetter));
        for b in [Broken::Length(4), Broken::Charset, Broken::NoDigit, Broken::NoLetter] {
            assert!(b.french().is_ascii() && b.english().is_ascii(), "{b:?}");
        }
        assert!(Broken::NoDigit.french().contains("au moins un chiffre"));
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
