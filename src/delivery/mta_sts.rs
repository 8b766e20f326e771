//! MTA-STS (RFC 8461): a recipient domain publishes, over HTTPS, which MX
//! hosts it uses and whether senders must insist on verified TLS to them.
//! Discovery is a TXT record at `_mta-sts.<domain>`; its `id` changes when
//! the policy does, so a cached policy is refetched only then (or when its
//! `max_age` ends). The policy host `mta-sts.<domain>` is resolved with the
//! delivery resolver, never the system's, and its certificate must verify.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Empty, Limited};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

/// Largest policy body read (RFC 8461 3.3 suggests 64 KiB).
const MAX_POLICY: usize = 64 * 1024;
/// Longest max_age honoured (RFC 8461 3.2: 31557600).
const MAX_AGE: u64 = 31_557_600;
/// Domains whose policy is kept in memory at once.
const MAX_CACHED: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts over TLS with a valid certificate.
    Enforce,
    /// Report failures, deliver as without a policy.
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns, lower case: a name, or `*.` and a name (one label).
    pub mx: Vec<String>,
    pub max_age: u64,
}

impl Policy {
    /// RFC 8461 3.2: `key: value` lines; `version`, `mode` and `max_age`
    /// required, `mx` at least once unless the mode is none.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(format!("unknown mode '{v}'")),
                    })
                }
                "max_age" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| format!("max_age '{v}' is not a number"))?;
                    max_age = Some(n.min(MAX_AGE));
                }
                "mx" => mx.push(v.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("version is not STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mode != Mode::None && mx.is_empty() {
            return Err("no mx".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// RFC 8461 4.1: an exact name, or a wildcard for one leftmost label.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

/// The `id` of a `v=STSv1` TXT record; None when there is not exactly one.
pub fn txt_id<'a>(records: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut found = records
        .into_iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect::<Vec<_>>();
    if found.len() != 1 {
        return None;
    }
    let record = found.pop()?;
    let mut fields = record.split(';').map(str::trim);
    if fields.next() != Some("v=STSv1") {
        return None;
    }
    fields
        .filter_map(|f| f.strip_prefix("id="))
        .find(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(str::to_string)
}

/// What a lookup found: the policy in force (if any) and, for the TLS
/// report, why a published policy could not be had.
pub struct Found {
    pub policy: Option<Arc<Policy>>,
    pub error: Option<&'static str>,
}

struct Cached {
    id: String,
    policy: Arc<Policy>,
    expires: Instant,
}

pub struct MtaSts {
    /// Port of the policy host (443; tests use another).
    port: u16,
    tls: TlsConnector,
    wait: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl MtaSts {
    /// `tls` must verify certificates (the policy's authenticity rests on it).
    pub fn new(port: u16, tls: TlsConnector, wait: Duration) -> MtaSts {
        MtaSts {
            port,
            tls,
            wait,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let cache = self.cache.lock().expect("mta-sts cache");
        cache
            .get(domain)
            .filter(|c| c.expires > Instant::now())
            .map(|c| (c.id.clone(), c.policy.clone()))
    }

    fn store(&self, domain: &str, id: String, policy: Arc<Policy>) {
        let mut cache = self.cache.lock().expect("mta-sts cache");
        if cache.len() >= MAX_CACHED && !cache.contains_key(domain) {
            let now = Instant::now();
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        let expires = Instant::now() + Duration::from_secs(policy.max_age);
        cache.insert(
            domain.to_string(),
            Cached {
                id,
                policy,
                expires,
            },
        );
    }

    /// The policy of `domain` (lower case, no trailing dot).
    pub async fn lookup(&self, resolver: &TokioResolver, domain: &str) -> Found {
        let cached = self.cached(domain);
        let in_force = |p: Option<Arc<Policy>>, error| Found {
            policy: p.filter(|p| p.mode != Mode::None),
            error,
        };
        let txt = resolver.txt_lookup(format!("_mta-sts.{domain}.")).await;
        let id = match txt {
            Ok(answer) => {
                let records: Vec<String> = answer
                    .iter()
                    .map(|t| {
                        t.iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>()
                    })
                    .collect();
                txt_id(records.iter().map(String::as_str))
            }
            Err(_) => None,
        };
        // No (readable) record: an unexpired cached policy still holds
        // (RFC 8461 5.1), which is what defeats a stripped TXT record.
        let Some(id) = id else {
            return in_force(cached.map(|(_, p)| p), None);
        };
        if let Some((cached_id, p)) = &cached
            && *cached_id == id
        {
            return in_force(Some(p.clone()), None);
        }
        match timeout(self.wait, self.fetch(resolver, domain)).await {
            Ok(Ok(text)) => match Policy::parse(&text) {
                Ok(p) => {
                    let p = Arc::new(p);
                    self.store(domain, id, p.clone());
                    in_force(Some(p), None)
                }
                Err(e) => {
                    tracing::info!(%domain, error = %e, "MTA-STS policy invalid");
                    in_force(cached.map(|(_, p)| p), Some("sts-policy-invalid"))
                }
            },
            Ok(Err(e)) => {
                tracing::info!(%domain, error = %e, "MTA-STS policy fetch failed");
                in_force(cached.map(|(_, p)| p), Some("sts-policy-fetch-error"))
            }
            Err(_) => {
                tracing::info!(%domain, "MTA-STS policy fetch timed out");
                in_force(cached.map(|(_, p)| p), Some("sts-policy-fetch-error"))
            }
        }
    }

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt: 200 and
    /// text/plain only (no redirects, RFC 8461 3.3), body bounded.
    async fn fetch(&self, resolver: &TokioResolver, domain: &str) -> Result<String, String> {
        let host = format!("mta-sts.{domain}");
        let ips = resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| format!("address lookup for {host}: {e}"))?;
        let mut last = format!("no address for {host}");
        for ip in ips.iter() {
            match self.get(SocketAddr::new(ip, self.port), &host).await {
                Ok(text) => return Ok(text),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn get(&self, addr: SocketAddr, host: &str) -> Result<String, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("bad TLS name {host}: {e}"))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP with {host}: {e}"))?;
        let driver = tokio::spawn(conn);
        let request = hyper::Request::get("/.well-known/mta-sts.txt")
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let result = async {
            let resp = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP with {host}: {e}"))?;
            if resp.status() != hyper::StatusCode::OK {
                return Err(format!("{host} answered {}", resp.status()));
            }
            // RFC 8461 3.3: the policy is served as text/plain.
            let plain = resp
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("text/plain")
                });
            if !plain {
                return Err(format!(
                    "{host} served the policy with a type other than text/plain"
                ));
            }
            let body = Limited::new(resp.into_body(), MAX_POLICY)
                .collect()
                .await
                .map_err(|e| format!("policy body from {host}: {e}"))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| format!("policy from {host} is not UTF-8"))
        }
        .await;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_policy() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.net\r\nmax_age: 86400\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 86400);
        assert!(p.matches("mail.example.com."));
        assert!(p.matches("MX1.example.net"));
        assert!(!p.matches("a.b.example.net"));
        assert!(!p.matches("example.net"));
        assert!(!p.matches("evil-mail.example.com"));
        let long = Policy::parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\n");
        assert_eq!(long.unwrap().max_age, MAX_AGE);
        for bad in [
            "mode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n",
        ] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
        assert!(Policy::parse("version: STSv1\nmode: none\nmax_age: 1\n").is_ok());
    }

    #[test]
    fn reads_the_txt_id() {
        assert_eq!(
            txt_id(["v=STSv1; id=20160831085700Z;"]),
            Some("20160831085700Z".into())
        );
        assert_eq!(
            txt_id(["v=spf1 -all", "v=STSv1;id=abc"]),
            Some("abc".into())
        );
        assert_eq!(txt_id(["v=STSv1; id=a", "v=STSv1; id=b"]), None);
        assert_eq!(txt_id(["v=STSv1; id=no-dashes"]), None);
        assert_eq!(txt_id(["v=STSv10; id=a"]), None);
    }
}
