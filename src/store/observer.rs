//! Who is told of local changes to users and settings: the fleet's
//! publisher (src/fleet), when `[store] shared` is set; nobody otherwise.
//! Behaviour profiles are reported only for changes made outside a commit
//! of mail (the committer shares those itself).
//! The channel is bounded: when it is full the change is dropped and the
//! `overflowed` flag makes the publisher resend every record instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use super::Store;

/// A record written by this box.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Settings,
    /// A user's behaviour profile changed outside a commit of mail.
    Profile(String, ProfileChange),
    /// The user was added, changed or deleted. Published after profile
    /// changes (variant order): an unlock seen elsewhere finds the holds
    /// already forgotten.
    User(String),
}

/// A change to a behaviour profile, applied as such to the fleet's copy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileChange {
    /// An admin unlocked the user at this time: the holds made until then
    /// are forgotten.
    ClearHolds(jiff::Timestamp),
    /// Recipients failed or bounced.
    Failed(u32, jiff::Timestamp),
    /// Released mail: its recipients are contacts now, and its text
    /// (`scan::fingerprint`, 0 for none) is vouched for.
    Released(Vec<String>, u128),
}

#[derive(Default)]
pub(super) struct Observer {
    tx: OnceLock<SyncSender<Change>>,
    overflowed: AtomicBool,
}

impl Store {
    /// Sends every later local change to `tx` (set once, at start).
    pub fn observe(&self, tx: SyncSender<Change>) {
        let _ = self.observer.tx.set(tx);
    }

    /// Whether changes were dropped since the last call (the observer
    /// should then resend everything).
    pub fn take_overflow(&self) -> bool {
        self.observer.overflowed.swap(false, Ordering::Relaxed)
    }

    pub(super) fn changed(&self, c: Change) {
        if let Some(tx) = self.observer.tx.get()
            && tx.try_send(c).is_err()
        {
            self.observer.overflowed.store(true, Ordering::Relaxed);
        }
    }
}
