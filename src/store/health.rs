//! Whether the store can still write. After an I/O error (disk full, a
//! failing disk) redb refuses every later transaction until the database
//! is reopened. The store notices this on the way through every write
//! transaction (`Txn`), remembers the first such failure, and the daemon
//! waits on it to stop: sessions get 4xx, delivery sends nothing more, and
//! the process exits non-zero so its supervisor starts it again with the
//! store reopened from its last commit (redb's copy-on-write commits keep
//! that intact).

use std::ops::{Deref, DerefMut};

use redb::{CommitError, Database, StorageError, TransactionError, WriteTransaction};
use tokio::sync::watch;

use super::{Result, StoreError};

pub struct Health {
    failure: watch::Sender<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            failure: watch::channel(None).0,
        }
    }
}

impl Health {
    /// The first write failure, if the store has had one.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Waits until the store fails; returns why.
    pub async fn failed(&self) -> String {
        let mut rx = self.failure.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    pub(super) fn fail(&self, why: &str) {
        let first = self.failure.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(why.to_string());
            true
        });
        if first {
            tracing::error!(
                error = why,
                "store write failed; no more mail is accepted or delivered until restart"
            );
        }
    }

    fn check(&self, e: &StorageError) {
        if poisons(e) {
            self.fail(&e.to_string());
        }
    }
}

/// Errors after which redb's Database refuses further writes (redb 2.6:
/// an I/O error, and `PreviousIo` for every transaction after one; redb 3+
/// adds `DatabaseClosed` and `Backend`, which a port must list here too).
fn poisons(e: &StorageError) -> bool {
    matches!(e, StorageError::Io(_) | StorageError::PreviousIo)
}

/// A write transaction that reports I/O failures to the store's `Health`:
/// at its begin, its commit, and when it is dropped uncommitted (an
/// operation inside it failed, perhaps writing out pages: redb's next
/// transaction tells whether that poisoned the database). Derefs to
/// redb's transaction for everything else.
pub(super) struct Txn<'a> {
    /// Always Some until `commit` or drop takes it.
    txn: Option<WriteTransaction>,
    db: &'a Database,
    health: &'a Health,
}

impl Deref for Txn<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        self.txn
            .as_ref()
            .expect("transaction taken only by commit or drop")
    }
}

impl DerefMut for Txn<'_> {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        self.txn
            .as_mut()
            .expect("transaction taken only by commit or drop")
    }
}

impl<'a> Txn<'a> {
    pub(super) fn begin(db: &'a Database, health: &'a Health) -> Result<Txn<'a>> {
        if let Some(why) = health.failure() {
            return Err(StoreError(format!("store failed earlier: {why}")));
        }
        match db.begin_write() {
            Ok(txn) => Ok(Txn {
                txn: Some(txn),
                db,
                health,
            }),
            Err(e) => {
                if let TransactionError::Storage(s) = &e {
                    health.check(s);
                }
                Err(e.into())
            }
        }
    }

    pub(super) fn commit(mut self) -> Result<()> {
        let Some(txn) = self.txn.take() else {
            return Err(StoreError("transaction already finished".into()));
        };
        txn.commit().map_err(|e| {
            if let CommitError::Storage(s) = &e {
                self.health.check(s);
            }
            e.into()
        })
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        drop(txn);
        if self.health.failure().is_none()
            && let Err(TransactionError::Storage(s)) = self.db.begin_write().map(drop)
        {
            self.health.check(&s);
        }
    }
}
