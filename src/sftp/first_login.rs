//! The first login with a temporary (one-time) password (spec §5), through
//! `keyboard-interactive`: the prompts, the texts and the checks of the new
//! password. The exchange itself is in [`session`](super::session):
//!
//! 1. every keyboard-interactive login is asked the same single prompt,
//!    [`PASSWORD_PROMPT`] (whether the login exists or holds a temporary
//!    password is not told before the password is checked);
//! 2. a right permanent password lets the session in; a right temporary one
//!    that has not expired is answered with [`ask_new`]: the new password,
//!    twice;
//! 3. [`check_new`] judges the two entries; a refusal is explained in the
//!    instructions of the next round ([`ask_new`] with the problem), up to
//!    [`MAX_TRIES`] rounds; an accepted one is hashed, stored, and the
//!    session goes in.
//!
//! Texts are in French then English, in plain ASCII: OpenSSH `sftp` prints
//! the title and instructions of a round through its log, which shows any
//! other byte as an octal escape (`é` as `\303\251`) outside a UTF-8
//! locale. No text ever contains a password.

use std::borrow::Cow;

use bytes::Bytes;
use russh::server::Auth;

use crate::accounts::password::{broken_rule, Broken, MAX_LEN, MIN_LEN};

/// The only prompt of the first round, for every login.
pub const PASSWORD_PROMPT: &str = "Mot de passe / Password: ";
/// The two prompts of the change.
pub const NEW_PROMPT: &str = "Nouveau mot de passe / New password: ";
pub const CONFIRM_PROMPT: &str = "Confirmez / Confirm: ";
/// Title of the change rounds.
pub const TITLE: &str = "Mot de passe provisoire / Temporary password";
/// Rounds of new-password prompts before the attempt fails (the user may
/// start again with the temporary password, which still works).
pub const MAX_TRIES: u32 = 3;

/// Why a new password is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not two answers (the client did not follow the prompts).
    Missing,
    /// The two entries differ.
    Mismatch,
    /// It breaks a rule of the seed.
    Rule(Broken),
    /// It is the temporary password again.
    Same,
}

impl Problem {
    pub fn french(self) -> String {
        match self {
            Problem::Missing => "saisissez le nouveau mot de passe deux fois".into(),
            Problem::Mismatch => "les deux saisies sont differentes".into(),
            Problem::Rule(b) => b.french(),
            Problem::Same => "le nouveau mot de passe doit etre different du mot de passe provisoire".into(),
        }
    }

    pub fn english(self) -> String {
        match self {
            Problem::Missing => "type the new password twice".into(),
            Problem::Mismatch => "the two entries differ".into(),
            Problem::Rule(b) => b.english(),
            Problem::Same => "the new password must differ from the temporary one".into(),
        }
    }
}

/// First round: the password, not echoed.
pub fn ask_password() -> Auth {
    Auth::Partial {
        name: Cow::Borrowed(""),
        instructions: Cow::Borrowed(""),
        prompts: Cow::Owned(vec![(Cow::Borrowed(PASSWORD_PROMPT), false)]),
    }
}

/// The change round: why the previous new password was refused (if it
/// was), the rules, then the new password twice, not echoed.
pub fn ask_new(problem: Option<Problem>) -> Auth {
    let mut text = String::new();
    if let Some(p) = problem {
        text.push_str(&format!("Refuse : {}.\nRefused: {}.\n", p.french(), p.english()));
    }
    text.push_str(&format!(
        "Votre mot de passe est provisoire : choisissez-en un nouveau, de {MIN_LEN} a {MAX_LEN} lettres \
         et chiffres, dont au moins un chiffre.\n\
         Your password is temporary: choose a new one, {MIN_LEN} to {MAX_LEN} letters and digits, \
         at least one digit."
    ));
    Auth::Partial {
        name: Cow::Borrowed(TITLE),
        instructions: Cow::Owned(text),
        prompts: Cow::Owned(vec![
            (Cow::Borrowed(NEW_PROMPT), false),
            (Cow::Borrowed(CONFIRM_PROMPT), false),
        ]),
    }
}

/// The new password from the two answers of a change round, or why it is
/// refused. `temporary` is the password the user typed in the first round.
pub fn check_new(temporary: &str, answers: &[Bytes]) -> Result<String, Problem> {
    let [new, confirm] = answers else {
        return Err(Problem::Missing);
    };
    if new != confirm {
        return Err(Problem::Mismatch);
    }
    let Ok(new) = std::str::from_utf8(new) else {
        return Err(Problem::Rule(Broken::Charset));
    };
    if let Some(b) = broken_rule(new) {
        return Err(Problem::Rule(b));
    }
    if new == temporary {
        return Err(Problem::Same);
    }
    Ok(new.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn the_new_password_is_typed_twice_follows_the_rules_and_differs() {
        assert_eq!(
            check_new("Temp2345", &answers(&["Mine2026", "Mine2026"])),
            Ok("Mine2026".into())
        );
        assert_eq!(check_new("Temp2345", &answers(&["Mine2026"])), Err(Problem::Missing));
        assert_eq!(
            check_new("Temp2345", &answers(&["Mine2026", "Mine2027"])),
            Err(Problem::Mismatch)
        );
        assert_eq!(
            check_new("Temp2345", &answers(&["short1", "short1"])),
            Err(Problem::Rule(Broken::Length(6)))
        );
        assert_eq!(
            check_new("Temp2345", &answers(&["nodigitshere", "nodigitshere"])),
            Err(Problem::Rule(Broken::NoDigit))
        );
        assert_eq!(
            check_new("Temp2345", &answers(&["Temp2345", "Temp2345"])),
            Err(Problem::Same)
        );
        let bad = vec![Bytes::from_static(b"abc\xffdef1"), Bytes::from_static(b"abc\xffdef1")];
        assert_eq!(check_new("Temp2345", &bad), Err(Problem::Rule(Broken::Charset)));
    }

    #[test]
    fn texts_are_ascii_and_say_why() {
        let Auth::Partial {
            name,
            instructions,
            prompts,
        } = ask_new(Some(Problem::Mismatch))
        else {
            panic!("a prompt round")
        };
        assert!(name.is_ascii() && instructions.is_ascii());
        assert!(
            instructions.starts_with("Refuse : les deux saisies sont differentes.\nRefused: the two entries differ.\n")
        );
        assert_eq!(prompts.len(), 2);
        assert!(prompts.iter().all(|(p, echo)| p.is_ascii() && !echo));
        let Auth::Partial { prompts, .. } = ask_password() else {
            panic!("a prompt round")
        };
        assert_eq!(prompts.as_ref(), &[(Cow::Borrowed(PASSWORD_PROMPT), false)]);
        for p in [Problem::Missing, Problem::Same, Problem::Rule(Broken::NoLetter)] {
            assert!(p.french().is_ascii() && p.english().is_ascii());
        }
    }
}
