//! Cron expressions as crontab(5) writes them, evaluated on naive
//! (wall-clock) date-times: no time zone here, so no daylight-saving
//! surprise either. [`super::schedule`] maps the wall-clock times this module
//! finds to instants in Europe/Paris.
//!
//! Five fields, `minute hour day-of-month month day-of-week`, each a `*`, a
//! number, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those
//! separated by commas; months and days of the week also by their English
//! names (`jan`, `mon`); Sunday is 0 or 7. As in Vixie cron, when both the
//! day of the month and the day of the week are restricted (neither starts
//! with `*`), a day matching either one matches. `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`) stand for
//! their usual expressions. Seconds are not a field: an occurrence is a
//! minute.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// How far [`Cron::next_after`] and [`Cron::latest_at_or_before`] look: eight
/// years covers every day a valid expression can name (29 February comes
/// back within eight years, a century's missing leap day included).
const HORIZON_DAYS: i64 = 8 * 366;

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday 0.
    weekdays: u8,
    /// Whether the day-of-month field starts with `*` (Vixie cron's rule).
    days_star: bool,
    weekdays_star: bool,
    text: String,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's limits and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value (`jan` is 1, `sun` is 0).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    // 7 is Sunday too; folded onto 0 after parsing.
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

impl Field {
    fn value(&self, s: &str) -> Result<u32, String> {
        let v = if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            i as u32 + self.names_from
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 2 {
            s.parse::<u32>()
                .map_err(|_| format!("{}: {s:?} is not a number", self.name))?
        } else {
            return Err(format!("{}: {s:?} is not a number", self.name));
        };
        if v < self.min || v > self.max {
            return Err(format!("{}: {v} is out of range {}-{}", self.name, self.min, self.max));
        }
        Ok(v)
    }

    /// The bit set of one field's text.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .ok()
                        .filter(|n| *n > 0 && s.len() <= 2)
                        .ok_or_else(|| format!("{}: step {s:?} is not a positive number", self.name))?;
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{}: range {range:?} goes backwards", self.name));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `5/15` is `5-max/15`, as Vixie cron reads it.
                (a, if part.contains('/') { self.max } else { a })
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl FromStr for Cron {
    type Err = String;

    fn from_str(s: &str) -> Result<Cron, String> {
        let text = s.trim();
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            t if t.starts_with('@') => return Err(format!("unknown macro {text:?}")),
            _ => text,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{} field(s), 5 expected (minute hour day-of-month month day-of-week; no seconds)",
                fields.len()
            ));
        }
        let mut bits = [0u64; 5];
        for (i, (field, text)) in FIELDS.iter().zip(&fields).enumerate() {
            bits[i] = field.parse(text)?;
        }
        let mut weekdays = bits[4];
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let cron = Cron {
            minutes: bits[0],
            hours: bits[1] as u32,
            days: bits[2] as u32,
            months: bits[3] as u16,
            weekdays: weekdays as u8,
            days_star: fields[2].starts_with('*'),
            weekdays_star: fields[4].starts_with('*'),
            text: text.to_string(),
        };
        let from = NaiveDate::from_ymd_opt(2000, 1, 1)
            .expect("a date")
            .and_time(NaiveTime::MIN);
        if cron.next_after(from).is_none() {
            return Err("no such date (the days named never exist in the months named)".into());
        }
        Ok(cron)
    }
}

impl Cron {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the wall-clock day `d` is one of the expression's days.
    pub fn matches_day(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn has_hour(&self, h: u32) -> bool {
        self.hours & (1 << h) != 0
    }

    fn has_minute(&self, m: u32) -> bool {
        self.minutes & (1 << m) != 0
    }

    /// Whether the wall-clock time `t` (to the minute) is an occurrence.
    pub fn matches(&self, t: NaiveDateTime) -> bool {
        self.matches_day(t.date()) && self.has_hour(t.hour()) && self.has_minute(t.minute())
    }

    /// The first occurrence strictly after `t` (wall clock, to the minute).
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = truncate(t) + Duration::minutes(1);
        let mut day = start.date();
        for i in 0..HORIZON_DAYS {
            if self.matches_day(day) {
                let (h0, m0) = if i == 0 { (start.hour(), start.minute()) } else { (0, 0) };
                for h in h0..24 {
                    if !self.has_hour(h) {
                        continue;
                    }
                    let from = if h == h0 { m0 } else { 0 };
                    if let Some(m) = (from..60).find(|m| self.has_minute(*m)) {
                        return Some(day.and_time(NaiveTime::from_hms_opt(h, m, 0)?));
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The last occurrence at or before `t` (wall clock, to the minute).
    pub fn latest_at_or_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = truncate(t);
        let mut day = start.date();
        for i in 0..HORIZON_DAYS {
            if self.matches_day(day) {
                let (h0, m0) = if i == 0 {
                    (start.hour(), start.minute())
                } else {
                    (23, 59)
                };
                for h in (0..=h0).rev() {
                    if !self.has_hour(h) {
                        continue;
                    }
                    let to = if h == h0 { m0 } else { 59 };
                    if let Some(m) = (0..=to).rev().find(|m| self.has_minute(*m)) {
                        return Some(day.and_time(NaiveTime::from_hms_opt(h, m, 0)?));
                    }
                }
            }
            day = day.pred_opt()?;
        }
        None
    }
}

/// `t` without its seconds.
fn truncate(t: NaiveDateTime) -> NaiveDateTime {
    t.date()
        .and_time(NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).expect("a valid time"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn c(s: &str) -> Cron {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let e = c("*/15 9-17 * * mon-fri");
        assert_eq!(e.next_after(t("2026-11-20 17:50")), Some(t("2026-11-23 09:00")));
        assert_eq!(e.next_after(t("2026-11-23 09:00")), Some(t("2026-11-23 09:15")));
        assert_eq!(
            c("5,35 * * * *").next_after(t("2026-01-01 00:06")),
            Some(t("2026-01-01 00:35"))
        );
        assert_eq!(
            c("0 6 * * 1").next_after(t("2026-11-23 06:00")),
            Some(t("2026-11-30 06:00"))
        );
        assert_eq!(
            c("0 0 * * 7").next_after(t("2026-11-23 00:00")),
            Some(t("2026-11-29 00:00"))
        );
        assert_eq!(
            c("0 0 1 JAN *").next_after(t("2026-11-23 00:00")),
            Some(t("2027-01-01 00:00"))
        );
        assert_eq!(
            c("10/20 * * * *").next_after(t("2026-01-01 00:31")),
            Some(t("2026-01-01 00:50"))
        );
        assert_eq!(
            c("@weekly").next_after(t("2026-11-23 00:00")),
            Some(t("2026-11-29 00:00"))
        );
        assert_eq!(
            c("@hourly").latest_at_or_before(t("2026-11-23 10:59")),
            Some(t("2026-11-23 10:00"))
        );
        // Leap days come back.
        assert_eq!(
            c("0 12 29 2 *").next_after(t("2026-03-01 00:00")),
            Some(t("2028-02-29 12:00"))
        );
        assert_eq!(
            c("0 12 29 2 *").latest_at_or_before(t("2027-03-01 00:00")),
            Some(t("2024-02-29 12:00"))
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_restricted() {
        // The 1st of the month, and every Monday.
        let e = c("0 8 1 * mon");
        assert_eq!(e.next_after(t("2026-11-24 00:00")), Some(t("2026-11-30 08:00")));
        assert_eq!(e.next_after(t("2026-11-30 08:00")), Some(t("2026-12-01 08:00")));
        // A star (even a stepped one) makes it an "and".
        let e = c("0 8 */2 * mon");
        assert!(
            e.matches(t("2026-11-23 08:00")),
            "Monday the 23rd (odd day: */2 from 1)"
        );
        assert!(!e.matches(t("2026-11-30 08:00")), "Monday the 30th (even)");
    }

    #[test]
    fn latest_and_next_agree() {
        for expr in ["0 * * * *", "30 2 * * *", "0 6 * * 1", "15 * * * *", "*/7 1-3 * * *"] {
            let e = c(expr);
            let mut at = t("2026-03-27 00:00");
            for _ in 0..200 {
                let next = e.next_after(at).unwrap();
                assert!(next > at && e.matches(next), "{expr} after {at}");
                assert_eq!(e.latest_at_or_before(next), Some(next));
                assert_eq!(
                    e.latest_at_or_before(next - Duration::minutes(1)),
                    e.latest_at_or_before(at),
                    "{expr}: nothing between {at} and {next}"
                );
                at = next;
            }
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        for (bad, why) in [
            ("", "0 field(s)"),
            ("0 7 * *", "4 field(s)"),
            ("0 0 7 * * *", "6 field(s)"),
            ("60 * * * *", "minute: 60 is out of range"),
            ("0 24 * * *", "hour: 24"),
            ("0 0 0 * *", "day of month: 0"),
            ("0 0 * 13 *", "month: 13"),
            ("0 0 * * 8", "day of week: 8"),
            ("0 0 * * sunday", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("0 0 31 2 *", "no such date"),
            ("@reboot", "unknown macro"),
            ("a b c d e", "minute"),
        ] {
            let e = bad.parse::<Cron>().unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
