//! The graded response's settings and results (`response` in the system
//! settings): the `Policy` the fate rule reads, the `Fate` it picks and
//! the `Decision` and `Held` the committer reports. The rule itself is
//! `submission::fate::decide`, which the committer runs inside its
//! transaction; these types sit here, below `store` and `settings`, so
//! both can name them.

use serde::{Deserialize, Serialize};

use crate::users::LockState;

/// The response settings (`response` in the system settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = ResponsePolicy))]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Use the behaviour model (off: content alone decides, and a spam
    /// verdict below the lock score holds).
    pub behaviour: bool,
    /// Content score at or above which a spam verdict locks by itself.
    #[cfg_attr(test, schema(minimum = 0, maximum = 10000))]
    pub content_lock_score: f64,
    /// Behaviour points at which a message with clean content is held.
    #[cfg_attr(test, schema(minimum = 1, maximum = 100))]
    pub hold_points: u32,
    /// Behaviour points at which a spam verdict below the lock score
    /// locks instead of holding.
    #[cfg_attr(test, schema(minimum = 1, maximum = 100))]
    pub spam_lock_points: u32,
    /// Holds within the window that lock the user (0: holds never lock).
    #[cfg_attr(test, schema(minimum = 0, maximum = 8))]
    pub holds_to_lock: u32,
    #[cfg_attr(test, schema(minimum = 1, maximum = 10080))]
    pub hold_window_minutes: u32,
    /// Let a message through that only the classifier calls spam when it
    /// goes to the user's own contacts (or is a copy of a text that just
    /// did) and the sending is usual: 0 behaviour points, the user past
    /// its warm-up. Out of distribution the classifier's false positives
    /// are legitimate newsletters to their readers; a stolen account
    /// shows itself in how it sends. Needs `behaviour`.
    pub trust_contacts: bool,
}

// content_lock_score is validated finite, so equality is total.
impl Eq for Policy {}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            behaviour: true,
            content_lock_score: 10.0,
            hold_points: 3,
            spam_lock_points: 2,
            holds_to_lock: 3,
            hold_window_minutes: 1440,
            trust_contacts: true,
        }
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        let s = self.content_lock_score;
        if !s.is_finite() || !(0.0..=10_000.0).contains(&s) {
            return Err(format!(
                "response.content_lock_score must be between 0 and 10000, not {s}"
            ));
        }
        if !(1..=100).contains(&self.hold_points) {
            return Err("response.hold_points must be between 1 and 100".into());
        }
        if !(1..=100).contains(&self.spam_lock_points) {
            return Err("response.spam_lock_points must be between 1 and 100".into());
        }
        if self.holds_to_lock > crate::behaviour::profile::HOLDS as u32 {
            return Err(format!(
                "response.holds_to_lock must be between 0 and {}",
                crate::behaviour::profile::HOLDS
            ));
        }
        if !(1..=10_080).contains(&self.hold_window_minutes) {
            return Err("response.hold_window_minutes must be between 1 and 10080".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    Allow,
    Hold,
    Lock,
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fate::Allow => "allow",
            Fate::Hold => "hold",
            Fate::Lock => "lock",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub fate: Fate,
    /// First the rule that decided, then the content and behaviour
    /// reasons behind it. Empty when allowed, unless a spam verdict was
    /// let through (`Policy::trust_contacts`).
    pub reasons: Vec<String>,
}

/// One line for a lock reason, a log field or a notice subject: the rule
/// that decided and the first reasons, bounded.
pub fn summary(reasons: &[String]) -> String {
    let mut s = reasons
        .iter()
        .take(4)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if s.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// A message held or locked, as the committer reports it.
#[derive(Debug, Clone)]
pub struct Held {
    pub fate: Fate,
    pub reasons: Vec<String>,
    /// The quarantine id, when the message was kept.
    pub kept: Option<u64>,
    /// The lock set, if this message locked the user.
    pub lock: Option<LockState>,
    /// A copy of a text held earlier in the window, which the admin has
    /// been told of: logged, not announced again (a held mail merge is
    /// one notice, not one per subscriber).
    pub repeat: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(Policy::default().validate().is_ok());
        for bad in [
            Policy {
                content_lock_score: -1.0,
                ..Policy::default()
            },
            Policy {
                hold_points: 0,
                ..Policy::default()
            },
            Policy {
                holds_to_lock: 99,
                ..Policy::default()
            },
            Policy {
                hold_window_minutes: 0,
                ..Policy::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
