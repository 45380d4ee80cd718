//! The XML declaration, read strictly (XML 1.0 [23]–[32]).
//!
//! In: what stands between `<?xml` and `?>`. Out: `Ok(())`, or a French
//! message saying what is wrong. The encoding itself was already decided
//! from the same bytes by [`super::input::sniff`]; here only the syntax is
//! judged, as libxml2 judges it: `version` first, then optionally
//! `encoding`, then optionally `standalone` (`yes`/`no`), each once,
//! separated by whitespace.

use super::is_ws;

/// Checks the pseudo-attributes of an XML declaration.
pub fn check(content: &[u8]) -> Result<(), String> {
    let mut names: Vec<&[u8]> = Vec::with_capacity(3);
    let mut rest = content;
    loop {
        let n = rest.iter().take_while(|&&b| is_ws(b)).count();
        let had_space = n > 0;
        rest = &rest[n..];
        if rest.is_empty() {
            break;
        }
        if !had_space {
            return Err("déclaration XML invalide : espace attendu entre les pseudo-attributs".into());
        }
        let (key, value, after) = pseudo_attribute(rest)?;
        rest = after;
        let shown = String::from_utf8_lossy(value);
        match key {
            b"version" if names.is_empty() => {
                let ok = value.len() > 2 && value.starts_with(b"1.") && value[2..].iter().all(u8::is_ascii_digit);
                if !ok {
                    return Err(format!("version XML {shown:?} non prise en charge"));
                }
            }
            b"encoding" if names == [b"version".as_slice()] => {
                let ok = value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                if !ok {
                    return Err(format!("nom d'encodage invalide : {shown:?}"));
                }
            }
            b"standalone" if names.first() == Some(&b"version".as_slice()) && !names.contains(&b"standalone".as_slice()) => {
                if value != b"yes" && value != b"no" {
                    return Err(format!("standalone doit valoir yes ou no, pas {shown:?}"));
                }
            }
            _ => {
                return Err(format!(
                    "déclaration XML invalide : « {} » inattendu à cet endroit (version, encoding, standalone dans cet ordre)",
                    String::from_utf8_lossy(key)
                ))
            }
        }
        names.push(key);
    }
    if names.is_empty() {
        return Err("déclaration XML sans version".into());
    }
    Ok(())
}

/// A pseudo-attribute's name, its value, and what follows it.
type Pseudo<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// `name S? = S? "value"` at the start of `s`.
fn pseudo_attribute(s: &[u8]) -> Result<Pseudo<'_>, String> {
    let invalid = || "déclaration XML invalide : pseudo-attribut mal formé".to_string();
    let n = s.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if n == 0 {
        return Err(invalid());
    }
    let (key, rest) = s.split_at(n);
    let rest = skip_ws(rest).strip_prefix(b"=").ok_or_else(invalid)?;
    let rest = skip_ws(rest);
    let quote = *rest.first().ok_or_else(invalid)?;
    if quote != b'"' && quote != b'\'' {
        return Err(invalid());
    }
    let close = memchr::memchr(quote, &rest[1..]).ok_or_else(invalid)?;
    Ok((key, &rest[1..1 + close], &rest[close + 2..]))
}

fn skip_ws(s: &[u8]) -> &[u8] {
    &s[s.iter().take_while(|&&b| is_ws(b)).count()..]
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_declarations() {
        for d in [
            " version=\"1.0\"",
            " version='1.0' encoding='UTF-8' standalone='yes'",
            " version = '1.0'  encoding = 'ISO-8859-1' ",
            " version=\"1.1\" standalone=\"no\"",
        ] {
            assert_eq!(check(d.as_bytes()), Ok(()), "{d}");
        }
    }

    #[test]
    fn invalid_declarations() {
        for d in [
            "",
            " ",
            " encoding=\"UTF-8\"",
            " version=\"2.0\"",
            " version=\"1.\"",
            " version=\"1.0\" version=\"1.0\"",
            " version=\"1.0\" standalone=\"yes\" encoding=\"UTF-8\"",
            " version=\"1.0\" standalone=\"maybe\"",
            " version=\"1.0\" encoding=\"\"",
            " version=\"1.0\" encoding=\"8bit\"",
            " version=\"1.0\" encoding=\"UTF-8\"standalone=\"no\"",
            " version=1.0",
            " version=\"1.0'",
            " version=\"1.0\" foo=\"bar\"",
            " version",
        ] {
            assert!(check(d.as_bytes()).is_err(), "{d:?}");
        }
    }
}
