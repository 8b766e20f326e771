//! Automatic lock of users caught sending spam or malware, as the vendor
//! document describes it: locked for the user lock timeout; when that
//! expires the user is unlocked automatically, which counts as an unlock
//! by timeout; once "maximum unlocks by timeout" is used up, the next lock
//! lasts until an admin unlocks.

use jiff::Timestamp;

use crate::bounds;
use crate::users::{EffectiveSettings, LockState, User};

/// Ends an expired timed lock, counting it as an unlock by timeout.
/// Returns true if the user was unlocked.
pub fn expire(u: &mut User, now: Timestamp) -> bool {
    let LockState::LockedUntil { until, .. } = u.lock else {
        return false;
    };
    if !u.lock.expired(now) {
        return false;
    }
    u.lock = LockState::Active;
    u.unlocks_by_timeout = u.unlocks_by_timeout.saturating_add(1);
    u.record(
        until,
        format!("unlocked by timeout ({} so far)", u.unlocks_by_timeout),
    );
    true
}

/// Locks a user who sent spam or malware, if automatic lock is on and it
/// is not locked already. Returns the new lock.
pub fn auto_lock(
    u: &mut User,
    eff: &EffectiveSettings,
    now: Timestamp,
    reason: &str,
) -> Option<LockState> {
    if !eff.auto_lock {
        return None;
    }
    expire(u, now);
    if u.lock.in_force(now).is_some() {
        return None;
    }
    let lock = if u.unlocks_by_timeout >= eff.max_unlocks {
        u.record(now, format!("locked until an admin unlocks: {reason}"));
        LockState::LockedByAdmin {
            since: now,
            reason: reason.to_string(),
        }
    } else {
        let minutes = bounds::LOCK_TIMEOUT_MINUTES.clamp(eff.lock_timeout_minutes);
        let until = bounds::later(now, bounds::minutes(minutes));
        u.record(now, format!("locked until {until}: {reason}"));
        LockState::LockedUntil {
            until,
            reason: reason.to_string(),
        }
    };
    u.lock = lock.clone();
    Some(lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserName;
    use jiff::SignedDuration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn timed_locks_until_max_unlocks_then_admin() {
        let eff = EffectiveSettings {
            lock_timeout_minutes: 10,
            max_unlocks: 2,
            ..Default::default()
        };
        let mut u = User::new(
            &UserName::parse("a@b.example").unwrap(),
            None,
            ts("2026-01-01T00:00:00Z"),
        );
        let mut now = ts("2026-01-01T12:00:00Z");
        for round in 0..2 {
            let l = auto_lock(&mut u, &eff, now, "spam").unwrap();
            assert!(matches!(l, LockState::LockedUntil { .. }), "round {round}");
            // Still locked: no new lock, nothing counted.
            assert!(auto_lock(&mut u, &eff, now + SignedDuration::from_mins(5), "spam").is_none());
            now += SignedDuration::from_mins(11);
            assert!(expire(&mut u, now));
            assert_eq!(u.unlocks_by_timeout, round + 1);
        }
        let l = auto_lock(&mut u, &eff, now, "malware").unwrap();
        assert!(matches!(l, LockState::LockedByAdmin { .. }));
        assert!(!expire(&mut u, now + SignedDuration::from_hours(1000)));
    }

    #[test]
    fn extreme_lock_timeout_does_not_panic() {
        let eff = EffectiveSettings {
            lock_timeout_minutes: u32::MAX,
            ..Default::default()
        };
        let mut u = User::new(
            &UserName::parse("a@b.example").unwrap(),
            None,
            Timestamp::MAX,
        );
        let now = ts("2026-01-01T00:00:00Z");
        let Some(LockState::LockedUntil { until, .. }) = auto_lock(&mut u, &eff, now, "spam")
        else {
            panic!("not a timed lock")
        };
        assert_eq!(until, now + SignedDuration::from_hours(24 * 365));
        u.lock = LockState::Active;
        assert!(auto_lock(&mut u, &eff, Timestamp::MAX, "spam").is_some());
    }

    #[test]
    fn off_means_no_lock() {
        let eff = EffectiveSettings {
            auto_lock: false,
            ..Default::default()
        };
        let mut u = User::new(
            &UserName::parse("a@b.example").unwrap(),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert!(auto_lock(&mut u, &eff, Timestamp::UNIX_EPOCH, "spam").is_none());
        assert_eq!(u.lock, LockState::Active);
    }
}
