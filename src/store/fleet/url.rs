//! The `[store]` settings of a fleet: the shared store's URL and how far
//! a box may go on its own while that store is unreachable.
//!
//! `valkey://` and `valkeys://` (TLS) are accepted as the names of
//! `redis://` and `rediss://`: Valkey speaks the same protocol.

use std::path::PathBuf;

/// The shared store's URL; `Debug` hides the password it may hold.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SharedUrl(pub String);

impl std::fmt::Debug for SharedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", redacted(&self.0))
    }
}

/// The URL as the redis client takes it: a valkey scheme renamed.
pub fn client_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("[store] shared: '{}' is not a URL", redacted(url)))?;
    let scheme = match scheme {
        "valkey" | "redis" => "redis",
        "valkeys" | "rediss" => "rediss",
        other => {
            return Err(format!(
                "[store] shared: scheme '{other}' is not valkey://, valkeys://, redis:// or rediss://"
            ));
        }
    };
    Ok(format!("{scheme}://{rest}"))
}

/// The port the daemon dials (the jail allows it).
pub fn port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')) => {
            p.parse().ok()
        }
        _ => Some(6379),
    }
}

/// The URL with any password replaced, for logs and errors.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".into();
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_string(),
    }
}

/// The CA certificates (PEM) the shared store's TLS certificate must
/// chain to: `[store] shared_ca`, else the platform's store. Read at
/// start, while privileged and before the jail.
pub fn ca_pem(file: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
    if let Some(p) = file {
        return std::fs::read(p).map_err(|e| format!("[store] shared_ca {}: {e}", p.display()));
    }
    use base64::Engine as _;
    let mut pem = Vec::new();
    for c in rustls_native_certs::load_native_certs().certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// Checks the `[store]` fleet settings at start.
pub fn check(
    shared: Option<&SharedUrl>,
    ca: Option<&PathBuf>,
    fraction: f64,
) -> Result<(), String> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(format!(
            "[store] degraded_fraction must be between 0 and 1, not {fraction}"
        ));
    }
    match shared {
        Some(u) => {
            let url = client_url(&u.0)?;
            redis::parse_redis_url(&url).ok_or_else(|| {
                format!("[store] shared: '{}' is not a valid URL", redacted(&u.0))
            })?;
            Ok(())
        }
        None if ca.is_some() => Err("[store] shared_ca is set but [store] shared is not".into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_ports_and_redaction() {
        assert_eq!(
            client_url("valkeys://:pw@127.0.0.1:6380/0").unwrap(),
            "rediss://:pw@127.0.0.1:6380/0"
        );
        assert_eq!(client_url("redis://h").unwrap(), "redis://h");
        assert!(client_url("http://h").is_err());
        assert!(client_url("h:6379").is_err());
        assert_eq!(port("valkey://127.0.0.1:7000"), Some(7000));
        assert_eq!(port("valkey://:p@w@[::1]:7001/2"), Some(7001));
        assert_eq!(port("valkey://host"), Some(6379));
        assert_eq!(redacted("valkey://u:secret@h:1/0"), "valkey://***@h:1/0");
        assert_eq!(
            format!("{:?}", SharedUrl("redis://:s@h".into())),
            "redis://***@h"
        );
        assert!(check(None, None, 1.5).is_err());
        assert!(check(Some(&SharedUrl("valkey://127.0.0.1:1".into())), None, 0.25).is_ok());
    }
}
