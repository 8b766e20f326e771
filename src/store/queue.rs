//! The queue of accepted messages: envelope and per-recipient state in one
//! table, message bytes in another. An entry exists from the 250 until
//! every recipient is delivered, bounced or expired.

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{BODIES, META, QUEUE, Result, Store, from_json};

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
}

impl QueueEntry {
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
