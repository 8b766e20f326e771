//! The memory budget for messages in flight: one count of the bytes all
//! sessions may hold for message data at once (`[smtp] max_inflight_bytes`).
//! A transaction reserves what it declares at MAIL (SIZE, or a first
//! chunk) and grows its reservation as DATA arrives; when the budget has
//! no room, the client gets 452 4.3.1 and may retry, instead of the
//! daemon's memory growing with the number of large messages.

use std::sync::{Arc, Mutex};

/// Reserved at MAIL when no SIZE is declared, and the least a
/// reservation grows by during DATA.
pub const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
pub struct InFlight {
    total: usize,
    used: Mutex<usize>,
}

/// Bytes one transaction may buffer; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<InFlight>,
    held: usize,
}

impl InFlight {
    pub fn new(total: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            total,
            used: Mutex::new(0),
        })
    }

    fn take(&self, n: usize) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        match used.checked_add(n) {
            Some(after) if after <= self.total => {
                *used = after;
                true
            }
            _ => false,
        }
    }

    fn give(&self, n: usize) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = used.saturating_sub(n);
    }

    /// Bytes reserved now over all sessions.
    pub fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `n` bytes, or nothing if the budget has no room.
    pub fn reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.take(n).then(|| Reservation {
            pool: self.clone(),
            held: n,
        })
    }
}

impl Reservation {
    pub fn held(&self) -> usize {
        self.held
    }

    /// Grows the reservation to at least `n` bytes (by at least a chunk,
    /// doubling, never past `cap`); false if the budget has no room.
    pub fn grow_to(&mut self, n: usize, cap: usize) -> bool {
        if n <= self.held {
            return true;
        }
        let want = n.max(self.held.saturating_mul(2)).max(self.held + CHUNK);
        let want = want.min(cap.max(n));
        if self.pool.take(want - self.held) {
            self.held = want;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.pool.give(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget() {
        let pool = InFlight::new(4 * CHUNK);
        let mut a = pool.reserve(CHUNK).unwrap();
        let b = pool.reserve(2 * CHUNK).unwrap();
        assert!(pool.reserve(2 * CHUNK).is_none());
        assert!(a.grow_to(CHUNK + 1, usize::MAX));
        assert_eq!(a.held(), 2 * CHUNK);
        assert!(!a.grow_to(2 * CHUNK + 1, usize::MAX));
        drop(b);
        assert!(a.grow_to(3 * CHUNK, 3 * CHUNK));
        assert_eq!(pool.used(), 3 * CHUNK);
        drop(a);
        assert_eq!(pool.used(), 0);
    }
}
