//! Where a recipient's mail goes next: the smarthost, or the MX hosts of
//! the recipient's domain in preference order, falling back to the
//! domain's own A/AAAA records when it has no MX (RFC 5321 5.1).

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolverBuilder, TokioResolver};

use super::config::{DeliveryConfig, Mode};

/// One host to try, with its addresses in the order to try them.
#[derive(Debug, Clone)]
pub struct Hop {
    /// Name for logs, TLS (SNI and certificate check) and bounces.
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Why no next hop could be found.
#[derive(Debug, Clone)]
pub struct RouteError {
    /// The domain cannot receive mail (no such domain, null MX): the
    /// recipients fail at once instead of being retried.
    pub permanent: bool,
    pub text: String,
}

pub enum Router {
    Smarthost {
        host: String,
        port: u16,
    },
    Mx {
        resolver: Box<TokioResolver>,
        port: u16,
    },
    /// No next hop: the worker writes messages to the capture directory.
    Capture,
}

/// A resolver on `delivery.dns_servers` (each over UDP and TCP), or on the
/// system's configuration when none are set. Names are always absolute (no
/// search list); `validate` asks for DNSSEC validation (DANE's TLSA lookups).
pub(super) fn resolver_builder(
    cfg: &DeliveryConfig,
    validate: bool,
) -> Result<ResolverBuilder<TokioConnectionProvider>, String> {
    let mut opts = ResolverOpts::default();
    opts.ndots = 0;
    opts.validate = validate;
    let builder = if cfg.dns_servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| {
            format!("cannot read the system resolver configuration: {e}; set delivery.dns_servers")
        })?
    } else {
        let mut rc = ResolverConfig::new();
        for addr in &cfg.dns_servers {
            rc.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            rc.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(rc, TokioConnectionProvider::default())
    };
    Ok(builder.with_options(opts))
}

impl Router {
    pub fn new(cfg: &DeliveryConfig) -> Result<Router, String> {
        match cfg.mode() {
            Mode::Smarthost => {
                let spec = cfg.smarthost.as_deref().unwrap_or_default();
                let (host, port) = split_host_port(spec)
                    .ok_or_else(|| format!("delivery.smarthost '{spec}' is not host:port"))?;
                Ok(Router::Smarthost { host, port })
            }
            Mode::Capture => Ok(Router::Capture),
            Mode::Mx => {
                let resolver = resolver_builder(cfg, false)?.build();
                Ok(Router::Mx {
                    resolver: Box::new(resolver),
                    port: cfg.mx_port,
                })
            }
        }
    }

    /// The key that groups recipients sharing the next hop: the domain,
    /// or one key for everything in smarthost mode.
    pub fn destination(&self, recipient: &str) -> String {
        match self {
            Router::Smarthost { .. } => "smarthost".into(),
            Router::Capture => "capture".into(),
            Router::Mx { .. } => domain_of(recipient).to_ascii_lowercase(),
        }
    }

    /// The MX-mode resolver (for MTA-STS and DANE lookups).
    pub fn resolver(&self) -> Option<&TokioResolver> {
        match self {
            Router::Mx { resolver, .. } => Some(resolver),
            _ => None,
        }
    }

    pub fn is_smarthost(&self) -> bool {
        matches!(self, Router::Smarthost { .. })
    }

    /// The hops to try for `destination`, best first.
    pub async fn resolve(&self, destination: &str) -> Result<Vec<Hop>, RouteError> {
        match self {
            Router::Smarthost { host, port } => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| temporary(format!("cannot resolve smarthost {host}: {e}")))?
                    .collect();
                Ok(vec![Hop {
                    host: host.clone(),
                    addrs,
                }])
            }
            Router::Mx { resolver, port } => mx(resolver, destination, *port).await,
            Router::Capture => Ok(Vec::new()),
        }
    }
}

fn temporary(text: String) -> RouteError {
    RouteError {
        permanent: false,
        text,
    }
}

fn permanent(text: String) -> RouteError {
    RouteError {
        permanent: true,
        text,
    }
}

async fn mx(resolver: &TokioResolver, domain: &str, port: u16) -> Result<Vec<Hop>, RouteError> {
    // Address literal: user@[192.0.2.1] or user@[IPv6:2001:db8::1].
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let lit = lit.strip_prefix("IPv6:").unwrap_or(lit);
        let ip: IpAddr = lit
            .parse()
            .map_err(|_| permanent(format!("bad address literal [{lit}]")))?;
        return Ok(vec![Hop {
            host: ip.to_string(),
            addrs: vec![SocketAddr::new(ip, port)],
        }]);
    }
    if domain.is_empty() {
        return Err(permanent("recipient has no domain".into()));
    }
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let mut hosts: Vec<(u16, String)> = match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(answer) => answer
            .iter()
            .map(|mx| (mx.preference(), mx.exchange().to_ascii()))
            .collect(),
        Err(e) if e.is_nx_domain() => {
            return Err(permanent(format!("domain {domain} does not exist")));
        }
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(temporary(format!("MX lookup for {domain}: {e}"))),
    };
    // Null MX (RFC 7505): the domain accepts no mail.
    if hosts.len() == 1 && (hosts[0].1 == "." || hosts[0].1.is_empty()) {
        return Err(permanent(format!(
            "domain {domain} accepts no mail (null MX)"
        )));
    }
    if hosts.is_empty() {
        // Implicit MX: the domain itself.
        hosts.push((0, fqdn.clone()));
    }
    hosts.sort_by_key(|(pref, _)| *pref);
    let mut hops = Vec::new();
    let mut last_error = None;
    for (_, host) in hosts {
        match resolver.lookup_ip(host.as_str()).await {
            Ok(ips) => {
                let addrs: Vec<SocketAddr> =
                    ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                if !addrs.is_empty() {
                    hops.push(Hop {
                        host: host.trim_end_matches('.').to_string(),
                        addrs,
                    });
                }
            }
            Err(e) => last_error = Some(format!("address lookup for {host}: {e}")),
        }
    }
    if hops.is_empty() {
        return Err(temporary(last_error.unwrap_or_else(|| {
            format!("no address for the mail hosts of {domain}")
        })));
    }
    Ok(hops)
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

fn split_host_port(spec: &str) -> Option<(String, u16)> {
    // [v6]:port, or host:port.
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        spec.rsplit_once(':')?
    };
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("relay.example:587"),
            Some(("relay.example".into(), 587))
        );
        assert_eq!(split_host_port("[::1]:25"), Some(("::1".into(), 25)));
        assert_eq!(split_host_port("relay"), None);
        assert_eq!(split_host_port(":25"), None);
    }

    #[test]
    fn destinations() {
        assert_eq!(domain_of("a@B.example"), "B.example");
        assert_eq!(domain_of("postmaster"), "");
    }
}
