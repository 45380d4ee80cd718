//! `[mail] smtp_url`: the relay's URL, credentials included, held in a type
//! that never shows its password (spec §9: no SMTP credential is ever
//! printed or logged).
//!
//! Its `Display`, `Debug` and `Serialize` all give the masked form
//! `smtp://user:***@relay:587?tls=required`, so a `{:?}` of the whole
//! [`crate::config::Config`], an error message or `config check` cannot leak
//! it; only [`SmtpUrl::transport`] reads the real one.
//!
//! The masked form printed by `config check` is accepted back as a
//! configuration (an operator may keep that output as a file), but a URL
//! whose password is the mask itself is never used as a password: delivery
//! refuses it with an error saying so, and `config check` warns. A real
//! password that is literally `***` is written percent-encoded
//! (`%2A%2A%2A`), as any URL allows; lettre decodes it.

use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What stands for the password wherever the URL is shown.
pub const MASK: &str = "***";

/// The relay's URL (`smtp://…` or `smtps://…`).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// Takes the URL as written; [`SmtpUrl::validate`] checks it.
    pub fn new(url: impl Into<String>) -> SmtpUrl {
        SmtpUrl(url.into())
    }

    /// The URL with its password replaced by [`MASK`].
    pub fn masked(&self) -> String {
        mask(&self.0)
    }

    /// Whether the password written is the mask (the URL was copied from
    /// `config check`'s output): it must not be sent as a password.
    pub fn has_masked_password(&self) -> bool {
        password_span(&self.0).is_some_and(|(s, e)| &self.0[s..e] == MASK)
    }

    /// Checks the URL as lettre will read it, with messages that show it
    /// masked. `@`, `/`, `?` and `#` inside the user name or password must be
    /// percent-encoded, as in any URL: written raw, they would move the
    /// boundary between credentials and host (and the mask with it).
    pub fn validate(&self) -> Result<()> {
        let url = &self.0;
        let shown = self.masked();
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            bail!("[mail] smtp_url: {shown:?} must start with smtp:// or smtps://");
        }
        let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if rest[authority_end..].contains('@') {
            bail!(
                "[mail] smtp_url: {shown:?}: write the characters @ / ? # of a user name or password \
                 percent-encoded (%40 %2F %3F %23)"
            );
        }
        lettre::SmtpTransport::from_url(url).map_err(|e| anyhow!("[mail] smtp_url: {shown:?}: {e}"))?;
        Ok(())
    }

    /// The SMTP transport for this URL; refuses a masked password.
    pub fn transport(&self, timeout: Duration) -> Result<lettre::SmtpTransport> {
        if self.has_masked_password() {
            bail!(
                "[mail] smtp_url {}: the password is the mask {MASK:?} printed by `config check`, \
                 not a password: write the real one in the configuration file (a password that \
                 really is {MASK:?} is written %2A%2A%2A)",
                self
            );
        }
        let t = lettre::SmtpTransport::from_url(&self.0).map_err(|e| anyhow!("[mail] smtp_url {self}: {e}"))?;
        Ok(t.timeout(Some(timeout)).build())
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SmtpUrl").field(&self.masked()).finish()
    }
}

impl Serialize for SmtpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for SmtpUrl {
    /// Any string: checking it here would let the TOML parser quote the
    /// line, password included, in its error; [`SmtpUrl::validate`] does it
    /// with the URL masked.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(SmtpUrl)
    }
}

/// Byte range of the password in `url`: between the first `:` of the user
/// information and the last `@` after the scheme. The last `@`, not the
/// first: whatever a URL parser would make of a raw `@` in the password,
/// everything before the last one is masked (at worst too much, never too
/// little).
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let at = start + url[start..].rfind('@')?;
    let colon = start + url[start..at].find(':')?;
    Some((colon + 1, at))
}

/// `url` with its password replaced by [`MASK`] (unchanged without one).
pub fn mask(url: &str) -> String {
    match password_span(url) {
        Some((s, e)) => format!("{}{MASK}{}", &url[..s], &url[e..]),
        None => url.to_string(),
    }
}

/// `text` with the password of every `scheme://user:password@host` in it
/// masked: for messages that quote configuration text (a TOML error shows
/// the offending line).
pub fn mask_in_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The URL runs to the next blank or quote.
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>'))
            .map_or(rest.len(), |e| i + e);
        out.push_str(&mask(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_shows() {
        let u = SmtpUrl::new("smtp://gw:S3cr3t-Pw@relay.caisse.fr:587?tls=required");
        let want = "smtp://gw:***@relay.caisse.fr:587?tls=required";
        assert_eq!(u.to_string(), want);
        assert_eq!(format!("{u:?}"), format!("SmtpUrl({want:?})"));
        assert_eq!(serde_json::to_string(&u).unwrap(), format!("{want:?}"));
        assert!(!u.has_masked_password());
        u.validate().unwrap();
        // Nothing to mask.
        for s in ["smtp://relay:25", "smtps://gw@relay:465", "relay"] {
            assert_eq!(mask(s), s);
        }
        // Raw `@` or `/` in the password: everything up to the last `@` goes.
        assert_eq!(mask("smtp://gw:p@ss/w@rd@relay:25"), "smtp://gw:***@relay:25");
        assert_eq!(mask("gw:secret@relay"), "gw:***@relay");
    }

    #[test]
    fn ambiguous_or_invalid_urls_are_refused_without_showing_the_password() {
        for (url, why) in [
            ("smtp://gw:12/Secret@relay:25", "percent-encoded"),
            ("smtp://gw:1#Secret@relay:25", "percent-encoded"),
            ("smtp://gw:1?Secret@relay:25", "percent-encoded"),
            ("smtp://gw:pa/Secret@relay:25", "percent-encoded"),
            ("smtp://gw:Secret@relay:port", "invalid port"),
            ("http://gw:Secret@relay", "must start with"),
            ("smtp://gw:Secret@relay:25?tls=sometimes", "tls"),
        ] {
            let e = format!("{:#}", SmtpUrl::new(url).validate().unwrap_err());
            assert!(!e.contains("Secret"), "{url}: {e}");
            assert!(e.contains(why) && e.contains("***"), "{url}: {e}");
        }
        // Percent-encoded, the same characters are fine.
        SmtpUrl::new("smtp://gw:12%2FSecret%40%23@relay:25").validate().unwrap();
    }

    #[test]
    fn a_masked_password_is_accepted_but_never_used() {
        let u = SmtpUrl::new("smtp://gw:***@relay:587?tls=required");
        u.validate().unwrap();
        assert!(u.has_masked_password());
        let e = format!("{:#}", u.transport(Duration::from_secs(1)).unwrap_err());
        assert!(e.contains("mask"), "{e}");
        // Three real asterisks, percent-encoded.
        let u = SmtpUrl::new("smtp://gw:%2A%2A%2A@relay:25");
        assert!(!u.has_masked_password());
        u.transport(Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn urls_quoted_in_text_are_masked() {
        let t = "TOML parse error at line 3\n3 | smtp_url = \"smtp://gw:Secret@relay:25\" x\n  |   ^\nsee smtps://a:b@c and gw@example.org";
        let m = mask_in_text(t);
        assert!(!m.contains("Secret") && !m.contains(":b@"), "{m}");
        assert!(m.contains("\"smtp://gw:***@relay:25\" x") && m.contains("smtps://a:***@c and gw@example.org"));
        assert_eq!(mask_in_text("no url here"), "no url here");
    }

    #[test]
    fn the_configuration_never_shows_it_and_its_printout_reads_back() {
        let text = "[mail]\nsmtp_url = \"smtp://gw:S3cr3t-Pw@relay:587?tls=required\"\n";
        let cfg = crate::config::Config::parse(text).unwrap();
        assert!(!format!("{cfg:?}").contains("S3cr3t"));
        let printed = cfg.to_toml();
        assert!(!printed.contains("S3cr3t"), "{printed}");
        assert!(
            printed.contains("smtp_url = \"smtp://gw:***@relay:587?tls=required\""),
            "{printed}"
        );
        let again = crate::config::Config::parse(&printed).unwrap();
        assert!(again.mail.smtp_url.unwrap().has_masked_password());
        // Refused values and TOML errors quote it masked.
        for bad in [
            "[mail]\nsmtp_url = \"smtp://gw:S3cr3t@relay:25?tls=never\"\n",
            "[mail]\nsmtp_url = \"smtp://gw:S3cr3t@relay:25\" x\n",
            "[mail]\nsmtp_url = 'smtp://gw:S3cr3t@relay:25\n",
        ] {
            let e = format!("{:#}", crate::config::Config::parse(bad).unwrap_err());
            assert!(!e.contains("S3cr3t") && e.contains("gw:***@relay"), "{e}");
        }
    }
}
