//! The period of an accepted line as stored in `accepted_lines` (`dtd`,
//! `dtf`): an INTEGER yyyymmdd, year × 10000 + month × 100 + day
//! (2026-11-01 is 20261101). Its order is the dates' order, for any year.

use chrono::{Datelike, NaiveDate};

/// The stored form of a date.
pub fn to_int(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
}

/// Appends a stored date as text, as `NaiveDate` displays it (`YYYY-MM-DD`
/// for years 0–9999), without allocating for those years.
pub fn put_text(buf: &mut Vec<u8>, v: i64) {
    let (y, md) = (v.div_euclid(10_000), v.rem_euclid(10_000));
    let (m, d) = (md / 100, md % 100);
    if (0..=9999).contains(&y) {
        let mut b = *b"0000-00-00";
        for (i, x) in [
            (0, y / 1000),
            (1, y / 100 % 10),
            (2, y / 10 % 10),
            (3, y % 10),
            (5, m / 10),
            (6, m % 10),
            (8, d / 10),
            (9, d % 10),
        ] {
            b[i] = b'0' + x as u8;
        }
        buf.extend_from_slice(&b);
        return;
    }
    match i32::try_from(y)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, m as u32, d as u32))
    {
        Some(date) => buf.extend_from_slice(date.to_string().as_bytes()),
        // Not a date this program wrote: the number as it is.
        None => buf.extend_from_slice(v.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_dates_keep_their_order_and_text() {
        let dates: Vec<NaiveDate> = [
            (-1, 12, 31),
            (0, 1, 1),
            (1, 1, 1),
            (2024, 2, 29),
            (2026, 10, 1),
            (2026, 11, 1),
            (9999, 12, 31),
            (12345, 6, 7),
        ]
        .iter()
        .map(|&(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
        .collect();
        assert_eq!(to_int(dates[4]), 20261001);
        for w in dates.windows(2) {
            assert!(to_int(w[0]) < to_int(w[1]), "{} < {}", w[0], w[1]);
        }
        for d in dates {
            let mut b = Vec::new();
            put_text(&mut b, to_int(d));
            assert_eq!(String::from_utf8(b).unwrap(), d.to_string());
        }
    }

    #[test]
    fn the_migration_converts_the_text_dates() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        for s in ["2026-10-01", "0001-01-01", "9999-12-31", "+12345-06-07", "-0001-12-31"] {
            let v: i64 = c
                .query_row(
                    "SELECT CAST(substr(?1, 1, length(?1) - 6) AS INTEGER) * 10000
                       + CAST(substr(?1, -5, 2) AS INTEGER) * 100 + CAST(substr(?1, -2) AS INTEGER)",
                    [s],
                    |r| r.get(0),
                )
                .unwrap();
            let mut b = Vec::new();
            put_text(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), s);
        }
    }
}
