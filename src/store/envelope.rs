//! The DSN parameters of an envelope (RFC 3461), kept with the queue entry
//! so they can be passed on to a next hop that speaks DSN and honoured in
//! our own notifications. All optional: entries stored before they
//! existed load with none.

use serde::{Deserialize, Serialize};

/// Longest ENVID (RFC 3461 4.4: 100 characters).
pub const MAX_ENVID: usize = 100;
/// Longest ORCPT address kept (RFC 3461 4.2 allows 500 octets).
pub const MAX_ORCPT: usize = 500;

/// RET: what a failure notification returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ret {
    Full,
    Hdrs,
}

/// Per-message parameters: MAIL FROM's RET and ENVID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDsn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// Decoded from xtext; printable ASCII only (checked at RCPT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
}

impl MessageDsn {
    pub fn is_empty(&self) -> bool {
        self.ret.is_none() && self.envid.is_none()
    }
}

/// NOTIFY: when the sender wants to hear about this recipient. All false
/// is NOTIFY=NEVER.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub failure: bool,
    #[serde(default)]
    pub delay: bool,
}

/// Per-recipient parameters: RCPT TO's NOTIFY and ORCPT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcptDsn {
    /// None: not given, which means failures and delays (RFC 3461 4.1
    /// leaves the default to the MTA; this is the usual one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// The original recipient (an rfc822 address), decoded from xtext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

impl RcptDsn {
    pub fn is_empty(&self) -> bool {
        self.notify.is_none() && self.orcpt.is_none()
    }

    pub fn wants_failure(&self) -> bool {
        self.notify.is_none_or(|n| n.failure)
    }

    pub fn wants_delay(&self) -> bool {
        self.notify.is_none_or(|n| n.delay)
    }

    pub fn wants_success(&self) -> bool {
        self.notify.is_some_and(|n| n.success)
    }
}

/// Whether a decoded xtext value may be kept and echoed: printable ASCII
/// and spaces (RFC 3461 4.4); controls would break the report's fields.
pub fn printable(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

/// Encodes a value as xtext (RFC 3461 4): '+', '=' and anything outside
/// '!'..='~' as "+HH".
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_graphic() && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_non_graphic() {
        assert_eq!(xtext("bob@example.org"), "bob@example.org");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }

    #[test]
    fn old_entries_load_without_dsn_fields() {
        let r: RcptDsn = serde_json::from_str("{}").unwrap();
        assert!(r.is_empty() && r.wants_failure() && r.wants_delay() && !r.wants_success());
        let never = RcptDsn {
            notify: Some(Notify::default()),
            orcpt: None,
        };
        assert!(!never.wants_failure() && !never.wants_delay());
        assert!(printable("QQ314159", MAX_ENVID));
        assert!(printable("a b", MAX_ENVID));
        assert!(!printable("a\nb", MAX_ENVID) && !printable("", MAX_ENVID));
    }
}
