//! The submission relay: listeners, per-connection sessions and the
//! SMTP state machine. Everything a session needs is in `Server`: the
//! shared house (`app::App`: store, committer, settings, clock, stats)
//! plus what only sessions use, shared read-only (or behind its own lock)
//! by all sessions. Only this module names `Server`; the daemon builds it
//! once through `start`.

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

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use data::{DataError, DataReceiver};
pub use drain::Draining;
pub use listener::{Kind, Listeners};
pub use screen::Screener;
pub use session::{Mode, run as run_session};
pub use sniff::HelloWait;

use crate::app::App;
use crate::config::{FailureAction, SmtpConfig};

/// The SMTP face: the shared house plus what only sessions use.
pub struct Server {
    pub app: Arc<App>,
    pub smtp: SmtpConfig,
    pub tls: TlsAcceptor,
    pub screener: Screener,
    pub scan_failure: FailureAction,
    /// How long 587 waits for a ClientHello, per client address.
    pub hello_wait: HelloWait,
    /// Set on shutdown: sessions finish their message, then get 421.
    pub draining: Draining,
    /// Shared bounds on what sessions hold: memory, unauthenticated places.
    pub guards: Guards,
}

/// What the daemon hands the SMTP face besides the house.
pub struct Setup {
    pub smtp: SmtpConfig,
    pub tls: TlsAcceptor,
    pub screener: Screener,
    pub scan_failure: FailureAction,
}

impl Server {
    pub fn new(app: Arc<App>, setup: Setup) -> Server {
        let Setup {
            smtp,
            tls,
            screener,
            scan_failure,
        } = setup;
        Server {
            app,
            hello_wait: HelloWait::new(smtp.tls_sniff(), smtp.tls_sniff_remember()),
            guards: Guards::new(&smtp),
            draining: Draining::default(),
            smtp,
            tls,
            screener,
            scan_failure,
        }
    }
}

/// The SMTP face at work: its listeners run until `stopped`; `drain`
/// tells its sessions to finish (the daemon's shutdown).
pub struct Running {
    server: Arc<Server>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Builds the one SMTP server on `app` and starts its listeners.
pub fn start(
    app: Arc<App>,
    setup: Setup,
    listeners: Listeners,
    stopped: watch::Receiver<bool>,
) -> Running {
    let server = Arc::new(Server::new(app, setup));
    let task = tokio::spawn(listener::run(server.clone(), listeners, stopped));
    Running { server, task }
}

impl Running {
    /// Idle sessions are told 421 now; one in the middle of a message
    /// finishes it.
    pub fn drain(&self) {
        self.server.draining.begin();
    }

    /// Waits for the listeners and sessions (bounded by
    /// `smtp.shutdown_grace_secs`, in `listener::run`).
    pub async fn finished(self) {
        let _ = self.task.await;
    }
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
        let scan = crate::config::ScanSettings {
            enabled: false,
            ..Default::default()
        };
        let setup = Setup {
            smtp,
            tls: TlsAcceptor::from(config),
            screener: Screener::new(&scan, dir)?,
            scan_failure: scan.failure_action,
        };
        Ok(Server::new(Arc::new(App::standalone(dir)?), setup))
    }
}
