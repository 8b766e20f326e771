//! Recording admin actions: every state change on either face, and
//! logins and logouts, with who did it and what came of it. Failed and
//! refused logins are coalesced per source network and outcome: the first
//! of a minute writes a row (each one is an fsynced commit), the rest are
//! counted and the count goes into the next such row for that source.
//! Minutes are on the daemon's clock (tests move it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use hyper::Method;
use jiff::{SignedDuration, Timestamp};

use super::Answer;
use crate::store::{AuditEntry, Store};

/// Records one action; a failure to record is logged, not fatal.
pub fn record(store: &Store, who: &str, action: String, status: u16, detail: String) {
    let entry = AuditEntry {
        id: 0,
        at: jiff::Timestamp::now(),
        who: who.to_string(),
        action,
        status,
        detail,
    };
    if let Err(e) = store.audit(entry) {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// Rows of failed logins written per source at most this often.
const COALESCE: SignedDuration = SignedDuration::from_secs(60);
/// Sources tracked at most; past this, all new ones share one entry.
const MAX_SOURCES: usize = 4_096;

struct Source {
    since: Timestamp,
    /// Failures not written since `since`.
    unwritten: u64,
}

/// Failed-login rows, at most one per source network per minute.
#[derive(Default)]
pub struct LoginFailures {
    sources: Mutex<HashMap<(IpAddr, u16), Source>>,
}

impl LoginFailures {
    /// Records a failed or refused login from `ip` unless one was written
    /// for its network within the minute; then it is only counted.
    pub fn record(&self, store: &Store, now: Timestamp, ip: IpAddr, action: &str, status: u16) {
        let fresh = |s: &Source| now.duration_since(s.since) < COALESCE && now >= s.since;
        let unwritten = {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            let mut key = (crate::auth::throttle::network(ip), status);
            if sources.len() >= MAX_SOURCES && !sources.contains_key(&key) {
                sources.retain(|_, s| fresh(s));
                if sources.len() >= MAX_SOURCES {
                    key.0 = IpAddr::from([0, 0, 0, 0]);
                }
            }
            match sources.get_mut(&key) {
                Some(s) if fresh(s) => {
                    s.unwritten += 1;
                    return;
                }
                Some(s) => {
                    let n = s.unwritten;
                    *s = Source {
                        since: now,
                        unwritten: 0,
                    };
                    n
                }
                None => {
                    sources.insert(
                        key,
                        Source {
                            since: now,
                            unwritten: 0,
                        },
                    );
                    0
                }
            }
        };
        let detail = if unwritten == 0 {
            String::new()
        } else {
            format!(
                "{unwritten} more like this from the same source before, not written one by one"
            )
        };
        let entry = AuditEntry {
            id: 0,
            at: now,
            who: format!("admin@{ip}"),
            action: action.to_string(),
            status,
            detail,
        };
        if let Err(e) = store.audit(entry) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}

/// Records an API call if it could change something.
pub fn api_call(store: &Store, who: &str, method: &Method, path: &str, answer: &Answer) {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return;
    }
    let detail = answer
        .body
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_string();
    record(
        store,
        who,
        format!("{method} {path}"),
        answer.status.as_u16(),
        detail,
    );
}
