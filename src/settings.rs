//! System settings the admin changes at run time (kept in the store):
//! timezone of the limit windows, IP authorisation on/off, how strictly the
//! envelope sender and the header From must match the user, and the
//! defaults of user settings.

use std::sync::{Arc, RwLock};

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::policy::windows;
use crate::users::EffectiveSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SenderCheck {
    /// MAIL FROM must be the user's own address.
    Exact,
    /// MAIL FROM must be in the user's domain.
    Domain,
    /// Any sender (the user is trusted to send for others).
    Off,
}

/// The system settings (`GET /v1/settings`); every field is in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SystemSettings {
    /// IANA name; limit windows are calendar days/weeks/months here.
    #[cfg_attr(test, schema(required = true))]
    pub timezone: String,
    /// Whether IP-address users authenticate by their address.
    #[cfg_attr(test, schema(required = true))]
    pub ip_auth: bool,
    #[cfg_attr(test, schema(required = true))]
    pub sender_check: SenderCheck,
    /// The same rule for the header From (every address) and Sender.
    #[cfg_attr(test, schema(required = true))]
    pub header_from_check: SenderCheck,
    /// Keep spam and malware for the admin to release or delete (off:
    /// such mail is dropped). The user's quarantine response decides the
    /// reply either way.
    #[cfg_attr(test, schema(required = true))]
    pub quarantine: bool,
    /// Days a quarantined message is kept before it is deleted.
    #[cfg_attr(test, schema(required = true, minimum = 1, maximum = 3650))]
    pub quarantine_retention_days: u32,
    /// Where lock and unlock notices are mailed; empty: none are sent.
    #[cfg_attr(test, schema(required = true))]
    pub admin_address: String,
    /// Values for user settings a user leaves unset.
    #[cfg_attr(test, schema(required = true))]
    pub defaults: EffectiveSettings,
    /// When to let through, hold or lock (`policy::response::Policy`).
    #[cfg_attr(test, schema(required = true))]
    pub response: crate::policy::response::Policy,
}

impl Default for SystemSettings {
    fn default() -> Self {
        SystemSettings {
            timezone: "UTC".into(),
            ip_auth: true,
            sender_check: SenderCheck::Domain,
            header_from_check: SenderCheck::Domain,
            quarantine: true,
            quarantine_retention_days: 30,
            admin_address: String::new(),
            defaults: EffectiveSettings::default(),
            response: crate::policy::response::Policy::default(),
        }
    }
}

impl SystemSettings {
    /// Refuses a time setting out of its range (`bounds`): the API
    /// answers 422 with this message.
    pub fn check_ranges(&self) -> Result<(), String> {
        bounds::QUARANTINE_RETENTION_DAYS.check(self.quarantine_retention_days)?;
        self.response.validate()?;
        self.defaults.check_ranges()
    }

    /// Brings time settings stored by older versions (which did not
    /// check) into range, logging each one changed.
    fn clamp_stored(mut self) -> SystemSettings {
        let before = self.clone();
        self.quarantine_retention_days =
            bounds::QUARANTINE_RETENTION_DAYS.clamp(self.quarantine_retention_days);
        self.defaults = self.defaults.clamped();
        if self != before {
            tracing::warn!(stored = ?before, using = ?self, "stored settings out of range; clamped");
        }
        self
    }

    pub fn validate(&self) -> Result<TimeZone, String> {
        if !self.admin_address.is_empty() {
            let (local, domain) = self.admin_address.rsplit_once('@').ok_or_else(|| {
                format!("admin_address '{}' is not an address", self.admin_address)
            })?;
            crate::users::validate_local_part(local)?;
            crate::users::validate_domain(domain)?;
        }
        self.response.validate()?;
        if self.quarantine_retention_days == 0 {
            return Err("quarantine_retention_days must be at least 1".into());
        }
        windows::timezone(&self.timezone)
    }
}

/// The settings in force, shared by every session. The store holds the
/// durable copy; this one is replaced after each successful change.
#[derive(Clone)]
pub struct Shared(Arc<RwLock<Current>>);

pub struct Current {
    pub settings: SystemSettings,
    pub tz: TimeZone,
}

impl Shared {
    pub fn new(settings: SystemSettings) -> Result<Shared, String> {
        let settings = settings.clamp_stored();
        let tz = settings.validate()?;
        Ok(Shared(Arc::new(RwLock::new(Current { settings, tz }))))
    }

    pub fn get(&self) -> SystemSettings {
        self.read(|c| c.settings.clone())
    }

    pub fn read<T>(&self, f: impl FnOnce(&Current) -> T) -> T {
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    pub fn replace(&self, settings: SystemSettings) -> Result<(), String> {
        let tz = settings.validate()?;
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        *guard = Current { settings, tz };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The ranges the OpenAPI description states for the system settings
    /// (written by hand as schema attributes: utoipa takes no constants)
    /// are the ones `check_ranges` enforces.
    #[test]
    fn documented_ranges_are_the_enforced_ones() {
        let doc: Value = serde_json::from_str(include_str!("admin/openapi.json")).unwrap();
        let schemas = &doc["components"]["schemas"];
        let mut checked = 0;
        for (schema, at) in [
            ("SystemSettings", None),
            ("ResponsePolicy", Some("response")),
        ] {
            let props = schemas[schema]["properties"].as_object().unwrap();
            for (field, p) in props {
                let (Some(min), Some(max)) = (p["minimum"].as_f64(), p["maximum"].as_f64()) else {
                    continue;
                };
                let valid = |v: f64| {
                    let mut s = serde_json::to_value(SystemSettings::default()).unwrap();
                    let obj = match at {
                        Some(key) => &mut s[key],
                        None => &mut s,
                    };
                    obj[field] = if p["type"] == "integer" {
                        json!(v as i64)
                    } else {
                        json!(v)
                    };
                    serde_json::from_value::<SystemSettings>(s)
                        .map_err(|e| e.to_string())
                        .and_then(|s| s.check_ranges())
                        .is_ok()
                };
                assert!(valid(min) && valid(max), "{schema}.{field}: {min}..={max}");
                assert!(!valid(max + 1.0), "{schema}.{field}: above {max} accepted");
                if min >= 1.0 || p["type"] != "integer" {
                    assert!(!valid(min - 1.0), "{schema}.{field}: below {min} accepted");
                }
                checked += 1;
            }
        }
        // quarantine_retention_days and the five numbers of `response`
        assert_eq!(checked, 6);
    }
}
