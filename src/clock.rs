//! The one clock every time rule reads.
//!
//! `PPAS_GATEWAY_NOW` (RFC 3339, e.g. `2026-11-25T10:00:00+01:00`) freezes it
//! for tests and replays; unset, it is the system clock. Business dates (the
//! day of receipt, due dates) are taken in Europe/Paris, whatever the host's
//! time zone.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Paris;

/// Name of the environment variable that freezes the clock.
pub const NOW_ENV: &str = "PPAS_GATEWAY_NOW";

#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The clock of this process: fixed when `PPAS_GATEWAY_NOW` is set.
    pub fn from_env() -> Result<Clock> {
        match std::env::var(NOW_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                let t = DateTime::parse_from_rfc3339(v.trim())
                    .with_context(|| format!("{NOW_ENV}={v:?} is not an RFC 3339 date-time"))?;
                Ok(Clock::Fixed(t.with_timezone(&Utc)))
            }
            _ => Ok(Clock::System),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }

    /// Today's date in Europe/Paris: the "day of receipt" of the controls.
    pub fn today(&self) -> NaiveDate {
        paris_day(self.now())
    }
}

/// The Europe/Paris calendar day of an instant: the business day of a
/// receipt stamped in UTC.
pub fn paris_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&Paris).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paris_day_differs_from_utc_day_near_midnight() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T23:30:00Z").unwrap();
        let c = Clock::Fixed(t.with_timezone(&Utc));
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
    }
}
