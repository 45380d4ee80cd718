//! Field rules of the reference-data files (spec §5): one text cell in, a
//! typed value or a reason out.
//!
//! Each function checks one kind of cell and returns the reason in plain
//! words so that the import error can say `line N: column X: reason`. A
//! reason never repeats a NIR or a person's name: the error may reach the
//! logs of the drop-folder intake, where a NIR must never appear (spec §9).

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// A reason why a cell is refused.
pub type Reason = String;

/// Longest login or provider account name.
pub const LOGIN_MAX: usize = 32;

/// A cell that must be filled.
pub fn required(v: &str) -> Result<&str, Reason> {
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v)
    }
}

/// Provider account name and user login: ASCII letters and digits, 1 to 32.
/// They become folder names and SFTP user names, so nothing else is allowed.
pub fn login(v: &str) -> Result<String, Reason> {
    required(v)?;
    if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "{v:?} must contain only ASCII letters and digits (no accent, space or sign)"
        ));
    }
    if v.len() > LOGIN_MAX {
        return Err(format!("{v:?} is longer than {LOGIN_MAX} characters"));
    }
    Ok(v.to_string())
}

/// A short code (site, convention): ASCII letters and digits, 1 to `max`.
/// Sites appear in billing file names between `_`, so no separator may slip in.
pub fn code(v: &str, max: usize) -> Result<String, Reason> {
    required(v)?;
    if !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!("{v:?} must contain only ASCII letters and digits"));
    }
    if v.len() > max {
        return Err(format!("{v:?} is longer than {max} characters"));
    }
    Ok(v.to_string())
}

/// Free text (company name, last and first name): filled, at most `max`
/// characters, no control character. The value is not repeated in the reason.
pub fn text(v: &str, max: usize) -> Result<String, Reason> {
    required(v)?;
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let n = v.chars().count();
    if n > max {
        return Err(format!("has {n} characters, at most {max} allowed"));
    }
    Ok(v.to_string())
}

/// An e-mail address as the mail relay will need it.
pub fn email(v: &str) -> Result<String, Reason> {
    required(v)?;
    if v.len() > 254 || v.parse::<lettre::Address>().is_err() {
        return Err(format!("{v:?} is not an e-mail address"));
    }
    Ok(v.to_string())
}

/// A French telephone number written `nn nn nn nn nn` (the seed's form).
pub fn telephone(v: &str) -> Result<String, Reason> {
    required(v)?;
    let b = v.as_bytes();
    let ok = b.len() == 14
        && b.iter()
            .enumerate()
            .all(|(i, c)| if i % 3 == 2 { *c == b' ' } else { c.is_ascii_digit() });
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "{v:?} must be written nn nn nn nn nn (ten digits in pairs separated by one space)"
        ))
    }
}

/// SIREN of La Poste, whose establishments do not follow the Luhn rule.
const LA_POSTE_SIREN: &str = "356000000";

/// A SIRET: 14 digits passing the Luhn check. La Poste's establishments
/// (SIREN 356000000) instead have a digit sum divisible by 5; its head
/// office (35600000000048) passes Luhn but not that sum, so either rule is
/// accepted for La Poste.
pub fn siret(v: &str) -> Result<String, Reason> {
    required(v)?;
    if v.len() != 14 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{v:?} must be 14 digits"));
    }
    let ok = if v.starts_with(LA_POSTE_SIREN) {
        digit_sum(v) % 5 == 0 || luhn(v)
    } else {
        luhn(v)
    };
    if ok {
        Ok(v.to_string())
    } else if v.starts_with(LA_POSTE_SIREN) {
        Err(format!(
            "{v:?} is not a SIRET of La Poste (digit sum not divisible by 5)"
        ))
    } else {
        Err(format!("{v:?} fails the SIRET check digit (Luhn)"))
    }
}

fn digit_sum(v: &str) -> u32 {
    v.bytes().map(|b| u32::from(b - b'0')).sum()
}

/// Luhn check over ASCII digits: every second digit from the right doubled.
pub fn luhn(v: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in v.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Provider type.
pub fn provider_type(v: &str) -> Result<&'static str, Reason> {
    match v {
        "saad" => Ok("saad"),
        "ergo" => Ok("ergo"),
        _ => Err(format!("{v:?} must be saad or ergo")),
    }
}

/// Longest order reference (`rf-commande`; the seed's example:
/// `C04-2026-000123`).
pub const RF_COMMANDE_MAX: usize = 30;

/// An order reference: ASCII letters, digits, `-` and `_`, starting with a
/// letter or a digit, 1 to 30. It names the order's documents
/// (`<rf-commande>.pdf` in, `<rf-commande>.evaluation.pdf` out), so nothing
/// that could make a path, a hidden name or a second extension is allowed.
pub fn rf_commande(v: &str) -> Result<String, Reason> {
    required(v)?;
    let ok_chars = v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let ok_first = v.as_bytes()[0].is_ascii_alphanumeric();
    if !ok_chars || !ok_first {
        return Err(format!(
            "{v:?} is not an order reference (ASCII letters, digits, - and _, starting with a letter or a digit)"
        ));
    }
    if v.len() > RF_COMMANDE_MAX {
        return Err(format!("{v:?} is longer than {RF_COMMANDE_MAX} characters"));
    }
    Ok(v.to_string())
}

/// Resources of an order: `PS` (personne seule) or `C` (couple).
pub fn ressources(v: &str) -> Result<&'static str, Reason> {
    match v {
        "PS" => Ok("PS"),
        "C" => Ok("C"),
        _ => Err(format!("{v:?} must be PS (personne seule) or C (couple)")),
    }
}

/// A NIR without its key: 13 characters, digits, or the Corsica form with
/// `2A`/`2B` at positions 6–7. The value is never repeated.
pub fn nir(v: &str) -> Result<String, Reason> {
    required(v)?;
    let b = v.as_bytes();
    let ok = b.len() == 13
        && b.iter().enumerate().all(|(i, c)| match i {
            5 => c.is_ascii_digit() || *c == b'2',
            6 => c.is_ascii_digit() || ((*c == b'A' || *c == b'B') && b[5] == b'2'),
            _ => c.is_ascii_digit(),
        });
    if ok {
        Ok(v.to_string())
    } else {
        Err("must be 13 characters: digits, or 2A/2B at positions 6-7 (Corsica)".into())
    }
}

/// A date written `YYYY-MM-DD` or `JJ/MM/AAAA`, which must exist.
pub fn date(v: &str) -> Result<NaiveDate, Reason> {
    required(v)?;
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| v[r].parse::<u32>().ok();
    let (y, m, d) = if b.len() == 10 && b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7) && digits(8..10) {
        (num(0..4), num(5..7), num(8..10))
    } else if b.len() == 10 && b[2] == b'/' && b[5] == b'/' && digits(0..2) && digits(3..5) && digits(6..10) {
        (num(6..10), num(3..5), num(0..2))
    } else {
        return Err(format!("{v:?} is not a date (YYYY-MM-DD or JJ/MM/AAAA)"));
    };
    match (y, m, d) {
        (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d)
            .filter(|_| y >= 1900)
            .ok_or_else(|| format!("{v:?} is not a real date")),
        _ => Err(format!("{v:?} is not a date (YYYY-MM-DD or JJ/MM/AAAA)")),
    }
}

/// Integer digits allowed before the decimal separator (amounts and hours
/// are stored as hundredths in a 64-bit integer; this keeps far from it).
const DECIMAL_INT_DIGITS: usize = 11;

/// A non-negative decimal with `.` or `,`, at most two decimals
/// (`12`, `12.5`, `12,50`). No sign, no exponent, no thousands separator.
pub fn decimal(v: &str) -> Result<Decimal, Reason> {
    required(v)?;
    let (int, frac) = match v.find(['.', ',']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let int_ok = !int.is_empty() && int.len() <= DECIMAL_INT_DIGITS && int.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if v.starts_with('-') {
        return Err(format!("{v:?} must not be negative"));
    }
    if !int_ok || !frac_ok {
        return Err(format!("{v:?} is not a decimal number (e.g. 12,50 or 12.50)"));
    }
    let frac = frac.unwrap_or("");
    if frac.len() > 2 {
        return Err(format!("{v:?} has more than 2 decimals"));
    }
    let mut hundredths: i64 = int.parse::<i64>().map_err(|_| format!("{v:?} is too large"))? * 100;
    if !frac.is_empty() {
        let f: i64 = frac.parse().map_err(|_| format!("{v:?} is not a decimal number"))?;
        hundredths += if frac.len() == 1 { f * 10 } else { f };
    }
    Ok(Decimal::new(hundredths, 2))
}

/// A code that must be a key of a configuration table (`[billing] caisses`,
/// `[billing] prestations`).
pub fn known<V>(v: &str, table: &std::collections::BTreeMap<String, V>, what: &str) -> Result<String, Reason> {
    required(v)?;
    if table.contains_key(v) {
        Ok(v.to_string())
    } else {
        let list: Vec<&str> = table.keys().map(String::as_str).collect();
        Err(format!("{v:?} is not a known {what} ({})", list.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_siret_and_la_poste() {
        assert!(siret("73282932000074").is_ok());
        assert!(siret("44306184100047").is_ok());
        assert!(siret("73282932000075").unwrap_err().contains("Luhn"));
        assert!(siret("7328293200007").unwrap_err().contains("14 digits"));
        assert!(siret("7328293200007A").unwrap_err().contains("14 digits"));
        // La Poste: digit sum divisible by 5, Luhn not required.
        assert!(!luhn("35600000049837"));
        assert!(siret("35600000049837").is_ok());
        // ... and its head office, which follows Luhn.
        assert!(siret("35600000000048").is_ok());
        assert!(siret("35600000049838").unwrap_err().contains("La Poste"));
    }

    #[test]
    fn telephone_form() {
        assert!(telephone("03 21 00 00 00").is_ok());
        for bad in [
            "0321000000",
            "03-21-00-00-00",
            "03 21 00 00 0",
            "03 21 00 00 00 ",
            "+33 3 21 00 00",
            "o3 21 00 00 00",
        ] {
            assert!(telephone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_in_both_forms() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(date("2026-02-28").unwrap(), d);
        assert_eq!(date("28/02/2026").unwrap(), d);
        assert!(date("2026-02-29").unwrap_err().contains("real date"));
        assert!(date("29/02/2026").unwrap_err().contains("real date"));
        assert_eq!(
            date("29/02/2028").unwrap(),
            NaiveDate::from_ymd_opt(2028, 2, 29).unwrap()
        );
        for bad in [
            "2026-2-28",
            "28/2/2026",
            "2026/02/28",
            "28-02-2026",
            "20260228",
            " 2026-02-28",
            "+026-02-28",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals_with_both_separators() {
        assert_eq!(decimal("12").unwrap(), Decimal::new(1200, 2));
        assert_eq!(decimal("12,5").unwrap(), Decimal::new(1250, 2));
        assert_eq!(decimal("12.5").unwrap(), Decimal::new(1250, 2));
        assert_eq!(decimal("0,05").unwrap(), Decimal::new(5, 2));
        assert_eq!(decimal("1234.56").unwrap(), Decimal::new(123456, 2));
        assert!(decimal("1,234").unwrap_err().contains("more than 2 decimals"));
        assert!(decimal("-1").unwrap_err().contains("negative"));
        for bad in [
            "1 000",
            "1e3",
            "12.",
            ".5",
            "1_000",
            "1,2,3",
            "+1",
            "abc",
            "999999999999",
        ] {
            assert!(decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nir_with_corsica() {
        assert!(nir("1541299999000").is_ok());
        assert!(nir("15412A9999000").is_err());
        assert!(nir("154122A999000").is_ok());
        assert!(nir("154122B999000").is_ok());
        assert!(nir("154123A999000").is_err());
        assert!(nir("154122a999000").is_err());
        assert!(nir("154129999900").is_err());
        assert!(nir("15412999990001").is_err());
        // The reason never repeats the value.
        assert!(!nir("99999999999X9").unwrap_err().contains("99999"));
    }

    #[test]
    fn order_references_and_resources() {
        assert_eq!(rf_commande("C04-2026-000123").unwrap(), "C04-2026-000123");
        assert!(rf_commande("c_1").is_ok());
        for bad in [
            "",
            "-C04",
            "_a",
            "C04.2026",
            "C04/2026",
            "C04 2026",
            "é1",
            "..",
            &"9".repeat(31),
        ] {
            assert!(rf_commande(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ressources("PS").unwrap(), "PS");
        assert_eq!(ressources("C").unwrap(), "C");
        for bad in ["ps", "c", "S", "", "PS "] {
            assert!(ressources(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn logins_codes_emails_types() {
        assert!(login("Saad01").is_ok());
        assert!(login("saad-01").is_err());
        assert!(login("é").is_err());
        assert!(login(&"a".repeat(33)).is_err());
        assert!(code("21999000", 15).is_ok());
        assert!(code("21_99", 15).is_err());
        assert!(email("contact@saad.example").is_ok());
        assert!(email("contact").is_err());
        assert_eq!(provider_type("ergo").unwrap(), "ergo");
        assert!(provider_type("SAAD").is_err());
        assert!(text(&"x".repeat(55), 54).is_err());
        assert!(text("a\u{7}b", 54).is_err());
    }
}
