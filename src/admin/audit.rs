//! Recording admin actions: every state change on either face, and
//! logins and logouts, with who did it and what came of it.

use hyper::Method;

use crate::control::Answer;
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
