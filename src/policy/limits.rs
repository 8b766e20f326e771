//! The sending limits of the vendor document: messages per day, week and
//! month, recipients per day. Zero means unlimited. The same check runs at
//! MAIL/RCPT (to answer early) and inside the commit that accepts a
//! message (to be exact when sessions race).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::policy::windows;
use crate::users::EffectiveSettings;

/// Usage in the current windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub day: u32,
    pub week: u32,
    pub month: u32,
    pub recipients_day: u32,
}

/// A limit that would be passed, with what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub what: &'static str,
    pub limit: u32,
    pub resets: String,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} reached; it resets at {}",
            self.what, self.limit, self.resets
        )
    }
}

fn over(count: u32, add: u32, limit: u32) -> bool {
    limit != 0 && u64::from(count) + u64::from(add) > u64::from(limit)
}

/// Would `add` more messages pass a message limit?
pub fn check_messages(
    c: &Counts,
    s: &EffectiveSettings,
    add: u32,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(), Exceeded> {
    let r = || windows::resets(now, tz);
    if over(c.day, add, s.limit_per_day) {
        return Err(Exceeded {
            what: "daily message limit",
            limit: s.limit_per_day,
            resets: windows::show(&r().day),
        });
    }
    if over(c.week, add, s.limit_per_week) {
        return Err(Exceeded {
            what: "weekly message limit",
            limit: s.limit_per_week,
            resets: windows::show(&r().week),
        });
    }
    if over(c.month, add, s.limit_per_month) {
        return Err(Exceeded {
            what: "monthly message limit",
            limit: s.limit_per_month,
            resets: windows::show(&r().month),
        });
    }
    Ok(())
}

/// Would `add` more recipients pass the daily recipient limit?
pub fn check_recipients(
    c: &Counts,
    s: &EffectiveSettings,
    add: u32,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<(), Exceeded> {
    if over(c.recipients_day, add, s.max_recipients_per_day) {
        return Err(Exceeded {
            what: "daily recipient limit",
            limit: s.max_recipients_per_day,
            resets: windows::show(&windows::resets(now, tz).day),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited_and_limit_is_inclusive() {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let mut s = EffectiveSettings {
            limit_per_day: 2,
            limit_per_week: 0,
            limit_per_month: 0,
            ..Default::default()
        };
        let c = Counts {
            day: 1,
            week: 1000,
            month: 1000,
            recipients_day: 0,
        };
        assert!(check_messages(&c, &s, 1, now, &TimeZone::UTC).is_ok());
        let c2 = Counts { day: 2, ..c };
        let e = check_messages(&c2, &s, 1, now, &TimeZone::UTC).unwrap_err();
        assert_eq!(
            e.to_string(),
            "daily message limit of 2 reached; it resets at 2026-11-28 00:00 UTC"
        );
        s.limit_per_day = 0;
        assert!(check_messages(&c2, &s, 1, now, &TimeZone::UTC).is_ok());
    }
}
