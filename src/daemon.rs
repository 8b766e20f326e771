//! `outguard serve`: the privileged start (data directory, keys, store,
//! sockets), the drop to the run user, then the async runtime with the
//! SMTP listeners, the committer and the control API.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::admin;
use crate::auth::password::Verifier;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;
use crate::control::{self, Control};
use crate::jail;
use crate::privilege::Privileged;
use crate::settings;
use crate::smtp::{self, Kind, Listeners, Server};
use crate::store::{Committer, Store};
use crate::tls;

pub fn serve(cfg: Config) -> Result<(), String> {
    // Stage 1, privileged: everything that needs root or touches keys.
    let privileged = Privileged::begin(&cfg.run_user)?;
    privileged.prepare_dir(&cfg.data_dir)?;
    let hostname = cfg.hostname();
    let (cert, key) = (cfg.cert_path(), cfg.key_path());
    if cfg.tls.cert.is_none() && tls::ensure_self_signed(&cert, &key, &hostname)? {
        tracing::info!(cert = %cert.display(), "generated a self-signed certificate");
        for p in [cert.parent().unwrap_or(&cfg.data_dir), &cert, &key] {
            privileged.give(p)?;
        }
    }
    let (tls_config, certs) = tls::server_config(&cert, &key)?;
    // Smarthost password and CA file may be readable by root only.
    let delivery_prep = crate::delivery::Prepared::load(&cfg.delivery)?;
    let store_path = cfg.store_path();
    let store = Arc::new(
        Store::open_with_cache(&store_path, cfg.store_cache_mib.max(1) << 20)
            .map_err(|e| format!("{}: {e}", store_path.display()))?,
    );
    privileged.give(&store_path)?;
    admin::provision(&store, &cfg)?;
    let settings = settings::Shared::new(store.settings().map_err(|e| e.to_string())?)?;
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
    let _ = std::fs::remove_file(&socket);
    let control_listener = UnixListener::bind(&socket)
        .map_err(|e| format!("cannot bind {}: {e}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set mode of {}: {e}", socket.display()))?;

    let ruleset = if cfg.hardening.landlock {
        Some(jail::prepare_landlock(&cfg.data_dir)?)
    } else {
        None
    };

    // Stage 2: unprivileged from here on.
    let jailed = privileged.drop_privileges()?;
    let hardening = confine(&cfg, ruleset, jailed.uid.as_raw())?;
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
        let committer = Arc::new(
            Committer::start(store.clone(), settings.clone(), clock.clone())
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
        let server = Arc::new(Server {
            smtp: cfg.smtp.clone(),
            hostname,
            store,
            committer,
            settings,
            clock,
            verifier: Verifier::new(
                cfg.auth.max_parallel_hashes,
                Duration::from_secs(cfg.auth.cache_secs),
            ),
            throttle: Throttle::new(
                cfg.auth.max_failures,
                Duration::from_secs(cfg.auth.failure_window_secs),
                Duration::from_secs(cfg.auth.block_secs),
            ),
            tls: tokio_rustls::TlsAcceptor::from(tls_config.clone()),
            screener,
            scan_failure: cfg.scan.failure_action,
            stats: smtp::Stats::default(),
            plain_first: smtp::PlainFirst::new(cfg.smtp.tls_sniff_remember()),
            hardening,
        });
        let (stop, stopped) = watch::channel(false);
        let ctl = Arc::new(Control {
            server: server.clone(),
            config: Arc::new(cfg.clone()),
            certs,
            delivery: delivery_stats,
        });
        let admin = admin::Admin::new(ctl.clone(), tokio_rustls::TlsAcceptor::from(tls_config));
        let admin_task = tokio::spawn(admin::run(admin, admin_listeners, stopped.clone()));
        let delivery_task = tokio::spawn(delivery.run(stopped.clone()));
        let control_task = tokio::spawn(control::run(ctl, control_listener, stopped.clone()));
        let every = Duration::from_secs(cfg.housekeeping_secs.max(1));
        tokio::spawn(crate::housekeeping::run(
            server.clone(),
            every,
            stopped.clone(),
        ));
        let smtp_task = tokio::spawn(smtp::run(server, Listeners(listeners), stopped));
        tracing::info!(socket = %socket.display(), "outguard ready");
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let _ = control_task.await;
        let _ = admin_task.await;
        let _ = delivery_task.await;
        // Sessions in flight get a moment; accepted mail is already on disk.
        let _ = tokio::time::timeout(Duration::from_secs(5), smtp_task).await;
        Ok(())
    })
}

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
        jail::seccomp()?;
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
