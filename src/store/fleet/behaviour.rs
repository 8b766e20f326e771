//! Behaviour profiles (abuse detection, `src/behaviour`) shared by the
//! fleet, so a user spreading mail over several boxes is judged on all of
//! it. The shared copy (`og:b:{user}`, the profile's fixed binary
//! encoding) is the fleet's view: before a group commit the committer
//! copies the shared profiles of the batch's users into its transaction
//! (an MGET, and one of their `marks`, in the same round trip as the limit
//! script, `limits`), decides on them as usual, and writes back the
//! profiles it changed in the next batch's round trip (before its reads),
//! or on their own once it is idle.
//!
//! A write-back replaces the shared copy only if it is still the one the
//! commit started from (`CAS`). If another box wrote in between, the
//! commit's changes to the profile (`behaviour::replay`) are made again
//! on that box's copy and written in turn, so two boxes committing for
//! one user at once both count. The admin's decisions (an unlock, a
//! release) are also kept as `marks`, which every read applies again.

use redis::Commands;

use super::{Fleet, keys, marks};
use crate::behaviour::profile::minute_of;
use crate::behaviour::replay::{Change, replay};
use crate::behaviour::{Profile, assess};
use crate::store::ProfileChange;

/// Shared profiles outlive a month without mail.
pub(super) const TTL: u64 = 45 * 86_400;

/// Writes ARGV[3] (expiring in ARGV[4] s) if the key holds what ARGV[1]
/// says: `absent`, `equal` to ARGV[2], or `any`. Returns 1 if written,
/// else what the key holds (nil: gone, e.g. the user was deleted).
const CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
local m = ARGV[1]
if m == 'any' or (m == 'absent' and not cur) or (m == 'equal' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
  return 1
end
return cur
";

/// Changes kept for one user's write-back at most; beyond them (a user
/// whose write-backs lose for that long) the last write wins again.
const MAX_CHANGES: usize = 1024;

/// Tries of an admin's change to a shared profile committers keep
/// rewriting.
const ROUNDS: usize = 3;

/// A profile a commit changed, not yet in the shared store.
#[derive(Debug)]
pub struct Pending {
    pub user: String,
    /// The shared copy the changes were made on, as stored (None: none).
    pub base: Option<Vec<u8>>,
    /// What the commits did to it since (empty once over `MAX_CHANGES`:
    /// written whatever the shared copy is then).
    pub changes: Vec<Change>,
    pub overflowed: bool,
    /// `base` with `changes` made: what to write.
    pub profile: Profile,
}

impl Pending {
    /// Adds a later commit's changes; `profile` is the result.
    pub fn extend(&mut self, changes: Vec<Change>, profile: Profile) {
        self.changes.extend(changes);
        if self.changes.len() > MAX_CHANGES {
            self.changes = Vec::new();
            self.overflowed = true;
        }
        self.profile = profile;
    }

    /// Another box wrote `base` (read as `onto`) in between: the changes
    /// are made again on it.
    pub(super) fn rebase(&mut self, base: Vec<u8>, mut onto: Profile) {
        replay(&mut onto, &self.changes);
        self.profile = onto;
        self.base = Some(base);
    }
}

/// The shared profile of a user as a commit read it.
#[derive(Debug, Default)]
pub struct Read {
    /// To decide on: the shared copy, the admin's marks applied and
    /// changes not yet written made again (None: none shared yet).
    pub profile: Option<Profile>,
    /// The shared copy as stored, for the write-back's comparison.
    pub base: Option<Vec<u8>>,
}

/// How a write-back went.
pub(super) enum Written {
    Done,
    /// The user's shared profile is gone (deleted): nothing to write.
    Gone,
    /// Another box wrote this in between.
    Changed(Vec<u8>),
}

impl Written {
    pub(super) fn of(v: redis::Value) -> redis::RedisResult<Written> {
        Ok(match v {
            redis::Value::Int(1) => Written::Done,
            redis::Value::Nil => Written::Gone,
            other => Written::Changed(redis::from_redis_value(other)?),
        })
    }
}

/// Drops the written and the gone; rebases the others. `replies` are in
/// `pending`'s order.
pub(super) fn settle(pending: &mut Vec<Pending>, replies: Vec<Written>) {
    let mut replies = replies.into_iter();
    pending.retain_mut(|p| match replies.next() {
        Some(Written::Changed(now)) => {
            let onto = Profile::decode(&now);
            p.rebase(now, onto);
            true
        }
        Some(Written::Done | Written::Gone) => false,
        None => true,
    });
}

/// A write-back of `profile` if the shared copy is still `base`.
fn cas(key: &str, base: Option<&[u8]>, any: bool, profile: &Profile) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(CAS).arg(1).arg(key);
    match (any, base) {
        (true, _) => c.arg("any").arg(""),
        (false, None) => c.arg("absent").arg(""),
        (false, Some(b)) => c.arg("equal").arg(b),
    };
    c.arg(profile.encode()).arg(TTL);
    c
}

impl Fleet {
    /// Applies a change made outside a commit (an unlock, failed
    /// recipients, released mail) to the shared copy, if there is one
    /// (else the next commit shares the local profile, change included).
    pub(super) fn change_profile(
        &self,
        c: &mut redis::Connection,
        user: &str,
        delta: &ProfileChange,
    ) -> redis::RedisResult<()> {
        marks::note(c, &keys::marks(user), delta)?;
        let key = keys::profile(user);
        let mut stored = c.get::<_, Option<Vec<u8>>>(&key)?;
        // A committer writing in between: change its copy instead.
        for _ in 0..ROUNDS {
            let Some(bytes) = stored else {
                return Ok(());
            };
            let mut p = Profile::decode(&bytes);
            match delta {
                ProfileChange::ClearHolds(at) => p.forget_holds_until(minute_of(*at)),
                ProfileChange::Failed(n, at) => assess::failed(&mut p, *n, *at),
                ProfileChange::Released(rcpts, text) => {
                    for r in rcpts {
                        p.contacts.add(r);
                    }
                    p.release(*text);
                }
            }
            match Written::of(cas(&key, Some(&bytes), false, &p).query(c)?)? {
                Written::Done | Written::Gone => return Ok(()),
                Written::Changed(now) => stored = Some(now),
            }
        }
        tracing::warn!(
            user,
            "fleet: shared profile kept changing; change not shared"
        );
        Ok(())
    }

    /// Writes back profiles changed by commits (best effort, one round
    /// trip): those another box changed meanwhile stay, rebased, for the
    /// next try.
    pub fn put_profiles(&self, pending: &mut Vec<Pending>) {
        if pending.is_empty() {
            return;
        }
        if self.degraded() {
            pending.clear();
            return;
        }
        let mut p = redis::pipe();
        add_writes(&mut p, pending);
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(conn) = guard.as_mut() else {
            pending.clear();
            return;
        };
        let replies = p
            .query::<Vec<redis::Value>>(conn)
            .and_then(|r| r.into_iter().map(Written::of).collect());
        drop(guard);
        match replies {
            Ok(r) => settle(pending, r),
            Err(e) => {
                pending.clear();
                self.enter_degraded(&e.to_string());
            }
        }
    }
}

/// Adds the write-backs of `pending` to a pipeline (each with a reply,
/// for `Written::of`).
pub(super) fn add_writes(p: &mut redis::Pipeline, pending: &[Pending]) {
    for w in pending {
        p.add_command(cas(
            &keys::profile(&w.user),
            w.base.as_deref(),
            w.overflowed,
            &w.profile,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::replay::Seen;

    fn observed(p: &mut Profile, n: usize, at: &str) -> Change {
        let s = Seen {
            recipients: (0..n).map(|i| format!("r{i}@x.test")).collect(),
            client: "10.0.0.1".parse().unwrap(),
            fixed_address: false,
            now: at.parse().unwrap(),
        };
        replay(p, &[Change::Observe(s.clone())]);
        Change::Observe(s)
    }

    fn pending(user: &str, base: Option<Vec<u8>>, at: &str, n: usize) -> Pending {
        let mut profile = base.as_deref().map(Profile::decode).unwrap_or_default();
        let change = observed(&mut profile, n, at);
        Pending {
            user: user.into(),
            base,
            changes: vec![change],
            overflowed: false,
            profile,
        }
    }

    fn write(c: &mut redis::Connection, pending: &mut Vec<Pending>) {
        let mut p = redis::pipe();
        add_writes(&mut p, pending);
        let replies: Vec<redis::Value> = p.query(c).unwrap();
        settle(
            pending,
            replies
                .into_iter()
                .map(|v| Written::of(v).unwrap())
                .collect(),
        );
    }

    fn stored(c: &mut redis::Connection, user: &str) -> Option<Profile> {
        let b: Option<Vec<u8>> = c.get(keys::profile(user)).unwrap();
        b.map(|b| Profile::decode(&b))
    }

    /// Two boxes' commits from one shared copy: the second write finds
    /// the first's, makes its changes on it, and both count. A write for
    /// a user deleted meanwhile is dropped; an overflowed one is written.
    #[test]
    fn a_beaten_write_back_is_made_again_on_the_winner() {
        let Some((_server, mut c)) = super::super::test_server::start() else {
            return;
        };
        let t = "2026-03-02T09:00:00Z";
        // Both boxes start with no shared profile.
        let mut a = vec![pending("u", None, t, 2)];
        let mut b = vec![pending("u", None, t, 3)];
        write(&mut c, &mut a);
        assert!(a.is_empty());
        write(&mut c, &mut b);
        assert_eq!(b.len(), 1, "beaten, rebased, kept");
        assert_eq!(b[0].profile.today.messages, 2);
        write(&mut c, &mut b);
        assert!(b.is_empty());
        let p = stored(&mut c, "u").unwrap();
        assert_eq!((p.today.messages, p.today.recipients), (2, 5));

        // Both read that; each adds one message.
        let base: Vec<u8> = c.get(keys::profile("u")).unwrap();
        let mut a = vec![pending("u", Some(base.clone()), t, 1)];
        let mut b = vec![pending("u", Some(base.clone()), t, 1)];
        write(&mut c, &mut b);
        write(&mut c, &mut a);
        write(&mut c, &mut a);
        assert!(a.is_empty() && b.is_empty());
        assert_eq!(stored(&mut c, "u").unwrap().today.messages, 4);

        // Deleted meanwhile: not resurrected.
        let base: Vec<u8> = c.get(keys::profile("u")).unwrap();
        let mut late = vec![pending("u", Some(base), t, 1)];
        let _: () = c.del(keys::profile("u")).unwrap();
        write(&mut c, &mut late);
        assert!(late.is_empty());
        assert!(stored(&mut c, "u").is_none());

        // Too many changes kept: written whatever is there.
        let mut other = vec![pending("u", None, t, 7)];
        write(&mut c, &mut other);
        let mut forced = vec![pending("u", Some(b"stale".to_vec()), t, 1)];
        let more = vec![forced[0].changes[0].clone(); MAX_CHANGES];
        forced[0].extend(more, Profile::default());
        assert!(forced[0].overflowed && forced[0].changes.is_empty());
        write(&mut c, &mut forced);
        assert!(forced.is_empty());
        assert_eq!(stored(&mut c, "u").unwrap(), Profile::default());
        let ttl: i64 = redis::cmd("TTL")
            .arg(keys::profile("u"))
            .query(&mut c)
            .unwrap();
        assert!(ttl > 44 * 86_400, "{ttl}");
    }
}
