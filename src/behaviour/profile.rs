//! A user's sending profile: its baseline, what it has done this hour and
//! this day, and sketches of its contacts and networks. Stored as a fixed
//! binary record (`behaviour::record`).

use jiff::Timestamp;

use super::sketch::{Contacts, Networks};
use crate::scan::fingerprint;

/// Distinct recipient domains counted per hour (more reads as "at least").
pub const HOUR_DOMAINS: usize = 48;
/// Distinct client addresses counted per hour.
pub const HOUR_ADDRESSES: usize = 8;
/// Recent holds remembered.
pub const HOLDS: usize = 8;

/// What one hour or one day holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub messages: u32,
    pub recipients: u32,
    /// Recipients not in the user's contacts.
    pub new_recipients: u32,
    pub domains: u32,
}

impl Tally {
    fn max(self, o: Tally) -> Tally {
        Tally {
            messages: self.messages.max(o.messages),
            recipients: self.recipients.max(o.recipients),
            new_recipients: self.new_recipients.max(o.new_recipients),
            domains: self.domains.max(o.domains),
        }
    }
}

/// The user's usual busiest hour and usual day, learnt over active days.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baseline {
    /// Busiest hour of a usual day.
    pub hour: [f32; 4],
    /// A usual day: messages, recipients.
    pub day: [f32; 2],
}

/// The user's recent holds, as the fate rule sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecentHolds {
    /// Holds in the window, this message not included; the copies of one
    /// text count once.
    pub count: u32,
    /// When a copy of this message's text was let through to the user's
    /// contacts although the classifier alone called it spam, if within
    /// the window (a mail merge to the user's readers, now reaching a new
    /// one).
    pub same_text_passed_at: Option<u32>,
    /// When another such text was let through, if within the window: one
    /// text per window goes out on trust (a mail merge is one text; a
    /// stolen account's spam runs are many).
    pub other_text_passed_at: Option<u32>,
    /// When a copy of this message's text was last held, if within the
    /// window (minutes since the epoch): this hold is then no new evidence.
    pub same_text_at: Option<u32>,
}

/// One recent hold: when, and of which text.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hold {
    /// Minutes since the epoch (0: an empty slot).
    pub minute: u32,
    /// `scan::fingerprint` of the held text; 0 for a hold for behaviour
    /// alone, which is never merged with another.
    pub text: u128,
    /// The admin released this text from the quarantine: no evidence any
    /// more, and its further copies in the window are vouched for.
    pub released: bool,
}

/// A text let through on trust: when (minutes since the epoch, 0: none),
/// and its `scan::fingerprint`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Passed {
    pub minute: u32,
    pub text: u128,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Days with mail folded into the baseline (the warm-up counts these).
    pub active_days: u16,
    pub baseline: Baseline,
    /// Day and hour numbers (UTC, since the epoch) the counters belong to.
    pub day: u32,
    pub hour: u32,
    pub this_hour: Tally,
    /// Busiest hour of the current day so far.
    pub peak_today: Tally,
    pub today: Tally,
    /// Recipients that failed or bounced today (from delivery outcomes).
    pub failed_today: u32,
    pub hour_domains: [u32; HOUR_DOMAINS],
    pub hour_addresses: [u32; HOUR_ADDRESSES],
    pub contacts: Contacts,
    pub networks: Networks,
    /// Recent holds, newest last; one per held text (`note_hold`).
    pub holds: [Hold; HOLDS],
    /// Slowly decaying peaks of the same six values as the baseline.
    pub decayed: [f32; 6],
    /// The latest text the classifier alone called spam that went out to
    /// the user's contacts with usual sending (`note_pass`).
    pub passed: Passed,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            active_days: 0,
            baseline: Baseline::default(),
            day: 0,
            hour: 0,
            this_hour: Tally::default(),
            peak_today: Tally::default(),
            today: Tally::default(),
            failed_today: 0,
            hour_domains: [0; HOUR_DOMAINS],
            hour_addresses: [0; HOUR_ADDRESSES],
            contacts: Contacts::default(),
            networks: Networks::default(),
            holds: [Hold::default(); HOLDS],
            decayed: [0.0; 6],
            passed: Passed::default(),
        }
    }
}

pub fn day_of(t: Timestamp) -> u32 {
    u32::try_from(t.as_second().max(0) / 86_400).unwrap_or(u32::MAX)
}

pub fn hour_of(t: Timestamp) -> u32 {
    u32::try_from(t.as_second().max(0) / 3600).unwrap_or(u32::MAX)
}

pub fn minute_of(t: Timestamp) -> u32 {
    u32::try_from(t.as_second().max(0) / 60).unwrap_or(u32::MAX)
}

/// Baseline learning: a running mean over the first days, then an
/// exponentially weighted mean in which one day counts for `ALPHA` and a
/// day's value is capped at `CAP` times the baseline (so one odd day,
/// or an attack, moves it little), combined with a slowly decaying peak
/// (so a sender with a weekly burst, a newsletter, keeps its allowance).
const ALPHA: f32 = 0.2;
const CAP: f32 = 3.0;
const PEAK_DECAY: f32 = 0.97;
const LEARN_DAYS: u16 = 5;

fn learn(base: f32, value: f32, days: u16, peak: &mut f32) -> f32 {
    let mean = if days < LEARN_DAYS {
        base + (value - base) / f32::from(days + 1)
    } else {
        let v = value.min(CAP * base.max(1.0));
        base + ALPHA * (v - base)
    };
    *peak = (*peak * PEAK_DECAY).max(value);
    mean
}

impl Profile {
    /// Moves the counters to the hour and day of `now`, folding a finished
    /// day into the baseline.
    pub fn roll(&mut self, now: Timestamp) {
        let (day, hour) = (day_of(now), hour_of(now));
        if hour != self.hour {
            self.hour = hour;
            self.this_hour = Tally::default();
            self.hour_domains = [0; HOUR_DOMAINS];
            self.hour_addresses = [0; HOUR_ADDRESSES];
        }
        if day != self.day {
            if self.today.messages > 0 {
                self.fold_day();
            }
            self.day = day;
            self.today = Tally::default();
            self.peak_today = Tally::default();
            self.failed_today = 0;
        }
    }

    fn fold_day(&mut self) {
        let d = self.active_days;
        let p = self.peak_today;
        let values = [
            p.messages as f32,
            p.recipients as f32,
            p.new_recipients as f32,
            p.domains as f32,
        ];
        let mut peaks = self.peaks();
        for (i, v) in values.into_iter().enumerate() {
            self.baseline.hour[i] = learn(self.baseline.hour[i], v, d, &mut peaks[i]);
        }
        let day_values = [self.today.messages as f32, self.today.recipients as f32];
        for (i, v) in day_values.into_iter().enumerate() {
            self.baseline.day[i] = learn(self.baseline.day[i], v, d, &mut peaks[4 + i]);
        }
        self.store_peaks(peaks);
        self.active_days = d.saturating_add(1);
    }

    /// The decaying peaks, kept alongside the means.
    fn peaks(&self) -> [f32; 6] {
        self.decayed
    }

    fn store_peaks(&mut self, p: [f32; 6]) {
        self.decayed = p;
    }

    /// The user's usual value `i` (0..4 the busiest hour, 4..6 the day).
    pub fn usual(&self, i: usize) -> f32 {
        if i < 4 {
            self.baseline.hour[i]
        } else {
            self.baseline.day[i - 4]
        }
    }

    /// The most the user did recently (a peak that decays by 3% per
    /// active day: a weekly newsletter keeps its allowance, a burst from
    /// months ago does not).
    pub fn recent_peak(&self, i: usize) -> f32 {
        self.decayed[i]
    }

    /// Counts one message attempt in the current hour and day.
    pub fn count(&mut self, recipients: u32, new: u32, domains: &[u32], address: u32) {
        for d in domains {
            super::sketch::insert_distinct(&mut self.hour_domains, *d);
        }
        super::sketch::insert_distinct(&mut self.hour_addresses, address);
        let h = &mut self.this_hour;
        h.messages = h.messages.saturating_add(1);
        h.recipients = h.recipients.saturating_add(recipients);
        h.new_recipients = h.new_recipients.saturating_add(new);
        h.domains = super::sketch::distinct(&self.hour_domains);
        let t = &mut self.today;
        t.messages = t.messages.saturating_add(1);
        t.recipients = t.recipients.saturating_add(recipients);
        t.new_recipients = t.new_recipients.saturating_add(new);
        self.peak_today = self.peak_today.max(self.this_hour);
    }

    /// Holds within the last `window_minutes` (this one not included),
    /// the copies of one text counting once, released texts not at all.
    pub fn recent_holds(&self, now: Timestamp, window_minutes: u32) -> u32 {
        let since = minute_of(now).saturating_sub(window_minutes);
        self.holds
            .iter()
            .filter(|h| h.minute != 0 && h.minute > since && !h.released)
            .count() as u32
    }

    /// The hold within the window of the same text as `text` (a
    /// `scan::fingerprint`; 0 matches nothing).
    pub fn held_before(&self, text: u128, now: Timestamp, window_minutes: u32) -> Option<Hold> {
        let since = minute_of(now).saturating_sub(window_minutes);
        self.holds
            .iter()
            .find(|h| h.minute > since && fingerprint::same_text(h.text, text))
            .copied()
    }

    /// The text let through to the user's contacts within the window, if
    /// any: when, and whether `text` (a `scan::fingerprint`; 0 matches
    /// nothing) is a copy of it.
    pub fn passed_within(
        &self,
        text: u128,
        now: Timestamp,
        window_minutes: u32,
    ) -> Option<(u32, bool)> {
        let since = minute_of(now).saturating_sub(window_minutes);
        let p = self.passed;
        (p.minute > since).then(|| (p.minute, fingerprint::same_text(p.text, text)))
    }

    /// Remembers a text let through to the user's contacts although the
    /// classifier alone called it spam (one slot: the latest, as a mail
    /// merge is one text at a time; each copy refreshes it, like a hold).
    /// A text too short for a fingerprint (0) is remembered too: it uses
    /// up the window's one text, and no other text is its copy.
    pub fn note_pass(&mut self, now: Timestamp, text: u128) {
        self.passed = Passed {
            minute: minute_of(now).max(1),
            text,
        };
    }

    /// The admin released `text` from the quarantine: its hold is no
    /// evidence any more, and its copies are vouched for.
    pub fn release(&mut self, text: u128) {
        for h in &mut self.holds {
            if fingerprint::same_text(h.text, text) {
                h.released = true;
            }
        }
    }

    /// Forgets the holds made at or before `minute` (minutes since the
    /// epoch): an admin unlocked the user then, having seen them. Later
    /// holds stay, newest last.
    pub fn forget_holds_until(&mut self, minute: u32) {
        // In place (every fleet read of a profile applies an unlock mark),
        // moving the kept holds to the end in their order.
        let mut end = HOLDS;
        for i in (0..HOLDS).rev() {
            if self.holds[i].minute > minute {
                end -= 1;
                self.holds[end] = self.holds[i];
            }
        }
        self.holds[..end].fill(Hold::default());
    }

    /// Remembers a hold. A copy of a text held before refreshes that hold
    /// rather than taking a slot: a held mail merge is one hold, and
    /// cannot push the user's other holds out.
    pub fn note_hold(&mut self, now: Timestamp, text: u128) {
        let at = self
            .holds
            .iter()
            .position(|h| h.minute != 0 && fingerprint::same_text(h.text, text))
            .unwrap_or(0);
        self.holds[at..].rotate_left(1);
        self.holds[HOLDS - 1] = Hold {
            minute: minute_of(now).max(1),
            text,
            released: false,
        };
    }
}

/// What the API shows of a profile (`outguard user show`).
pub fn summary(p: &Profile, now: Timestamp) -> serde_json::Value {
    let tally = |t: &Tally| {
        serde_json::json!({
            "messages": t.messages,
            "recipients": t.recipients,
            "new_recipients": t.new_recipients,
            "domains": t.domains,
        })
    };
    let round = |f: f32| (f64::from(f) * 10.0).round() / 10.0;
    let (this_hour, today) = if p.day == day_of(now) {
        let hour = if p.hour == hour_of(now) {
            p.this_hour
        } else {
            Tally::default()
        };
        (hour, (p.today, p.failed_today))
    } else {
        (Tally::default(), (Tally::default(), 0))
    };
    serde_json::json!({
        "active_days": p.active_days,
        "warming_up": p.active_days < super::assess::WARM_DAYS,
        "usual_busiest_hour": {
            "messages": round(p.usual(0)),
            "recipients": round(p.usual(1)),
            "new_recipients": round(p.usual(2)),
            "domains": round(p.usual(3)),
        },
        "usual_day": { "messages": round(p.usual(4)), "recipients": round(p.usual(5)) },
        "this_hour": tally(&this_hour),
        "today": tally(&today.0),
        "failed_recipients_today": today.1,
        "known_networks": p.networks.slots.iter().filter(|s| s.0 != 0).count(),
        "holds_last_day": p.recent_holds(now, 1440),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(in crate::behaviour) fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn baseline_learns_usual_days_and_resists_one_odd_day() {
        let mut p = Profile::default();
        let mut t = at("2026-03-02T10:00:00Z");
        for _ in 0..10 {
            p.roll(t);
            for _ in 0..4 {
                p.count(2, 0, &[1], 1);
            }
            t += jiff::SignedDuration::from_hours(24);
        }
        p.roll(t);
        assert_eq!(p.active_days, 10);
        assert!((p.baseline.hour[0] - 4.0).abs() < 0.01);
        for _ in 0..400 {
            p.count(50, 50, &[1], 1);
        }
        p.roll(t + jiff::SignedDuration::from_hours(24));
        // Capped at 3x: one huge day moves the mean to at most 4 + 0.2*8.
        assert!(p.baseline.hour[0] < 6.0, "{:?}", p.baseline);
    }

    #[test]
    fn holds_expire_from_the_window() {
        let mut p = Profile::default();
        p.note_hold(at("2026-03-02T10:00:00Z"), 0);
        p.note_hold(at("2026-03-02T11:00:00Z"), 0);
        assert_eq!(p.recent_holds(at("2026-03-02T11:30:00Z"), 60), 1);
        assert_eq!(p.recent_holds(at("2026-03-02T11:30:00Z"), 1440), 2);
    }

    /// 200 words of letters only (digits all read as 9), each `prefix`
    /// and two letters.
    fn words(prefix: &str) -> Vec<String> {
        (0..200u8)
            .map(|i| {
                format!(
                    "{prefix}{}{}",
                    char::from(b'a' + i / 26),
                    char::from(b'a' + i % 26)
                )
            })
            .collect()
    }

    /// A fingerprint of a text of 200 words, the fourth of which is `word`:
    /// such texts are copies of one another.
    pub(crate) fn text(word: &str) -> u128 {
        let mut words = words("w");
        words[3] = word.to_string();
        fingerprint::of(None, [words.join(" ").as_str()].into_iter())
    }

    /// A fingerprint of a text of 200 words all starting with `word`: no
    /// copy of another such text.
    pub(crate) fn distinct_text(word: &str) -> u128 {
        fingerprint::of(None, [words(word).join(" ").as_str()].into_iter())
    }

    #[test]
    fn copies_of_one_held_text_are_one_hold() {
        let mut p = Profile::default();
        let now = at("2026-03-02T12:00:00Z");
        p.note_hold(at("2026-03-02T09:00:00Z"), 0);
        p.note_hold(at("2026-03-02T10:00:00Z"), text("alice"));
        // A hundred personalised copies of the same text, then another
        // text: the first hold is still remembered.
        for i in 0..100u8 {
            let copy = text(&format!(
                "name{}{}",
                char::from(b'a' + i / 26),
                char::from(b'a' + i % 26)
            ));
            assert_eq!(
                p.held_before(copy, now, 1440).map(|h| h.minute),
                Some(p.holds[HOLDS - 1].minute)
            );
            p.note_hold(at("2026-03-02T10:30:00Z"), copy);
        }
        let other = fingerprint::of(None, ["an entirely different text of many other words, not one of which the newsletter had in it at all"].into_iter());
        assert!(p.held_before(other, now, 1440).is_none());
        p.note_hold(at("2026-03-02T11:00:00Z"), other);
        assert_eq!(p.recent_holds(now, 1440), 3);
        assert_eq!(
            p.held_before(other, now, 1440).map(|h| h.minute),
            Some(minute_of(at("2026-03-02T11:00:00Z")))
        );
        // Holds for behaviour alone (no text) never merge.
        assert!(p.held_before(0, now, 1440).is_none());
        p.note_hold(now, 0);
        p.note_hold(now, 0);
        assert_eq!(
            p.recent_holds(now + jiff::SignedDuration::from_mins(1), 1440),
            5
        );
        // Outside the window nothing is "held before".
        assert!(p.held_before(other, now, 30).is_none());
        // A released text is no evidence any more, but still known.
        p.release(other);
        assert_eq!(
            p.recent_holds(now + jiff::SignedDuration::from_mins(1), 1440),
            4
        );
        assert!(p.held_before(other, now, 1440).is_some_and(|h| h.released));
    }

    #[test]
    fn an_unlock_forgets_the_holds_it_saw_and_no_later_one() {
        let mut p = Profile::default();
        let t0 = at("2026-03-02T10:00:00Z");
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            p.note_hold(
                t0 + jiff::SignedDuration::from_mins(i as i64),
                distinct_text(name),
            );
        }
        p.forget_holds_until(minute_of(t0) + 1);
        assert_eq!(
            p.recent_holds(t0 + jiff::SignedDuration::from_mins(5), 1440),
            1
        );
        assert!(p.held_before(distinct_text("c"), t0, 1440).is_some());
        assert!(p.held_before(distinct_text("a"), t0, 1440).is_none());
        // Newest last: the next hold keeps the kept one.
        p.note_hold(t0 + jiff::SignedDuration::from_mins(9), distinct_text("d"));
        assert_eq!(p.holds[HOLDS - 2].text, distinct_text("c"));
        p.forget_holds_until(u32::MAX);
        assert_eq!(p.holds, [Hold::default(); HOLDS]);
    }

    #[test]
    fn a_passed_mailing_is_known_by_its_text() {
        let mut p = Profile::default();
        let start = at("2026-03-10T10:00:00Z");
        assert!(p.passed_within(text("ann"), start, 1440).is_none());
        p.note_pass(start, text("ann"));
        // Each copy refreshes it.
        p.note_pass(at("2026-03-10T10:30:00Z"), text("bert"));
        let last = minute_of(at("2026-03-10T10:30:00Z"));
        let later = at("2026-03-10T11:00:00Z");
        assert_eq!(
            p.passed_within(text("chloe"), later, 1440),
            Some((last, true))
        );
        assert_eq!(p.passed_within(0, later, 1440), Some((last, false)));
        // Another text is told apart; after the window nothing is passed.
        let other = fingerprint::of(None, ["an entirely different text of many other words, not one of which the newsletter had in it at all"].into_iter());
        assert_eq!(p.passed_within(other, later, 1440), Some((last, false)));
        assert!(
            p.passed_within(text("dev"), at("2026-03-11T10:31:00Z"), 1440)
                .is_none()
        );
        // A text without a fingerprint uses up the window too.
        let mut short = Profile::default();
        short.note_pass(start, 0);
        assert_eq!(
            short.passed_within(0, later, 1440),
            Some((minute_of(start), false))
        );
        // The next mailing replaces it.
        p.note_pass(at("2026-03-17T10:00:00Z"), other);
        let next = at("2026-03-17T10:05:00Z");
        assert_eq!(
            p.passed_within(text("emil"), next, 1440).map(|p| p.1),
            Some(false)
        );
        assert_eq!(p.passed_within(other, next, 1440).map(|p| p.1), Some(true));
    }
}
