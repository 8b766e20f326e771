//! Delivery of queued mail to the next hop: a scheduler loop picks due
//! recipients from the redb queue, groups them by destination, and hands
//! each group to a connection task (bounded overall and per
//! destination). Each message's outcome is committed right after the
//! next hop's reply to it; failures and expiries produce one RFC 3464
//! bounce per message in the same commit.

mod capture;
mod client;
mod config;
mod dane;
mod dsn;
mod mta_sts;
mod mx_tls;
mod outcome;
mod pin;
mod route;
mod schedule;
pub mod seven_bit;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

pub use config::{DeliveryConfig, Mode};
/// Control characters out of a header value (bounces, admin notices).
pub use dsn::controls_as_spaces;
pub use outcome::{admin_bounce, admin_retry};
pub use worker::{Delivery, Prepared};

/// Counters since start, for `GET /v1/health`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Recipients accepted by the next hop.
    pub delivered: AtomicU64,
    /// Attempts that ended in a temporary failure (per recipient).
    pub deferred: AtomicU64,
    /// Recipients refused for good or expired.
    pub bounced: AtomicU64,
    /// Bounces (DSNs) queued.
    pub dsn_queued: AtomicU64,
    /// Failed recipients of null-sender mail, dropped without a bounce.
    pub dropped: AtomicU64,
    /// Connections opened to next hops.
    pub connections: AtomicU64,
    /// MTA-STS and DANE session results (TLS-RPT style).
    pub tls_report: mx_tls::Report,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "delivered": g(&self.delivered),
            "deferred": g(&self.deferred),
            "bounced": g(&self.bounced),
            "dsn_queued": g(&self.dsn_queued),
            "dropped": g(&self.dropped),
            "connections": g(&self.connections),
            "tls_policy": self.tls_report.snapshot(),
        })
    }
}
