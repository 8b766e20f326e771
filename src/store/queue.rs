//! The queue of accepted messages: envelope and per-recipient state in one
//! table, message bytes in another. An entry exists from the 250 until
//! every recipient is delivered, bounced or expired.

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{BODIES, META, QUEUE, Result, Store, from_json, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptState {
    /// Waiting for (another) delivery attempt.
    Queued,
    Delivered,
    /// Refused permanently by the next hop.
    Failed,
    /// Not delivered within the user's maximum days to retry.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub state: RcptState,
    pub attempts: u32,
    pub last_reply: Option<String>,
    /// When this recipient is tried next (None: with the message).
    #[serde(default)]
    pub next_attempt: Option<Timestamp>,
    /// The host that gave `last_reply`, for logs and bounces.
    #[serde(default)]
    pub remote: Option<String>,
}

impl Recipient {
    pub fn new(address: String) -> Recipient {
        Recipient {
            address,
            state: RcptState::Queued,
            attempts: 0,
            last_reply: None,
            next_attempt: None,
            remote: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: u64,
    /// Outgoing user who sent it.
    pub user: String,
    /// Envelope sender; empty for the null sender.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Size of the stored message in octets.
    pub size: u64,
    pub received: Timestamp,
    pub client_ip: String,
    pub helo: String,
    pub next_attempt: Option<Timestamp>,
    /// A delay warning was sent for this message.
    #[serde(default)]
    pub delay_warned: bool,
}

impl QueueEntry {
    /// When a queued recipient is due.
    pub fn due_at(&self, r: &Recipient) -> Option<Timestamp> {
        r.next_attempt.or(self.next_attempt)
    }

    pub fn state(&self) -> RcptState {
        let states = || self.recipients.iter().map(|r| r.state);
        if states().any(|s| s == RcptState::Queued) {
            RcptState::Queued
        } else if states().all(|s| s == RcptState::Delivered) {
            RcptState::Delivered
        } else if states().any(|s| s == RcptState::Expired) {
            RcptState::Expired
        } else {
            RcptState::Failed
        }
    }
}

/// Which queue entries to list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueFilter {
    pub user: Option<String>,
    pub state: Option<RcptState>,
}

/// Queue ids are shown as 16 hex digits.
pub fn show_id(id: u64) -> String {
    format!("{id:016X}")
}

pub fn parse_id(text: &str) -> Option<u64> {
    u64::from_str_radix(text, 16).ok()
}

impl Store {
    pub fn queue(&self, filter: &QueueFilter) -> Result<Vec<QueueEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(QUEUE)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            let e: QueueEntry = from_json(v.value())?;
            let user_ok = filter.user.as_ref().is_none_or(|u| *u == e.user);
            let state_ok = filter.state.is_none_or(|s| s == e.state());
            if user_ok && state_ok {
                out.push(e);
            }
        }
        Ok(out)
    }

    pub fn queue_entry(&self, id: u64) -> Result<Option<QueueEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(QUEUE)?;
        table.get(id)?.map(|v| from_json(v.value())).transpose()
    }

    pub fn queue_body(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.read()?;
        let table = txn.open_table(BODIES)?;
        Ok(table.get(id)?.map(|v| v.value().to_vec()))
    }

    /// The first queue id not yet used (ids are never reused).
    pub fn next_queue_id(&self) -> Result<u64> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta
            .get(super::accept::QUEUE_SEQ)?
            .map(|v| v.value())
            .unwrap_or(1))
    }
}

/// A message the daemon writes itself (a delivery status notification),
/// queued like any accepted message.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// From `Committer::reserve_id`, so ids stay unique across writers.
    pub id: u64,
    pub user: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
}

impl Store {
    /// Entries with a queued recipient due at `now`, earliest first, at
    /// most `limit` of them, leaving out those `busy` says are in hand.
    pub fn due(
        &self,
        now: Timestamp,
        limit: usize,
        busy: impl Fn(u64) -> bool,
    ) -> Result<Vec<QueueEntry>> {
        let txn = self.read()?;
        let table = txn.open_table(QUEUE)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if busy(k.value()) {
                continue;
            }
            let e: QueueEntry = from_json(v.value())?;
            if e.next_attempt.is_some_and(|t| t <= now) {
                out.push(e);
            }
        }
        out.sort_by_key(|e| e.next_attempt);
        out.truncate(limit);
        Ok(out)
    }

    /// Changes entry `id` in one write transaction. `change` sees the
    /// message bytes and may return a new message (a bounce) that is
    /// queued in the same commit, so a crash never separates a failure
    /// from its bounce. Once no recipient is queued, the entry and its
    /// body are removed. Returns the entry as changed, or None if it was
    /// already gone.
    pub fn update_entry<F>(&self, id: u64, now: Timestamp, change: F) -> Result<Option<QueueEntry>>
    where
        F: FnOnce(&mut QueueEntry, &[u8]) -> Option<NewMessage>,
    {
        self.update_entry_with(id, now, false, change)
    }

    /// `update_entry`, except that with `lazy_removal` a commit that only
    /// removes a finished entry (nothing left queued, no new message) is
    /// not fsynced: it becomes durable with the next durable commit (the
    /// next accepted message, or `sync`). A crash before then delivers
    /// those messages again (at least once, as MTAs do) and never loses
    /// one; it saves an fsync per delivered message.
    pub fn update_entry_with<F>(
        &self,
        id: u64,
        now: Timestamp,
        lazy_removal: bool,
        change: F,
    ) -> Result<Option<QueueEntry>>
    where
        F: FnOnce(&mut QueueEntry, &[u8]) -> Option<NewMessage>,
    {
        let mut txn = self.write()?;
        let mut durable = true;
        let entry = {
            let mut queue = txn.open_table(QUEUE)?;
            let mut bodies = txn.open_table(BODIES)?;
            let Some(mut entry) = queue
                .get(id)?
                .map(|v| from_json::<QueueEntry>(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            let new = {
                let body = bodies.get(id)?;
                change(&mut entry, body.as_ref().map_or(&[][..], |b| b.value()))
            };
            entry.next_attempt = entry
                .recipients
                .iter()
                .filter(|r| r.state == RcptState::Queued)
                .filter_map(|r| entry.due_at(r))
                .min();
            if entry.state() == RcptState::Queued {
                queue.insert(id, to_json(&entry)?.as_slice())?;
            } else {
                queue.remove(id)?;
                bodies.remove(id)?;
                durable = !lazy_removal || new.is_some();
            }
            if let Some(m) = new {
                let e = QueueEntry {
                    id: m.id,
                    user: m.user,
                    sender: m.sender,
                    recipients: m.recipients.into_iter().map(Recipient::new).collect(),
                    size: m.message.len() as u64,
                    received: now,
                    client_ip: String::new(),
                    helo: String::new(),
                    next_attempt: Some(now),
                    delay_warned: false,
                };
                queue.insert(m.id, to_json(&e)?.as_slice())?;
                bodies.insert(m.id, m.message.as_slice())?;
                super::accept::bump_seq(&txn, m.id)?;
            }
            entry
        };
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| super::StoreError(e.to_string()))?;
        }
        txn.commit()?;
        Ok(Some(entry))
    }

    /// Makes every earlier commit durable (one fsync).
    pub fn sync(&self) -> Result<()> {
        self.write()?.commit()?;
        Ok(())
    }

    /// Drops a message from the queue without a trace; false if absent.
    pub fn remove_entry(&self, id: u64) -> Result<bool> {
        let txn = self.write()?;
        let found = {
            let found = txn.open_table(QUEUE)?.remove(id)?.is_some();
            txn.open_table(BODIES)?.remove(id)?;
            found
        };
        txn.commit()?;
        Ok(found)
    }
}

impl Store {
    /// Queues a message the appliance itself wrote (notices), outside any
    /// user's limits. `id` comes from the committer's sequence.
    pub fn enqueue(&self, entry: &QueueEntry, body: &[u8]) -> Result<()> {
        let txn = self.write()?;
        txn.open_table(QUEUE)?
            .insert(entry.id, super::to_json(entry)?.as_slice())?;
        txn.open_table(BODIES)?.insert(entry.id, body)?;
        super::accept::bump_seq(&txn, entry.id)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, now: Timestamp) -> QueueEntry {
        QueueEntry {
            id,
            user: "u@example.com".into(),
            sender: "u@example.com".into(),
            recipients: vec![Recipient::new("r@example.net".into())],
            size: 2,
            received: now,
            client_ip: String::new(),
            helo: String::new(),
            next_attempt: Some(now),
            delay_warned: false,
        }
    }

    #[test]
    fn lazy_removal_is_durable_after_sync() {
        let dir = std::env::temp_dir().join(format!("og-lazy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let now = Timestamp::now();
        {
            let store = Store::open(&path).unwrap();
            store.enqueue(&entry(1, now), b"hi").unwrap();
            store.enqueue(&entry(2, now), b"hi").unwrap();
            let delivered = |e: &mut QueueEntry, _: &[u8]| {
                e.recipients[0].state = RcptState::Delivered;
                None
            };
            assert!(
                store
                    .update_entry_with(1, now, true, delivered)
                    .unwrap()
                    .is_some()
            );
            assert!(store.queue_entry(1).unwrap().is_none());
            store.sync().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.queue_entry(1).unwrap().is_none());
        assert!(store.queue_entry(2).unwrap().is_some());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
