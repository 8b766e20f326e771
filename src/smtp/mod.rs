//! The submission relay: listeners, per-connection sessions and the
//! SMTP state machine. Everything a session needs is in `Server`, shared
//! read-only (or behind its own lock) by all sessions.

mod conn;
mod data;
mod drain;
mod identity;
mod inflight;
mod listener;
mod preauth;
mod reply;
mod screen;
mod session;
mod sniff;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_rustls::TlsAcceptor;

pub use data::{DataError, DataReceiver};
pub use drain::Draining;
pub use listener::{Kind, Listeners, run};
pub use screen::Screener;
pub use session::{Mode, run as run_session};
pub use sniff::HelloWait;

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
    /// How long 587 waits for a ClientHello, per client address.
    pub hello_wait: HelloWait,
    /// What confinement is in force (reported by the health endpoint).
    pub hardening: crate::jail::Hardening,
    /// Set on shutdown: sessions finish their message, then get 421.
    pub draining: Draining,
    /// Shared bounds on what sessions hold: memory, unauthenticated places.
    pub guards: Guards,
}

/// Bounds shared by all sessions (`[smtp]` keys in brackets): the bytes
/// of messages in flight (`max_inflight_bytes`) and the sessions not yet
/// authenticated (`max_unauthenticated_sessions`).
pub struct Guards {
    pub inflight: Arc<inflight::InFlight>,
    pub unauthenticated: preauth::Unauthenticated,
}

impl Guards {
    pub fn new(smtp: &SmtpConfig) -> Guards {
        Guards {
            inflight: inflight::InFlight::new(smtp.max_inflight_bytes),
            unauthenticated: preauth::Unauthenticated::new(smtp.max_unauthenticated_sessions),
        }
    }
}

impl Server {
    /// A complete server on a store, key and certificate in `dir` (made
    /// if missing), with the given SMTP bounds and content scanning off:
    /// for fuzz targets and tests that drive sessions over in-memory
    /// streams. The daemon builds its own in `daemon::serve`.
    pub fn standalone(dir: &std::path::Path, smtp: SmtpConfig) -> Result<Server, String> {
        let (cert, key) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
        crate::tls::ensure_self_signed(&cert, &key, "outguard.test")?;
        let (config, _certs) = crate::tls::server_config(&cert, &key)?;
        let tls = TlsAcceptor::from(config);
        let store = Arc::new(Store::open(&dir.join("outguard.redb")).map_err(|e| e.to_string())?);
        let settings = settings::Shared::new(store.settings().map_err(|e| e.to_string())?)?;
        let clock = Arc::new(Clock::default());
        let committer = Committer::start(store.clone(), settings.clone(), clock.clone())
            .map_err(|e| e.to_string())?;
        let scan = crate::config::ScanSettings {
            enabled: false,
            ..Default::default()
        };
        let auth = crate::config::AuthConfig::default();
        let secs = std::time::Duration::from_secs;
        let hello_wait = HelloWait::new(smtp.tls_sniff(), smtp.tls_sniff_remember());
        Ok(Server {
            guards: Guards::new(&smtp),
            smtp,
            hostname: "outguard.test".into(),
            store,
            committer: Arc::new(committer),
            settings,
            clock,
            verifier: Verifier::new(auth.max_parallel_hashes, secs(auth.cache_secs)),
            throttle: Throttle::new(
                auth.max_failures,
                auth.max_account_failures,
                secs(auth.failure_window_secs),
                secs(auth.block_secs),
            ),
            tls,
            screener: Screener::new(&scan, dir)?,
            scan_failure: scan.failure_action,
            stats: Stats::default(),
            hello_wait,
            // Nothing confined: this is an in-process server.
            hardening: crate::jail::Hardening {
                uid: nix::unistd::geteuid().as_raw(),
                no_new_privs: false,
                landlock: "off".into(),
                seccomp: false,
            },
            draining: Draining::default(),
        })
    }
}

/// Counters since start, for health and metrics, and today's refused and
/// caught messages for the dashboard (in memory: they restart from zero
/// with the daemon).
#[derive(Debug, Default)]
pub struct Stats {
    pub today: std::sync::Mutex<Today>,
    pub sessions: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub quarantined: AtomicU64,
}

/// Refusals and catches in one calendar day of the appliance's timezone.
#[derive(Debug, Default, Clone)]
pub struct Today {
    pub day: String,
    pub refused: u64,
    pub caught: u64,
}

impl Server {
    fn today(&self, change: impl FnOnce(&mut Today)) {
        let day = self
            .settings
            .read(|c| crate::windows::windows(self.clock.now(), &c.tz).day);
        let mut t = self.stats.today.lock().unwrap_or_else(|e| e.into_inner());
        if t.day != day {
            *t = Today {
                day,
                ..Today::default()
            };
        }
        change(&mut t);
    }

    /// Counts a refused message (since start and today).
    pub fn note_refused(&self) {
        Stats::bump(&self.stats.refused);
        self.today(|t| t.refused += 1);
    }

    /// Counts a message caught as spam or malware (since start and today).
    pub fn note_caught(&self) {
        Stats::bump(&self.stats.quarantined);
        self.today(|t| t.caught += 1);
    }

    /// Today's refused and caught counts.
    pub fn today_counts(&self) -> Today {
        let mut out = Today::default();
        self.today(|t| out = t.clone());
        out
    }
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
