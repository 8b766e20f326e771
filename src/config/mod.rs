//! Bootstrap configuration: what must be known before the store is open
//! (where to listen, where the data lives, which user to run as, bounds).
//! Every key has an embedded default, so `outguard serve` runs with no file.
//! Settings an admin changes at run time live in the store instead
//! (see `store::settings`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod admin;

pub use admin::AdminConfig;

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
    pub store: crate::store::StoreConfig,
    pub smtp: SmtpConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub control: ControlConfig,
    pub admin: AdminConfig,
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
    /// How long 587 waits for a TLS ClientHello before sending the banner
    /// (the whole cost of the sniff to a plain client).
    pub tls_sniff_ms: u64,
    /// How long an address whose ClientHello came late (after the banner,
    /// or near the wait) keeps a longer wait: twice its slowest hello; 0
    /// learns nothing.
    pub tls_sniff_remember_secs: u64,
    /// Largest message queued, in octets, our Received header included:
    /// clients are offered (SIZE) this less about 1 KiB for that header.
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
    /// On shutdown, how long sessions in the middle of a message may take
    /// to finish it (idle ones are told 421 at once).
    pub shutdown_grace_secs: u64,
    /// Commands that fail before the session is closed (garbage, errors).
    pub max_errors: u32,
    /// Bytes of message data all sessions may buffer at once; a
    /// transaction that finds no room gets 452 4.3.1.
    pub max_inflight_bytes: usize,
    /// Sessions at once that have not yet authenticated (IP-authorised
    /// clients count as authenticated), so unauthenticated connections
    /// cannot take every session slot.
    pub max_unauthenticated_sessions: usize,
    /// Idle time allowed while waiting for a command before AUTH.
    pub preauth_command_timeout_secs: u64,
    /// Time a session has from connect to a successful AUTH.
    pub preauth_timeout_secs: u64,
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
    /// Failed attempts on one account (from any addresses) within the
    /// window after which it is refused to addresses that never logged in
    /// to it, and the admin is told.
    pub max_account_failures: u32,
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
    /// What a forbidden system call does: "kill" the process (the
    /// appliance image) or fail with EPERM ("errno", the default).
    pub seccomp_action: SeccompAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompAction {
    Kill,
    Errno,
}

impl Default for HardeningConfig {
    fn default() -> Self {
        HardeningConfig {
            landlock: true,
            seccomp: true,
            seccomp_action: SeccompAction::Errno,
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
    /// Remote syslog collector, "IP:port" (RFC 5425: TLS, usually 6514);
    /// empty: none.
    pub remote: String,
    /// CA certificate(s) (PEM) the collector's certificate must chain to;
    /// empty: the system's CAs.
    pub ca_file: PathBuf,
    /// The name the collector's certificate holds; empty: its IP address.
    pub server_name: String,
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
            store: crate::store::StoreConfig::default(),
            smtp: SmtpConfig::default(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            control: ControlConfig::default(),
            admin: AdminConfig::default(),
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
            tls_sniff_ms: 1,
            tls_sniff_remember_secs: 3600,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_sessions: 200,
            max_sessions_per_ip: 20,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            session_timeout_secs: 1800,
            shutdown_grace_secs: 25,
            max_errors: 10,
            max_inflight_bytes: 128 * 1024 * 1024,
            max_unauthenticated_sessions: 100,
            preauth_command_timeout_secs: 30,
            preauth_timeout_secs: 60,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_failures: 5,
            max_account_failures: 20,
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
            remote: String::new(),
            ca_file: PathBuf::new(),
            server_name: String::new(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))?;
        cfg.check()
            .map_err(|e| format!("config {}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// Refuses counts and times outside what the daemon can honour: a zero
    /// cap or timeout would refuse or time out everyone, and a huge one
    /// would overflow the clock arithmetic it feeds.
    pub fn check(&self) -> Result<(), String> {
        const DAY: u64 = 86_400;
        const MONTH: u64 = 30 * DAY;
        let s = &self.smtp;
        let a = &self.auth;
        let many = 1_000_000;
        // It is written into the greeting, EHLO, Received, Message-IDs and
        // notices: only a DNS name may get there.
        if !self.hostname.is_empty() {
            crate::users::validate_domain(&self.hostname).map_err(|e| format!("hostname: {e}"))?;
        }
        in_range("housekeeping_secs", self.housekeeping_secs, 1, DAY)?;
        check_remote(&self.log.remote)?;
        in_range("store_cache_mib", self.store_cache_mib, 1, 65_536)?;
        crate::store::fleet::url::check(
            self.store.shared.as_ref(),
            self.store.shared_ca.as_ref(),
            self.store.degraded_fraction,
        )?;
        in_range("smtp.tls_sniff_ms", s.tls_sniff_ms, 0, 3_000)?;
        in_range(
            "smtp.tls_sniff_remember_secs",
            s.tls_sniff_remember_secs,
            0,
            MONTH,
        )?;
        in_range("smtp.max_message_size", s.max_message_size, 1_024, 1 << 30)?;
        in_range("smtp.max_recipients", s.max_recipients, 1, 100_000)?;
        in_range("smtp.max_sessions", s.max_sessions, 1, many)?;
        in_range("smtp.max_sessions_per_ip", s.max_sessions_per_ip, 1, many)?;
        in_range("smtp.command_timeout_secs", s.command_timeout_secs, 1, DAY)?;
        in_range("smtp.data_timeout_secs", s.data_timeout_secs, 1, DAY)?;
        in_range(
            "smtp.session_timeout_secs",
            s.session_timeout_secs,
            1,
            7 * DAY,
        )?;
        in_range("smtp.max_errors", s.max_errors, 1, 1_000_000)?;
        let chunk = 64 * 1024; // the first reservation a transaction makes
        in_range(
            "smtp.max_inflight_bytes",
            s.max_inflight_bytes,
            chunk,
            1 << 40,
        )?;
        in_range(
            "smtp.max_unauthenticated_sessions",
            s.max_unauthenticated_sessions,
            1,
            many,
        )?;
        in_range(
            "smtp.preauth_command_timeout_secs",
            s.preauth_command_timeout_secs,
            1,
            DAY,
        )?;
        in_range(
            "smtp.preauth_timeout_secs",
            s.preauth_timeout_secs,
            1,
            7 * DAY,
        )?;
        in_range("auth.max_failures", a.max_failures, 1, 1_000_000)?;
        in_range(
            "auth.max_account_failures",
            a.max_account_failures,
            1,
            1_000_000,
        )?;
        in_range("auth.failure_window_secs", a.failure_window_secs, 1, MONTH)?;
        in_range("auth.block_secs", a.block_secs, 1, MONTH)?;
        in_range("auth.cache_secs", a.cache_secs, 0, MONTH)?;
        in_range("auth.max_parallel_hashes", a.max_parallel_hashes, 1, 256)?;
        in_range("scan.timeout_ms", self.scan.timeout_ms, 1, 600_000)?;
        in_range("scan.max_parallel", self.scan.max_parallel, 1, 1_024)?;
        Ok(())
    }

    /// Defaults for running from a source checkout: unprivileged ports on
    /// loopback, data under the current directory, running as the invoking
    /// user. Started as root through sudo it drops to the user who ran
    /// sudo; as plain root it drops to the dedicated `outguard` account
    /// (refusing to start if there is none): never the shared `nobody`,
    /// which would then own the store and the TLS key.
    pub fn dev() -> Config {
        let smtp = SmtpConfig {
            submission: vec![SocketAddr::from(([127, 0, 0, 1], 2587))],
            submissions: vec![SocketAddr::from(([127, 0, 0, 1], 2465))],
            ..SmtpConfig::default()
        };
        Config {
            data_dir: PathBuf::from("outguard-data"),
            run_user: std::env::var("SUDO_USER")
                .ok()
                .filter(|u| u != "root")
                .unwrap_or_else(|| "outguard".into()),
            smtp,
            admin: AdminConfig::dev(),
            // Trying it must not reach the internet: mail is captured.
            delivery: crate::delivery::DeliveryConfig::capture(),
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
            .filter(|h| crate::users::validate_domain(h).is_ok())
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
    /// Idle time allowed for a command before AUTH (never more than after).
    pub fn preauth_command_timeout(&self) -> Duration {
        Duration::from_secs(
            self.preauth_command_timeout_secs
                .min(self.command_timeout_secs),
        )
    }
    pub fn preauth_timeout(&self) -> Duration {
        Duration::from_secs(self.preauth_timeout_secs)
    }
}

/// `name` must lie in `lo..=hi`; the error says the range and the value.
fn in_range<T>(name: &str, v: T, lo: T, hi: T) -> Result<(), String>
where
    T: PartialOrd + std::fmt::Display,
{
    if v < lo || v > hi {
        return Err(format!("{name} must be between {lo} and {hi}; got {v}"));
    }
    Ok(())
}

/// `[log] remote` checked at config load: an IP address and port.
pub fn check_remote(remote: &str) -> Result<(), String> {
    if remote.is_empty() {
        return Ok(());
    }
    remote.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        format!("[log] remote must be an IP address and port (\"192.0.2.10:6514\"), not '{remote}'")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_captures_instead_of_sending() {
        use crate::delivery::Mode;
        assert_eq!(Config::dev().delivery.mode(), Mode::Capture);
        assert_eq!(Config::default().delivery.mode(), Mode::Mx);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.smtp.submission[0].port(), 587);
        assert_eq!(c.smtp.submissions[0].port(), 465);
        assert!(c.smtp.plain.is_empty());
        assert!(!c.debug.clock_override);
    }

    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.check(), Ok(()));
        assert_eq!(Config::dev().check(), Ok(()));
        for (text, field) in [
            (
                "[smtp]\nmax_sessions = 0\n",
                "smtp.max_sessions must be between 1 and",
            ),
            (
                "[smtp]\nmax_inflight_bytes = 0\n",
                "smtp.max_inflight_bytes",
            ),
            (
                "[smtp]\npreauth_timeout_secs = 0\n",
                "smtp.preauth_timeout_secs",
            ),
            (
                "[smtp]\nsession_timeout_secs = 18446744073709551615\n",
                "got 18446744073709551615",
            ),
            (
                "[auth]\nblock_secs = 18446744073709551615\n",
                "auth.block_secs",
            ),
            (
                "[auth]\nmax_parallel_hashes = 0\n",
                "auth.max_parallel_hashes",
            ),
            ("[scan]\nmax_parallel = 0\n", "scan.max_parallel"),
        ] {
            let c: Config = toml::from_str(text).unwrap();
            let e = c.check().unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
        let dir = std::env::temp_dir().join(format!("og-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("outguard.toml");
        std::fs::write(&path, "[smtp]\nmax_errors = 0\n").unwrap();
        let e = Config::load(&path).unwrap_err();
        assert!(
            e.contains("smtp.max_errors must be between 1 and 1000000; got 0"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
