//! The behaviour signals of one message: how far the user's sending now is
//! from its own usual, in points, each with a reason that names the
//! numbers. 0 points: nothing unusual.

use std::net::IpAddr;

use jiff::Timestamp;
use serde::Serialize;

use super::profile::{Profile, day_of};
use super::sketch::{address_of, hash, network_of};

/// A value counts as unusual above `K` times the user's usual, and never
/// below the floor (so a quiet user may still have a busy hour).
const K: f32 = 2.5;
/// ... nor below this many times the user's recent peak.
const PEAK_FACTOR: f32 = 2.0;
/// Days of mail before the user's own baseline is trusted; until then the
/// floors are `WARM_FACTOR` times higher, so only blatant bursts count.
pub const WARM_DAYS: u16 = 3;
const WARM_FACTOR: u32 = 5;

/// (what, index into the baseline, floor)
const VOLUME: [(&str, usize, u32); 6] = [
    ("messages this hour", 0, 10),
    ("recipients this hour", 1, 25),
    ("new recipients this hour", 2, 6),
    ("recipient domains this hour", 3, 8),
    ("messages today", 4, 40),
    ("recipients today", 5, 100),
];

/// One message as the behaviour model sees it.
pub struct Observation<'a> {
    pub recipients: &'a [String],
    pub client: IpAddr,
    /// An IP-authorised user: its address is its identity, so new
    /// networks and address spread say nothing.
    pub fixed_address: bool,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Assessment {
    pub points: u32,
    pub reasons: Vec<String>,
    pub warming_up: bool,
    /// Every recipient is one the user has written to before.
    pub known_recipients: bool,
}

impl Assessment {
    fn add(&mut self, points: u32, reason: String) {
        if points > 0 {
            self.points += points;
            self.reasons.push(format!("{reason} [+{points}]"));
        }
    }
}

fn domain_hash(address: &str) -> u32 {
    let d = address.rsplit_once('@').map_or(address, |(_, d)| d);
    (hash(d.to_ascii_lowercase().as_bytes(), 5) as u32).max(1)
}

/// Counts the message into the profile (the current hour and day) and
/// says how unusual the sending is with it included.
pub fn observe(p: &mut Profile, o: &Observation) -> Assessment {
    p.roll(o.now);
    let mut distinct: Vec<&str> = o.recipients.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let new = distinct.iter().filter(|r| !p.contacts.knows(r)).count() as u32;
    let domains: Vec<u32> = distinct.iter().map(|r| domain_hash(r)).collect();
    p.count(distinct.len() as u32, new, &domains, address_of(o.client));

    let warm = p.active_days < WARM_DAYS;
    let mut a = Assessment {
        warming_up: warm,
        known_recipients: new == 0 && !distinct.is_empty(),
        ..Assessment::default()
    };
    let values = [
        p.this_hour.messages,
        p.this_hour.recipients,
        p.this_hour.new_recipients,
        p.this_hour.domains,
        p.today.messages,
        p.today.recipients,
    ];
    for (what, i, floor) in VOLUME {
        let floor = if warm { floor * WARM_FACTOR } else { floor };
        let usual = p.usual(i);
        let allowed = (K * usual)
            .max(PEAK_FACTOR * p.recent_peak(i))
            .max(floor as f32);
        let v = values[i] as f32;
        let points = if v > 2.0 * allowed {
            2
        } else {
            u32::from(v > allowed)
        };
        a.add(
            points,
            format!(
                "{what}: {} (usual {usual:.1}, allowed {allowed:.0})",
                values[i]
            ),
        );
    }
    // The share of this hour's recipients never written to before, against
    // the user's usual share (a salesman writes to strangers; an
    // accountant does not). Not judged while the user is new: everyone is
    // new to it then.
    let (new, all) = (p.this_hour.new_recipients, p.this_hour.recipients.max(1));
    if !warm && new >= 5 {
        let usual = if p.usual(1) > 0.0 {
            (p.usual(2) / p.usual(1)).min(1.0)
        } else {
            0.0
        };
        let allowed = (usual + 0.3).max(0.5);
        let share = new as f32 / all as f32;
        a.add(
            u32::from(share > allowed),
            format!(
                "new recipients' share this hour: {:.0}% ({new} of {all}; usual {:.0}%)",
                share * 100.0,
                usual * 100.0
            ),
        );
    }
    if !o.fixed_address {
        let net = network_of(o.client);
        let today = day_of(o.now);
        // Only once the user has a network from an earlier day to compare.
        if p.networks.any_before(today) && !p.networks.knows(net, today) {
            a.add(1, format!("client network new to the user ({})", o.client));
            // The stolen-account pattern: a new place, writing to strangers.
            a.add(
                u32::from(p.this_hour.new_recipients >= 3),
                format!(
                    "new recipients this hour, from a new network: {}",
                    p.this_hour.new_recipients
                ),
            );
        }
        let addresses = super::sketch::distinct(&p.hour_addresses);
        let points = match addresses {
            0..=2 => 0,
            3..=4 => 1,
            _ => 2,
        };
        a.add(points, format!("client addresses this hour: {addresses}"));
    }
    let (failed, sent) = (p.failed_today, p.today.recipients.max(1));
    let (f, n) = (u64::from(failed), u64::from(sent));
    let points = if failed >= 20 && f * 5 > n * 2 {
        2
    } else {
        u32::from(failed >= 5 && f * 5 > n)
    };
    a.add(
        points,
        format!("failed recipients today: {failed} of {sent}"),
    );
    a
}

/// After a message was let through: its recipients become contacts and
/// its network a known one. Held mail teaches nothing (an attacker's
/// recipients must not become the user's contacts).
pub fn remember(p: &mut Profile, o: &Observation) {
    for r in o.recipients {
        p.contacts.add(r);
    }
    if !o.fixed_address {
        p.networks.note(network_of(o.client), day_of(o.now));
    }
}

/// Failed or bounced recipients reported by delivery.
pub fn failed(p: &mut Profile, n: u32, now: Timestamp) {
    p.roll(now);
    p.failed_today = p.failed_today.saturating_add(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn rcpts(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}@d{i}.test")).collect()
    }

    /// Ten days of a quiet office user: 6 messages a day to 3 colleagues.
    fn office() -> (Profile, Timestamp, Vec<String>) {
        let mut p = Profile::default();
        let colleagues: Vec<String> = (0..3).map(|i| format!("c{i}@corp.test")).collect();
        let mut t: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        for _ in 0..10 {
            for m in 0..6 {
                let o = Observation {
                    recipients: &colleagues[m % 3..m % 3 + 1],
                    client: ip,
                    fixed_address: false,
                    now: t + SignedDuration::from_mins(m as i64 * 50),
                };
                assert_eq!(observe(&mut p, &o).points, 0);
                remember(&mut p, &o);
            }
            t += SignedDuration::from_hours(24);
        }
        (p, t, colleagues)
    }

    #[test]
    fn usual_mail_scores_nothing() {
        let (mut p, t, colleagues) = office();
        let o = Observation {
            recipients: &colleagues,
            client: "10.0.0.9".parse().unwrap(),
            fixed_address: false,
            now: t,
        };
        let a = observe(&mut p, &o);
        assert_eq!(a.points, 0, "{:?}", a.reasons);
        assert!(!a.warming_up && a.known_recipients);
    }

    #[test]
    fn burst_to_strangers_from_a_new_network_scores_high_and_says_why() {
        let (mut p, t, _) = office();
        let strangers = rcpts("victim", 40);
        let o = Observation {
            recipients: &strangers,
            client: "203.0.113.9".parse().unwrap(),
            fixed_address: false,
            now: t,
        };
        let a = observe(&mut p, &o);
        assert!(a.points >= 6, "{:?}", a.reasons);
        assert!(!a.known_recipients);
        let all = a.reasons.join("; ");
        assert!(all.contains("new recipients this hour: 40"), "{all}");
        assert!(all.contains("client network new to the user"), "{all}");
    }

    #[test]
    fn bounces_count() {
        let (mut p, t, colleagues) = office();
        failed(&mut p, 12, t);
        let o = Observation {
            recipients: &colleagues[..1],
            client: "10.0.0.5".parse().unwrap(),
            fixed_address: false,
            now: t,
        };
        let a = observe(&mut p, &o);
        assert!(
            a.reasons
                .join(";")
                .contains("failed recipients today: 12 of 1"),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn new_users_get_generous_floors_and_are_flagged() {
        let mut p = Profile::default();
        let list = rcpts("member", 100);
        let o = Observation {
            recipients: &list,
            client: "10.0.0.5".parse().unwrap(),
            fixed_address: false,
            now: "2026-03-02T09:00:00Z".parse().unwrap(),
        };
        let a = observe(&mut p, &o);
        // Reported (a spam verdict with them locks), but flagged: behaviour
        // alone does not hold a user still warming up (submission::fate::decide).
        assert!(a.warming_up);
        assert!(a.points <= 3, "{:?}", a.reasons);
    }
}
