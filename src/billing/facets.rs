//! The simple types of `FactficTrans.xsd`: `xs:string` with `maxLength`,
//! `xs:decimal` with `totalDigits`/`fractionDigits`, `xs:date`, and the
//! `bo-regul` enumeration.
//!
//! In: the text of one element (already decoded, references resolved, line
//! ends normalised). Out: the typed value or a French reason. No allocation
//! on the success path: these run for every field of every line.
//!
//! Where XSD processors disagree, libxml2 (`xmllint`) is the reference: it
//! collapses whitespace around decimals but refuses it around dates.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::xml::{is_ws, trim_ws};

/// Number of characters of a UTF-8 string (the unit of `maxLength`).
#[inline]
pub fn char_len(b: &[u8]) -> usize {
    if b.is_ascii() {
        return b.len();
    }
    b.iter().filter(|&&c| (c as i8) >= -0x40).count()
}

/// `xs:decimal` restricted by `totalDigits` and (optionally) `fractionDigits`.
///
/// Lexical form after whitespace collapsing: `(+|-)?(d+(.d*)?|.d+)`. The
/// digit limits apply to the value: leading zeros of the integer part and
/// trailing zeros of the fraction do not count (`14.250` has 2 fraction
/// digits, `0012345678901` has 11 digits).
pub fn decimal(raw: &[u8], total_digits: u32, fraction_digits: u32) -> Result<Decimal, &'static str> {
    let s = trim_ws(raw);
    if s.is_empty() {
        return Err("valeur vide : un nombre décimal est attendu");
    }
    let (neg, body) = match s[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &b""[..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err("nombre décimal attendu (chiffres, point décimal facultatif)");
    }
    if !int_part.iter().all(u8::is_ascii_digit) || !frac_part.iter().all(u8::is_ascii_digit) {
        return Err("nombre décimal attendu (chiffres, point décimal facultatif, sans exposant ni espace)");
    }
    let int_sig = {
        let z = int_part.iter().take_while(|&&c| c == b'0').count();
        &int_part[z..]
    };
    let frac_sig = {
        let z = frac_part.iter().rev().take_while(|&&c| c == b'0').count();
        &frac_part[..frac_part.len() - z]
    };
    if frac_sig.len() as u32 > fraction_digits {
        return Err(if fraction_digits == 0 {
            "nombre entier attendu (pas de décimales)"
        } else {
            "au plus 2 décimales (centièmes) sont permises"
        });
    }
    let total = int_sig.len() + frac_sig.len();
    if total as u32 > total_digits {
        return Err(if total_digits == 15 {
            "au plus 15 chiffres significatifs sont permis"
        } else {
            "au plus 11 chiffres significatifs sont permis"
        });
    }
    // At most 15 significant digits: fits an i64 mantissa.
    let mut mantissa: i64 = 0;
    for &c in int_sig.iter().chain(frac_sig) {
        mantissa = mantissa * 10 + i64::from(c - b'0');
    }
    if neg {
        mantissa = -mantissa;
    }
    Ok(Decimal::new(mantissa, frac_sig.len() as u32))
}

/// An `xs:date` as libxml2 reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XsDate {
    /// The calendar date, when it fits chrono's range (years −262143..262142).
    pub date: Option<NaiveDate>,
    /// A time zone (`Z`, `+hh:mm`, `-hh:mm`) follows the date.
    pub has_tz: bool,
    /// Plain `YYYY-MM-DD` with a four-digit positive year: the form the
    /// billing specification asks for.
    pub plain: bool,
}

fn leap(year: i64) -> bool {
    let y = year.abs();
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

/// `xs:date`: `-?YYYY-MM-DD` (more year digits allowed without a leading
/// zero, year 0000 refused) with an optional time zone, a real calendar date.
pub fn date(raw: &[u8]) -> Result<XsDate, &'static str> {
    const FORM: &str = "date attendue au format AAAA-MM-JJ";
    if raw.is_empty() {
        return Err("valeur vide : une date AAAA-MM-JJ est attendue");
    }
    if raw.iter().any(|&c| is_ws(c)) {
        return Err("date attendue au format AAAA-MM-JJ, sans espace");
    }
    let (neg, s) = match raw.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let ylen = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if ylen < 4 || (ylen > 4 && s[0] == b'0') || ylen > 9 {
        return Err(FORM);
    }
    let mut year: i64 = 0;
    for &c in &s[..ylen] {
        year = year * 10 + i64::from(c - b'0');
    }
    if year == 0 {
        return Err("l'année 0000 n'existe pas");
    }
    let rest = &s[ylen..];
    if rest.len() < 6 || rest[0] != b'-' || rest[3] != b'-' {
        return Err(FORM);
    }
    let month = two_digits(&rest[1..3]).ok_or(FORM)?;
    let day = two_digits(&rest[4..6]).ok_or(FORM)?;
    if !(1..=12).contains(&month) {
        return Err("mois invalide (01 à 12)");
    }
    let days_in_month = match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days_in_month {
        return Err("jour inexistant dans ce mois");
    }
    let tz = &rest[6..];
    let has_tz = !tz.is_empty();
    if has_tz && tz != b"Z" {
        let ok = tz.len() == 6
            && (tz[0] == b'+' || tz[0] == b'-')
            && tz[3] == b':'
            && matches!((two_digits(&tz[1..3]), two_digits(&tz[4..6])),
                (Some(h), Some(m)) if m <= 59 && (h < 14 || (h == 14 && m == 0)));
        if !ok {
            return Err("fuseau horaire invalide (Z ou ±hh:mm)");
        }
    }
    let signed_year = if neg { -year } else { year };
    let date = i32::try_from(signed_year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, month, day));
    Ok(XsDate {
        date,
        has_tz,
        plain: !neg && ylen == 4 && !has_tz,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decimals_follow_the_xsd_value_space() {
        assert_eq!(decimal(b"14.250", 11, 2), Ok(d("14.25")));
        assert_eq!(decimal(b"+14.25", 11, 2), Ok(d("14.25")));
        assert_eq!(decimal(b" 14.25\n", 11, 2), Ok(d("14.25")));
        assert_eq!(decimal(b".5", 11, 2), Ok(d("0.5")));
        assert_eq!(decimal(b"14.", 11, 2), Ok(d("14")));
        assert_eq!(decimal(b"-0", 11, 2), Ok(d("0")));
        assert_eq!(decimal(b"0012345678901", 11, 2), Ok(d("12345678901")));
        assert_eq!(decimal(b"14.2500000000000000000", 11, 2), Ok(d("14.25")));
        assert_eq!(decimal(&[b'0'; 40], 11, 2), Ok(d("0")));
        for bad in [
            "",
            " ",
            ".",
            "+",
            "1e3",
            "14.255",
            "0.001",
            "123456789012",
            "12345678901.5",
            "1 4",
            "1_000",
            "0x1",
            "--1",
        ] {
            assert!(decimal(bad.as_bytes(), 11, 2).is_err(), "{bad:?}");
        }
        assert!(decimal(b"2.5", 15, 0).is_err());
        assert_eq!(decimal(b"2.5", 15, 15), Ok(d("2.5")));
        assert_eq!(decimal(b"2.0", 15, 0), Ok(d("2")));
        assert_eq!(decimal(b"123456789012345", 15, 0), Ok(d("123456789012345")));
    }

    #[test]
    fn dates_follow_libxml2() {
        let ok = |s: &str| date(s.as_bytes()).unwrap();
        assert!(ok("2021-03-01").plain);
        let z = ok("2021-03-01Z");
        assert!(z.has_tz && !z.plain);
        for good in [
            "2021-03-01+14:00",
            "2021-03-01-00:00",
            "2021-03-01+13:59",
            "-0001-01-01",
            "10000-01-01",
            "2020-02-29",
            "2000-02-29",
            "-0004-02-29",
            "0001-01-01",
        ] {
            assert!(date(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in [
            " 2021-03-01",
            "2021-03-01 ",
            "2021-03-01+14:01",
            "0000-01-01",
            "02021-01-01",
            "2021-02-29",
            "2021-3-01",
            "2021-03-01+1:00",
            "2021-03-01+24:00",
            "-0001-02-29",
            "1900-02-29",
            "",
            "2021-03-01T00:00:00",
            "2021-13-01",
            "2021-04-31",
            "2021/03/01",
            "21-03-01",
        ] {
            assert!(date(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(!ok("10000-01-01").plain);
    }

    #[test]
    fn lengths_count_characters() {
        assert_eq!(char_len("é".repeat(54).as_bytes()), 54);
        assert_eq!(char_len(b"abc"), 3);
        assert_eq!(char_len("a😀".as_bytes()), 2);
    }
}
