//! The queue of accepted messages: envelope and per-recipient state in one
//! table, message bytes in another. An entry exists from the 250 until
//! every recipient is delivered, bounced or expired.

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::envelope::{MessageDsn, RcptDsn};
use super::{BODIES, META, QUEUE, Result, Store, from_json, to_json};

/// The delivery schedule: `(next attempt in ns since the epoch, queue id)
/// -> ()`, one row per entry with something queued. Finding due mail reads
/// only what is due, however much is deferred (a next hop down for a day).
/// Written in the same transactions as `QUEUE`.
pub(super) const DUE: TableDefinition<(i128, u64), ()> = TableDefinition::new("queue_due");
/// Set in `META` once `DUE` has been built for a store that predates it.
const DUE_INDEX_BUILT: &str = "queue_due_built";

fn due_key(t: Timestamp, id: u64) -> (i128, u64) {
    (t.as_nanosecond(), id)
}

/// Adds a new entry, its body and its place in the schedule.
pub(super) fn insert_new(txn: &WriteTransaction, entry: &QueueEntry, body: &[u8]) -> Result<()> {
    txn.open_table(QUEUE)?
        .insert(entry.id, to_json(entry)?.as_slice())?;
    txn.open_table(BODIES)?.insert(entry.id, body)?;
    if let Some(t) = entry.next_attempt {
        txn.open_table(DUE)?.insert(due_key(t, entry.id), ())?;
    }
    Ok(())
}

/// Creates the schedule table, and fills it from the queue once for a
/// store written before it existed.
pub(super) fn create(txn: &WriteTransaction) -> Result<()> {
    let mut due = txn.open_table(DUE)?;
    let mut meta = txn.open_table(META)?;
    if meta.get(DUE_INDEX_BUILT)?.is_some() {
        return Ok(());
    }
    due.retain(|_, _| false)?;
    let queue = txn.open_table(QUEUE)?;
    for row in queue.iter()? {
        let (k, v) = row?;
        let e: QueueEntry = from_json(v.value())?;
        if let Some(t) = e.next_attempt {
            due.insert(due_key(t, k.value()), ())?;
        }
    }
    meta.insert(DUE_INDEX_BUILT, 1)?;
    Ok(())
}

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
    /// NOTIFY and ORCPT (RFC 3461).
    #[serde(default, skip_serializing_if = "RcptDsn::is_empty")]
    pub dsn: RcptDsn,
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
            dsn: RcptDsn::default(),
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
    /// RET and ENVID (RFC 3461).
    #[serde(default, skip_serializing_if = "MessageDsn::is_empty")]
    pub dsn: MessageDsn,
    /// Taken with SMTPUTF8 (RFC 6531): a next hop must offer it too, or
    /// the recipients fail (5.6.7/5.6.9). False in stores written before.
    #[serde(default)]
    pub smtputf8: bool,
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

    /// Up to `limit` entries after the id `after`, in id (arrival) order.
    pub fn queue_page(
        &self,
        filter: &QueueFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<super::Page<QueueEntry, u64>> {
        let txn = self.read()?;
        let table = txn.open_table(QUEUE)?;
        super::paging::by_number(&table, after, false, limit, |v| {
            let e: QueueEntry = from_json(v)?;
            let user_ok = filter.user.as_ref().is_none_or(|u| *u == e.user);
            let state_ok = filter.state.is_none_or(|s| s == e.state());
            Ok((user_ok && state_ok).then_some(e))
        })
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
        let schedule = txn.open_table(DUE)?;
        let queue = txn.open_table(QUEUE)?;
        let mut out = Vec::new();
        for row in schedule.range(..=due_key(now, u64::MAX))? {
            if out.len() >= limit {
                break;
            }
            let (_, id) = row?.0.value();
            if busy(id) {
                continue;
            }
            if let Some(v) = queue.get(id)? {
                out.push(from_json(v.value())?);
            }
        }
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
            let mut schedule = txn.open_table(DUE)?;
            let Some(mut entry) = queue
                .get(id)?
                .map(|v| from_json::<QueueEntry>(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            if let Some(t) = entry.next_attempt {
                schedule.remove(due_key(t, id))?;
            }
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
                if let Some(t) = entry.next_attempt {
                    schedule.insert(due_key(t, id), ())?;
                }
            } else {
                queue.remove(id)?;
                bodies.remove(id)?;
                durable = !lazy_removal || new.is_some();
            }
            if let Some(m) = new {
                let utf8 = crate::intl::needs(
                    &m.sender,
                    m.recipients.iter().map(String::as_str),
                    &m.message,
                ) != crate::intl::Needs::Nothing;
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
                    dsn: Default::default(),
                    smtputf8: utf8,
                };
                queue.insert(m.id, to_json(&e)?.as_slice())?;
                bodies.insert(m.id, m.message.as_slice())?;
                schedule.insert(due_key(now, m.id), ())?;
                super::accept::bump_seq(&txn, m.id)?;
            }
            entry
        };
        if !durable {
            txn.set_durability(redb::Durability::None);
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
            let old: Option<QueueEntry> = txn
                .open_table(QUEUE)?
                .remove(id)?
                .map(|v| from_json(v.value()))
                .transpose()?;
            txn.open_table(BODIES)?.remove(id)?;
            if let Some(t) = old.as_ref().and_then(|e| e.next_attempt) {
                txn.open_table(DUE)?.remove(due_key(t, id))?;
            }
            old.is_some()
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
        insert_new(&txn, entry, body)?;
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
            dsn: Default::default(),
            smtputf8: false,
        }
    }

    fn temp_store(name: &str) -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!("og-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("store.redb")).unwrap();
        (dir, store)
    }

    /// The schedule holds exactly one row per entry with a next attempt.
    fn assert_schedule_matches(store: &Store) {
        let txn = store.read().unwrap();
        let rows: Vec<(i128, u64)> = txn
            .open_table(DUE)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        let mut want: Vec<(i128, u64)> = store
            .queue(&QueueFilter::default())
            .unwrap()
            .iter()
            .filter_map(|e| e.next_attempt.map(|t| due_key(t, e.id)))
            .collect();
        want.sort();
        assert_eq!(rows, want);
    }

    fn ids(v: Vec<QueueEntry>) -> Vec<u64> {
        v.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn due_reads_the_schedule_in_order() {
        let (dir, store) = temp_store("due");
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        for (id, when) in [(1, 30), (2, 10), (3, 20), (4, 500)] {
            let mut e = entry(id, t0);
            e.next_attempt = Some(at(when));
            store.enqueue(&e, b"hi").unwrap();
        }
        assert_schedule_matches(&store);
        assert_eq!(ids(store.due(at(25), 10, |_| false).unwrap()), [2, 3]);
        assert_eq!(ids(store.due(at(100), 2, |_| false).unwrap()), [2, 3]);
        assert_eq!(ids(store.due(at(100), 10, |id| id == 3).unwrap()), [2, 1]);
        // Deferred: moves to its new place.
        let defer = |e: &mut QueueEntry, _: &[u8]| {
            e.recipients[0].next_attempt = Some(at(1000));
            None
        };
        store.update_entry(2, at(15), defer).unwrap();
        assert_eq!(ids(store.due(at(600), 10, |_| false).unwrap()), [3, 1, 4]);
        assert_schedule_matches(&store);
        // Delivered and removed: leaves the schedule.
        let delivered = |e: &mut QueueEntry, _: &[u8]| {
            e.recipients[0].state = RcptState::Delivered;
            None
        };
        store.update_entry(3, at(600), delivered).unwrap();
        assert!(store.remove_entry(4).unwrap());
        assert_eq!(ids(store.due(at(2000), 10, |_| false).unwrap()), [1, 2]);
        assert_schedule_matches(&store);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_stored_before_smtputf8_load_without_it() {
        let now = Timestamp::UNIX_EPOCH;
        let mut json: serde_json::Value =
            serde_json::from_slice(&to_json(&entry(7, now)).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("smtputf8");
        let old: QueueEntry = from_json(json.to_string().as_bytes()).unwrap();
        assert!(!old.smtputf8);
        assert_eq!(old, entry(7, now));
    }

    #[test]
    fn schedule_is_built_for_a_store_that_predates_it() {
        let (dir, store) = temp_store("due-upgrade");
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        for id in 1..=3 {
            store.enqueue(&entry(id, now), b"hi").unwrap();
        }
        // What a store written before the schedule existed looks like.
        let txn = store.write().unwrap();
        txn.delete_table(DUE).unwrap();
        txn.open_table(META)
            .unwrap()
            .remove(DUE_INDEX_BUILT)
            .unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = Store::open(&dir.join("store.redb")).unwrap();
        assert_schedule_matches(&store);
        assert_eq!(ids(store.due(now, 10, |_| false).unwrap()), [1, 2, 3]);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
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
