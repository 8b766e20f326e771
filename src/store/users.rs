//! Persistence of outgoing users and the index of IP-authorised ones,
//! and the count of locked users (`LOCKED` in `meta`), kept by every
//! write of a user record in the same transaction (`count_lock`) and
//! recounted when the store is opened (`recount_locked`).

use std::net::IpAddr;

use ipnet::IpNet;
use redb::{ReadableTable, WriteTransaction};

use super::{META, NETWORKS, Result, Store, USAGE, USERS, counts, from_json, to_json};
use crate::users::{LockState, User, UserName};

/// `meta` key: how many users have a lock stored (any lock but `Active`;
/// an expired timed lock counts until housekeeping ends it).
const LOCKED: &str = "locked_users";

/// Outcome of a bulk import.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportOutcome {
    pub added: Vec<String>,
    /// Users that already existed and were kept as they are.
    pub existing: Vec<String>,
}

impl Store {
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        table.get(name)?.map(|v| from_json(v.value())).transpose()
    }

    pub fn users(&self) -> Result<Vec<User>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            out.push(from_json(v.value())?);
        }
        Ok(out)
    }

    /// Up to `limit` users after the name `after`, in name order, those
    /// `keep` takes (see `paging`).
    pub fn users_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl Fn(&User) -> bool,
    ) -> Result<super::Page<User, String>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        super::paging::by_name(&table, after, limit, |v| {
            let u: User = from_json(v)?;
            Ok(keep(&u).then_some(u))
        })
    }

    /// How many users are locked (see `LOCKED`), without reading them.
    pub fn locked_users(&self) -> Result<u64> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(LOCKED)?.map(|v| v.value()).unwrap_or(0))
    }

    /// Which of `names` are users already, in one read transaction.
    pub fn present(&self, names: &[String]) -> Result<Vec<bool>> {
        let txn = self.read()?;
        let table = txn.open_table(USERS)?;
        names
            .iter()
            .map(|n| Ok(table.get(n.as_str())?.is_some()))
            .collect()
    }

    /// Adds a user; `Ok(false)` if the name is taken.
    pub fn add_user(&self, user: &User) -> Result<bool> {
        let txn = self.write()?;
        let added = insert_new(&txn, user)?;
        txn.commit()?;
        if added {
            self.changed(super::Change::User(user.name.clone()));
        }
        Ok(added)
    }

    /// Adds every user whose name is free, in one transaction.
    pub fn import_users(&self, users: &[User]) -> Result<ImportOutcome> {
        let txn = self.write()?;
        let mut out = ImportOutcome::default();
        for u in users {
            if insert_new(&txn, u)? {
                out.added.push(u.name.clone());
            } else {
                out.existing.push(u.name.clone());
            }
        }
        txn.commit()?;
        for name in &out.added {
            self.changed(super::Change::User(name.clone()));
        }
        Ok(out)
    }

    /// Changes a user in place; `Ok(None)` if there is no such user.
    pub fn update_user(&self, name: &str, change: impl FnOnce(&mut User)) -> Result<Option<User>> {
        let txn = self.write()?;
        let updated = {
            let mut table = txn.open_table(USERS)?;
            let current: Option<User> =
                table.get(name)?.map(|v| from_json(v.value())).transpose()?;
            match current {
                None => None,
                Some(mut user) => {
                    let was = (locked(&user), counts::expiry(&user));
                    change(&mut user);
                    table.insert(name, to_json(&user)?.as_slice())?;
                    count_lock(&txn, was.0, locked(&user))?;
                    counts::index_lock(&txn, name, was.1, counts::expiry(&user))?;
                    Some(user)
                }
            }
        };
        txn.commit()?;
        if updated.is_some() {
            self.changed(super::Change::User(name.to_string()));
        }
        Ok(updated)
    }

    /// Deletes a user and its counters; `Ok(false)` if there was none.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let txn = self.write()?;
        let removed: Option<User> = txn
            .open_table(USERS)?
            .remove(name)?
            .map(|v| from_json(v.value()))
            .transpose()?;
        let existed = removed.is_some();
        count_lock(&txn, removed.as_ref().is_some_and(locked), false)?;
        counts::index_lock(&txn, name, removed.as_ref().and_then(counts::expiry), None)?;
        forget_usage(&txn, name)?;
        txn.open_table(NETWORKS)?.remove(name)?;
        txn.open_table(super::behaviour::BEHAVIOUR)?.remove(name)?;
        txn.commit()?;
        if existed {
            self.changed(super::Change::User(name.to_string()));
        }
        Ok(existed)
    }

    /// The IP-authorised user covering `ip`, the most specific network first.
    pub fn network_user(&self, ip: IpAddr) -> Result<Option<User>> {
        let txn = self.read()?;
        let nets = txn.open_table(NETWORKS)?;
        let mut best: Option<(u8, String)> = None;
        for row in nets.iter()? {
            let (k, _) = row?;
            let name = k.value();
            let Some(net) = UserName::parse(name).ok().and_then(|n| n.network()) else {
                continue;
            };
            if net_contains(&net, ip) && best.as_ref().is_none_or(|(p, _)| net.prefix_len() > *p) {
                best = Some((net.prefix_len(), name.to_string()));
            }
        }
        drop(nets);
        let Some((_, name)) = best else {
            return Ok(None);
        };
        let users = txn.open_table(USERS)?;
        users
            .get(name.as_str())?
            .map(|v| from_json(v.value()))
            .transpose()
    }
}

/// An IPv4 client may arrive as an IPv4-mapped IPv6 address.
fn net_contains(net: &IpNet, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    net.contains(&ip)
}

impl Store {
    /// Writes a user record as another box of the fleet has it (`None`:
    /// deleted there), without telling the observer (it came from there).
    /// Returns whether anything changed.
    pub fn apply_remote_user(&self, name: &str, user: Option<&User>) -> Result<bool> {
        let txn = self.write()?;
        let changed = {
            let mut users = txn.open_table(USERS)?;
            let current = users.get(name)?.map(|v| v.value().to_vec());
            // A record this box cannot read counts as not locked, as the
            // recount at open would count it.
            let was: Option<User> = current.as_deref().and_then(|b| from_json(b).ok());
            count_lock(
                &txn,
                was.as_ref().is_some_and(locked),
                user.is_some_and(locked),
            )?;
            let was_until = was.as_ref().and_then(counts::expiry);
            counts::index_lock(&txn, name, was_until, user.and_then(counts::expiry))?;
            match user {
                None if current.is_none() => false,
                None => {
                    users.remove(name)?;
                    forget_usage(&txn, name)?;
                    txn.open_table(NETWORKS)?.remove(name)?;
                    txn.open_table(super::behaviour::BEHAVIOUR)?.remove(name)?;
                    true
                }
                Some(u) => {
                    let json = to_json(u)?;
                    if current.as_deref() == Some(json.as_slice()) {
                        false
                    } else {
                        users.insert(name, json.as_slice())?;
                        if u.is_network() {
                            txn.open_table(NETWORKS)?.insert(name, ())?;
                        }
                        true
                    }
                }
            }
        };
        txn.commit()?;
        Ok(changed)
    }
}

fn insert_new(txn: &WriteTransaction, user: &User) -> Result<bool> {
    let mut users = txn.open_table(USERS)?;
    if users.get(user.name.as_str())?.is_some() {
        return Ok(false);
    }
    users.insert(user.name.as_str(), to_json(user)?.as_slice())?;
    count_lock(txn, false, locked(user))?;
    counts::index_lock(txn, &user.name, None, counts::expiry(user))?;
    if user.is_network() {
        txn.open_table(NETWORKS)?.insert(user.name.as_str(), ())?;
    }
    Ok(true)
}

/// Whether `user` counts as locked in `LOCKED`.
pub(super) fn locked(user: &User) -> bool {
    user.lock != LockState::Active
}

/// Keeps `LOCKED` right when a user record goes from locked `was` to
/// locked `now`, in the transaction that writes it.
pub(super) fn count_lock(txn: &WriteTransaction, was: bool, now: bool) -> Result<()> {
    if was == now {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let n = meta.get(LOCKED)?.map(|v| v.value()).unwrap_or(0);
    let n = if now { n + 1 } else { n.saturating_sub(1) };
    meta.insert(LOCKED, n)?;
    Ok(())
}

/// Counts the locked users afresh (at open), and rebuilds the index of
/// timed locks and the day totals (`counts`): the count is then right even
/// if the store was written by a version that did not keep it (a
/// firmware rollback and update again), at the cost of one pass over the
/// users and one over their counters per start.
pub(super) fn recount_locked(txn: &WriteTransaction) -> Result<()> {
    let mut n = 0u64;
    let mut timed = Vec::new();
    for row in txn.open_table(USERS)?.iter()? {
        let (k, v) = row?;
        let Ok(u) = from_json::<User>(v.value()) else {
            continue;
        };
        n += u64::from(locked(&u));
        if let Some(at) = counts::expiry(&u) {
            timed.push((at, k.value().to_string()));
        }
    }
    let mut meta = txn.open_table(META)?;
    if meta.get(LOCKED)?.map(|v| v.value()) != Some(n) {
        meta.insert(LOCKED, n)?;
    }
    drop(meta);
    counts::rebuild_locks(txn, &timed)?;
    counts::rebuild_days(txn)
}

/// Removes a user's counters, taking its day counts out of the totals.
fn forget_usage(txn: &WriteTransaction, name: &str) -> Result<()> {
    let removed = txn
        .open_table(USAGE)?
        .remove(name)?
        .map(|v| v.value().to_vec());
    counts::forget_usage(txn, removed.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::{SignedDuration, Timestamp};

    fn user(name: &str, now: Timestamp) -> User {
        User::new(&UserName::parse(name).unwrap(), None, now)
    }

    /// The count on a real redb file follows every write of a user record
    /// and is the same after the file is opened again.
    #[test]
    fn locked_count_follows_the_users_and_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("og-locked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.locked_users().unwrap(), 0);
        for n in ["a@example.com", "b@example.com", "c@example.com"] {
            assert!(store.add_user(&user(n, now)).unwrap());
        }
        // Imported already locked: counted in the import's transaction.
        let mut d = user("d@example.com", now);
        d.lock = LockState::LockedByAdmin {
            since: now,
            reason: "imported".into(),
        };
        let out = store
            .import_users(&[d, user("a@example.com", now)])
            .unwrap();
        assert_eq!((out.added.len(), out.existing.len()), (1, 1));
        assert_eq!(store.locked_users().unwrap(), 1);

        let timed = |u: &mut User| {
            u.lock = LockState::LockedUntil {
                until: now + SignedDuration::from_mins(10),
                reason: "spam".into(),
            }
        };
        store.update_user("a@example.com", timed).unwrap();
        store.update_user("b@example.com", timed).unwrap();
        store
            .update_user("c@example.com", |u| {
                u.lock = LockState::LockedByAdmin {
                    since: now,
                    reason: "by hand".into(),
                }
            })
            .unwrap();
        assert_eq!(store.locked_users().unwrap(), 4);
        // Locking a locked user again counts it once.
        store.update_user("a@example.com", timed).unwrap();
        assert_eq!(store.locked_users().unwrap(), 4);

        // Unlock by an admin.
        store
            .update_user("c@example.com", |u| u.lock = LockState::Active)
            .unwrap();
        assert_eq!(store.locked_users().unwrap(), 3);
        // Timed unlock, as housekeeping does it.
        let later = now + SignedDuration::from_mins(11);
        let mut unlocked = store.expire_locks(later).unwrap();
        unlocked.sort();
        assert_eq!(unlocked, ["a@example.com", "b@example.com"]);
        assert_eq!(store.locked_users().unwrap(), 1);
        // Deleting a locked user, and an unlocked one.
        assert!(store.delete_user("d@example.com").unwrap());
        assert!(store.delete_user("c@example.com").unwrap());
        assert_eq!(store.locked_users().unwrap(), 0);
        store.update_user("b@example.com", timed).unwrap();
        assert_eq!(store.locked_users().unwrap(), 1);

        // A user written by the fleet: locked there, then deleted there.
        let mut e = user("e@example.com", now);
        e.lock = LockState::LockedByAdmin {
            since: now,
            reason: "fleet".into(),
        };
        assert!(store.apply_remote_user("e@example.com", Some(&e)).unwrap());
        assert_eq!(store.locked_users().unwrap(), 2);
        assert!(store.apply_remote_user("e@example.com", None).unwrap());
        assert_eq!(store.locked_users().unwrap(), 1);

        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.locked_users().unwrap(), 1);
        let counted = store.users().unwrap().iter().filter(|u| locked(u)).count();
        assert_eq!(counted, 1);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
