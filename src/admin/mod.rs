//! The LAN face of the control API: HTTPS (rustls, the certificate of the
//! SMTP listeners) with an admin login, sessions, CSRF protection, login
//! throttling and an audit log, plus a small server-rendered admin page
//! and a Prometheus endpoint. The JSON API is the same router the Unix
//! socket serves (`control::router`); this face only adds who may call it.

mod csrf;
mod form;
mod html;
mod login;
mod metrics;
mod pages;
mod server;
mod session;

use std::sync::Arc;
use std::time::Duration;

use rand::TryRngCore;

use crate::auth::password;
use crate::auth::throttle::Throttle;
use crate::control::Control;
use crate::store::Store;

pub use crate::config::AdminConfig;
pub use server::run;

/// Everything the HTTPS face shares between connections.
pub struct Admin {
    pub ctl: Arc<Control>,
    pub cfg: AdminConfig,
    pub sessions: session::Sessions,
    pub throttle: Throttle,
    pub login_failures: crate::control::audit::LoginFailures,
    pub tls: tokio_rustls::TlsAcceptor,
    /// The API router the pages call (`server::call`), without the HTTPS
    /// middleware: a page has passed the session and CSRF checks already.
    pub api: axum::Router,
}

impl Admin {
    pub fn new(ctl: Arc<Control>, tls: tokio_rustls::TlsAcceptor) -> Arc<Admin> {
        let cfg = ctl.config.admin.clone();
        Arc::new(Admin {
            sessions: session::Sessions::new(
                ctl.app.clock.clone(),
                Duration::from_secs(cfg.session_idle_secs),
                Duration::from_secs(cfg.session_max_secs),
            ),
            throttle: Throttle::new(
                cfg.max_failures,
                cfg.max_account_failures,
                Duration::from_secs(cfg.failure_window_secs),
                Duration::from_secs(cfg.block_secs),
            ),
            login_failures: crate::control::audit::LoginFailures::default(),
            tls,
            api: axum::Router::new()
                .nest("/v1", crate::control::router::api(ctl.clone()))
                .fallback(crate::control::router::unknown_path),
            cfg,
            ctl,
        })
    }
}

/// Sets the admin password at first start, while still privileged (the
/// provisioning file may be root's): from the file, else the configured
/// hash, else a generated password printed once on the console.
pub fn provision(store: &Store, cfg: &crate::config::Config) -> Result<(), String> {
    let file = cfg
        .admin
        .password_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("admin-password"));
    if store.admin_password().map_err(|e| e.to_string())?.is_some() {
        if file.exists() {
            tracing::warn!(file = %file.display(), "admin password already set; provisioning file ignored (change the password with the API)");
        }
        return Ok(());
    }
    let phc = if let Ok(text) = read_nofollow(&file) {
        let first = text.lines().next().unwrap_or("").trim_end();
        let phc = if first.starts_with("$argon2id$") {
            first.to_string()
        } else {
            crate::import::check_password(first)
                .map_err(|e| format!("{}: admin {e}", file.display()))?;
            password::hash(first)
        };
        // The plain text is not needed any more; leave no copy behind.
        if let Err(e) = std::fs::remove_file(&file) {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove the admin password file");
        }
        tracing::info!(file = %file.display(), "admin password provisioned from file");
        phc
    } else if let Some(phc) = &cfg.admin.password_hash {
        if !phc.starts_with("$argon2id$") {
            return Err("admin.password_hash must be an argon2id PHC string".into());
        }
        phc.clone()
    } else {
        let mut raw = [0u8; 15];
        rand::rngs::OsRng
            .try_fill_bytes(&mut raw)
            .map_err(|e| format!("random source: {e}"))?;
        let pw = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
        // Straight to the console, not through tracing: the in-memory log
        // ring is searchable over the API and must not hold it.
        eprintln!("outguard: generated admin password (shown once): {pw}");
        tracing::warn!("admin password generated and printed on the console once");
        password::hash(&pw)
    };
    store
        .set_admin_password(&phc)
        .map_err(|e| format!("cannot store the admin password: {e}"))
}

/// Reads a file that is not a symlink: the default provisioning file lies
/// in the data directory, where the run user could plant one for root.
fn read_nofollow(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?
        .read_to_string(&mut text)?;
    Ok(text)
}
