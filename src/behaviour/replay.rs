//! What a commit did to a user's profile, kept as a list of changes so
//! that it can be done again on a newer copy. In a fleet, two boxes
//! committing for one user at once both start from the same shared
//! profile; the second to write back finds the first's and makes its own
//! changes again on it (`store::fleet::behaviour`), so the profile counts
//! the mail of both (without this it counted 1/N of a user's mail spread
//! over N boxes under load: bench/fleet.py).

use std::net::IpAddr;

use jiff::Timestamp;

use super::assess::{self, Observation};
use super::profile::{Profile, hour_of};

/// One message as observed, owning what `Observation` borrows.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub recipients: Vec<String>,
    pub client: IpAddr,
    pub fixed_address: bool,
    pub now: Timestamp,
}

impl Seen {
    pub fn of(o: &Observation<'_>) -> Seen {
        Seen {
            recipients: o.recipients.to_vec(),
            client: o.client,
            fixed_address: o.fixed_address,
            now: o.now,
        }
    }

    fn observation(&self, p: &Profile) -> Observation<'_> {
        // Never back in time: a profile another box already moved to a
        // later hour keeps that hour (rolling back would empty it).
        let now = if hour_of(self.now) < p.hour {
            Timestamp::from_second(i64::from(p.hour) * 3600).unwrap_or(self.now)
        } else {
            self.now
        };
        Observation {
            recipients: &self.recipients,
            client: self.client,
            fixed_address: self.fixed_address,
            now,
        }
    }
}

/// A change to a profile, in the order the commit made them.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `assess::observe`: the message counted into the hour and the day.
    Observe(Seen),
    /// `assess::remember`: let through, its recipients became contacts.
    Remember(Seen),
    /// `Profile::note_pass`: caught, yet let through to contacts.
    Pass(Timestamp, u128),
    /// `Profile::note_hold`: held.
    Hold(Timestamp, u128),
}

/// Makes `changes` again on `p`.
pub fn replay(p: &mut Profile, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Observe(s) => {
                let o = s.observation(p);
                assess::observe(p, &o);
            }
            Change::Remember(s) => {
                let o = s.observation(p);
                assess::remember(p, &o);
            }
            Change::Pass(at, text) => p.note_pass(*at, *text),
            Change::Hold(at, text) => p.note_hold(*at, *text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(n: usize, at: &str) -> Seen {
        Seen {
            recipients: (0..n).map(|i| format!("r{i}@x{i}.test")).collect(),
            client: "10.1.2.3".parse().unwrap(),
            fixed_address: false,
            now: at.parse().unwrap(),
        }
    }

    /// Replaying what was done gives what doing it gave, byte for byte.
    #[test]
    fn replay_equals_doing() {
        let mut done = Profile::default();
        let mut log = Vec::new();
        for (i, at) in [
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:20:00Z",
            "2026-03-03T10:00:00Z",
        ]
        .iter()
        .enumerate()
        {
            let s = seen(i + 2, at);
            let o = s.observation(&done);
            assess::observe(&mut done, &o);
            log.push(Change::Observe(s.clone()));
            if i == 1 {
                done.note_hold(s.now, 7);
                log.push(Change::Hold(s.now, 7));
            } else {
                let o = s.observation(&done);
                assess::remember(&mut done, &o);
                log.push(Change::Remember(s.clone()));
                done.note_pass(s.now, 9);
                log.push(Change::Pass(s.now, 9));
            }
        }
        let mut again = Profile::default();
        replay(&mut again, &log);
        assert_eq!(again.encode(), done.encode());
    }

    /// Two boxes' changes made on one profile count both boxes' mail.
    #[test]
    fn both_boxes_counted() {
        let a = [Change::Observe(seen(1, "2026-03-02T09:00:00Z"))];
        let b = [
            Change::Observe(seen(3, "2026-03-02T09:00:01Z")),
            Change::Observe(seen(2, "2026-03-02T09:00:02Z")),
        ];
        let mut shared = Profile::default();
        replay(&mut shared, &a);
        replay(&mut shared, &b);
        assert_eq!(shared.today.messages, 3);
        assert_eq!(shared.this_hour.recipients, 6);
    }

    /// A change from an earlier hour counts into the profile's hour and
    /// does not empty it.
    #[test]
    fn never_rolls_back() {
        let mut p = Profile::default();
        replay(&mut p, &[Change::Observe(seen(1, "2026-03-02T10:00:05Z"))]);
        replay(&mut p, &[Change::Observe(seen(1, "2026-03-02T09:59:59Z"))]);
        assert_eq!(p.this_hour.messages, 2);
        assert_eq!(p.today.messages, 2);
    }
}
