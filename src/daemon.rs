//! `outguard serve`: the privileged start (data directory, keys, store,
//! sockets), the drop to the run user, then the async runtime with the
//! SMTP listeners, the committer and the control API.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::admin;
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::control::{self, Control};
use crate::jail;
use crate::privilege::Privileged;
use crate::settings;
use crate::smtp::{self, Kind, Listeners};
use crate::store::{Committer, Store};
use crate::tls;

pub fn serve(cfg: Config) -> Result<(), String> {
    // Stage 1, privileged: everything that needs root or touches keys.
    let privileged = Privileged::begin(&cfg.run_user)?;
    let data = Arc::new(privileged.prepare_dir(&cfg.data_dir)?);
    let hostname = cfg.hostname();
    let (tls_config, certs) = tls::load(&cfg, &data, &hostname)?;
    // Smarthost password and CA file may be readable by root only.
    let delivery_prep = crate::delivery::Prepared::load(&cfg.delivery, &cfg.data_dir)?;
    // The collector's CA file may be readable by root only.
    let syslog = crate::appliance::syslog::Prepared::load(&cfg.log)?;
    let store_path = cfg.store_path();
    let store_file = data.open_file(Path::new(STORE_FILE), true)?;
    let store = Arc::new(
        Store::open_file(store_file, cfg.store_cache_mib.max(1) << 20)
            .map_err(|e| format!("{}: {e}", store_path.display()))?,
    );
    store.set_min_free(cfg.store.min_free_mib.saturating_mul(1 << 20));
    admin::provision(&store, &cfg)?;
    let settings = settings::Shared::new(store.settings().map_err(|e| e.to_string())?)?;
    // The fleet's CA file may be readable by root only.
    let fleet = match &cfg.store.shared {
        None => None,
        Some(_) => {
            let ca = crate::store::fleet::url::ca_pem(cfg.store.shared_ca.as_deref())?;
            Some((ca, store.clone(), settings.clone()))
        }
    };
    // Signatures and a retrained model are read now, while privileged.
    let screener = smtp::Screener::new(&cfg.scan, &cfg.data_dir)?;

    let mut listeners = Vec::new();
    let groups = [
        (&cfg.smtp.submission, Kind::Submission),
        (&cfg.smtp.submissions, Kind::Submissions),
        (&cfg.smtp.plain, Kind::Plain),
    ];
    for (addrs, kind) in groups {
        for addr in addrs {
            let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            listeners.push((l, kind));
        }
    }
    let admin_listeners = cfg
        .admin
        .listen
        .iter()
        .map(|a| TcpListener::bind(a).map_err(|e| format!("cannot listen on {a} (admin): {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let socket = cfg.control_socket();
    let control_listener = control::bind(&data, &socket)?;

    let ruleset = if cfg.hardening.landlock {
        Some(jail::prepare_landlock(
            &cfg.data_dir,
            &jail::outbound_ports(&cfg),
        )?)
    } else {
        None
    };

    // Stage 2: unprivileged from here on.
    let jailed = privileged.drop_privileges()?;
    let hardening = confine(&cfg, ruleset, jailed.uid.as_raw())?;
    if let Some(s) = syslog {
        s.start()?;
    }
    tracing::info!(
        uid = hardening.uid,
        landlock = %hardening.landlock,
        seccomp = hardening.seccomp,
        "serving unprivileged"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("outguard")
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let clock = Arc::new(Clock::default());
        let fleet = match fleet {
            Some((ca, store, settings)) => Some(crate::store::fleet::Fleet::start(
                &cfg.store, ca, store, settings,
            )?),
            None => None,
        };
        let committer = Arc::new(
            Committer::start_with(store.clone(), settings.clone(), clock.clone(), fleet)
                .map_err(|e| e.to_string())?,
        );
        let delivery_stats = Arc::new(crate::delivery::Stats::default());
        let delivery = crate::delivery::Delivery::new(
            delivery_prep,
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
    })
}

/// How long a daemon whose store failed answers 4xx before it exits.
const STORE_FAILURE_GRACE: Duration = Duration::from_secs(5);

/// The store file's name in the data directory (`Config::store_path`).
const STORE_FILE: &str = "outguard.redb";

/// Landlock, then seccomp (last: it would forbid setting up landlock).
fn confine(
    cfg: &Config,
    ruleset: Option<landlock::RulesetCreated>,
    uid: u32,
) -> Result<jail::Hardening, String> {
    let landlock = match ruleset {
        Some(r) => jail::landlock(r)?,
        None => "off".to_string(),
    };
    if cfg.hardening.seccomp {
        jail::seccomp(cfg.hardening.seccomp_action == crate::config::SeccompAction::Kill)?;
    }
    Ok(jail::Hardening {
        uid,
        no_new_privs: true,
        landlock,
        seccomp: cfg.hardening.seccomp,
    })
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
