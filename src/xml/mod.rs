//! Streaming XML input shared by every XML format the gateway reads.
//!
//! [`input`] turns bytes into checked UTF-8 with line numbers; [`lexer`]
//! turns that into tokens, checking well-formedness as libxml2 does
//! ([`decl`] for the XML declaration); this module holds the small rules
//! they share (names, character references, whitespace). No entity is ever
//! expanded beyond the five predefined ones: a DOCTYPE is refused, so no
//! entity declaration is ever honoured.

pub mod decl;
pub mod input;
pub mod lexer;
pub mod names;
pub mod sniff;

/// XML whitespace (S production): space, tab, CR, LF.
#[inline]
pub fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Whether a byte string is only XML whitespace.
#[inline]
pub fn all_ws(b: &[u8]) -> bool {
    b.iter().all(|&c| is_ws(c))
}

/// Trims XML whitespace on both sides (the `collapse` facet, for values that
/// may not contain inner whitespace anyway).
pub fn trim_ws(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|&c| !is_ws(c)).map_or(start, |e| e + 1);
    &b[start..end]
}

fn is_name_start(c: char) -> bool {
    matches!(c, ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// The XML 1.0 (5th edition) Name production.
pub fn is_name(name: &[u8]) -> bool {
    // Fast path: the names of our formats are ASCII.
    if name.is_ascii() {
        return match name.split_first() {
            Some((&f, rest)) => {
                (f.is_ascii_alphabetic() || f == b'_' || f == b':')
                    && rest
                        .iter()
                        .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.'))
            }
            None => false,
        };
    }
    let Ok(s) = std::str::from_utf8(name) else { return false };
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Whether a name is a valid namespace-aware name (at most one colon, not
/// at either end).
pub fn is_qname(name: &[u8]) -> bool {
    if !is_name(name) {
        return false;
    }
    match memchr::memchr(b':', name) {
        None => true,
        Some(i) => i > 0 && i + 1 < name.len() && memchr::memchr(b':', &name[i + 1..]).is_none(),
    }
}

/// Whether a code point may appear in an XML 1.0 document (Char production).
pub fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Resolves a reference name (what stands between `&` and `;`) to its
/// text: the five predefined entities and character references. `None`
/// for anything else (an undeclared entity, a reference to a character XML
/// forbids): a well-formedness error.
pub fn resolve_reference(name: &[u8]) -> Option<char> {
    match name {
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"amp" => Some('&'),
        b"apos" => Some('\''),
        b"quot" => Some('"'),
        _ => {
            let digits = name.strip_prefix(b"#")?;
            let (radix, digits) = match digits.strip_prefix(b"x") {
                Some(hex) => (16, hex),
                None => (10, digits),
            };
            if digits.is_empty() || digits.len() > 8 {
                return None;
            }
            let s = std::str::from_utf8(digits).ok()?;
            if !s.bytes().all(|b| b.is_ascii_hexdigit()) || (radix == 10 && !s.bytes().all(|b| b.is_ascii_digit())) {
                return None;
            }
            let v = u32::from_str_radix(s, radix).ok()?;
            if is_xml_char(v) {
                char::from_u32(v)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_name(b"nb-quant"));
        assert!(is_name("élément".as_bytes()));
        assert!(!is_name(b"1abc"));
        assert!(!is_name(b"-a"));
        assert!(!is_name(b""));
        assert!(is_qname(b"xsi:type"));
        assert!(!is_qname(b"a:b:c"));
        assert!(!is_qname(b":a"));
    }

    #[test]
    fn references() {
        assert_eq!(resolve_reference(b"amp"), Some('&'));
        assert_eq!(resolve_reference(b"#233"), Some('é'));
        assert_eq!(resolve_reference(b"#xE9"), Some('é'));
        assert_eq!(resolve_reference(b"#0"), None);
        assert_eq!(resolve_reference(b"#x1"), None);
        assert_eq!(resolve_reference(b"#xD800"), None);
        assert_eq!(resolve_reference(b"nbsp"), None);
        assert_eq!(resolve_reference(b"#X41"), None);
        assert_eq!(resolve_reference(b"#-1"), None);
    }

    #[test]
    fn whitespace() {
        assert_eq!(trim_ws(b" \t 14.25\n"), b"14.25");
        assert_eq!(trim_ws(b"  "), b"");
        assert!(all_ws(b" \r\n"));
    }
}
