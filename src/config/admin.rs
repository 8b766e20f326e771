//! `[admin]`: the HTTPS admin face (listeners, first password, sessions,
//! login throttling).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// HTTPS listeners for the admin page and API; empty disables them.
    pub listen: Vec<SocketAddr>,
    /// Read once at first start: the admin password (first line), or an
    /// argon2id PHC string. Default `<data_dir>/admin-password`. Removed
    /// once its hash is stored.
    pub password_file: Option<PathBuf>,
    /// An argon2id PHC string used at first start when there is no file.
    pub password_hash: Option<String>,
    /// A session unused this long is logged out.
    pub session_idle_secs: u64,
    /// A session ends this long after login, used or not.
    pub session_max_secs: u64,
    /// Failed logins from one address within `failure_window_secs` after
    /// which logins from it are refused for `block_secs`.
    pub max_failures: u32,
    /// Failed logins from all addresses together after which logins are
    /// refused to addresses that never logged in, and the admin is told.
    pub max_account_failures: u32,
    pub failure_window_secs: u64,
    pub block_secs: u64,
    /// Serve /metrics without a session to clients on loopback (a local
    /// Prometheus or exporter); LAN clients always need a session.
    pub metrics_loopback: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 8443))],
            password_file: None,
            password_hash: None,
            session_idle_secs: 30 * 60,
            session_max_secs: 12 * 3600,
            max_failures: 5,
            max_account_failures: 20,
            failure_window_secs: 600,
            block_secs: 600,
            metrics_loopback: true,
        }
    }
}

impl AdminConfig {
    /// Development listener on loopback, away from the real port.
    pub fn dev() -> AdminConfig {
        AdminConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 28443))],
            ..AdminConfig::default()
        }
    }
}
