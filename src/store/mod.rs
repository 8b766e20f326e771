//! The embedded redb store: one file in the data directory holding users,
//! their usage counters, system settings and the queue of accepted mail.
//! redb gives ACID transactions with copy-on-write pages, so a crash at
//! any moment leaves the last committed state; a commit with the default
//! `Durability::Immediate` is fsynced before it returns.

mod accept;
mod admin;
mod behaviour;
mod counts;
mod directory;
mod dkim;
pub mod envelope;
pub mod fleet;
mod health;
mod observer;
mod opening;
pub mod paging;
mod quarantine;
mod queue;
mod settings;
mod space;
mod usage;
mod users;

use std::path::Path;

use redb::{Database, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use accept::{AcceptError, Accepted, Committer, Decide, Submission};
pub use admin::AuditEntry;
pub use health::Health;
pub use observer::{Change, ProfileChange};
pub use paging::{Page, SCAN_MAX};
pub use quarantine::QuarantineEntry;
pub use queue::{
    NewMessage, QueueEntry, QueueFilter, RcptState, Recipient, parse_id, show_id as queue_id,
};
pub use space::{Refusal, StoreConfig};
pub use usage::Usage;
pub use users::ImportOutcome;

/// `user name -> User (JSON)`
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// IP-authorised users, for the lookup at connect: `network -> ()`.
const NETWORKS: TableDefinition<&str, ()> = TableDefinition::new("networks");
/// `user name -> Usage (JSON)`
const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
/// `"system" -> SystemSettings (JSON)`
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// `queue id -> QueueEntry (JSON)`: envelope and per-recipient state.
const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
/// `queue id -> message bytes`, apart so that listing the queue is cheap.
const BODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("bodies");
/// `id -> QuarantineEntry (JSON)`: spam and malware kept for the admin.
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// `id -> message bytes` of quarantined mail.
const QBODIES: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine_bodies");
/// Sequences: `"queue_id" -> next id`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    db: Database,
    health: Health,
    space: space::Space,
    observer: observer::Observer,
    /// Dropped after `db` (fields drop in declaration order), so its
    /// receiver (`close_signal`) learns that redb has written its allocator
    /// state and marked the file clean.
    closed: Option<std::sync::mpsc::Sender<()>>,
}

/// redb page cache when the config does not say (`store_cache_mib`).
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

impl Store {
    /// Opens (or creates) the store with the default page cache.
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store and makes sure every table exists, so
    /// read transactions never meet a missing table. `cache_bytes` bounds
    /// redb's page cache (its own default is 1 GiB, which on an appliance
    /// would let the cache grow with the queue).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Store> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError(e.to_string()))?;
        Self::open_file(file, cache_bytes)
    }

    /// `open_with_cache` on a file the caller opened (the daemon opens it
    /// beneath the data directory without following symlinks).
    pub fn open_file(file: std::fs::File, cache_bytes: usize) -> Result<Store> {
        let measure = file.try_clone().ok();
        let backend =
            redb::backends::FileBackend::new(file).map_err(|e| StoreError(e.to_string()))?;
        // redb 2.6 (the newest that Buildroot 2026.02's Rust 1.88 builds)
        // writes the v3 file format only when asked; redb 3 and later read
        // and write only v3, so this keeps the store open to a later redb
        // (docs/ARCHITECTURE.md, "Store file format").
        let db = opening::explain_panics(|| {
            redb::Builder::new()
                .set_cache_size(cache_bytes)
                .create_with_file_format_v3(true)
                .create_with_backend(backend)
        })?;
        let txn = db.begin_write()?;
        {
            txn.open_table(USERS)?;
            txn.open_table(NETWORKS)?;
            txn.open_table(USAGE)?;
            txn.open_table(SETTINGS)?;
            txn.open_table(QUEUE)?;
            txn.open_table(BODIES)?;
            txn.open_table(META)?;
            admin::create(&txn)?;
            directory::create(&txn)?;
            dkim::create(&txn)?;
            txn.open_table(QUARANTINE)?;
            txn.open_table(QBODIES)?;
            queue::create(&txn)?;
            behaviour::create(&txn)?;
            counts::create(&txn)?;
            users::recount_locked(&txn)?;
        }
        txn.commit()?;
        Ok(Store {
            db,
            health: Health::default(),
            space: space::Space::new(measure),
            observer: observer::Observer::default(),
            closed: None,
        })
    }

    /// A receiver that disconnects once this store is closed: its last
    /// reference dropped and redb's clean shutdown on disk. A store dropped
    /// unclean (process exit while a thread still held it) makes the next
    /// open walk the whole file to rebuild the allocator state.
    pub fn close_signal(&mut self) -> std::sync::mpsc::Receiver<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.closed = Some(tx);
        rx
    }

    /// Whether writes still work (see `health`).
    pub fn health(&self) -> &Health {
        &self.health
    }

    fn read(&self) -> Result<redb::ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    fn write(&self) -> Result<health::Txn<'_>> {
        health::Txn::begin(&self.db, &self.health)
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

fn from_json<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(b)?)
}
