//! DKIM (RFC 6376) keys per sender domain: generated on the appliance,
//! kept in the store, published by the admin as a DNS TXT record, rotated
//! in two steps through a second selector. `sign` adds the signature at
//! delivery time.

mod sign;

pub use sign::{Head, sign_for_delivery, signature};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The two selectors a domain alternates between when none is given:
/// the key in use and its successor are published side by side.
pub const SELECTORS: [&str; 2] = ["outguard1", "outguard2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn parse(s: &str) -> Result<Algorithm, String> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "rsa" => Ok(Algorithm::Rsa),
            _ => Err(format!("algorithm must be ed25519 or rsa, not '{s}'")),
        }
    }

    /// The `k=` tag of the DNS record.
    fn k(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }
}

/// One key pair under one selector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Key {
    pub selector: String,
    pub algorithm: Algorithm,
    /// Base64 of the private key: PKCS#8 for Ed25519, PKCS#1 for RSA.
    pub private: String,
    /// Base64 of the public key as published in `p=`: the raw 32 octets for
    /// Ed25519 (RFC 8463), SubjectPublicKeyInfo for RSA.
    pub public: String,
    pub created: Timestamp,
}

/// A domain's keys: the one signing now, the one published for the next
/// rotation, and the one rotated out (its record can go once queued mail
/// signed with it has been delivered; we sign at delivery, so at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainKeys {
    pub domain: String,
    pub active: Key,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Key>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Key>,
}

impl Key {
    /// Generates a key pair. RSA-2048 takes a moment (the `rsa` crate;
    /// ring cannot generate RSA keys); Ed25519 comes from ring.
    pub fn generate(selector: &str, algorithm: Algorithm, now: Timestamp) -> Result<Key, String> {
        let (private, public) = match algorithm {
            Algorithm::Ed25519 => {
                use mail_auth::common::crypto::Ed25519Key;
                let der = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
                let key = Ed25519Key::from_pkcs8_der(&der).map_err(|e| e.to_string())?;
                (der, key.public_key())
            }
            Algorithm::Rsa => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::EncodePublicKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                    .map_err(|e| e.to_string())?;
                let private = key.to_pkcs1_der().map_err(|e| e.to_string())?;
                let public = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| e.to_string())?;
                (private.as_bytes().to_vec(), public.as_bytes().to_vec())
            }
        };
        Ok(Key {
            selector: selector.to_string(),
            algorithm,
            private: B64.encode(private),
            public: B64.encode(public),
            created: now,
        })
    }

    /// The TXT record's value, unsplit.
    pub fn txt_value(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.algorithm.k(), self.public)
    }

    /// The record's owner name.
    pub fn txt_name(&self, domain: &str) -> String {
        format!("{}._domainkey.{domain}", self.selector)
    }

    /// A zone-file line; strings over 255 octets (an RSA key) are split,
    /// as DNS character-strings are at most 255 long.
    pub fn zone_line(&self, domain: &str) -> String {
        let value = self.txt_value();
        let parts: Vec<String> = value
            .as_bytes()
            .chunks(255)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect();
        format!("{}. IN TXT {}", self.txt_name(domain), parts.join(" "))
    }

    /// What the API shows: everything but the private key.
    pub fn view(&self, domain: &str) -> serde_json::Value {
        serde_json::json!({
            "selector": self.selector,
            "algorithm": self.algorithm,
            "created": self.created,
            "name": self.txt_name(domain),
            "value": self.txt_value(),
            "zone": self.zone_line(domain),
        })
    }
}

impl DomainKeys {
    pub fn view(&self) -> serde_json::Value {
        let d = &self.domain;
        serde_json::json!({
            "domain": d,
            "active": self.active.view(d),
            "next": self.next.as_ref().map(|k| k.view(d)),
            "retired": self.retired.as_ref().map(|k| k.view(d)),
        })
    }

    /// The selector a rotation uses when none is given: the other of the
    /// pair, or the first of the pair if the active one is custom.
    pub fn default_next_selector(&self) -> &'static str {
        if self.active.selector == SELECTORS[0] {
            SELECTORS[1]
        } else {
            SELECTORS[0]
        }
    }
}

/// A selector is one or more DNS labels (RFC 6376 3.1).
pub fn validate_selector(s: &str) -> Result<String, String> {
    let s = s.to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s)
    } else {
        Err(format!(
            "selector '{s}' must be DNS labels of letters, digits and hyphens (at most 63 characters)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_record_is_split_into_dns_strings() {
        let k = Key::generate("s1", Algorithm::Rsa, Timestamp::UNIX_EPOCH).unwrap();
        let line = k.zone_line("example.com");
        assert!(line.starts_with("s1._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p="));
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert!(strings.len() >= 2);
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(strings.concat(), k.txt_value());
    }

    #[test]
    fn ed25519_public_key_is_32_octets() {
        let k = Key::generate("s1", Algorithm::Ed25519, Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(B64.decode(&k.public).unwrap().len(), 32);
        assert_eq!(k.zone_line("a.example").matches('"').count(), 2);
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert_eq!(validate_selector("Mail-2026.a").unwrap(), "mail-2026.a");
        for bad in ["", "a..b", "-a", "a b", "a\"", &"x".repeat(64)] {
            assert!(validate_selector(bad).is_err(), "{bad}");
        }
    }
}
