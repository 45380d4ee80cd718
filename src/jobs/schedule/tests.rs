//! Occurrences across the daylight-saving Sundays of Europe/Paris (2026:
//! 29 March and 25 October; 2027: 28 March and 31 October) and the
//! catch-up rule, with the clock given by value.

use std::collections::BTreeSet;

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn schedule(expr: &str) -> Schedule {
    Schedule::new(Job::Relances, expr.parse().unwrap())
}

fn occ(key: &str) -> Occurrence {
    Occurrence::parse(key).unwrap()
}

/// The runs a scheduler makes from `since` to `until`, looking at the
/// clock every `step` seconds: (occurrence, instant it ran).
fn simulate(s: &Schedule, since: &str, until: &str, step: i64) -> Vec<(String, DateTime<Utc>)> {
    let (since, until) = (utc(since), utc(until));
    let mut done = BTreeSet::new();
    let mut runs = Vec::new();
    let mut now = since;
    while now <= until {
        if let Some(o) = owed(s, since, now, |o| done.contains(&o.key())) {
            done.insert(o.key());
            runs.push((o.key(), now));
        }
        now += Duration::seconds(step);
    }
    runs
}

const DST: [(&str, &str, &str); 4] = [
    // (the Sunday, its instant of change, spring or autumn)
    ("2026-03-29", "2026-03-29T01:00:00Z", "spring"),
    ("2026-10-25", "2026-10-25T01:00:00Z", "autumn"),
    ("2027-03-28", "2027-03-28T01:00:00Z", "spring"),
    ("2027-10-31", "2027-10-31T01:00:00Z", "autumn"),
];

#[test]
fn instants_of_wall_clock_times_in_the_gap_and_the_fold() {
    for (day, change, kind) in DST {
        let at = |hm: &str| instant_of(occ(&format!("{day}T{hm}")).local());
        if kind == "spring" {
            // 02:00–02:59 do not exist: the end of the gap, 03:00 CEST.
            assert_eq!(at("01:59"), utc(change) - Duration::minutes(1), "{day}");
            assert_eq!(at("02:00"), utc(change), "{day}");
            assert_eq!(at("02:30"), utc(change), "{day}");
            assert_eq!(at("03:00"), utc(change), "{day}");
            assert_eq!(at("03:01"), utc(change) + Duration::minutes(1), "{day}");
        } else {
            // 02:00–02:59 happen twice: the first time (CEST).
            assert_eq!(at("02:00"), utc(change) - Duration::hours(1), "{day}");
            assert_eq!(at("02:30"), utc(change) - Duration::minutes(30), "{day}");
            assert_eq!(at("03:00"), utc(change) + Duration::hours(1), "{day}");
        }
    }
}

#[test]
fn daily_0230_runs_once_on_every_dst_sunday() {
    let s = schedule("30 2 * * *");
    for (day, change, kind) in DST {
        let sunday = occ(&format!("{day}T02:30"));
        // From Saturday after its 02:30 to Monday before its 02:30.
        let before = utc(change) - Duration::hours(20);
        let after = utc(change) + Duration::hours(20);
        let keys: Vec<String> = s.between(before, after, 10).iter().map(Occurrence::key).collect();
        assert_eq!(keys, [sunday.key()], "{day}");
        let expected = if kind == "spring" {
            utc(change) // 03:00 CEST
        } else {
            utc(change) - Duration::minutes(30) // the first 02:30 (CEST)
        };
        assert_eq!(sunday.instant(), expected, "{day}");
        assert_eq!(s.next_due(before), Some(sunday), "{day}");
        assert_eq!(s.latest_due(expected), Some(sunday), "{day}");
        assert_ne!(s.latest_due(expected - Duration::seconds(1)), Some(sunday), "{day}");

        // A scheduler looking every 10 seconds: one run, at that instant.
        let runs = simulate(&s, &before.to_rfc3339(), &after.to_rfc3339(), 10);
        let on_sunday: Vec<_> = runs.iter().filter(|(k, _)| k.starts_with(day)).collect();
        assert_eq!(on_sunday, [&(sunday.key(), expected)], "{day}: {runs:?}");
        assert_eq!(runs.len(), 1, "{day}: {runs:?}");
    }
}

#[test]
fn in_the_autumn_fold_the_second_0230_is_the_same_occurrence() {
    let s = schedule("30 2 * * *");
    for (day, change, _) in DST.iter().filter(|d| d.2 == "autumn") {
        // 02:30 CET, the second time the wall clock reads 02:30.
        let second = utc(change) + Duration::minutes(30);
        assert_eq!(local_of(second), occ(&format!("{day}T02:30")).local());
        assert_eq!(s.latest_due(second), Some(occ(&format!("{day}T02:30"))));
        // Next is the next day's, not the 02:30 being read again.
        let next = s.next_due(second).unwrap();
        assert!(next.key().ends_with("T02:30") && !next.key().starts_with(day), "{next}");
        // Every 20 minutes in the fold: due already, whatever the wall clock says.
        let e = schedule("*/20 * * * *");
        let at = utc(change) + Duration::minutes(10); // 02:10 CET
        assert_eq!(e.latest_due(at), Some(occ(&format!("{day}T02:40"))), "{day}");
        assert_eq!(e.next_due(at), Some(occ(&format!("{day}T03:00"))), "{day}");
        assert_eq!(e.next_due(at).unwrap().instant(), utc(change) + Duration::hours(1));
    }
}

#[test]
fn hourly_on_dst_sundays() {
    let s = schedule("0 * * * *");
    for (day, change, kind) in DST {
        let midnight = instant_of(occ(&format!("{day}T00:00")).local());
        let next_midnight = midnight + Duration::hours(if kind == "spring" { 23 } else { 25 });
        let runs = simulate(
            &s,
            &(midnight - Duration::minutes(1)).to_rfc3339(),
            &(next_midnight - Duration::minutes(1)).to_rfc3339(),
            30,
        );
        let keys: Vec<&str> = runs.iter().map(|(k, _)| &k[11..]).collect();
        let instants: Vec<DateTime<Utc>> = runs.iter().map(|r| r.1).collect();
        if kind == "spring" {
            // 23 hours: 02:00 does not exist and falls at 03:00 with 03:00
            // itself: one run, one an hour.
            assert_eq!(runs.len(), 23, "{day}: {keys:?}");
            assert!(!keys.contains(&"02:00") && keys.contains(&"03:00"), "{keys:?}");
            assert_eq!(runs[2], (format!("{day}T03:00"), utc(change)));
            let all = s.between(
                midnight - Duration::minutes(1),
                next_midnight - Duration::minutes(1),
                30,
            );
            assert_eq!(all.len(), 24, "both 02:00 and 03:00 are occurrences");
            assert_eq!(all[2].instant(), all[3].instant(), "at the same instant");
        } else {
            // 25 hours, 24 wall-clock hours: 02:00 runs once, in its first pass.
            assert_eq!(runs.len(), 24, "{day}: {keys:?}");
            assert_eq!(keys.iter().filter(|k| **k == "02:00").count(), 1);
            assert_eq!(runs[2], (format!("{day}T02:00"), utc(change) - Duration::hours(1)));
            assert_eq!(runs[3], (format!("{day}T03:00"), utc(change) + Duration::hours(1)));
        }
        // Never twice at one instant, never out of order.
        assert!(instants.windows(2).all(|w| w[0] < w[1]), "{day}: {runs:?}");
        // Each run at its occurrence's instant (looked at every 30 s).
        for (k, at) in &runs {
            assert_eq!(occ(k).instant(), *at, "{k}");
        }
    }
}

#[test]
fn weekly_on_dst_sundays() {
    // Sunday 02:30: in the gap in spring, in the fold in autumn.
    let s = schedule("30 2 * * sun");
    for (day, change, kind) in DST {
        let runs = simulate(
            &s,
            &(utc(change) - Duration::days(3)).to_rfc3339(),
            &(utc(change) + Duration::days(3)).to_rfc3339(),
            60,
        );
        let expected = if kind == "spring" {
            utc(change)
        } else {
            utc(change) - Duration::minutes(30)
        };
        assert_eq!(runs, [(format!("{day}T02:30"), expected)], "{day}");
    }
    // The default weekly run, Monday 06:00, the day after: 06:00 in the new offset.
    let s = schedule("0 6 * * 1");
    for (day, change, kind) in DST {
        let o = s.next_due(utc(change)).unwrap();
        let monday = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .unwrap()
            .succ_opt()
            .unwrap();
        assert_eq!(o.key(), format!("{monday}T06:00"));
        let offset = if kind == "spring" { 2 } else { 1 };
        assert_eq!(o.instant(), o.local().and_utc() - Duration::hours(offset), "{day}");
    }
}

#[test]
fn a_missed_run_is_caught_up_once_by_the_latest_occurrence() {
    let daily = schedule("0 7 * * *");
    // Followed since Monday 10:00; the daemon stopped then, started on
    // Thursday 09:00: Tuesday's, Wednesday's and Thursday's 07:00 were
    // missed; Thursday's alone is owed.
    let since = utc("2026-11-23T10:00:00+01:00");
    let now = utc("2026-11-26T09:00:00+01:00");
    assert_eq!(daily.between(since, now, 10).len(), 3);
    assert_eq!(owed(&daily, since, now, |_| false), Some(occ("2026-11-26T07:00")));
    // Once it has a run, nothing (a restart at the same instant, or later the same day).
    assert_eq!(owed(&daily, since, now, |o| o.key() == "2026-11-26T07:00"), None);
    assert_eq!(
        owed(&daily, since, utc("2026-11-26T23:59:00+01:00"), |o| o.key()
            == "2026-11-26T07:00"),
        None
    );
    // First start: the schedule is followed from now on, nothing before is owed.
    assert_eq!(owed(&daily, now, now, |_| false), None);
    // An occurrence at the very instant the schedule was taken up is not owed;
    // one a minute later is.
    let at7 = utc("2026-11-26T07:00:00+01:00");
    assert_eq!(owed(&daily, at7, at7, |_| false), None);
    assert_eq!(
        owed(&daily, at7 - Duration::minutes(1), at7, |_| false),
        Some(occ("2026-11-26T07:00"))
    );
    // Before the first occurrence after `since`: nothing.
    assert_eq!(owed(&daily, since, utc("2026-11-24T06:59:00+01:00"), |_| false), None);

    // Hourly, stopped for a day and a half: one run, the latest hour.
    let hourly = schedule("0 * * * *");
    assert_eq!(owed(&hourly, since, now, |_| false), Some(occ("2026-11-26T09:00")));

    // Stopped across the autumn change: the fold's 02:30 once.
    let s = schedule("30 2 * * *");
    let since = utc("2026-10-24T12:00:00Z");
    for now in ["2026-10-25T00:45:00Z", "2026-10-25T01:45:00Z", "2026-10-25T12:00:00Z"] {
        assert_eq!(
            owed(&s, since, utc(now), |_| false),
            Some(occ("2026-10-25T02:30")),
            "{now}"
        );
        assert_eq!(
            owed(&s, since, utc(now), |o| o.key() == "2026-10-25T02:30"),
            None,
            "{now}"
        );
    }
    // Across the spring change: 02:30 is due from 03:00 CEST on.
    let since = utc("2027-03-27T12:00:00Z");
    assert_eq!(owed(&s, since, utc("2027-03-28T00:59:59Z"), |_| false), None);
    assert_eq!(
        owed(&s, since, utc("2027-03-28T01:00:00Z"), |_| false),
        Some(occ("2027-03-28T02:30"))
    );
}

#[test]
fn schedules_from_the_configuration() {
    let mut cfg = crate::config::Jobs::default();
    let s = Schedules::from_config(&cfg).unwrap();
    assert_eq!(s.get(Job::InvoiceThreshold).unwrap().expr(), "0 * * * *");
    assert_eq!(s.get(Job::InvoiceWeekly).unwrap().expr(), "0 6 * * 1");
    assert_eq!(s.get(Job::Relances).unwrap().expr(), "0 7 * * *");
    assert_eq!(s.get(Job::Bordereaux).unwrap().expr(), "15 * * * *");
    assert_eq!(s.get(Job::Purge).unwrap().expr(), "30 3 * * *");
    assert!(s.get(Job::Mail).is_none(), "the mail worker's");
    let now = utc("2026-11-20T10:05:00+01:00");
    assert_eq!(s.next_instant(now), Some(utc("2026-11-20T10:15:00+01:00")));

    cfg.bordereaux = String::new();
    cfg.invoice_threshold = "  ".into();
    let s = Schedules::from_config(&cfg).unwrap();
    assert!(s.get(Job::Bordereaux).is_none() && s.get(Job::InvoiceThreshold).is_none());
    assert_eq!(s.iter().count(), 3);

    cfg.purge = "30 3 * *".into();
    let e = Schedules::from_config(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("[jobs] purge: \"30 3 * *\" is not a cron expression"),
        "{e}"
    );
}
