//! A user's standing and what it admits: the settings in force
//! (`users::UserSettings::resolve`), the lock in force, the usage in the
//! current windows (`windows`, `usage`), the sending limits (`limits`),
//! the automatic lock (`locking`), and the graded response's settings and
//! results (`response`; the rule itself is `submission::fate`).
//!
//! `standing` is the one place that says where a user stands at an
//! instant (the session's early checks, the committer, the API's user
//! view and the dashboard all read it), and `admit` the one admission
//! check: the session asks it at MAIL and RCPT to answer early, the
//! committer (`store::accept`) asks it again inside the accepting
//! transaction, where it is exact.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::users::{EffectiveSettings, LockState, User};

pub mod limits;
pub mod locking;
pub mod response;
pub mod usage;
pub mod windows;

use limits::{Counts, Exceeded};
use usage::Usage;
use windows::Windows;

/// Where a user stands at `now`.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The settings in force (unset ones from the system defaults).
    pub settings: EffectiveSettings,
    /// The lock in force (an expired timed lock is none).
    pub lock: Option<LockState>,
    /// The windows containing `now`.
    pub windows: Windows,
    /// The usage in those windows.
    pub counts: Counts,
    pub now: Timestamp,
    pub tz: TimeZone,
}

/// A user's standing at `now`, from its record and its usage counters.
pub fn standing(
    user: &User,
    usage: &Usage,
    defaults: &EffectiveSettings,
    tz: &TimeZone,
    now: Timestamp,
) -> Standing {
    let w = windows::windows(now, tz);
    Standing {
        settings: user.settings.resolve(defaults),
        lock: user.lock.in_force(now).cloned(),
        counts: usage.counts(&w),
        windows: w,
        now,
        tz: tz.clone(),
    }
}

/// What is asked of the admission check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// MAIL: may the user start a message (lock, message limits)?
    Sender,
    /// RCPT: may the message have this many recipients (the daily
    /// recipient limit)?
    Recipients(u32),
    /// The committer: one message to `recipients`. `counted` is false for
    /// content caught by the scanner, which is neither limited nor
    /// counted (it is not sent); the lock applies to every message.
    Message { recipients: u32, counted: bool },
}

/// Why a message or recipient is not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user is locked; the text says until when.
    Locked(String),
    MessageLimit(Exceeded),
    RecipientLimit(Exceeded),
}

impl Refusal {
    /// The SMTP reply: code, enhanced status and text.
    pub fn reply(&self) -> (u16, &'static str, String) {
        match self {
            Refusal::Locked(text) => (550, "5.7.1", text.clone()),
            Refusal::MessageLimit(e) => (451, "4.7.1", e.to_string()),
            Refusal::RecipientLimit(e) => (452, "4.5.3", e.to_string()),
        }
    }
}

/// The admission check: may what `ask` names be admitted for a user
/// standing as `st`, and if not, why.
pub fn admit(st: &Standing, ask: Ask) -> Result<(), Refusal> {
    if !matches!(ask, Ask::Recipients(_))
        && let Some(lock) = &st.lock
    {
        return Err(Refusal::Locked(lock_text(lock, &st.tz)));
    }
    within_limits(&st.counts, &st.settings, st.now, &st.tz, ask)
}

/// The limits part of `admit`, for counts kept elsewhere (the fleet's
/// shared counters).
pub fn within_limits(
    counts: &Counts,
    settings: &EffectiveSettings,
    now: Timestamp,
    tz: &TimeZone,
    ask: Ask,
) -> Result<(), Refusal> {
    let (messages, recipients) = match ask {
        Ask::Sender => (true, None),
        Ask::Recipients(n) => (false, Some(n)),
        Ask::Message {
            counted: false,
            recipients: _,
        } => (false, None),
        Ask::Message {
            recipients,
            counted: true,
        } => (true, Some(recipients)),
    };
    if messages {
        limits::check_messages(counts, settings, 1, now, tz).map_err(Refusal::MessageLimit)?;
    }
    if let Some(n) = recipients {
        limits::check_recipients(counts, settings, n, now, tz).map_err(Refusal::RecipientLimit)?;
    }
    Ok(())
}

/// What a locked user is told.
pub fn lock_text(lock: &LockState, tz: &TimeZone) -> String {
    match lock {
        LockState::Active => "account is active".into(),
        LockState::LockedUntil { until, .. } => format!(
            "account is locked until {}",
            windows::show(&until.to_zoned(tz.clone()))
        ),
        LockState::LockedByAdmin { .. } => {
            "account is locked until an administrator unlocks it".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::UserName;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn admission_checks_lock_then_limits() {
        let now = ts("2026-11-27T10:00:00Z");
        let mut user = User::new(&UserName::parse("a@b.example").unwrap(), None, now);
        user.settings.limit_per_day = Some(2);
        user.settings.max_recipients_per_day = Some(3);
        let mut usage = Usage::default();
        let w = windows::windows(now, &TimeZone::UTC);
        usage.add(&w, 2, 2);
        let defaults = EffectiveSettings::default();
        let st = standing(&user, &usage, &defaults, &TimeZone::UTC, now);
        assert_eq!((st.counts.day, st.counts.recipients_day), (2, 2));
        let day = "daily message limit of 2 reached; it resets at 2026-11-28 00:00 UTC";
        let (code, status, text) = admit(&st, Ask::Sender).unwrap_err().reply();
        assert_eq!((code, status, text.as_str()), (451, "4.7.1", day));
        assert!(admit(&st, Ask::Recipients(1)).is_ok());
        assert!(matches!(
            admit(&st, Ask::Recipients(2)),
            Err(Refusal::RecipientLimit(_))
        ));
        // Caught content is not limited.
        let caught = Ask::Message {
            recipients: 9,
            counted: false,
        };
        assert!(admit(&st, caught).is_ok());

        // A lock refuses everything but the recipient count, until it
        // expires.
        user.lock = LockState::LockedUntil {
            until: ts("2026-11-27T11:00:00Z"),
            reason: "spam".into(),
        };
        let st = standing(&user, &usage, &defaults, &TimeZone::UTC, now);
        let locked = "account is locked until 2026-11-27 11:00 UTC";
        assert_eq!(admit(&st, caught), Err(Refusal::Locked(locked.into())));
        assert_eq!(admit(&st, Ask::Sender), Err(Refusal::Locked(locked.into())));
        assert!(admit(&st, Ask::Recipients(1)).is_ok());
        let later = standing(
            &user,
            &usage,
            &defaults,
            &TimeZone::UTC,
            ts("2026-11-27T11:00:00Z"),
        );
        assert!(later.lock.is_none());
        assert!(admit(&later, caught).is_ok());
    }
}
