//! Behaviour profiles (abuse detection, `src/behaviour`) shared by the
//! fleet, so a user spreading mail over several boxes is judged on all of
//! it. The shared copy (`og:b:{user}`, the profile's fixed binary
//! encoding) is the fleet's view: before a group commit the committer
//! copies the shared profiles of the batch's users into its transaction
//! (an MGET, and one of their `marks`, in the same round trip as the limit
//! script, `limits`),
//! decides on them as usual, and writes back the profiles it changed in
//! the next batch's round trip (before its reads), or on their own once
//! it is idle. Two boxes committing for the same user in the same
//! instant: the last write wins and one batch's observation is lost;
//! profiles are statistics, and limits (exact) do not depend on them.
//! The admin's decisions (an unlock, a release) are not statistics: they
//! are also kept as `marks`, which every read applies again.

use redis::Commands;

use super::{Fleet, keys, marks};
use crate::behaviour::profile::minute_of;
use crate::behaviour::{Profile, assess};
use crate::store::ProfileChange;

/// Shared profiles outlive a month without mail.
pub(super) const TTL: u64 = 45 * 86_400;

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
        let Some(bytes) = c.get::<_, Option<Vec<u8>>>(&key)? else {
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
        c.set_ex::<_, _, ()>(&key, p.encode(), TTL)
    }

    /// Writes back profiles changed by a commit (best effort).
    pub fn put_profiles(&self, profiles: &[(String, Profile)]) {
        if profiles.is_empty() || self.degraded() {
            return;
        }
        let mut p = redis::pipe();
        for (user, profile) in profiles {
            p.set_ex(keys::profile(user), profile.encode(), TTL)
                .ignore();
        }
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(conn) = guard.as_mut() else { return };
        if let Err(e) = p.query::<Vec<redis::Value>>(conn) {
            drop(guard);
            self.enter_degraded(&e.to_string());
        }
    }
}

/// Adds SETs of `profiles` to a pipeline (each with a reply).
pub(super) fn add_writes(p: &mut redis::Pipeline, profiles: &[(String, Profile)]) {
    for (user, profile) in profiles {
        p.set_ex(keys::profile(user), profile.encode(), TTL);
    }
}
