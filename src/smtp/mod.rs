//! The submission relay: listeners, per-connection sessions and the
//! SMTP state machine. Everything a session needs is in `Server`, shared
//! read-only (or behind its own lock) by all sessions.

mod conn;
mod data;
mod listener;
mod reply;
mod screen;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_rustls::TlsAcceptor;

pub use listener::{Kind, Listeners, run};
pub use screen::Screener;

use crate::auth::password::Verifier;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::SmtpConfig;
use crate::settings;
use crate::store::{Committer, Store};

pub struct Server {
    pub smtp: SmtpConfig,
    pub hostname: String,
    pub store: Arc<Store>,
    pub committer: Arc<Committer>,
    pub settings: settings::Shared,
    pub clock: Arc<Clock>,
    pub verifier: Arc<Verifier>,
    pub throttle: Throttle,
    pub tls: TlsAcceptor,
    pub screener: Screener,
    pub scan_failure: crate::config::FailureAction,
    pub stats: Stats,
    /// What confinement is in force (reported by the health endpoint).
    pub hardening: crate::jail::Hardening,
}

/// Counters since start, for health and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub sessions: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub quarantined: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "sessions": g(&self.sessions),
            "sessions_refused": g(&self.sessions_refused),
            "auth_failures": g(&self.auth_failures),
            "messages_accepted": g(&self.accepted),
            "messages_refused": g(&self.refused),
            "messages_caught": g(&self.quarantined),
        })
    }
}
