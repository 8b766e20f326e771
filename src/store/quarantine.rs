//! Quarantine: spam and malware kept for the admin to release or delete,
//! and the detection transaction that stores it together with the
//! sender's automatic lock.

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::queue::{QueueEntry, Recipient};
use super::{QBODIES, QUARANTINE, Result, Store, USERS, from_json, to_json};
use crate::locking;
use crate::users::{EffectiveSettings, LockState, User};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub id: u64,
    pub user: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub size: u64,
    pub received: Timestamp,
    pub client_ip: String,
    pub helo: String,
    /// "spam" or "malware".
    pub class: String,
    pub score: f64,
    pub reasons: Vec<String>,
}

/// What to do about one detected message, in one transaction.
pub struct Detection<'a> {
    /// Keep the message (quarantine on), or drop it.
    pub keep: Option<(&'a QuarantineEntry, &'a [u8])>,
    /// Lock the sender (when automatic lock applies).
    pub lock: Option<(&'a EffectiveSettings, &'a str)>,
    pub user: &'a str,
    pub now: Timestamp,
}

impl Store {
    /// Stores the quarantined message and locks the user, atomically.
    /// Returns the new lock, if one was set.
    pub fn record_detection(&self, d: &Detection) -> Result<Option<LockState>> {
        let txn = self.write()?;
        let mut lock = None;
        if let Some((q, body)) = d.keep {
            txn.open_table(QUARANTINE)?
                .insert(q.id, to_json(q)?.as_slice())?;
            txn.open_table(QBODIES)?.insert(q.id, body)?;
            super::accept::bump_seq(&txn, q.id)?;
        }
        if let Some((eff, reason)) = d.lock {
            let mut users = txn.open_table(USERS)?;
            let user: Option<User> = users
                .get(d.user)?
                .map(|v| from_json(v.value()))
                .transpose()?;
            if let Some(mut user) = user {
                lock = locking::auto_lock(&mut user, eff, d.now, reason);
                users.insert(d.user, to_json(&user)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(lock)
    }

    pub fn quarantined(&self) -> Result<Vec<QuarantineEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json(row?.1.value())?);
        }
        Ok(out)
    }

    pub fn quarantine_entry(&self, id: u64) -> Result<Option<(QuarantineEntry, Vec<u8>)>> {
        let txn = self.read()?;
        let Some(entry) = txn
            .open_table(QUARANTINE)?
            .get(id)?
            .map(|v| from_json(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        let body = txn
            .open_table(QBODIES)?
            .get(id)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        Ok(Some((entry, body)))
    }

    /// Moves a quarantined message into the delivery queue under
    /// `queue_id`. Released mail does not count against the user's limits
    /// (it was counted as nothing when it was caught).
    pub fn release_quarantined(&self, id: u64, queue_id: u64, now: Timestamp) -> Result<bool> {
        let txn = self.write()?;
        let entry: Option<QuarantineEntry> = txn
            .open_table(QUARANTINE)?
            .remove(id)?
            .map(|v| from_json(v.value()))
            .transpose()?;
        let Some(q) = entry else {
            return Ok(false);
        };
        let body = txn
            .open_table(QBODIES)?
            .remove(id)?
            .map(|v| v.value().to_vec())
            .unwrap_or_default();
        let entry = QueueEntry {
            id: queue_id,
            user: q.user,
            sender: q.sender,
            recipients: q.recipients.into_iter().map(Recipient::new).collect(),
            size: body.len() as u64,
            received: now,
            client_ip: q.client_ip,
            helo: q.helo,
            next_attempt: Some(now),
            delay_warned: false,
        };
        super::queue::insert_new(&txn, &entry, &body)?;
        super::accept::bump_seq(&txn, queue_id)?;
        txn.commit()?;
        Ok(true)
    }

    pub fn delete_quarantined(&self, id: u64) -> Result<bool> {
        let txn = self.write()?;
        let existed = txn.open_table(QUARANTINE)?.remove(id)?.is_some();
        txn.open_table(QBODIES)?.remove(id)?;
        txn.commit()?;
        Ok(existed)
    }

    /// Deletes quarantined messages received before `cutoff`.
    pub fn expire_quarantine(&self, cutoff: Timestamp) -> Result<usize> {
        let old: Vec<u64> = self
            .quarantined()?
            .into_iter()
            .filter(|q| q.received < cutoff)
            .map(|q| q.id)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let txn = self.write()?;
        {
            let mut q = txn.open_table(QUARANTINE)?;
            let mut b = txn.open_table(QBODIES)?;
            for id in &old {
                q.remove(id)?;
                b.remove(id)?;
            }
        }
        txn.commit()?;
        Ok(old.len())
    }

    /// Ends every expired timed lock (counting the unlocks by timeout);
    /// returns the names of the users unlocked.
    pub fn expire_locks(&self, now: Timestamp) -> Result<Vec<String>> {
        let due: Vec<String> = self
            .users()?
            .into_iter()
            .filter(|u| matches!(u.lock, LockState::LockedUntil { until, .. } if until <= now))
            .map(|u| u.name)
            .collect();
        let mut done = Vec::new();
        for name in due {
            let mut unlocked = false;
            self.update_user(&name, |u| unlocked = locking::expire(u, now))?;
            if unlocked {
                done.push(name);
            }
        }
        Ok(done)
    }
}
