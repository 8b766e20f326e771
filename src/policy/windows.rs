//! Calendar windows for the sending limits: day, ISO week and month in the
//! appliance's timezone. A counter is tagged with the window it belongs to,
//! so a new window starts at zero without any reset job.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

/// The windows containing one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// `2026-11-27`
    pub day: String,
    /// `2026-W48` (ISO 8601 week-numbering year and week)
    pub week: String,
    /// `2026-11`
    pub month: String,
}

/// When each window containing an instant ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resets {
    pub day: Zoned,
    pub week: Zoned,
    pub month: Zoned,
}

pub fn timezone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("unknown timezone '{name}': {e}"))
}

pub fn windows(now: Timestamp, tz: &TimeZone) -> Windows {
    let z = now.to_zoned(tz.clone());
    let d = z.date();
    let iso = d.iso_week_date();
    Windows {
        day: d.to_string(),
        week: format!("{:04}-W{:02}", iso.year(), iso.week()),
        month: format!("{:04}-{:02}", d.year(), d.month()),
    }
}

pub fn resets(now: Timestamp, tz: &TimeZone) -> Resets {
    let d = now.to_zoned(tz.clone()).date();
    let start = |date: Date| {
        date.to_zoned(tz.clone())
            .unwrap_or_else(|_| now.to_zoned(tz.clone()))
    };
    let tomorrow = d.tomorrow().unwrap_or(d);
    let to_monday = 7 - i64::from(d.weekday().to_monday_zero_offset());
    let next_monday = d.checked_add(to_monday.days()).unwrap_or(d);
    debug_assert_eq!(next_monday.weekday(), Weekday::Monday);
    let next_month = d.first_of_month().checked_add(1.month()).unwrap_or(d);
    Resets {
        day: start(tomorrow),
        week: start(next_monday),
        month: start(next_month),
    }
}

/// `2026-11-28 00:00 UTC`: how reset times are shown to clients.
pub fn show(z: &Zoned) -> String {
    z.strftime("%Y-%m-%d %H:%M %Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn iso_week_crosses_year() {
        let w = windows(ts("2027-01-01T12:00:00Z"), &TimeZone::UTC);
        assert_eq!(w.day, "2027-01-01");
        assert_eq!(w.week, "2026-W53");
        assert_eq!(w.month, "2027-01");
    }

    #[test]
    fn timezone_moves_the_day() {
        let tz = timezone("America/New_York").unwrap();
        let w = windows(ts("2026-11-28T03:00:00Z"), &tz);
        assert_eq!(w.day, "2026-11-27");
    }

    #[test]
    fn resets_are_next_boundaries() {
        // 2026-11-27 is a Friday.
        let r = resets(ts("2026-11-27T10:00:00Z"), &TimeZone::UTC);
        assert_eq!(show(&r.day), "2026-11-28 00:00 UTC");
        assert_eq!(show(&r.week), "2026-11-30 00:00 UTC");
        assert_eq!(show(&r.month), "2026-12-01 00:00 UTC");
    }
}
