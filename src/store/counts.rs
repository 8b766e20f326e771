//! Figures the dashboard and `/metrics` read without a pass over the
//! users: the day totals of accepted messages and recipients
//! (`day_totals`), and the index of timed locks by expiry (`lock_expiry`)
//! that housekeeping reads instead of every user. Both are written in the
//! transaction that writes what they summarise, and rebuilt at every open
//! (as `locked_users` is), so a store last written by an older version is
//! right again.

use jiff::Timestamp;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::{Result, Store, USAGE, USERS, from_json};
use crate::policy::usage::Usage;
use crate::users::{LockState, User};

/// `day (appliance timezone, "2026-12-07") -> (messages, recipients)`
/// accepted that day: the sum over users of their day counters.
pub(super) const DAY_TOTALS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("day_totals");
/// `(expiry in ns since the epoch, user name) -> ()` for every user with a
/// timed lock.
pub(super) const LOCK_EXPIRY: TableDefinition<(i128, &str), ()> =
    TableDefinition::new("lock_expiry");

/// How many days `day_totals` keeps (today, and a little slack for a
/// timezone change or a clock set back).
const KEEP_DAYS: usize = 4;

pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(DAY_TOTALS)?;
    txn.open_table(LOCK_EXPIRY)?;
    Ok(())
}

impl Store {
    /// Messages and recipients accepted on `day` (as `windows::windows`
    /// names it), summed over the users, reading one key.
    pub fn day_totals(&self, day: &str) -> Result<(u64, u64)> {
        let txn = self.read()?;
        let t = txn.open_table(DAY_TOTALS)?;
        Ok(t.get(day)?.map(|v| v.value()).unwrap_or((0, 0)))
    }

    /// How many users there are (redb keeps the length).
    pub fn user_count(&self) -> Result<u64> {
        Ok(self.read()?.open_table(USERS)?.len()?)
    }

    /// Users whose timed lock is up at `now`, from the index: reads only
    /// what is due.
    pub(super) fn locks_due(&self, now: Timestamp) -> Result<Vec<String>> {
        let txn = self.read()?;
        let t = txn.open_table(LOCK_EXPIRY)?;
        let mut out = Vec::new();
        // Every key with an expiry up to `now`, whatever the name.
        for row in t.range(..(now.as_nanosecond() + 1, ""))? {
            out.push(row?.0.value().1.to_string());
        }
        Ok(out)
    }
}

/// Adds (or with `sign` false takes back) `messages` and `recipients` to
/// the total of `day`, dropping the oldest days beyond `KEEP_DAYS`.
pub(super) fn add_day(
    txn: &WriteTransaction,
    day: &str,
    messages: u64,
    recipients: u64,
    sign: bool,
) -> Result<()> {
    if day.is_empty() || (messages == 0 && recipients == 0) {
        return Ok(());
    }
    let mut t = txn.open_table(DAY_TOTALS)?;
    let (m, r) = t.get(day)?.map(|v| v.value()).unwrap_or((0, 0));
    let now = if sign {
        (m.saturating_add(messages), r.saturating_add(recipients))
    } else {
        (m.saturating_sub(messages), r.saturating_sub(recipients))
    };
    t.insert(day, now)?;
    // The oldest days go, never the one just written (the clock may have
    // been set back behind days already kept).
    while t.len()? > KEEP_DAYS as u64 {
        let oldest = t
            .iter()?
            .map(|row| row.map(|(k, _)| k.value().to_string()))
            .find(|k| !matches!(k, Ok(k) if k == day))
            .transpose()?;
        let Some(oldest) = oldest else {
            break;
        };
        t.remove(oldest.as_str())?;
    }
    Ok(())
}

/// Takes a user's day counters out of the totals when its counters are
/// removed (delete), so the total stays the sum over the users there are.
pub(super) fn forget_usage(txn: &WriteTransaction, usage: Option<&[u8]>) -> Result<()> {
    if let Some(u) = usage.and_then(|b| from_json::<Usage>(b).ok()) {
        add_day(
            txn,
            &u.day,
            u64::from(u.day_messages),
            u64::from(u.day_recipients),
            false,
        )?;
    }
    Ok(())
}

/// Sums the users' day counters afresh (at open), keeping the latest days.
pub(super) fn rebuild_days(txn: &WriteTransaction) -> Result<()> {
    let mut days = std::collections::BTreeMap::<String, (u64, u64)>::new();
    for row in txn.open_table(USAGE)?.iter()? {
        let (_, v) = row?;
        let Ok(u) = from_json::<Usage>(v.value()) else {
            continue;
        };
        if u.day.is_empty() {
            continue;
        }
        let e = days.entry(u.day).or_default();
        e.0 = e.0.saturating_add(u64::from(u.day_messages));
        e.1 = e.1.saturating_add(u64::from(u.day_recipients));
    }
    let wanted: Vec<(String, (u64, u64))> = days.into_iter().rev().take(KEEP_DAYS).collect();
    let mut t = txn.open_table(DAY_TOTALS)?;
    let mut kept = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        kept.push((k.value().to_string(), v.value()));
    }
    kept.reverse();
    // Written only when they differ: a start on a full disk must not fail
    // for rewriting what is already right (tests/delivery/test_disk_full.py).
    if kept == wanted {
        return Ok(());
    }
    t.retain(|_, _| false)?;
    for (day, v) in &wanted {
        t.insert(day.as_str(), *v)?;
    }
    Ok(())
}

/// When a timed lock ends, if `user` has one.
pub(super) fn expiry(user: &User) -> Option<i128> {
    match &user.lock {
        LockState::LockedUntil { until, .. } => Some(until.as_nanosecond()),
        _ => None,
    }
}

/// Keeps `lock_expiry` right when the record of `name` goes from a timed
/// lock ending `was` to one ending `now`, in the transaction that writes it.
pub(super) fn index_lock(
    txn: &WriteTransaction,
    name: &str,
    was: Option<i128>,
    now: Option<i128>,
) -> Result<()> {
    if was == now {
        return Ok(());
    }
    let mut t = txn.open_table(LOCK_EXPIRY)?;
    if let Some(at) = was {
        t.remove((at, name))?;
    }
    if let Some(at) = now {
        t.insert((at, name), ())?;
    }
    Ok(())
}

/// Rebuilds `lock_expiry` from the users (at open, in the pass that
/// recounts the locked users).
pub(super) fn rebuild_locks(txn: &WriteTransaction, timed: &[(i128, String)]) -> Result<()> {
    let mut t = txn.open_table(LOCK_EXPIRY)?;
    let mut kept = Vec::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let (at, name) = k.value();
        kept.push((at, name.to_string()));
    }
    let mut wanted = timed.to_vec();
    wanted.sort();
    // Only when they differ, as with the day totals.
    if kept == wanted {
        return Ok(());
    }
    t.retain(|_, _| false)?;
    for (at, name) in timed {
        t.insert((*at, name.as_str()), ())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jiff::{SignedDuration, Timestamp};

    use super::*;
    use crate::clock::Clock;
    use crate::policy::response::{Decision, Fate};
    use crate::scan::{Class, Verdict};
    use crate::settings::{Shared, SystemSettings};
    use crate::store::{Accepted, Committer, Submission};
    use crate::users::UserName;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("og-counts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn user(name: &str, now: Timestamp) -> User {
        User::new(&UserName::parse(name).unwrap(), None, now)
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// What the dashboard showed before the totals: the sum over users of
    /// their counters of `day`.
    fn summed(store: &Store, day: &str) -> (u64, u64) {
        let mut sum = (0, 0);
        for u in store.users().unwrap() {
            let usage = store.usage(&u.name).unwrap();
            if usage.day == day {
                sum.0 += u64::from(usage.day_messages);
                sum.1 += u64::from(usage.day_recipients);
            }
        }
        sum
    }

    fn send(c: &Committer, rt: &tokio::runtime::Runtime, who: &str, rcpts: usize, fate: Fate) {
        let s = Submission {
            id: c.reserve_id(),
            user: who.into(),
            sender: who.into(),
            recipients: (0..rcpts).map(|i| format!("r{i}@example.net")).collect(),
            message: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
            client_ip: "127.0.0.1".into(),
            helo: "client.example.com".into(),
            dsn: Default::default(),
            recipient_dsn: Vec::new(),
            smtputf8: false,
            content: Verdict {
                class: Class::Clean,
                score: 0.0,
                reasons: Vec::new(),
                lock_score: 0.0,
                classifier_only: false,
                fingerprint: 0,
            },
        };
        let decide: crate::store::Decide = match fate {
            Fate::Allow => |_, _, _, _, _| Decision {
                fate: Fate::Allow,
                reasons: Vec::new(),
            },
            _ => |_, _, _, _, _| Decision {
                fate: Fate::Hold,
                reasons: vec!["held by the test".into()],
            },
        };
        let done = rt.block_on(c.accept(s, decide)).unwrap();
        assert_eq!(matches!(done, Accepted::Queued(_)), fate == Fate::Allow);
    }

    /// Stops the committer and waits (bounded) until it let go of the
    /// store, so the file can be opened again.
    fn close(store: Arc<Store>, committer: Committer) {
        drop(committer);
        for _ in 0..500 {
            if Arc::strong_count(&store) == 1 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the committer kept the store");
    }

    /// The day totals on a real redb file follow the committer, a new day,
    /// a deleted user and a reopen, and equal the sum over the users.
    #[test]
    fn day_totals_follow_accept_day_change_delete_and_reopen() {
        let d = dir("days");
        let path = d.join("store.redb");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let clock = Arc::new(Clock::default());
        let day1 = t("2030-01-01T10:00:00Z");
        clock.set(day1);
        let store = Arc::new(Store::open(&path).unwrap());
        for n in ["a@example.com", "b@example.com", "b2@example.com"] {
            assert!(store.add_user(&user(n, day1)).unwrap());
        }
        let settings = Shared::new(SystemSettings::default()).unwrap();
        let c = Committer::start(store.clone(), settings.clone(), clock.clone()).unwrap();
        send(&c, &rt, "a@example.com", 2, Fate::Allow);
        send(&c, &rt, "a@example.com", 3, Fate::Allow);
        send(&c, &rt, "b@example.com", 1, Fate::Allow);
        // Held mail is not counted (it is not sent).
        send(&c, &rt, "b@example.com", 7, Fate::Hold);
        assert_eq!(store.day_totals("2030-01-01").unwrap(), (3, 6));
        assert_eq!(summed(&store, "2030-01-01"), (3, 6));
        assert_eq!(store.user_count().unwrap(), 3);

        // Deleting a user takes its counts out, as the sum over users did.
        assert!(store.delete_user("b@example.com").unwrap());
        assert_eq!(store.day_totals("2030-01-01").unwrap(), (2, 5));
        assert_eq!(summed(&store, "2030-01-01"), (2, 5));
        assert_eq!(store.user_count().unwrap(), 2);

        // A new day starts at zero; the old day is kept for a while.
        clock.set(t("2030-01-02T00:30:00Z"));
        send(&c, &rt, "a@example.com", 4, Fate::Allow);
        assert_eq!(store.day_totals("2030-01-02").unwrap(), (1, 4));
        assert_eq!(summed(&store, "2030-01-02"), (1, 4));
        assert_eq!(store.day_totals("2030-01-01").unwrap(), (2, 5));

        // Only the latest days are kept.
        for day in 3..=6 {
            clock.set(t(&format!("2030-01-0{day}T12:00:00Z")));
            send(&c, &rt, "a@example.com", 1, Fate::Allow);
        }
        assert_eq!(store.day_totals("2030-01-02").unwrap(), (0, 0));
        assert_eq!(store.day_totals("2030-01-03").unwrap(), (1, 1));
        let kept = store.read().unwrap().open_table(DAY_TOTALS).unwrap();
        assert_eq!(kept.len().unwrap(), KEEP_DAYS as u64);
        drop(kept);
        send(&c, &rt, "a@example.com", 2, Fate::Allow);
        assert_eq!(store.day_totals("2030-01-06").unwrap(), (2, 3));
        // The clock set back behind the kept days: that day is kept too.
        clock.set(t("2030-01-01T12:00:00Z"));
        send(&c, &rt, "b2@example.com", 1, Fate::Allow);
        assert_eq!(store.day_totals("2030-01-01").unwrap(), (1, 1));
        assert_eq!(summed(&store, "2030-01-01"), (1, 1));
        clock.set(t("2030-01-06T13:00:00Z"));

        // Rebuilt at open from the users' counters: the same figure, also
        // when the totals were lost (a store written by an older version).
        close(store, c);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.day_totals("2030-01-06").unwrap(), (2, 3));
        assert_eq!(summed(&store, "2030-01-06"), (2, 3));
        let txn = store.write().unwrap();
        txn.delete_table(DAY_TOTALS).unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.day_totals("2030-01-06").unwrap(), (2, 3));
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Held mail counted in the quarantine's size and in the day it was
    /// received, by its id order.
    #[test]
    fn quarantine_counts_by_day() {
        let d = dir("quarantine");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let clock = Arc::new(Clock::default());
        clock.set(t("2030-01-01T23:00:00Z"));
        let store = Arc::new(Store::open(&d.join("store.redb")).unwrap());
        assert!(store.add_user(&user("a@example.com", clock.now())).unwrap());
        let settings = Shared::new(SystemSettings::default()).unwrap();
        let c = Committer::start(store.clone(), settings, clock.clone()).unwrap();
        send(&c, &rt, "a@example.com", 1, Fate::Hold);
        send(&c, &rt, "a@example.com", 1, Fate::Hold);
        clock.set(t("2030-01-02T01:00:00Z"));
        send(&c, &rt, "a@example.com", 1, Fate::Hold);
        let (jan1, jan2, jan3) = (
            t("2030-01-01T00:00:00Z"),
            t("2030-01-02T00:00:00Z"),
            t("2030-01-03T00:00:00Z"),
        );
        assert_eq!(store.quarantine_counts(jan2, jan3).unwrap(), (3, 1));
        assert_eq!(store.quarantine_counts(jan1, jan2).unwrap(), (3, 2));
        assert_eq!(store.quarantined().unwrap().len(), 3);
        close(store, c);
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn until(at: Timestamp) -> impl Fn(&mut User) {
        move |u: &mut User| {
            u.lock = LockState::LockedUntil {
                until: at,
                reason: "spam".into(),
            }
        }
    }

    /// The index of timed locks on a real redb file follows lock, unlock,
    /// timed unlock, delete, import and fleet writes, and a reopen.
    #[test]
    fn lock_index_follows_lock_unlock_and_expiry() {
        let d = dir("locks");
        let path = d.join("store.redb");
        let now = t("2030-01-01T10:00:00Z");
        let (m10, m20, m30) = (
            now + SignedDuration::from_mins(10),
            now + SignedDuration::from_mins(20),
            now + SignedDuration::from_mins(30),
        );
        let far = now + SignedDuration::from_hours(1000);
        let store = Store::open(&path).unwrap();
        for n in ["a@example.com", "b@example.com", "c@example.com"] {
            assert!(store.add_user(&user(n, now)).unwrap());
        }
        // Imported with a timed lock.
        let mut d2 = user("d@example.com", now);
        until(m30)(&mut d2);
        store.import_users(&[d2]).unwrap();
        store.update_user("a@example.com", until(m10)).unwrap();
        store.update_user("b@example.com", until(m20)).unwrap();
        store
            .update_user("c@example.com", |u| {
                u.lock = LockState::LockedByAdmin {
                    since: now,
                    reason: "by hand".into(),
                }
            })
            .unwrap();
        assert_eq!(store.locks_due(now).unwrap(), Vec::<String>::new());
        assert_eq!(store.locks_due(m10).unwrap(), ["a@example.com"]);
        assert_eq!(
            store.locks_due(far).unwrap(),
            ["a@example.com", "b@example.com", "d@example.com"]
        );
        // Locked again for longer: one entry, at the new time.
        store.update_user("a@example.com", until(m20)).unwrap();
        assert_eq!(store.locks_due(m10).unwrap(), Vec::<String>::new());
        // Unlocked by the admin before its time.
        store
            .update_user("b@example.com", |u| u.lock = LockState::Active)
            .unwrap();
        assert_eq!(
            store.locks_due(far).unwrap(),
            ["a@example.com", "d@example.com"]
        );
        assert_eq!(store.locked_users().unwrap(), 3);
        // Housekeeping's expiry reads the index and ends a's lock; the
        // count drops with it.
        assert_eq!(store.expire_locks(m20).unwrap(), ["a@example.com"]);
        assert_eq!(store.locks_due(far).unwrap(), ["d@example.com"]);
        assert_eq!(store.locked_users().unwrap(), 2);
        // Deleted with a timed lock.
        assert!(store.delete_user("d@example.com").unwrap());
        assert_eq!(store.locks_due(far).unwrap(), Vec::<String>::new());
        // Written by the fleet with a timed lock, then deleted there.
        let mut e = user("e@example.com", now);
        until(m30)(&mut e);
        assert!(store.apply_remote_user("e@example.com", Some(&e)).unwrap());
        assert_eq!(store.locks_due(far).unwrap(), ["e@example.com"]);
        assert!(store.apply_remote_user("e@example.com", None).unwrap());
        assert_eq!(store.locks_due(far).unwrap(), Vec::<String>::new());

        // Rebuilt at open from the users, also when it was lost.
        store.update_user("b@example.com", until(m30)).unwrap();
        let txn = store.write().unwrap();
        txn.delete_table(LOCK_EXPIRY).unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.locks_due(far).unwrap(), ["b@example.com"]);
        assert_eq!(store.expire_locks(m30).unwrap(), ["b@example.com"]);
        assert_eq!(store.locked_users().unwrap(), 1);
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
