//! The daemon's notion of "now". Limits, locks and retries are decided on
//! calendar time, and tests must be able to cross a day, week or month
//! boundary without waiting: when `debug.clock_override` is on, the control
//! API may shift this clock by an offset. Otherwise it is the system clock.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct Clock {
    /// Offset from the system clock, in milliseconds (0 unless overridden).
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> Timestamp {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        Timestamp::now()
            .checked_add(SignedDuration::from_millis(offset))
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// Makes `now()` return `target` from this instant on (and advance
    /// with the system clock).
    pub fn set(&self, target: Timestamp) {
        let offset = target.duration_since(Timestamp::now()).as_millis();
        let offset = i64::try_from(offset).unwrap_or(0);
        self.offset_ms.store(offset, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::Relaxed);
    }
}

/// `t` as an RFC 5322 date-time in UTC, e.g. `Tue, 1 Jan 2030 00:05:00
/// +0000`: the one format of every date the daemon writes (Received
/// fields, notices, bounces and their delivery-status fields).
pub fn mail_date(t: Timestamp) -> String {
    mail_builder::headers::date::Date::new(t.as_second()).to_rfc822()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_moves_now() {
        let c = Clock::default();
        let target: Timestamp = "2030-01-31T23:59:59Z".parse().unwrap();
        c.set(target);
        let d = c.now().duration_since(target);
        assert!(d.as_secs() < 5, "{d:?}");
        c.reset();
        assert!(c.now().duration_since(Timestamp::now()).as_secs().abs() < 5);
    }
}
