//! The admin's decisions on a user's holds (an unlock forgetting them, a
//! release vouching for a text), kept in the shared store beside the
//! user's profile (`og:bm:{user}`) and applied to the profile every time a
//! committer reads it. A committer writes back a whole profile it read
//! before the decision (its batch was in flight); without the marks that
//! write would undo the decision on every box, and an unlocked user would
//! be locked again by the holds the admin had just reviewed.
//!
//! Layout: the minute of the latest unlock (u32, big-endian), then the
//! fingerprints of the latest released texts (16 bytes each, newest
//! last). Written by one script, so two boxes' decisions never overwrite
//! each other.

use std::sync::OnceLock;

use crate::behaviour::Profile;
use crate::behaviour::profile::minute_of;
use crate::store::ProfileChange;

/// Released texts remembered: twice the holds a profile keeps, so every
/// hold a profile can still have is covered.
const RELEASED: usize = 2 * crate::behaviour::profile::HOLDS;
/// The marks outlive the profile they apply to by a day.
const TTL: u64 = super::behaviour::TTL + 86_400;

fn script() -> &'static redis::Script {
    static S: OnceLock<redis::Script> = OnceLock::new();
    S.get_or_init(|| {
        redis::Script::new(
            r"
local v = redis.call('GET', KEYS[1])
if not v or #v < 4 then v = string.rep('\0', 4) end
local head, rest = v:sub(1, 4), v:sub(5)
if ARGV[1] == 'unlock' then
  head = ARGV[2]
else
  local out = {}
  for i = 1, #rest - 15, 16 do
    local t = rest:sub(i, i + 15)
    if t ~= ARGV[2] then out[#out + 1] = t end
  end
  out[#out + 1] = ARGV[2]
  while #out > tonumber(ARGV[3]) do table.remove(out, 1) end
  rest = table.concat(out)
end
redis.call('SET', KEYS[1], head .. rest, 'EX', ARGV[4])
return 1
",
        )
    })
}

/// Records an unlock or a release (other changes are statistics, not
/// decisions, and have no mark).
pub(super) fn note(
    c: &mut redis::Connection,
    key: &str,
    change: &ProfileChange,
) -> redis::RedisResult<()> {
    let (kind, value) = match change {
        ProfileChange::ClearHolds(at) => ("unlock", minute_of(*at).to_be_bytes().to_vec()),
        ProfileChange::Released(_, text) if *text != 0 => ("release", text.to_be_bytes().to_vec()),
        _ => return Ok(()),
    };
    script()
        .key(key)
        .arg(kind)
        .arg(value)
        .arg(RELEASED)
        .arg(TTL)
        .invoke::<i64>(c)
        .map(drop)
}

/// Applies the marks (`bytes`, as stored; anything malformed is ignored
/// as a whole) to a profile read from the shared store.
pub(super) fn apply(bytes: &[u8], p: &mut Profile) {
    let Some((head, rest)) = bytes.split_first_chunk::<4>() else {
        return;
    };
    if rest.len() % 16 != 0 {
        return;
    }
    p.forget_holds_until(u32::from_be_bytes(*head));
    for t in rest.chunks_exact(16) {
        p.release(u128::from_be_bytes(t.try_into().expect("16 bytes")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::profile::tests::distinct_text as text;

    #[test]
    fn marks_forget_and_vouch() {
        let mut p = Profile::default();
        let t0: jiff::Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            p.note_hold(
                t0 + jiff::SignedDuration::from_mins(10 * i as i64),
                text(name),
            );
        }
        let mut marks = (minute_of(t0) + 5).to_be_bytes().to_vec();
        marks.extend(text("c").to_be_bytes());
        apply(&marks, &mut p);
        let later = t0 + jiff::SignedDuration::from_mins(30);
        assert!(p.held_before(text("a"), later, 1440).is_none());
        assert!(
            p.held_before(text("b"), later, 1440)
                .is_some_and(|h| !h.released)
        );
        assert!(
            p.held_before(text("c"), later, 1440)
                .is_some_and(|h| h.released)
        );
        // Damaged marks change nothing.
        let before = p.clone();
        apply(&[1, 2, 3, 4, 5], &mut p);
        apply(&[0xff; 3], &mut p);
        assert_eq!(p, before);
    }

    /// The script against a real redis-server on loopback (CI installs
    /// it; without it the test says so and passes): unlocks overwrite,
    /// releases are kept once each, the newest `RELEASED`.
    #[test]
    fn the_script_keeps_the_latest_decisions() {
        let Some((_server, mut c)) = super::super::test_server::start() else {
            return;
        };
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let read =
            |c: &mut redis::Connection| -> Vec<u8> { redis::cmd("GET").arg("m").query(c).unwrap() };
        let release = |n: u128| ProfileChange::Released(Vec::new(), n);
        note(&mut c, "m", &release(7)).unwrap();
        assert_eq!(read(&mut c), [&[0u8; 4][..], &7u128.to_be_bytes()].concat());
        note(
            &mut c,
            "m",
            &ProfileChange::ClearHolds(at("2026-03-02T10:00:00Z")),
        )
        .unwrap();
        note(
            &mut c,
            "m",
            &ProfileChange::ClearHolds(at("2026-03-02T11:00:00Z")),
        )
        .unwrap();
        // Statistics and text-less releases leave no mark.
        note(
            &mut c,
            "m",
            &ProfileChange::Failed(3, at("2026-03-02T11:00:00Z")),
        )
        .unwrap();
        note(&mut c, "m", &release(0)).unwrap();
        let head = minute_of(at("2026-03-02T11:00:00Z")).to_be_bytes();
        assert_eq!(read(&mut c), [&head[..], &7u128.to_be_bytes()].concat());
        for n in 1..=RELEASED as u128 + 3 {
            note(&mut c, "m", &release(n)).unwrap();
        }
        note(&mut c, "m", &release(10)).unwrap();
        let v = read(&mut c);
        let texts: Vec<u128> = v[4..]
            .chunks_exact(16)
            .map(|t| u128::from_be_bytes(t.try_into().unwrap()))
            .collect();
        let mut want: Vec<u128> = (4..=RELEASED as u128 + 3).filter(|n| *n != 10).collect();
        want.push(10);
        assert_eq!((&v[..4], texts), (&head[..], want));
        let ttl: i64 = redis::cmd("TTL").arg("m").query(&mut c).unwrap();
        assert!(ttl > 45 * 86_400, "{ttl}");
    }
}
