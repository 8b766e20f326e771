//! The fate of a submitted message, from its content verdict and the
//! sender's behaviour: let it through, hold it in the quarantine for
//! review (the user stays able to send), or hold it and lock the user.
//! `submission::submit` hands this rule to the committer
//! (`store::Committer::accept`), which applies it inside the accepting
//! transaction, where the behaviour profile and the recent holds are
//! exact; the rule's settings and results are `policy::response`.
//!
//! A lock needs confidence. Content alone locks only when it is certain:
//! malware (EICAR, hash signatures, blocked attachments), or a score at or
//! above `content_lock_score` (GTUBE scores 1000) with the classifier's
//! points counted at most up to the spam threshold (`Verdict::lock_score`):
//! the classifier alone flags and holds, the rules must carry a lock. Otherwise evidence must
//! add up: a spam verdict together with unusual behaviour, or
//! `holds_to_lock` holds within `hold_window_minutes`, where the held
//! copies of one text (a mail merge the classifier misjudges: one copy per
//! subscriber) count once, so one newsletter cannot lock its sender;
//! holds for behaviour alone each count. A spam verdict
//! below the lock score, or behaviour alone that is far from the user's
//! usual, holds. Automatic lock off turns every lock into a hold.
//!
//! A hold needs a reason to doubt the sender. A message that only the
//! classifier calls spam (`Verdict::classifier_only`), from a user past
//! its warm-up whose sending is usual (0 points), to recipients it has
//! written to before, goes out (`trust_contacts`): out of distribution the
//! classifier's false positives are legitimate newsletters to their
//! readers, and outbound spam comes from stolen accounts, which show
//! themselves in how they send. The copies of such a text to new
//! recipients in the window go the same way (a mail merge reaching its
//! newest readers), still only with usual sending. One text per window
//! goes out so: malware spamming the address book sends many.

use crate::behaviour::{Assessment, RecentHolds};
use crate::policy::response::{Decision, Fate, Policy};
use crate::scan::{Class, Verdict};

/// Decides the fate of one message. `recent`: the user's holds in the
/// window, this message not included.
pub fn decide(
    content: &Verdict,
    behaviour: &Assessment,
    recent: RecentHolds,
    policy: &Policy,
    auto_lock: bool,
) -> Decision {
    let points = if policy.behaviour {
        behaviour.points
    } else {
        0
    };
    let score = content.score;
    // What the classifier added beyond the spam threshold does not count
    // towards a lock (`Verdict::lock_score`).
    let capped = if content.lock_score < score {
        format!(" ({:.1} with the classifier capped)", content.lock_score)
    } else {
        String::new()
    };
    let trust = trust(content, behaviour, recent, policy);
    let (mut fate, mut why) = match content.class {
        Class::Malware => (Fate::Lock, "malware found".to_string()),
        Class::Spam if content.lock_score >= policy.content_lock_score => (
            Fate::Lock,
            format!(
                "spam score {score:.1}{capped} at or above the lock score {:.1}",
                policy.content_lock_score
            ),
        ),
        Class::Spam if trust == Trust::Yes => {
            let to = match recent.same_text_passed_at {
                Some(at) if !behaviour.known_recipients => format!(
                    "a copy of a text sent to the user's contacts at {}",
                    minute_text(at)
                ),
                _ => "to the user's contacts".to_string(),
            };
            (
                Fate::Allow,
                format!(
                    "spam score {score:.1} from the classifier alone, {to}, with usual sending: let through"
                ),
            )
        }
        Class::Spam if points >= policy.spam_lock_points => (
            Fate::Lock,
            format!("spam score {score:.1} together with unusual sending ({points} points)"),
        ),
        Class::Spam => {
            let mut why = format!(
                "spam score {score:.1}{capped}, below the lock score {:.1}: held for review",
                policy.content_lock_score
            );
            if let Trust::OtherText(at) = trust {
                why.push_str(&format!(
                    " (another text only the classifier flagged went to the user's contacts at {}: one such text per {} minutes goes out)",
                    minute_text(at),
                    policy.hold_window_minutes
                ));
            }
            (Fate::Hold, why)
        }
        // A new user's baseline is not known yet: behaviour alone does
        // not hold it (a mail merge on day two is not an attack).
        Class::Clean if points >= policy.hold_points && !behaviour.warming_up => (
            Fate::Hold,
            format!(
                "unusual sending: {points} behaviour points (holding at {})",
                policy.hold_points
            ),
        ),
        Class::Clean => {
            return Decision {
                fate: Fate::Allow,
                reasons: Vec::new(),
            };
        }
    };
    // A copy of a text held before adds no evidence.
    let holds = recent.count + u32::from(recent.same_text_at.is_none());
    if fate == Fate::Hold && policy.holds_to_lock > 0 && holds >= policy.holds_to_lock {
        fate = Fate::Lock;
        why = format!(
            "{holds} held messages within {} minutes; last: {why}",
            policy.hold_window_minutes
        );
    } else if let (Fate::Hold, Some(at)) = (fate, recent.same_text_at) {
        why.push_str(&format!(
            " (the same text as a message held at {}: counts once towards a lock)",
            minute_text(at)
        ));
    }
    if fate == Fate::Lock && !auto_lock {
        fate = Fate::Hold;
        why.push_str(" (automatic lock is off: held)");
    }
    let mut reasons = vec![why];
    if content.class != Class::Clean {
        reasons.extend(content.reasons.iter().map(|r| format!("content: {r}")));
    }
    if policy.behaviour {
        reasons.extend(behaviour.reasons.iter().map(|r| format!("behaviour: {r}")));
    }
    Decision { fate, reasons }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Let through: see the module's comment.
    Yes,
    /// It would be, but another text went out on trust within the window
    /// (minute): one per window.
    OtherText(u32),
    No,
}

/// Whether a spam verdict is the classifier's alone on mail from a sender
/// with nothing unusual about it, to its contacts (`Policy::trust_contacts`).
fn trust(content: &Verdict, b: &Assessment, recent: RecentHolds, policy: &Policy) -> Trust {
    let usual = policy.behaviour
        && policy.trust_contacts
        && content.classifier_only
        && b.points == 0
        && !b.warming_up
        && (b.known_recipients || recent.same_text_passed_at.is_some());
    if !usual {
        return Trust::No;
    }
    match recent.other_text_passed_at {
        Some(at) => Trust::OtherText(at),
        None => Trust::Yes,
    }
}

/// A minute since the epoch as `2026-03-02 10:30 UTC`.
fn minute_text(minute: u32) -> String {
    jiff::Timestamp::from_second(i64::from(minute) * 60)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| minute.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(class: Class, score: f64) -> Verdict {
        Verdict {
            class,
            score,
            reasons: vec!["X".into()],
            lock_score: score,
            classifier_only: false,
            fingerprint: 0,
        }
    }

    fn held(count: u32) -> RecentHolds {
        RecentHolds {
            count,
            same_text_at: None,
            same_text_passed_at: None,
            other_text_passed_at: None,
        }
    }

    fn behaviour(points: u32) -> Assessment {
        Assessment {
            points,
            reasons: vec![format!("odd [+{points}]")],
            warming_up: false,
            known_recipients: false,
        }
    }

    #[test]
    fn the_ladder() {
        let p = Policy::default();
        let d = |c, s, b, h| decide(&verdict(c, s), &behaviour(b), held(h), &p, true).fate;
        assert_eq!(d(Class::Clean, 1.0, 0, 0), Fate::Allow);
        assert_eq!(d(Class::Clean, 1.0, 2, 0), Fate::Allow);
        assert_eq!(d(Class::Clean, 1.0, 3, 0), Fate::Hold);
        assert_eq!(d(Class::Spam, 7.0, 0, 0), Fate::Hold);
        assert_eq!(d(Class::Spam, 7.0, 1, 0), Fate::Hold);
        assert_eq!(d(Class::Spam, 7.0, 2, 0), Fate::Lock);
        assert_eq!(d(Class::Spam, 1000.0, 0, 0), Fate::Lock);
        assert_eq!(d(Class::Malware, 0.0, 0, 0), Fate::Lock);
        // The third hold in the window locks.
        assert_eq!(d(Class::Spam, 7.0, 0, 1), Fate::Hold);
        assert_eq!(d(Class::Spam, 7.0, 0, 2), Fate::Lock);
        assert_eq!(d(Class::Clean, 0.0, 5, 2), Fate::Lock);
        // While warming up, behaviour alone lets mail through.
        let warm = Assessment {
            warming_up: true,
            ..behaviour(9)
        };
        assert_eq!(
            decide(&verdict(Class::Clean, 0.0), &warm, held(0), &p, true).fate,
            Fate::Allow
        );
        assert_eq!(
            decide(&verdict(Class::Spam, 7.0), &warm, held(0), &p, true).fate,
            Fate::Lock
        );
    }

    #[test]
    fn copies_of_a_held_text_do_not_add_up_to_a_lock() {
        let p = Policy::default();
        // The 120th copy of a newsletter held at 10:00 (two holds in the
        // window: that newsletter and one other text).
        let again = RecentHolds {
            count: 2,
            same_text_at: Some(29_540_760),
            same_text_passed_at: None,
            other_text_passed_at: None,
        };
        let v = decide(&verdict(Class::Spam, 7.0), &behaviour(0), again, &p, true);
        assert_eq!(v.fate, Fate::Hold);
        assert!(
            v.reasons[0].ends_with(
                "(the same text as a message held at 2026-03-02 10:00 UTC: counts once towards a lock)"
            ),
            "{:?}",
            v.reasons
        );
        // A third text locks.
        let v = decide(&verdict(Class::Spam, 7.0), &behaviour(0), held(2), &p, true);
        assert_eq!(v.fate, Fate::Lock);
        assert!(v.reasons[0].starts_with("3 held messages within 1440 minutes"));
        // Unusual sending still locks a copy at once.
        let v = decide(&verdict(Class::Spam, 7.0), &behaviour(2), again, &p, true);
        assert_eq!(v.fate, Fate::Lock);
    }

    #[test]
    fn the_classifier_alone_holds_and_rules_lock() {
        let p = Policy::default();
        // 1.0 from a rule and 12.7 from the classifier, capped at the
        // spam threshold 6: 7.0, below the lock score 10.
        let capped = |score, lock_score| Verdict {
            lock_score,
            ..verdict(Class::Spam, score)
        };
        let newsletter = capped(13.7, 7.0);
        let v = decide(&newsletter, &behaviour(0), held(0), &p, true);
        assert_eq!(v.fate, Fate::Hold);
        assert_eq!(
            v.reasons[0],
            "spam score 13.7 (7.0 with the classifier capped), below the lock score 10.0: held for review"
        );
        let v = decide(&capped(19.1, 12.1), &behaviour(0), held(0), &p, true);
        assert_eq!(v.fate, Fate::Lock);
        assert!(
            v.reasons[0]
                .starts_with("spam score 19.1 (12.1 with the classifier capped) at or above")
        );
        // The seed's "every spam verdict locks" still is one setting away.
        let seed = Policy {
            content_lock_score: 0.0,
            ..Policy::default()
        };
        assert_eq!(
            decide(&newsletter, &behaviour(0), held(0), &seed, true).fate,
            Fate::Lock
        );
    }

    #[test]
    fn the_classifier_alone_does_not_hold_usual_mail_to_contacts() {
        let p = Policy::default();
        // A newsletter the classifier misjudges: 12.7 from it, no rule.
        let flagged = Verdict {
            classifier_only: true,
            reasons: vec!["CLASSIFIER (+12.7): spam probability 0.987".into()],
            lock_score: 6.0,
            ..verdict(Class::Spam, 12.7)
        };
        let usual = Assessment {
            known_recipients: true,
            reasons: Vec::new(),
            ..behaviour(0)
        };
        let v = decide(&flagged, &usual, held(0), &p, true);
        assert_eq!(v.fate, Fate::Allow);
        assert_eq!(
            v.reasons,
            [
                "spam score 12.7 from the classifier alone, to the user's contacts, with usual sending: let through",
                "content: CLASSIFIER (+12.7): spam probability 0.987"
            ]
        );
        // A copy to a new reader of a text that just went to contacts.
        let newcomer = Assessment {
            known_recipients: false,
            ..usual.clone()
        };
        let mailing = RecentHolds {
            same_text_passed_at: Some(29_540_760),
            ..held(0)
        };
        let v = decide(&flagged, &newcomer, mailing, &p, true);
        assert_eq!(v.fate, Fate::Allow);
        assert!(
            v.reasons[0]
                .contains("a copy of a text sent to the user's contacts at 2026-03-02 10:00 UTC")
        );
        // Anything else holds: a stranger, a point of unusual sending, a
        // new user, a rule that agrees, the setting or behaviour off.
        assert_eq!(
            decide(&flagged, &newcomer, held(0), &p, true).fate,
            Fate::Hold
        );
        let odd = Assessment {
            known_recipients: true,
            ..behaviour(1)
        };
        assert_eq!(decide(&flagged, &odd, mailing, &p, true).fate, Fate::Hold);
        let new_user = Assessment {
            warming_up: true,
            ..usual.clone()
        };
        assert_eq!(
            decide(&flagged, &new_user, held(0), &p, true).fate,
            Fate::Hold
        );
        let ruled = Verdict {
            classifier_only: false,
            ..flagged.clone()
        };
        assert_eq!(decide(&ruled, &usual, held(0), &p, true).fate, Fate::Hold);
        for off in [
            Policy {
                trust_contacts: false,
                ..Policy::default()
            },
            Policy {
                behaviour: false,
                ..Policy::default()
            },
        ] {
            assert_eq!(
                decide(&flagged, &usual, held(0), &off, true).fate,
                Fate::Hold
            );
        }
        // One text per window: another one is held, and says why.
        let second = RecentHolds {
            other_text_passed_at: Some(29_540_760),
            ..held(0)
        };
        let v = decide(&flagged, &usual, second, &p, true);
        assert_eq!(v.fate, Fate::Hold);
        assert!(v.reasons[0].ends_with("(another text only the classifier flagged went to the user's contacts at 2026-03-02 10:00 UTC: one such text per 1440 minutes goes out)"), "{:?}", v.reasons);
        // The seed's setting locks on every spam verdict, as before.
        let seed = Policy {
            content_lock_score: 0.0,
            ..Policy::default()
        };
        assert_eq!(
            decide(&flagged, &usual, held(0), &seed, true).fate,
            Fate::Lock
        );
    }

    #[test]
    fn no_auto_lock_means_hold_and_reasons_are_named() {
        let p = Policy::default();
        let v = decide(
            &verdict(Class::Malware, 0.0),
            &behaviour(3),
            held(0),
            &p,
            false,
        );
        assert_eq!(v.fate, Fate::Hold);
        assert!(v.reasons[0].contains("automatic lock is off"));
        assert!(v.reasons.iter().any(|r| r == "content: X"));
        assert!(v.reasons.iter().any(|r| r.starts_with("behaviour: odd")));
    }

    #[test]
    fn behaviour_off_ignores_points() {
        let p = Policy {
            behaviour: false,
            ..Policy::default()
        };
        let v = decide(
            &verdict(Class::Clean, 0.0),
            &behaviour(50),
            held(0),
            &p,
            true,
        );
        assert_eq!(v.fate, Fate::Allow);
    }
}
