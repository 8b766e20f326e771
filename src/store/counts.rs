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
    while t.len()? > KEEP_DAYS as u64 {
        let Some(first) = t.first()?.map(|(k, _)| k.value().to_string()) else {
            break;
        };
        t.remove(first.as_str())?;
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
    let mut t = txn.open_table(DAY_TOTALS)?;
    t.retain(|_, _| false)?;
    for (day, v) in days.iter().rev().take(KEEP_DAYS) {
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
    t.retain(|_, _| false)?;
    for (at, name) in timed {
        t.insert((*at, name.as_str()), ())?;
    }
    Ok(())
}
