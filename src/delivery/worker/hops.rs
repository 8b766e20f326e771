//! Choosing and reaching a next hop: the MX security policy per hop
//! (DANE, MTA-STS, opportunistic TLS) and the connection attempts.

use std::time::Duration;

use super::Delivery;
use crate::delivery::client::{Error, Session, TlsPolicy};
use crate::delivery::mx_tls::{Guard, PolicyType};
use crate::delivery::route::Hop;

impl Delivery {
    /// Whether a failed STARTTLS handshake may be followed by plain text.
    /// Not when TLS is required, and not towards a smarthost whose
    /// certificate is checked: an attacker in the path could otherwise
    /// turn any certificate failure into a plaintext session, making
    /// `tls_verify` meaningless. A host that offers no STARTTLS at all
    /// still gets plain text in opportunistic mode (`client::Session::open`).
    pub(super) fn plain_after_tls_failure(&self) -> bool {
        let checked = self.cfg.tls_verify || !self.cfg.tls_pin.is_empty();
        let verified = self.router.is_smarthost() && checked;
        !self.tls.required && !verified
    }

    /// The TLS policy for each hop: DANE where the host has secure TLSA
    /// records (it takes precedence, RFC 8461 2), else the domain's
    /// MTA-STS policy. Err: no hop may be used.
    pub(super) async fn plans(&self, dest: &str, hops: &[Hop]) -> Result<Vec<Plan>, String> {
        let mut plans = vec![Plan::Plain; hops.len()];
        let Some(resolver) = self.router.resolver() else {
            return Ok(plans);
        };
        if dest.starts_with('[') {
            return Ok(plans);
        }
        if let Some(dane) = &self.dane {
            for (plan, hop) in plans.iter_mut().zip(hops) {
                match dane.lookup(&hop.host).await {
                    crate::delivery::dane::Found::None => {}
                    crate::delivery::dane::Found::Records(tlsa) => {
                        *plan = Plan::Guarded(Guard {
                            kind: PolicyType::Dane,
                            enforce: true,
                            tlsa,
                        })
                    }
                    crate::delivery::dane::Found::Bogus => {
                        self.stats
                            .tls_report
                            .count(PolicyType::Dane, "dnssec-invalid");
                        *plan = Plan::Skip(
                            "DANE: TLSA records fail DNSSEC validation (dnssec-invalid)",
                        );
                    }
                }
            }
        }
        let found = match &self.mta_sts {
            Some(sts) => sts.lookup(resolver, dest).await,
            None => crate::delivery::mta_sts::Found {
                policy: None,
                error: None,
            },
        };
        if let Some(e) = found.error {
            self.stats.tls_report.count(PolicyType::Sts, e);
        }
        if let Some(policy) = found.policy {
            let enforce = policy.mode == crate::delivery::mta_sts::Mode::Enforce;
            for (plan, hop) in plans.iter_mut().zip(hops) {
                if !matches!(plan, Plan::Plain) {
                    continue;
                }
                let listed = policy.matches(&hop.host);
                if !listed {
                    self.stats.tls_report.count(PolicyType::Sts, "mx-mismatch");
                }
                *plan = if listed || !enforce {
                    Plan::Guarded(Guard {
                        kind: PolicyType::Sts,
                        enforce,
                        tlsa: Vec::new(),
                    })
                } else {
                    Plan::Skip("MTA-STS: not listed in the policy (mx-mismatch)")
                };
            }
        }
        if plans.iter().all(|p| matches!(p, Plan::Skip(_))) {
            let why = plans.iter().find_map(|p| match p {
                Plan::Skip(w) => Some(*w),
                _ => None,
            });
            return Err(format!(
                "451 4.7.5 no usable MX host for {dest}: {}",
                why.unwrap_or("-")
            ));
        }
        Ok(plans)
    }

    /// Tries every address of every hop in order; returns the first
    /// session that opens, or the last error.
    pub(super) async fn connect(
        &self,
        hops: &[Hop],
        plans: &[Plan],
    ) -> Result<(Session, String), String> {
        let mut last = String::from("451 4.4.1 no address to connect to");
        for (i, hop) in hops.iter().enumerate() {
            let guard = match plans.get(i) {
                Some(Plan::Guarded(g)) => Some(g),
                Some(Plan::Skip(_)) => continue,
                _ => None,
            };
            for addr in &hop.addrs {
                let guarded = match (guard, &self.roots) {
                    (Some(g), Some(roots)) => {
                        let (connector, verdict) =
                            crate::delivery::mx_tls::guarded_connector(roots.clone(), g)?;
                        Some((
                            TlsPolicy {
                                required: false,
                                connector,
                            },
                            verdict,
                            g,
                        ))
                    }
                    _ => None,
                };
                let tls = guarded.as_ref().map_or(&self.tls, |(t, _, _)| t);
                let strict = guard.is_some_and(|g| g.enforce);
                let open = |try_tls| {
                    Session::open(
                        *addr,
                        &hop.host,
                        &self.hostname,
                        Duration::from_secs(self.cfg.connect_timeout_secs),
                        Duration::from_secs(self.cfg.command_timeout_secs),
                        tls,
                        try_tls,
                        self.auth.as_ref(),
                    )
                };
                let mut result = open(true).await;
                if let Err(Error::Tls(e)) = &result
                    && self.plain_after_tls_failure()
                    && !strict
                {
                    // Opportunistic TLS without certificate checks: a
                    // broken handshake is no reason to stop trying; the
                    // same host once more in plain text.
                    tracing::info!(host = %hop.host, %addr, error = %e, "TLS failed; retrying without STARTTLS");
                    result = open(false).await;
                }
                if let Some((_, verdict, g)) = &guarded {
                    let seen = *verdict.lock().expect("tls result");
                    let outcome = match &result {
                        Ok(s) => Some(match seen {
                            Some(Err(r)) => r,
                            _ if !s.tls => "starttls-not-supported",
                            _ => "success",
                        }),
                        Err(Error::Tls(_)) => {
                            Some(seen.and_then(Result::err).unwrap_or("validation-failure"))
                        }
                        // Never got as far as TLS: not a policy result.
                        Err(_) => None,
                    };
                    if let Some(o) = outcome {
                        self.stats.tls_report.count(g.kind, o);
                        if strict && o != "success" {
                            tracing::info!(host = %hop.host, %addr, policy = g.kind.name(), failure = o, "TLS policy not met");
                            if let Ok(s) = result {
                                s.quit().await;
                            }
                            last = format!(
                                "451 4.7.5 {} policy not met by {}: {o}",
                                match g.kind {
                                    PolicyType::Sts => "MTA-STS",
                                    PolicyType::Dane => "DANE",
                                },
                                hop.host
                            );
                            continue;
                        }
                    }
                }
                match result {
                    Ok(s) => return Ok((s, hop.host.clone())),
                    Err(e) => {
                        tracing::info!(host = %hop.host, %addr, error = %e, "next hop unusable");
                        last = match e {
                            // A 5xx greeting or EHLO still is "this host
                            // cannot take it now": we go on to the next
                            // host and retry later rather than bounce.
                            Error::Reply(r) => format!("451 4.4.0 {} said: {r}", hop.host),
                            Error::Io(text) | Error::Tls(text) => format!("451 4.4.1 {text}"),
                        };
                    }
                }
            }
        }
        Err(last)
    }
}

/// How to use one MX host.
#[derive(Debug, Clone)]
pub(super) enum Plan {
    /// No policy: opportunistic TLS.
    Plain,
    Guarded(Guard),
    /// A policy rules the host out (why, for the deferral text).
    Skip(&'static str),
}
