//! Outgoing users as the vendor document describes them: `user@domain`
//! with a password, or an IP address / network with a blank password whose
//! connections count as authenticated. Each setting may be left unset, in
//! which case the system default applies.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::bounds;

pub mod spec;

/// What a user name denotes, parsed from its canonical text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserName {
    /// `local@domain`, both lower-cased.
    Address { local: String, domain: String },
    /// An IP address (as a /32 or /128) or a network.
    Network(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuarantineResponse {
    /// Tell the client the message was not delivered (550).
    Rejected,
    /// Say 250 and deliver nothing.
    Accepted,
}

/// Per-user overrides; `None` means "use the system default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    pub auto_lock: Option<bool>,
    pub lock_timeout_minutes: Option<u32>,
    pub max_unlocks: Option<u32>,
    pub limit_per_month: Option<u32>,
    pub limit_per_week: Option<u32>,
    pub limit_per_day: Option<u32>,
    pub max_recipients_per_day: Option<u32>,
    pub max_retry_days: Option<u32>,
    pub quarantine_response: Option<QuarantineResponse>,
}

/// Settings with every value decided. Limits of 0 mean unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectiveSettings {
    pub auto_lock: bool,
    pub lock_timeout_minutes: u32,
    pub max_unlocks: u32,
    pub limit_per_month: u32,
    pub limit_per_week: u32,
    pub limit_per_day: u32,
    pub max_recipients_per_day: u32,
    pub max_retry_days: u32,
    pub quarantine_response: QuarantineResponse,
}

impl Default for EffectiveSettings {
    fn default() -> Self {
        EffectiveSettings {
            auto_lock: true,
            lock_timeout_minutes: 60,
            max_unlocks: 3,
            limit_per_month: 10_000,
            limit_per_week: 2_500,
            limit_per_day: 500,
            max_recipients_per_day: 1_000,
            max_retry_days: 5,
            quarantine_response: QuarantineResponse::Rejected,
        }
    }
}

impl EffectiveSettings {
    /// Refuses a setting out of its range (`spec::USER_SETTINGS`).
    pub fn check_ranges(&self) -> Result<(), String> {
        spec::check_json(&serde_json::to_value(self).map_err(|e| e.to_string())?)
    }

    /// The settings with time values brought into range (values stored
    /// by older versions, which did not check).
    pub fn clamped(mut self) -> EffectiveSettings {
        self.lock_timeout_minutes = bounds::LOCK_TIMEOUT_MINUTES.clamp(self.lock_timeout_minutes);
        self.max_retry_days = bounds::MAX_RETRY_DAYS.clamp(self.max_retry_days);
        self
    }
}

impl UserSettings {
    /// Refuses a setting out of its range (`spec::USER_SETTINGS`); unset
    /// ones are not checked.
    pub fn check_ranges(&self) -> Result<(), String> {
        spec::check_json(&serde_json::to_value(self).map_err(|e| e.to_string())?)
    }

    /// The settings in force: each unset one from `defaults`, time values
    /// within their ranges whatever is stored.
    pub fn resolve(&self, defaults: &EffectiveSettings) -> EffectiveSettings {
        self.resolve_unclamped(defaults).clamped()
    }

    fn resolve_unclamped(&self, defaults: &EffectiveSettings) -> EffectiveSettings {
        EffectiveSettings {
            auto_lock: self.auto_lock.unwrap_or(defaults.auto_lock),
            lock_timeout_minutes: self
                .lock_timeout_minutes
                .unwrap_or(defaults.lock_timeout_minutes),
            max_unlocks: self.max_unlocks.unwrap_or(defaults.max_unlocks),
            limit_per_month: self.limit_per_month.unwrap_or(defaults.limit_per_month),
            limit_per_week: self.limit_per_week.unwrap_or(defaults.limit_per_week),
            limit_per_day: self.limit_per_day.unwrap_or(defaults.limit_per_day),
            max_recipients_per_day: self
                .max_recipients_per_day
                .unwrap_or(defaults.max_recipients_per_day),
            max_retry_days: self.max_retry_days.unwrap_or(defaults.max_retry_days),
            quarantine_response: self
                .quarantine_response
                .unwrap_or(defaults.quarantine_response),
        }
    }

    /// Applies the fields that `patch` sets. A JSON `null` cannot clear a
    /// field through this (see `clear`).
    pub fn merge(&mut self, patch: &UserSettings) {
        macro_rules! take {
            ($($f:ident),*) => { $( if patch.$f.is_some() { self.$f = patch.$f; } )* };
        }
        take!(
            auto_lock,
            lock_timeout_minutes,
            max_unlocks,
            limit_per_month,
            limit_per_week,
            limit_per_day,
            max_recipients_per_day,
            max_retry_days,
            quarantine_response
        );
    }
}

/// Whether a user may send, and until when not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LockState {
    Active,
    /// Locked until the given time, then unlocked by timeout.
    LockedUntil {
        until: Timestamp,
        reason: String,
    },
    /// Locked until an admin unlocks.
    LockedByAdmin {
        since: Timestamp,
        reason: String,
    },
}

impl LockState {
    /// The lock in force at `now` (an expired timed lock is no lock).
    pub fn in_force(&self, now: Timestamp) -> Option<&LockState> {
        match self {
            LockState::Active => None,
            _ if self.expired(now) => None,
            other => Some(other),
        }
    }

    /// A timed lock whose time is up at `now` (ended by housekeeping, or by
    /// `policy::locking::expire` before a new lock, as an unlock by timeout).
    pub fn expired(&self, now: Timestamp) -> bool {
        matches!(self, LockState::LockedUntil { until, .. } if *until <= now)
    }
}

/// One line of a user's history (locks, unlocks, edits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: Timestamp,
    pub event: String,
}

/// History kept per user; older events are dropped.
pub const HISTORY_LEN: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Canonical name: `local@domain` lower-cased, or an IP / CIDR.
    pub name: String,
    /// Domain the user may send from (its own domain, or for an
    /// IP-authorised user the one given at creation, if any).
    pub domain: Option<String>,
    /// PHC string (argon2id). `None`: IP-authorised, or no password set yet.
    pub password_hash: Option<String>,
    pub settings: UserSettings,
    pub lock: LockState,
    /// Unlocks by timeout since an admin last unlocked the user.
    pub unlocks_by_timeout: u32,
    pub created: Timestamp,
    pub history: Vec<HistoryEvent>,
}

impl User {
    pub fn new(name: &UserName, domain: Option<String>, now: Timestamp) -> User {
        let domain = match name {
            UserName::Address { domain, .. } => Some(domain.clone()),
            UserName::Network(_) => domain,
        };
        User {
            name: name.to_string(),
            domain,
            password_hash: None,
            settings: UserSettings::default(),
            lock: LockState::Active,
            unlocks_by_timeout: 0,
            created: now,
            history: Vec::new(),
        }
    }

    pub fn record(&mut self, at: Timestamp, event: impl Into<String>) {
        if self.history.len() >= HISTORY_LEN {
            self.history.remove(0);
        }
        self.history.push(HistoryEvent {
            at,
            event: event.into(),
        });
    }

    pub fn is_network(&self) -> bool {
        matches!(UserName::parse(&self.name), Ok(UserName::Network(_)))
    }
}

impl UserName {
    /// Parses and canonicalises a user name as an admin types it.
    pub fn parse(text: &str) -> Result<UserName, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("user name is empty".into());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(UserName::Network(IpNet::from(ip)));
        }
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(UserName::Network(net.trunc()));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(format!(
                "'{text}' is neither user@domain nor an IP address or network"
            ));
        };
        validate_local_part(local)?;
        let domain = validate_domain(domain)?;
        Ok(UserName::Address {
            local: local.to_ascii_lowercase(),
            domain,
        })
    }

    pub fn network(&self) -> Option<IpNet> {
        match self {
            UserName::Network(n) => Some(*n),
            UserName::Address { .. } => None,
        }
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserName::Address { local, domain } => write!(f, "{local}@{domain}"),
            // A single host prints without its prefix length.
            UserName::Network(n) if n.prefix_len() == n.max_prefix_len() => {
                write!(f, "{}", n.addr())
            }
            UserName::Network(n) => write!(f, "{n}"),
        }
    }
}

/// Dot-atom local part (RFC 5322 atext); quoted forms are not user names.
pub fn validate_local_part(local: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local.is_empty() || local.len() > 64 {
        return Err(format!("local part '{local}' must be 1 to 64 characters"));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(format!("local part '{local}' has a misplaced dot"));
    }
    if let Some(c) = local.chars().find(|&c| c != '.' && !ok_char(c)) {
        return Err(format!("local part '{local}' contains '{c}'"));
    }
    Ok(())
}

/// A DNS domain name (letters, digits, hyphens; labels up to 63), lower-cased.
pub fn validate_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 {
        return Err(format!("domain '{domain}' must be 1 to 253 characters"));
    }
    for label in d.split('.') {
        let bad = label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if bad {
            return Err(format!("domain '{domain}' is not a valid domain name"));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            UserName::parse("Alice@Example.COM").unwrap().to_string(),
            "alice@example.com"
        );
        assert_eq!(
            UserName::parse("192.168.1.7").unwrap().to_string(),
            "192.168.1.7"
        );
        assert_eq!(
            UserName::parse("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.0/24"
        );
        assert_eq!(UserName::parse("::1").unwrap().to_string(), "::1");
        assert!(UserName::parse("alice").is_err());
        assert!(UserName::parse("a b@example.com").is_err());
        assert!(UserName::parse("alice@exa_mple.com").is_err());
        assert!(UserName::parse("al..ice@example.com").is_err());
    }

    #[test]
    fn unset_settings_follow_defaults() {
        let d = EffectiveSettings::default();
        let s = UserSettings {
            limit_per_day: Some(3),
            ..Default::default()
        };
        let e = s.resolve(&d);
        assert_eq!(e.limit_per_day, 3);
        assert_eq!(e.limit_per_week, d.limit_per_week);
    }

    #[test]
    fn expired_lock_is_not_in_force() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let l = LockState::LockedUntil {
            until: "2025-12-31T23:00:00Z".parse().unwrap(),
            reason: String::new(),
        };
        assert!(l.in_force(now).is_none());
        let l = LockState::LockedByAdmin {
            since: now,
            reason: String::new(),
        };
        assert!(l.in_force(now).is_some());
    }
}
