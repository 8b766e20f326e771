//! Accepting a message: one write transaction re-checks the user's lock
//! and limits, stores the message and counts it. A single committer thread
//! runs these transactions and takes every submission waiting at that
//! moment into the same commit (group commit), so N sessions finishing
//! DATA together cost one fsync, and no race can pass a limit: the checks
//! and the counting happen in the same serialised transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::{Notify, mpsc, oneshot};

use super::queue::{QueueEntry, Recipient};
use super::usage::Usage;
use super::{META, Result, Store, StoreError, USAGE, USERS, from_json, to_json};
use crate::clock::Clock;
use crate::limits::{self, Exceeded};
use crate::settings;
use crate::users::{LockState, User};
use crate::windows;

pub(super) const QUEUE_SEQ: &str = "queue_id";
/// Submissions taken into one commit at most.
const MAX_BATCH: usize = 128;

/// A message at the end of DATA, ready to be queued.
#[derive(Debug)]
pub struct Submission {
    pub id: u64,
    pub user: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub client_ip: String,
    pub helo: String,
}

#[derive(Debug)]
pub enum AcceptError {
    /// The user was deleted during the session.
    NoUser,
    /// The user is locked; the text says until when.
    Locked(String),
    MessageLimit(Exceeded),
    RecipientLimit(Exceeded),
    Store(StoreError),
}

struct Job {
    submission: Submission,
    done: oneshot::Sender<std::result::Result<u64, AcceptError>>,
}

pub struct Committer {
    jobs: mpsc::Sender<Job>,
    next_id: AtomicU64,
    /// Signalled after each commit that queued a message.
    queued: Arc<Notify>,
}

impl Committer {
    pub fn start(
        store: Arc<Store>,
        settings: settings::Shared,
        clock: Arc<Clock>,
    ) -> Result<Committer> {
        let next_id = AtomicU64::new(store.next_queue_id()?);
        let (jobs, rx) = mpsc::channel(1024);
        let queued = Arc::new(Notify::new());
        let signal = queued.clone();
        std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(&store, &settings, &clock, rx, &signal))
            .map_err(|e| StoreError(format!("cannot start committer: {e}")))?;
        Ok(Committer {
            jobs,
            next_id,
            queued,
        })
    }

    /// Notified whenever a commit has queued messages (the delivery loop
    /// waits on it instead of only polling).
    pub fn queued_signal(&self) -> Arc<Notify> {
        self.queued.clone()
    }

    /// A fresh queue id, for the Received header written before the commit.
    pub fn reserve_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues the message durably; returns once it is on disk.
    pub async fn accept(&self, submission: Submission) -> std::result::Result<u64, AcceptError> {
        let (done, wait) = oneshot::channel();
        let gone = || AcceptError::Store(StoreError("committer stopped".into()));
        self.jobs
            .send(Job { submission, done })
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

fn run(
    store: &Store,
    settings: &settings::Shared,
    clock: &Clock,
    mut rx: mpsc::Receiver<Job>,
    queued: &Notify,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(store, settings, clock, &batch);
        if results.iter().any(|r| r.is_ok()) {
            queued.notify_one();
        }
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// Decides and stores every submission of the batch in one transaction.
/// If the commit itself fails, every submission fails with it.
fn commit_batch(
    store: &Store,
    settings: &settings::Shared,
    clock: &Clock,
    batch: &[Job],
) -> Vec<std::result::Result<u64, AcceptError>> {
    let attempt = || -> Result<Vec<std::result::Result<u64, AcceptError>>> {
        let txn = store.write()?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            results.push(accept_one(&txn, settings, clock, &job.submission)?);
        }
        txn.commit()?;
        Ok(results)
    };
    match attempt() {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, "queue commit failed");
            batch
                .iter()
                .map(|_| Err(AcceptError::Store(StoreError(e.0.clone()))))
                .collect()
        }
    }
}

fn accept_one(
    txn: &WriteTransaction,
    settings: &settings::Shared,
    clock: &Clock,
    s: &Submission,
) -> Result<std::result::Result<u64, AcceptError>> {
    let now = clock.now();
    let user: Option<User> = txn
        .open_table(USERS)?
        .get(s.user.as_str())?
        .map(|v| from_json(v.value()))
        .transpose()?;
    let Some(user) = user else {
        return Ok(Err(AcceptError::NoUser));
    };
    let (eff, tz) = settings.read(|c| (user.settings.resolve(&c.settings.defaults), c.tz.clone()));
    if let Some(lock) = user.lock.in_force(now) {
        return Ok(Err(AcceptError::Locked(lock_text(lock, &tz))));
    }
    let mut usage_table = txn.open_table(USAGE)?;
    let mut usage: Usage = usage_table
        .get(s.user.as_str())?
        .map(|v| from_json(v.value()))
        .transpose()?
        .unwrap_or_default();
    let w = windows::windows(now, &tz);
    let counts = usage.counts(&w);
    let rcpts = u32::try_from(s.recipients.len()).unwrap_or(u32::MAX);
    if let Err(e) = limits::check_messages(&counts, &eff, 1, now, &tz) {
        return Ok(Err(AcceptError::MessageLimit(e)));
    }
    if let Err(e) = limits::check_recipients(&counts, &eff, rcpts, now, &tz) {
        return Ok(Err(AcceptError::RecipientLimit(e)));
    }
    usage.add(&w, 1, rcpts);
    usage_table.insert(s.user.as_str(), to_json(&usage)?.as_slice())?;

    let entry = QueueEntry {
        id: s.id,
        user: s.user.clone(),
        sender: s.sender.clone(),
        recipients: s
            .recipients
            .iter()
            .map(|a| Recipient::new(a.clone()))
            .collect(),
        size: s.message.len() as u64,
        received: now,
        client_ip: s.client_ip.clone(),
        helo: s.helo.clone(),
        next_attempt: Some(now),
        delay_warned: false,
    };
    super::queue::insert_new(txn, &entry, &s.message)?;
    bump_seq(txn, s.id)?;
    Ok(Ok(s.id))
}

/// Records that `id` is used, so a restart never hands it out again.
pub(super) fn bump_seq(txn: &WriteTransaction, id: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(QUEUE_SEQ)?.map(|v| v.value()).unwrap_or(1);
    if id >= seq {
        meta.insert(QUEUE_SEQ, id + 1)?;
    }
    Ok(())
}

/// What a locked user is told.
pub fn lock_text(lock: &LockState, tz: &jiff::tz::TimeZone) -> String {
    match lock {
        LockState::Active => "account is active".into(),
        LockState::LockedUntil { until, .. } => format!(
            "account is locked until {}",
            windows::show(&until.to_zoned(tz.clone()))
        ),
        LockState::LockedByAdmin { .. } => {
            "account is locked until an administrator unlocks it".into()
        }
    }
}
