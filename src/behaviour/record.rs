//! A profile as stored: a fixed binary layout of `ENCODED_LEN` bytes
//! (under 2 KiB per user whatever the user does), versioned so that a
//! record written by an older release still reads.

use super::profile::{HOLDS, HOUR_ADDRESSES, HOUR_DOMAINS, Profile};
use super::sketch::{GEN_BYTES, NETS};

/// Version 3 added each hold's text fingerprint, version 4 the text let
/// through to the user's contacts; older versions read with those empty.
const VERSION: u8 = 4;
const VERSION_3: u8 = 3;
const VERSION_2: u8 = 2;

/// Size of a stored profile.
pub const ENCODED_LEN: usize = ENCODED_LEN_V3 + 4 + 16;

/// Size of a version 3 profile (no passed text).
const ENCODED_LEN_V3: usize = ENCODED_LEN_V2 + HOLDS * 16 + 1;

/// Size of a version 2 profile (holds without fingerprints).
const ENCODED_LEN_V2: usize = 1
    + 2
    + 6 * 4
    + 2 * 4
    + 3 * 16
    + 4
    + (HOUR_DOMAINS + HOUR_ADDRESSES) * 4
    + 2 * GEN_BYTES
    + 2
    + NETS * 12
    + HOLDS * 4
    + 6 * 4;

// One byte holds the holds' released marks.
const _: () = assert!(HOLDS <= 8);

// The bound the design promises: at most 2 KiB of state per user.
const _: () = assert!(ENCODED_LEN <= 2048);

impl Profile {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(ENCODED_LEN);
        w.push(VERSION);
        w.extend_from_slice(&self.active_days.to_le_bytes());
        for f in self.baseline.hour.iter().chain(&self.baseline.day) {
            w.extend_from_slice(&f.to_le_bytes());
        }
        w.extend_from_slice(&self.day.to_le_bytes());
        w.extend_from_slice(&self.hour.to_le_bytes());
        for t in [self.this_hour, self.peak_today, self.today] {
            for v in [t.messages, t.recipients, t.new_recipients, t.domains] {
                w.extend_from_slice(&v.to_le_bytes());
            }
        }
        w.extend_from_slice(&self.failed_today.to_le_bytes());
        for v in self.hour_domains.iter().chain(&self.hour_addresses) {
            w.extend_from_slice(&v.to_le_bytes());
        }
        w.extend_from_slice(&self.contacts.current);
        w.extend_from_slice(&self.contacts.previous);
        w.extend_from_slice(&self.contacts.current_entries.to_le_bytes());
        for (net, first, last) in self.networks.slots {
            for v in [net, first, last] {
                w.extend_from_slice(&v.to_le_bytes());
            }
        }
        for h in self.holds {
            w.extend_from_slice(&h.minute.to_le_bytes());
        }
        for f in self.decayed {
            w.extend_from_slice(&f.to_le_bytes());
        }
        for h in self.holds {
            w.extend_from_slice(&h.text.to_le_bytes());
        }
        let released = self
            .holds
            .iter()
            .enumerate()
            .fold(0u8, |m, (i, h)| m | u8::from(h.released) << i);
        w.push(released);
        w.extend_from_slice(&self.passed.minute.to_le_bytes());
        w.extend_from_slice(&self.passed.text.to_le_bytes());
        w
    }

    /// Reads a stored profile; anything malformed (another version, a
    /// short record) reads as a fresh profile rather than an error, so a
    /// damaged record costs a warm-up, never a refused message.
    pub fn decode(b: &[u8]) -> Profile {
        Self::try_decode(b).unwrap_or_default()
    }

    fn try_decode(b: &[u8]) -> Option<Profile> {
        let version = match (b.first(), b.len()) {
            (Some(&VERSION), ENCODED_LEN) => VERSION,
            (Some(&VERSION_3), ENCODED_LEN_V3) => VERSION_3,
            (Some(&VERSION_2), ENCODED_LEN_V2) => VERSION_2,
            _ => return None,
        };
        let mut r = Reader { b, at: 1 };
        let mut p = Profile {
            active_days: u16::from_le_bytes(r.take()?),
            ..Profile::default()
        };
        for f in p.baseline.hour.iter_mut().chain(p.baseline.day.iter_mut()) {
            *f = sane(f32::from_le_bytes(r.take()?));
        }
        p.day = u32::from_le_bytes(r.take()?);
        p.hour = u32::from_le_bytes(r.take()?);
        for t in [&mut p.this_hour, &mut p.peak_today, &mut p.today] {
            t.messages = r.u32()?;
            t.recipients = r.u32()?;
            t.new_recipients = r.u32()?;
            t.domains = r.u32()?;
        }
        p.failed_today = r.u32()?;
        for v in p.hour_domains.iter_mut().chain(p.hour_addresses.iter_mut()) {
            *v = r.u32()?;
        }
        p.contacts.current = r.take()?;
        p.contacts.previous = r.take()?;
        p.contacts.current_entries = u16::from_le_bytes(r.take()?);
        for s in p.networks.slots.iter_mut() {
            *s = (r.u32()?, r.u32()?, r.u32()?);
        }
        for h in p.holds.iter_mut() {
            h.minute = r.u32()?;
        }
        for f in p.decayed.iter_mut() {
            *f = sane(f32::from_le_bytes(r.take()?));
        }
        if version >= VERSION_3 {
            for h in p.holds.iter_mut() {
                h.text = u128::from_le_bytes(r.take()?);
            }
            let [released] = r.take()?;
            for (i, h) in p.holds.iter_mut().enumerate() {
                h.released = released >> i & 1 == 1;
            }
        }
        if version >= VERSION {
            p.passed.minute = r.u32()?;
            p.passed.text = u128::from_le_bytes(r.take()?);
        }
        Some(p)
    }
}

/// Stored floats are ours, but a damaged one must not poison the maths.
fn sane(f: f32) -> f32 {
    if f.is_finite() && f >= 0.0 {
        f.min(1.0e9)
    } else {
        0.0
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.b.get(self.at..self.at + N)?;
        self.at += N;
        s.try_into().ok()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::profile::tests::{at, text};
    use crate::behaviour::profile::{Hold, Passed};

    #[test]
    fn encoding_is_fixed_and_under_2_kib() {
        let mut p = Profile::default();
        p.roll(at("2026-03-02T09:00:00Z"));
        for i in 0..2000 {
            p.contacts.add(&format!("r{i}@x.test"));
            p.count(3, 1, &[i + 1], 7);
        }
        p.networks.note(5, 3);
        p.note_hold(at("2026-03-02T09:30:00Z"), u128::MAX - 7);
        p.note_hold(at("2026-03-02T09:40:00Z"), text("kept"));
        p.release(text("kept"));
        assert!(p.holds[HOLDS - 1].released && !p.holds[HOLDS - 2].released);
        p.note_pass(at("2026-03-02T09:50:00Z"), text("sent"));
        let e = p.encode();
        assert_eq!(e.len(), ENCODED_LEN);
        assert!(e.len() <= 2048, "profile is {} bytes", e.len());
        assert_eq!(Profile::decode(&e), p);
        // Damaged records read as fresh profiles.
        assert_eq!(Profile::decode(&e[..100]), Profile::default());
        let mut bad = e.clone();
        bad[0] = 99;
        assert_eq!(Profile::decode(&bad), Profile::default());
        // A version 3 record (no passed text) keeps everything else.
        let mut v3 = e[..ENCODED_LEN_V3].to_vec();
        v3[0] = VERSION_3;
        let mut old = p.clone();
        old.passed = Passed::default();
        assert_eq!(Profile::decode(&v3), old);
        // A version 2 record (no fingerprints either) too.
        let mut v2 = e[..ENCODED_LEN_V2].to_vec();
        v2[0] = VERSION_2;
        for h in &mut old.holds[HOLDS - 2..] {
            *h = Hold {
                text: 0,
                released: false,
                ..*h
            };
        }
        assert_eq!(Profile::decode(&v2), old);
    }
}
