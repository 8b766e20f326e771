//! The `[delivery]` section: where accepted mail goes next, how hard we
//! try, and how often.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Look up each recipient domain's MX hosts and deliver there.
    Mx,
    /// Hand everything to one relay.
    Smarthost,
    /// Deliver nothing: write each message to `<data_dir>/capture/` and
    /// count it delivered (`--dev` and the unprovisioned appliance, so
    /// trying it never reaches the internet).
    Capture,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// No TLS, no delivery (the default for a smarthost).
    Required,
    /// TLS when the next hop offers it, plain text otherwise.
    Opportunistic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Absent: `smarthost` when one is set, `mx` otherwise.
    pub mode: Option<Mode>,
    /// `host:port` of the relay in smarthost mode.
    pub smarthost: Option<String>,
    /// STARTTLS policy towards the smarthost. MX delivery is opportunistic
    /// (RFC 7435) unless MTA-STS or DANE asks for verified TLS.
    pub starttls: StartTls,
    /// AUTH towards the smarthost (only ever sent over TLS).
    pub auth_user: Option<String>,
    /// File whose first line is the smarthost password; read at start,
    /// while still root.
    pub auth_password_file: Option<PathBuf>,
    /// Extra PEM CA certificates trusted for the smarthost, beside the
    /// system store; in MX mode, for MTA-STS (policy hosts and MX hosts).
    pub ca_file: Option<PathBuf>,
    /// Check the smarthost's certificate (chain and name).
    pub tls_verify: bool,
    /// SHA-256 pins of the smarthost's key (`sha256//<base64>`) or
    /// certificate (`sha256:<hex>`); when set, a certificate matching one
    /// is trusted whatever its issuer, and no other.
    pub tls_pin: Vec<String>,
    /// Nameservers for MX/A/AAAA lookups; empty means /etc/resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// Port of MX hosts (25; tests use another).
    pub mx_port: u16,
    /// MX mode: honour recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// Port of MTA-STS policy hosts (443; tests use another).
    pub mta_sts_port: u16,
    /// MX mode: honour DNSSEC-validated TLSA records (DANE, RFC 7672).
    pub dane: bool,
    /// DNSKEY records (zone-file lines) trusted as DNSSEC anchors instead
    /// of the root zone's keys (private zones, tests).
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// Delivery connections open at once, over all destinations.
    pub max_connections: usize,
    /// Connections open at once to one destination (domain or smarthost).
    pub max_per_destination: usize,
    /// Messages carried by one connection before it is closed.
    pub max_messages_per_connection: usize,
    pub connect_timeout_secs: u64,
    /// Wait for any one reply of the next hop.
    pub command_timeout_secs: u64,
    /// Retry schedule: `retry_first_interval_secs` apart during the first
    /// `retry_first_phase_secs`, then intervals growing by `retry_growth`
    /// until `retry_growth_until_secs` after arrival, then every
    /// `retry_late_interval_secs`, up to the user's max_retry_days.
    pub retry_first_interval_secs: u64,
    pub retry_first_phase_secs: u64,
    pub retry_growth: f64,
    pub retry_growth_until_secs: u64,
    pub retry_late_interval_secs: u64,
    /// How often the queue is scanned for due messages.
    pub poll_interval_ms: u64,
    /// Send one "still trying" notice after this many hours; 0 = never.
    pub delay_warning_hours: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            mode: None,
            smarthost: None,
            starttls: StartTls::Required,
            auth_user: None,
            auth_password_file: None,
            ca_file: None,
            tls_verify: true,
            tls_pin: Vec::new(),
            dns_servers: Vec::new(),
            mx_port: 25,
            mta_sts: true,
            mta_sts_port: 443,
            dane: true,
            dnssec_trust_anchor: None,
            max_connections: 20,
            max_per_destination: 4,
            max_messages_per_connection: 50,
            connect_timeout_secs: 30,
            command_timeout_secs: 300,
            retry_first_interval_secs: 15 * 60,
            retry_first_phase_secs: 2 * 3600,
            retry_growth: 1.5,
            retry_growth_until_secs: 16 * 3600,
            retry_late_interval_secs: 6 * 3600,
            poll_interval_ms: 1000,
            delay_warning_hours: 0,
        }
    }
}

impl DeliveryConfig {
    /// Defaults, but captured rather than sent (`--dev`).
    pub fn capture() -> Self {
        DeliveryConfig {
            mode: Some(Mode::Capture),
            ..Self::default()
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(if self.smarthost.is_some() {
            Mode::Smarthost
        } else {
            Mode::Mx
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.mode() == Mode::Smarthost && self.smarthost.is_none() {
            return Err("delivery.mode = \"smarthost\" needs delivery.smarthost".into());
        }
        if self.auth_user.is_some() != self.auth_password_file.is_some() {
            return Err("delivery.auth_user and delivery.auth_password_file go together".into());
        }
        for p in &self.tls_pin {
            super::pin::Pin::parse(p)?;
        }
        if self.max_connections == 0 || self.max_per_destination == 0 {
            return Err(
                "delivery.max_connections and max_per_destination must be at least 1".into(),
            );
        }
        self.schedule().validate()
    }

    pub fn schedule(&self) -> super::schedule::Schedule {
        super::schedule::Schedule {
            first_interval: self.retry_first_interval_secs,
            first_phase: self.retry_first_phase_secs,
            growth: self.retry_growth,
            growth_until: self.retry_growth_until_secs,
            late_interval: self.retry_late_interval_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_follows_smarthost() {
        let c: DeliveryConfig = toml::from_str("").unwrap();
        assert_eq!(c.mode(), Mode::Mx);
        let c: DeliveryConfig = toml::from_str("smarthost = \"relay:587\"").unwrap();
        assert_eq!(c.mode(), Mode::Smarthost);
        assert_eq!(c.starttls, StartTls::Required);
        assert!(c.tls_verify);
        c.validate().unwrap();
        assert!(toml::from_str::<DeliveryConfig>("smarthst = \"x\"").is_err());
    }
}
