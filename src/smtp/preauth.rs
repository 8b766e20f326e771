//! What a session may hold before it has authenticated: a place in the
//! cap on unauthenticated sessions (`max_unauthenticated_sessions`), given
//! back at AUTH, and a deadline for getting there (`preauth_timeout_secs`),
//! with a shorter idle time per command (`preauth_command_timeout_secs`).
//! Without these, a few hundred silent connections locked everyone out.
//! The ticket is shared by the plain and the TLS half of a STARTTLS
//! session, so the deadline runs from connect.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap on unauthenticated sessions.
#[derive(Debug)]
pub struct Unauthenticated(Arc<Semaphore>);

impl Unauthenticated {
    pub fn new(cap: usize) -> Unauthenticated {
        Unauthenticated(Arc::new(Semaphore::new(cap)))
    }

    /// A place under the cap, or `None` when it is full.
    pub fn enter(&self, limit: Duration) -> Option<Arc<PreAuth>> {
        let permit = self.0.clone().try_acquire_owned().ok()?;
        Some(PreAuth::new(Some(permit), limit))
    }
}

/// One session's pre-authentication state.
#[derive(Debug)]
pub struct PreAuth {
    place: Mutex<Option<OwnedSemaphorePermit>>,
    deadline: Instant,
}

impl PreAuth {
    /// A ticket with its deadline `limit` from now (`place` is `None`
    /// where no cap applies: IP-authorised clients, in-process tests).
    pub fn new(place: Option<OwnedSemaphorePermit>, limit: Duration) -> Arc<PreAuth> {
        Arc::new(PreAuth {
            place: Mutex::new(place),
            deadline: Instant::now() + limit,
        })
    }

    /// The session has authenticated: its place goes to the next client.
    pub fn release(&self) {
        self.place.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// How long to wait for the next command before AUTH: `per_command`,
    /// but not past the deadline.
    pub fn wait(&self, per_command: Duration) -> Duration {
        per_command.min(self.deadline.saturating_duration_since(Instant::now()))
    }
}
