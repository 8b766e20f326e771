//! Quarantine: spam, malware and messages held for unusual sending, kept
//! for the admin to release or delete (they are stored by the committer,
//! `store::accept`, in the transaction that decides their fate).

use std::collections::BTreeMap;

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::queue::{QueueEntry, Recipient};
use super::{QBODIES, QUARANTINE, Result, Store, from_json};
use crate::policy::locking;

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
    /// "hold" (kept for review, user not locked) or "lock" (this message
    /// locked the user); empty for entries stored before the response
    /// ladder existed.
    #[serde(default)]
    pub fate: String,
    /// Taken with SMTPUTF8 (false for entries stored before it existed).
    #[serde(default)]
    pub smtputf8: bool,
    /// The text's fingerprint (`scan::fingerprint`; 0 for none and for
    /// entries stored before it existed): finds the copies of a mail merge.
    #[serde(default)]
    pub text: u128,
}

/// The most copies one release finds (a mail merge to a large list).
pub const MAX_COPIES: usize = 10_000;

impl Store {
    pub fn quarantined(&self) -> Result<Vec<QuarantineEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(from_json(row?.1.value())?);
        }
        Ok(out)
    }

    /// How many messages are held, and how many of them were received in
    /// `[from, to)`: ids grow with time, so this reads the entries from
    /// the newest back to the first one received an hour before `from`
    /// (an id is taken at DATA and the time at the commit, so ids and
    /// times may disagree by as long as a message takes to arrive).
    pub fn quarantine_counts(&self, from: Timestamp, to: Timestamp) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE)?;
        let stop = crate::bounds::earlier(from, jiff::SignedDuration::from_hours(1));
        let mut within = 0u64;
        for row in table.iter()?.rev() {
            let q: QuarantineEntry = from_json(row?.1.value())?;
            if q.received < stop {
                break;
            }
            within += u64::from(from <= q.received && q.received < to);
        }
        Ok((table.len()?, within))
    }

    /// Up to `limit` held messages after the id `after`, oldest first.
    pub fn quarantine_page(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<super::Page<QuarantineEntry, u64>> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE)?;
        super::paging::by_number(&table, after, false, limit, |v| Ok(Some(from_json(v)?)))
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

    /// The other held messages of the same user with the same text
    /// (`scan::fingerprint::same_text`), oldest first, at most
    /// [`MAX_COPIES`]; None when `id` is not held.
    pub fn quarantine_copies(&self, id: u64) -> Result<Option<Vec<u64>>> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE)?;
        let Some(this) = table
            .get(id)?
            .map(|v| from_json::<QuarantineEntry>(v.value()))
        else {
            return Ok(None);
        };
        let this = this?;
        let mut copies = Vec::new();
        if this.text == 0 {
            return Ok(Some(copies));
        }
        for row in table.iter()? {
            let (k, v) = row?;
            if k.value() == id {
                continue;
            }
            let q: QuarantineEntry = from_json(v.value())?;
            if q.user == this.user && crate::scan::fingerprint::same_text(q.text, this.text) {
                copies.push(q.id);
                if copies.len() == MAX_COPIES {
                    break;
                }
            }
        }
        Ok(Some(copies))
    }

    /// Moves quarantined messages into the delivery queue, each
    /// `(quarantine id, queue id)`, in one transaction: the first, and
    /// those of the others still held (a mail merge's copies); nothing
    /// when the first is not held. Returns the pairs released. Released
    /// mail does not count against the user's limits (it was counted as
    /// nothing when it was caught).
    pub fn release_quarantined(
        &self,
        ids: &[(u64, u64)],
        now: Timestamp,
    ) -> Result<Vec<(u64, u64)>> {
        let txn = self.write()?;
        let mut released = Vec::with_capacity(ids.len());
        // What the admin vouched for, per user and text: the recipients
        // become contacts, so the same list does not look new again, and
        // the text's hold is no evidence any more, its copies go out.
        let mut vouched: BTreeMap<(String, u128), Vec<String>> = BTreeMap::new();
        for &(id, queue_id) in ids {
            let entry: Option<QuarantineEntry> = txn
                .open_table(QUARANTINE)?
                .remove(id)?
                .map(|v| from_json(v.value()))
                .transpose()?;
            let Some(q) = entry else {
                if released.is_empty() {
                    return Ok(released);
                }
                continue;
            };
            let body = txn
                .open_table(QBODIES)?
                .remove(id)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default();
            vouched
                .entry((q.user.clone(), q.text))
                .or_default()
                .extend(q.recipients.iter().cloned());
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
                dsn: Default::default(),
                smtputf8: q.smtputf8,
            };
            super::queue::insert_new(&txn, &entry, &body)?;
            super::accept::bump_seq(&txn, queue_id)?;
            released.push((id, queue_id));
        }
        for ((user, text), recipients) in &vouched {
            super::behaviour::learn_release(&txn, user, recipients, *text)?;
        }
        txn.commit()?;
        for ((user, text), recipients) in vouched {
            self.changed(super::Change::Profile(
                user,
                super::ProfileChange::Released(recipients, text),
            ));
        }
        Ok(released)
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
        let due = self.locks_due(now)?;
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
