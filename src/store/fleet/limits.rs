//! The sending limits across the fleet. At commit time one Lua script
//! reads the user's four counters (messages per day, week and month,
//! recipients per day), refuses if one would pass its limit and otherwise
//! counts the message: the server runs the script atomically, so boxes
//! racing for the last message of a limit cannot both get it.
//!
//! While the store is unreachable the box counts on its own: each limit
//! at `degraded_fraction` of its value for what the box accepts during
//! the outage, and the full limit for that plus the last shared counts
//! it saw. Across N boxes a limit L is then passed by at most
//! (N-1)·⌊fraction·L⌋ (docs/FLEET.md); the owed usage is added to the
//! shared counters when the store is back.

use std::sync::atomic::Ordering;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::behaviour::{Pending, Read, Written, settle};
use super::{CACHE_USERS, Fleet, keys};
use crate::behaviour::Profile;
use crate::policy::limits::{Counts, Exceeded};
use crate::policy::windows::{self, Windows};
use crate::policy::{Ask, Refusal, within_limits};
use crate::store::AcceptError;
use crate::users::EffectiveSettings;

/// Checks and counts a whole commit batch in one round trip. For each
/// message i (in order, so two of one user in a batch see each other):
/// KEYS[4i+1..4i+4]: day, week, month, recipients-day counters;
/// ARGV[9i+1..9i+9]: check (0/1), the four limits (0 = none),
/// recipients, then the expiry of day, week and month counters (s).
/// Returns 5 integers per message: 1 and the counts after, or 0 and the
/// counts now when a limit would pass.
const SCRIPT: &str = r"
local out = {}
for j = 0, #KEYS / 4 - 1 do
  local k, a = j * 4, j * 9
  local c = {}
  for i = 1, 4 do c[i] = tonumber(redis.call('GET', KEYS[k + i]) or '0') end
  local add = {1, 1, 1, tonumber(ARGV[a + 6])}
  local ok = 1
  if ARGV[a + 1] == '1' then
    for i = 1, 4 do
      local l = tonumber(ARGV[a + 1 + i])
      if l > 0 and c[i] + add[i] > l then ok = 0 end
    end
  end
  if ok == 1 then
    local ttl = {ARGV[a + 7], ARGV[a + 8], ARGV[a + 9], ARGV[a + 7]}
    for i = 1, 4 do
      c[i] = redis.call('INCRBY', KEYS[k + i], add[i])
      redis.call('EXPIRE', KEYS[k + i], ttl[i])
    end
  end
  out[#out + 1] = ok
  for i = 1, 4 do out[#out + 1] = c[i] end
end
return out
";

/// Counters outlive their window by a margin (timezones, clock skew).
pub(super) const TTL_DAY: u64 = 3 * 86_400;
pub(super) const TTL_WEEK: u64 = 15 * 86_400;
pub(super) const TTL_MONTH: u64 = 63 * 86_400;

fn script() -> &'static redis::Script {
    static S: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    S.get_or_init(|| redis::Script::new(SCRIPT))
}

/// One message about to be committed.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub user: String,
    pub windows: Windows,
    pub settings: EffectiveSettings,
    pub recipients: u32,
    /// Whether the limits apply (false: counted whatever the limits).
    pub check: bool,
    pub now: Timestamp,
    pub tz: TimeZone,
}

/// Where a granted reservation was counted (to take it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Shared,
    /// Counted on this box alone, while degraded.
    Local,
}

impl Fleet {
    /// Counts each message of a commit batch fleet-wide, or says which
    /// limit refuses it. Called by the committer before it decides the
    /// batch: a message then not queued (held, refused for another
    /// reason) is given back with `release`; if the commit fails, the
    /// shared count is too high, never too low.
    /// The same round trip reads the shared behaviour profiles of
    /// `profiles_of` (None while degraded: not read).
    /// `write_first`: profiles changed by earlier commits, written in the
    /// same round trip before anything is read (`behaviour`: those another
    /// box wrote meanwhile stay, rebased; left as is if the round trip
    /// does not happen, dropped if it fails).
    pub fn reserve(
        &self,
        rs: &[Reservation],
        profiles_of: &[&str],
        write_first: &mut Vec<Pending>,
    ) -> (Vec<Result<Counted, AcceptError>>, Option<Vec<Read>>) {
        if rs.is_empty() {
            return (Vec::new(), None);
        }
        if !self.degraded() {
            match self.shared(rs, profiles_of, write_first) {
                Ok((outcomes, reads)) => return (outcomes, Some(reads)),
                Err(e) => self.enter_degraded(&e.to_string()),
            }
        }
        write_first.clear();
        let local = rs
            .iter()
            .map(|r| self.local(r).map(|()| Counted::Local))
            .collect();
        (local, None)
    }

    /// Takes back reservations of messages that were not queued. Best
    /// effort: if the store is gone meanwhile they stay counted.
    pub fn release(&self, rs: &[(Reservation, Counted)]) {
        let mut shared = redis::pipe();
        let mut any = false;
        for (r, counted) in rs {
            match counted {
                Counted::Local => {
                    let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(u) = owed.get_mut(&r.user) {
                        u.subtract(&r.windows, 1, r.recipients);
                    }
                }
                Counted::Shared => {
                    any = true;
                    let w = &r.windows;
                    shared
                        .decr(keys::usage(&r.user, "d", &w.day), 1)
                        .ignore()
                        .decr(keys::usage(&r.user, "w", &w.week), 1)
                        .ignore()
                        .decr(keys::usage(&r.user, "m", &w.month), 1)
                        .ignore()
                        .decr(keys::usage(&r.user, "r", &w.day), r.recipients)
                        .ignore();
                }
            }
        }
        if any {
            let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(conn) = guard.as_mut()
                && let Err(e) = shared.query::<()>(conn)
            {
                tracing::warn!(error = %e, "fleet: giving back unused counts failed; they stay counted");
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn shared(
        &self,
        rs: &[Reservation],
        profiles_of: &[&str],
        write_first: &mut Vec<Pending>,
    ) -> redis::RedisResult<(Vec<Result<Counted, AcceptError>>, Vec<Read>)> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        let Some(conn) = guard.as_mut() else {
            unreachable!("connected above")
        };
        // EVALSHA and MGET in one pipeline: one round trip per batch.
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(script().get_hash()).arg(rs.len() * 4);
        for r in rs {
            let w = &r.windows;
            eval.arg(keys::usage(&r.user, "d", &w.day))
                .arg(keys::usage(&r.user, "w", &w.week))
                .arg(keys::usage(&r.user, "m", &w.month))
                .arg(keys::usage(&r.user, "r", &w.day));
        }
        for r in rs {
            let s = &r.settings;
            eval.arg(u8::from(r.check))
                .arg(s.limit_per_day)
                .arg(s.limit_per_week)
                .arg(s.limit_per_month)
                .arg(s.max_recipients_per_day)
                .arg(r.recipients)
                .arg(TTL_DAY)
                .arg(TTL_WEEK)
                .arg(TTL_MONTH);
        }
        let mut p = redis::pipe();
        super::behaviour::add_writes(&mut p, write_first);
        p.add_command(eval);
        // The profiles, then the admin's marks to apply to them.
        let mut mget = redis::cmd("MGET");
        let mut mget_marks = redis::cmd("MGET");
        for u in profiles_of {
            mget.arg(keys::profile(u));
            mget_marks.arg(keys::marks(u));
        }
        if !profiles_of.is_empty() {
            p.add_command(mget).add_command(mget_marks);
        }
        let run =
            |p: &redis::Pipeline, conn: &mut redis::Connection| p.query::<Vec<redis::Value>>(conn);
        let replies = match run(&p, conn) {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // A new (or restarted) server: load the script once.
                script().load(conn)?;
                run(&p, conn)?
            }
            other => other?,
        };
        drop(guard);
        let mut replies = replies.into_iter();
        let written = replies
            .by_ref()
            .take(write_first.len())
            .map(Written::of)
            .collect::<redis::RedisResult<Vec<_>>>()?;
        settle(write_first, written);
        let reply: Vec<u64> = redis::from_redis_value(replies.next().unwrap_or(redis::Value::Nil))?;
        let mut bytes = || -> redis::RedisResult<Vec<Option<Vec<u8>>>> {
            match replies.next() {
                Some(v) => Ok(redis::from_redis_value(v)?),
                None => Ok(Vec::new()),
            }
        };
        let (stored, marked) = (bytes()?, bytes()?);
        let profiles: Vec<Read> = stored
            .into_iter()
            .zip(marked.into_iter().chain(std::iter::repeat(None)))
            .zip(profiles_of)
            .map(|((b, m), user)| {
                let Some(b) = b else {
                    return Read::default();
                };
                let mut p = Profile::decode(&b);
                if let Some(m) = m {
                    super::marks::apply(&m, &mut p);
                }
                // Changes of an earlier commit that another box's write
                // beat: made again on this copy, written after this commit.
                if let Some(w) = write_first.iter_mut().find(|w| w.user == *user) {
                    w.rebase(b.clone(), p);
                    p = w.profile.clone();
                }
                Read {
                    profile: Some(p),
                    base: Some(b),
                }
            })
            .collect();
        if profiles.len() != profiles_of.len() {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "profile reply",
            )));
        }
        if reply.len() != rs.len() * 5 {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "limit script reply",
            )));
        }
        let c = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let outcomes = rs
            .iter()
            .zip(reply.chunks(5))
            .map(|(r, v)| {
                let counts = Counts {
                    day: c(v[1]),
                    week: c(v[2]),
                    month: c(v[3]),
                    recipients_day: c(v[4]),
                };
                self.remember(&r.user, &r.windows, counts);
                if v[0] == 1 {
                    return Ok(Counted::Shared);
                }
                Err(refusal(&counts, r).unwrap_or_else(|| {
                    AcceptError::Policy(Refusal::MessageLimit(Exceeded {
                        what: "daily message limit",
                        limit: r.settings.limit_per_day,
                        resets: windows::show(&windows::resets(r.now, &r.tz).day),
                    }))
                }))
            })
            .collect();
        Ok((outcomes, profiles))
    }

    fn remember(&self, user: &str, w: &Windows, c: Counts) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_USERS && !cache.contains_key(user) {
            cache.clear();
        }
        cache.insert(user.to_string(), (w.clone(), c));
    }

    /// The degraded check: see the module comment.
    fn local(&self, r: &Reservation) -> Result<(), AcceptError> {
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        let mine = owed
            .get(&r.user)
            .map(|u| u.counts(&r.windows))
            .unwrap_or_default();
        if r.check {
            let seen = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&r.user)
                .map(|(w, c)| same_windows(w, &r.windows, *c))
                .unwrap_or_default();
            let both = Counts {
                day: seen.day.saturating_add(mine.day),
                week: seen.week.saturating_add(mine.week),
                month: seen.month.saturating_add(mine.month),
                recipients_day: seen.recipients_day.saturating_add(mine.recipients_day),
            };
            if let Some(e) = refusal(&both, r) {
                self.stats.refused_degraded.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            if let Some(e) = self.over_fraction(&mine, r) {
                self.stats.refused_degraded.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        owed.entry(r.user.clone())
            .or_default()
            .add(&r.windows, 1, r.recipients);
        Ok(())
    }

    fn over_fraction(&self, mine: &Counts, r: &Reservation) -> Option<AcceptError> {
        let s = &r.settings;
        let part = |limit: u32| (f64::from(limit) * self.fraction).floor() as u32;
        let resets = || windows::resets(r.now, &r.tz);
        let checks = [
            (
                mine.day,
                1,
                s.limit_per_day,
                "daily message limit (reduced: fleet store unreachable)",
            ),
            (
                mine.week,
                1,
                s.limit_per_week,
                "weekly message limit (reduced: fleet store unreachable)",
            ),
            (
                mine.month,
                1,
                s.limit_per_month,
                "monthly message limit (reduced: fleet store unreachable)",
            ),
            (
                mine.recipients_day,
                r.recipients,
                s.max_recipients_per_day,
                "daily recipient limit (reduced: fleet store unreachable)",
            ),
        ];
        for (i, (count, add, limit, what)) in checks.into_iter().enumerate() {
            if limit != 0 && u64::from(count) + u64::from(add) > u64::from(part(limit)) {
                let rs = resets();
                let when = match i {
                    1 => rs.week,
                    2 => rs.month,
                    _ => rs.day,
                };
                let e = Exceeded {
                    what,
                    limit: part(limit),
                    resets: windows::show(&when),
                };
                return Some(AcceptError::Policy(if i == 3 {
                    Refusal::RecipientLimit(e)
                } else {
                    Refusal::MessageLimit(e)
                }));
            }
        }
        None
    }
}

/// The counts of `c` (taken in windows `then`) that still count in `now`.
fn same_windows(then: &Windows, now: &Windows, c: Counts) -> Counts {
    let day = then.day == now.day;
    Counts {
        day: if day { c.day } else { 0 },
        recipients_day: if day { c.recipients_day } else { 0 },
        week: if then.week == now.week { c.week } else { 0 },
        month: if then.month == now.month { c.month } else { 0 },
    }
}

/// The limit the message would pass, as the local check words it.
fn refusal(c: &Counts, r: &Reservation) -> Option<AcceptError> {
    if !r.check {
        return None;
    }
    let ask = Ask::Message {
        recipients: r.recipients,
        counted: true,
    };
    within_limits(c, &r.settings, r.now, &r.tz, ask)
        .err()
        .map(AcceptError::Policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    fn degraded_fleet(fraction: f64) -> Fleet {
        Fleet {
            // Never connected: the box is degraded throughout.
            client: redis::Client::open("redis://127.0.0.1:1").unwrap(),
            shown: String::new(),
            box_id: "test".into(),
            fraction,
            conn: Mutex::new(None),
            degraded: AtomicBool::new(true),
            announced: AtomicBool::new(true),
            cache: Mutex::new(HashMap::new()),
            owed: Mutex::new(HashMap::new()),
            stats: Default::default(),
        }
    }

    fn accepted(f: &Fleet, limit_day: u32, tries: u32) -> u32 {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let w = windows::windows(now, &TimeZone::UTC);
        let s = EffectiveSettings {
            limit_per_day: limit_day,
            limit_per_week: 0,
            limit_per_month: 0,
            max_recipients_per_day: 0,
            ..Default::default()
        };
        let r = Reservation {
            user: "a@b.example".into(),
            windows: w,
            settings: s,
            recipients: 1,
            check: true,
            now,
            tz: TimeZone::UTC,
        };
        (0..tries)
            .filter(|_| f.reserve(std::slice::from_ref(&r), &[], &mut Vec::new()).0[0].is_ok())
            .count() as u32
    }

    #[test]
    fn degraded_box_takes_its_fraction() {
        assert_eq!(accepted(&degraded_fleet(0.25), 40, 100), 10);
        // Below one message: nothing while degraded (not "unlimited").
        assert_eq!(accepted(&degraded_fleet(0.25), 3, 10), 0);
        assert_eq!(accepted(&degraded_fleet(0.0), 40, 10), 0);
        // Unlimited stays unlimited.
        assert_eq!(accepted(&degraded_fleet(0.25), 0, 10), 10);
    }

    #[test]
    fn degraded_box_stays_within_what_it_last_saw() {
        let f = degraded_fleet(0.25);
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let w = windows::windows(now, &TimeZone::UTC);
        let seen = Counts {
            day: 37,
            ..Default::default()
        };
        f.remember("a@b.example", &w, seen);
        assert_eq!(accepted(&f, 40, 10), 3);
        // The owed usage is what the store must be told on reconnect.
        let owed = f.owed.lock().unwrap();
        assert_eq!(owed["a@b.example"].counts(&w).day, 3);
    }
}
