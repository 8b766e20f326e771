//! Bootstrap configuration: what must be known before the store is open
//! (where to listen, where the data lives, which user to run as, bounds).
//! Every key has an embedded default, so `outguard serve` runs with no file.
//! Settings an admin changes at run time live in the store instead
//! (see `store::settings`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the redb store, TLS keys and the control socket.
    pub data_dir: PathBuf,
    /// Unprivileged account the daemon switches to when started as root.
    pub run_user: String,
    /// Name announced in the banner and EHLO reply; empty means the host name.
    pub hostname: String,
    /// How often timed locks and quarantine retention are checked.
    pub housekeeping_secs: u64,
    /// Memory for the store's page cache, in MiB.
    pub store_cache_mib: usize,
    pub smtp: SmtpConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub control: ControlConfig,
    pub admin: crate::admin::AdminConfig,
    pub scan: ScanSettings,
    pub hardening: HardeningConfig,
    pub log: LogConfig,
    pub debug: DebugConfig,
    pub delivery: crate::delivery::DeliveryConfig,
}

/// What happens to a message the scanner could not judge (error, timeout,
/// message over the scanner's bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// 451 4.7.1: the client keeps the message and retries later.
    Tempfail,
    /// 554 5.7.0: refused for good.
    Reject,
    /// Queued unscanned (logged).
    Accept,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSettings {
    /// Scan outgoing mail at the end of DATA.
    pub enabled: bool,
    /// Longest a scan may take before the failure action applies.
    pub timeout_ms: u64,
    pub failure_action: FailureAction,
    /// Scans running at once (CPU-bound; the rest wait their turn).
    pub max_parallel: usize,
    /// The built-in engine: limits, attachment policy, spam threshold.
    pub builtin: crate::scan::ScanConfig,
    /// `[scan.clamd]`: ask ClamAV's clamd too (off when absent).
    pub clamd: Option<crate::scan::external::ClamdConfig>,
    /// `[scan.spamd]`: ask SpamAssassin's spamd too (off when absent).
    pub spamd: Option<crate::scan::external::SpamdConfig>,
    /// `[scan.rspamd]`: ask rspamd too (off when absent).
    pub rspamd: Option<crate::scan::external::RspamdConfig>,
}

impl ScanSettings {
    /// The external engines as one config (docs/EXTERNAL_ENGINES.md).
    pub fn external(&self) -> crate::scan::external::ExternalConfig {
        crate::scan::external::ExternalConfig {
            clamd: self.clamd.clone(),
            spamd: self.spamd.clone(),
            rspamd: self.rspamd.clone(),
        }
    }
}

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            enabled: true,
            timeout_ms: 10_000,
            failure_action: FailureAction::Tempfail,
            max_parallel: 2,
            builtin: crate::scan::ScanConfig::default(),
            clamd: None,
            spamd: None,
            rspamd: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Submission (RFC 6409): STARTTLS, and implicit TLS for clients that
    /// open with a ClientHello.
    pub submission: Vec<SocketAddr>,
    /// Submissions (RFC 8314): implicit TLS only.
    pub submissions: Vec<SocketAddr>,
    /// Plain listeners without TLS, for trusted IP-authorised peers (the
    /// benchmark). AUTH is never offered on them. Empty by default.
    pub plain: Vec<SocketAddr>,
    /// How long 587 waits for a TLS ClientHello before sending the banner.
    pub tls_sniff_ms: u64,
    /// How long an address that waited for the banner on 587 is taken to
    /// speak plain SMTP first and gets its banner without the wait; 0
    /// makes every plain connection wait.
    pub tls_sniff_remember_secs: u64,
    /// Largest message accepted (SIZE), in octets.
    pub max_message_size: usize,
    /// Recipients accepted in one transaction.
    pub max_recipients: usize,
    /// Sessions served at once, over all listeners.
    pub max_sessions: usize,
    /// Sessions served at once from one client address.
    pub max_sessions_per_ip: usize,
    /// Idle time allowed while waiting for a command.
    pub command_timeout_secs: u64,
    /// Idle time allowed between chunks of message data.
    pub data_timeout_secs: u64,
    /// Hard cap on a whole session's length.
    pub session_timeout_secs: u64,
    /// Commands that fail before the session is closed (garbage, errors).
    pub max_errors: u32,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; empty means `<data_dir>/tls/cert.pem`,
    /// generated self-signed on first start.
    pub cert: Option<PathBuf>,
    /// PEM private key; empty means `<data_dir>/tls/key.pem`.
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Failed AUTH attempts from one address within `failure_window_secs`
    /// after which that address is refused for `block_secs`.
    pub max_failures: u32,
    pub failure_window_secs: u64,
    pub block_secs: u64,
    /// How long a verified password is remembered (as a keyed hash) so a
    /// client that logs in per message does not pay argon2 every time.
    pub cache_secs: u64,
    /// Argon2 verifications running at once (each needs its memory cost).
    pub max_parallel_hashes: usize,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket of the control API; empty means `<data_dir>/control.sock`.
    pub socket: Option<PathBuf>,
}

/// Kernel confinement applied after privileges are dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HardeningConfig {
    /// Landlock: the filesystem shrinks to the data directory (read-write)
    /// and a few read-only system paths.
    pub landlock: bool,
    /// Seccomp: only the system calls the daemon makes are allowed.
    pub seccomp: bool,
}

impl Default for HardeningConfig {
    fn default() -> Self {
        HardeningConfig {
            landlock: true,
            seccomp: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// error, warn, info, debug or trace.
    pub level: String,
    /// One JSON object per line instead of human-readable text.
    pub json: bool,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DebugConfig {
    /// Lets the control API move the daemon's clock (tests of calendar
    /// windows and timeouts). Never enable on a real box.
    pub clock_override: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/outguard"),
            run_user: "outguard".into(),
            hostname: String::new(),
            housekeeping_secs: 30,
            store_cache_mib: 8,
            smtp: SmtpConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            control: ControlConfig::default(),
            admin: crate::admin::AdminConfig::default(),
            scan: ScanSettings::default(),
            hardening: HardeningConfig::default(),
            log: LogConfig::default(),
            debug: DebugConfig::default(),
            delivery: crate::delivery::DeliveryConfig::default(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            submission: vec![SocketAddr::from(([0, 0, 0, 0], 587))],
            submissions: vec![SocketAddr::from(([0, 0, 0, 0], 465))],
            plain: Vec::new(),
            tls_sniff_ms: 50,
            tls_sniff_remember_secs: 3600,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_sessions: 200,
            max_sessions_per_ip: 20,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            session_timeout_secs: 1800,
            max_errors: 10,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_failures: 5,
            failure_window_secs: 600,
            block_secs: 600,
            cache_secs: 3600,
            max_parallel_hashes: 2,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Defaults for running from a source checkout: unprivileged ports on
    /// loopback, data under the current directory, and (if started as
    /// root) the stock `nobody` account instead of a dedicated one.
    pub fn dev() -> Config {
        let smtp = SmtpConfig {
            submission: vec![SocketAddr::from(([127, 0, 0, 1], 2587))],
            submissions: vec![SocketAddr::from(([127, 0, 0, 1], 2465))],
            ..SmtpConfig::default()
        };
        Config {
            data_dir: PathBuf::from("outguard-data"),
            run_user: "nobody".into(),
            smtp,
            admin: crate::admin::AdminConfig::dev(),
            ..Config::default()
        }
    }

    pub fn control_socket(&self) -> PathBuf {
        self.control
            .socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("control.sock"))
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("outguard.redb")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.tls
            .cert
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls/cert.pem"))
    }

    pub fn key_path(&self) -> PathBuf {
        self.tls
            .key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls/key.pem"))
    }

    pub fn hostname(&self) -> String {
        if !self.hostname.is_empty() {
            return self.hostname.clone();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "outguard.localdomain".into())
    }
}

impl SmtpConfig {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_secs)
    }
    pub fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.data_timeout_secs)
    }
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.session_timeout_secs)
    }
    pub fn tls_sniff(&self) -> Duration {
        Duration::from_millis(self.tls_sniff_ms)
    }
    pub fn tls_sniff_remember(&self) -> Duration {
        Duration::from_secs(self.tls_sniff_remember_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.smtp.submission[0].port(), 587);
        assert_eq!(c.smtp.submissions[0].port(), 465);
        assert!(c.smtp.plain.is_empty());
        assert!(!c.debug.clock_override);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = toml::from_str::<Config>("[smtp]\nsubmision = []\n").unwrap_err();
        assert!(e.to_string().contains("submision"), "{e}");
    }

    #[test]
    fn external_engine_tables() {
        let c: Config = toml::from_str("").unwrap();
        assert!(c.scan.external().is_empty());
        let c: Config = toml::from_str(
            "[scan]\ntimeout_ms = 5000\n\
             [scan.clamd]\naddress = \"127.0.0.1:3310\"\n\
             [scan.spamd]\nuser = \"outguard\"\n",
        )
        .unwrap();
        let ext = c.scan.external();
        assert_eq!(
            ext.clamd.unwrap().address.as_deref(),
            Some("127.0.0.1:3310")
        );
        assert_eq!(ext.spamd.unwrap().address, "127.0.0.1:783");
        assert!(ext.rspamd.is_none());
        let e = toml::from_str::<Config>("[scan.rspamd]\nurl = \"http://x\"\npasswd = \"\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("passwd"), "{e}");
    }
}
