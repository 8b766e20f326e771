//! Leaving the privileged stage (`Resources::confine`) and the jailed one
//! (`Jailed::run`): the runtime and everything that reads the network.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::prepare::{Opened, Resources};
use crate::admin;
use crate::app::App;
use crate::clock::Clock;
use crate::control::{self, Control};
use crate::jail;
use crate::smtp::{self, Listeners};
use crate::store::Committer;

/// Stage 3: unprivileged and confined, with what the privileged stage
/// opened. It holds no `Privileged`, so no root-only step can run from here.
pub struct Jailed {
    opened: Opened,
    hardening: jail::Hardening,
}

impl Resources {
    /// Stage 2: drops to the run user, then landlock, then seccomp (last:
    /// it would forbid setting up landlock); the remote syslog sender
    /// starts once unprivileged.
    pub fn confine(self) -> Result<Jailed, String> {
        let Resources {
            root,
            ruleset,
            syslog,
            opened,
        } = self;
        let dropped = root.drop_privileges()?;
        let cfg = &opened.cfg;
        let landlock = match ruleset {
            Some(r) => jail::landlock(r)?,
            None => "off".to_string(),
        };
        if cfg.hardening.seccomp {
            jail::seccomp(cfg.hardening.seccomp_action == crate::config::SeccompAction::Kill)?;
        }
        let hardening = jail::Hardening {
            uid: dropped.uid.as_raw(),
            no_new_privs: true,
            landlock,
            seccomp: cfg.hardening.seccomp,
        };
        if let Some(s) = syslog {
            s.start()?;
        }
        tracing::info!(
            uid = hardening.uid,
            landlock = %hardening.landlock,
            seccomp = hardening.seccomp,
            "serving unprivileged"
        );
        Ok(Jailed { opened, hardening })
    }
}

/// How long a daemon whose store failed answers 4xx before it exits.
const STORE_FAILURE_GRACE: Duration = Duration::from_secs(5);

/// How long tasks left at exit get to finish (bounded waits inside).
const RUNTIME_STOP: Duration = Duration::from_secs(5);

/// How long the exit waits for the store's last holder to let it go.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);

impl Jailed {
    /// Builds the tokio runtime and serves until SIGTERM/SIGINT or a store
    /// failure.
    pub fn run(self) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("outguard")
            .build()
            .map_err(|e| format!("cannot start runtime: {e}"))?;
        let mut serving = self;
        let store_closed = serving.opened.store_closed.take();
        let outcome = runtime.block_on(serving.serve());
        // Tasks still waiting (housekeeping, an idle connection) hold the
        // store, and the committer thread holds it until the last sender
        // is gone: stop them, then wait for the last reference to drop, so
        // redb marks the file clean and the next start opens it without a
        // repair pass over the whole file.
        runtime.shutdown_timeout(RUNTIME_STOP);
        if let Some(closed) = store_closed {
            match closed.recv_timeout(STORE_CLOSE_WAIT) {
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    tracing::info!("store closed")
                }
                _ => tracing::warn!("store still in use at exit; the next start repairs it"),
            }
        }
        outcome
    }

    async fn serve(self) -> Result<(), String> {
        let Jailed {
            opened:
                Opened {
                    cfg,
                    data,
                    hostname,
                    tls_config,
                    certs,
                    delivery,
                    store,
                    store_closed: _,
                    settings,
                    fleet,
                    screener,
                    listeners,
                    admin_listeners,
                    control_listener,
                    socket,
                },
            hardening,
        } = self;
        let clock = Arc::new(Clock::default());
        let fleet = match fleet {
            Some(ca) => Some(crate::store::fleet::Fleet::start(
                &cfg.store,
                ca,
                store.clone(),
                settings.clone(),
            )?),
            None => None,
        };
        let committer = Arc::new(
            Committer::start_with(store.clone(), settings.clone(), clock.clone(), fleet)
                .map_err(|e| e.to_string())?,
        );
        let delivery_stats = Arc::new(crate::delivery::Stats::default());
        let delivery = crate::delivery::Delivery::new(
            delivery,
            hostname.clone(),
            store.clone(),
            committer.clone(),
            settings.clone(),
            clock.clone(),
            delivery_stats.clone(),
        )?;
        let health = store.clone();
        let app = Arc::new(App::new(
            hostname, store, committer, settings, clock, &cfg.auth, hardening,
        ));
        let (stop, stopped) = watch::channel(false);
        let ctl = Arc::new(Control {
            app: app.clone(),
            config: Arc::new(cfg.clone()),
            certs,
            delivery: delivery_stats,
            imports: Default::default(),
            data: data.clone(),
        });
        let admin = admin::Admin::new(
            ctl.clone(),
            tokio_rustls::TlsAcceptor::from(tls_config.clone()),
        );
        let admin_task = tokio::spawn(admin::run(admin, admin_listeners, stopped.clone()));
        let delivery_task = tokio::spawn(delivery.run(stopped.clone()));
        let control_task = tokio::spawn(control::run(ctl, control_listener, stopped.clone()));
        let every = Duration::from_secs(cfg.housekeeping_secs.max(1));
        tokio::spawn(crate::housekeeping::run(
            app.clone(),
            every,
            stopped.clone(),
        ));
        let setup = smtp::Setup {
            smtp: cfg.smtp.clone(),
            tls: tokio_rustls::TlsAcceptor::from(tls_config),
            screener,
            scan_failure: cfg.scan.failure_action,
        };
        let smtp = smtp::start(app, setup, Listeners(listeners), stopped);
        tracing::info!(socket = %socket.display(), "outguard ready");
        let failed = tokio::select! {
            _ = wait_for_signal() => None,
            why = health.health().failed() => Some(why),
        };
        if failed.is_some() {
            // Sessions in flight and clients connecting now get 451 4.3.0
            // for a moment, rather than a dropped connection.
            tokio::time::sleep(STORE_FAILURE_GRACE).await;
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
        // Idle sessions are told 421 now; one in the middle of a message
        // finishes it (bounded by smtp.shutdown_grace_secs, in smtp::start).
        smtp.drain();
        let _ = control_task.await;
        let _ = admin_task.await;
        let _ = delivery_task.await;
        // Bounded by smtp.shutdown_grace_secs (smtp::start); accepted
        // mail is already on disk.
        smtp.finished().await;
        match failed {
            // Exit non-zero: the supervisor starts a fresh process, which
            // reopens the store at its last commit (see store::health).
            Some(why) => Err(format!("store write failed ({why}); stopped")),
            None => Ok(()),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
