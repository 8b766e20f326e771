//! The allowed ranges of the admin's time settings, and time arithmetic
//! that saturates instead of failing. A setting out of range is refused at
//! the API (422 naming the field and its range); one already stored out of
//! range (by an older version) is clamped where it is read, so the daemon
//! starts; and every `Timestamp ± duration` on an admin-entered value
//! goes through `later`/`earlier`, which cannot panic (release builds
//! abort on panic).

use jiff::{SignedDuration, Timestamp};

/// One numeric setting's allowed range.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub field: &'static str,
    pub min: u32,
    pub max: u32,
    /// The maximum in words, for the error message.
    pub max_text: &'static str,
}

/// A timed lock lasts at most a year (longer: lock until an admin unlocks).
pub const LOCK_TIMEOUT_MINUTES: Range = Range {
    field: "lock_timeout_minutes",
    min: 1,
    max: 525_600,
    max_text: "one year",
};
/// The same bound for a lock an admin sets by hand.
pub const LOCK_MINUTES: Range = Range {
    field: "minutes",
    ..LOCK_TIMEOUT_MINUTES
};
/// Retrying longer than a year helps nobody; 0 bounces at the first
/// temporary failure.
pub const MAX_RETRY_DAYS: Range = Range {
    field: "max_retry_days",
    min: 0,
    max: 365,
    max_text: "one year",
};
pub const QUARANTINE_RETENTION_DAYS: Range = Range {
    field: "quarantine_retention_days",
    min: 1,
    max: 3_650,
    max_text: "ten years",
};

impl Range {
    /// The value, or an error naming the field and its range.
    pub fn check(&self, value: u32) -> Result<u32, String> {
        if (self.min..=self.max).contains(&value) {
            return Ok(value);
        }
        Err(format!(
            "{} must be between {} and {} ({}); got {value}",
            self.field, self.min, self.max, self.max_text
        ))
    }

    /// The value brought into range (for values stored by older versions).
    pub fn clamp(&self, value: u32) -> u32 {
        value.clamp(self.min, self.max)
    }
}

/// `t + d`, or the latest (earliest) representable time past the range.
pub fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `t - d`, saturating like `later`.
pub fn earlier(t: Timestamp, d: SignedDuration) -> Timestamp {
    later(t, d.checked_neg().unwrap_or(SignedDuration::MAX))
}

pub fn minutes(m: u32) -> SignedDuration {
    SignedDuration::from_mins(i64::from(m))
}

pub fn days(d: u32) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::from(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_at_the_extremes() {
        let now: Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        assert_eq!(later(now, minutes(u32::MAX)), Timestamp::MAX);
        assert_eq!(later(now, days(u32::MAX)), Timestamp::MAX);
        assert_eq!(earlier(now, days(u32::MAX)), Timestamp::MIN);
        assert_eq!(later(Timestamp::MAX, SignedDuration::MAX), Timestamp::MAX);
        assert_eq!(later(Timestamp::MIN, SignedDuration::MIN), Timestamp::MIN);
        assert_eq!(earlier(Timestamp::MIN, SignedDuration::MAX), Timestamp::MIN);
        assert_eq!(earlier(Timestamp::MAX, SignedDuration::MIN), Timestamp::MAX);
        assert_eq!(
            later(now, minutes(90)),
            "2026-12-06T01:30:00Z".parse().unwrap()
        );
        assert_eq!(
            earlier(now, days(1)),
            "2026-12-05T00:00:00Z".parse().unwrap()
        );
    }

    #[test]
    fn ranges_name_the_field() {
        assert_eq!(LOCK_MINUTES.check(60), Ok(60));
        let e = LOCK_MINUTES.check(u32::MAX).unwrap_err();
        assert!(e.starts_with("minutes must be between 1 and 525600"), "{e}");
        assert!(QUARANTINE_RETENTION_DAYS.check(0).is_err());
        assert_eq!(MAX_RETRY_DAYS.clamp(2_900_000), 365);
        assert_eq!(LOCK_TIMEOUT_MINUTES.clamp(0), 1);
    }
}
