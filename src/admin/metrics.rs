//! Prometheus text exposition (format 0.0.4) of the counters that matter:
//! sessions, auth failures, messages, the queue and locked users.

use std::fmt::Write as _;

use hyper::StatusCode;
use serde_json::Value;

use super::Admin;
use super::server::{Resp, json, response};
use crate::control::ext::summary;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

pub fn text(s: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let start = &s["since_start"];
    let mut out = String::new();
    let counters = [
        (
            "outguard_smtp_sessions_total",
            "sessions",
            "SMTP sessions admitted since start.",
        ),
        (
            "outguard_smtp_sessions_refused_total",
            "sessions_refused",
            "SMTP sessions refused (too many) since start.",
        ),
        (
            "outguard_smtp_auth_failures_total",
            "auth_failures",
            "Failed SMTP AUTH attempts since start.",
        ),
        (
            "outguard_messages_accepted_total",
            "messages_accepted",
            "Messages accepted into the queue since start.",
        ),
        (
            "outguard_messages_refused_total",
            "messages_refused",
            "Messages refused (limits, locks) since start.",
        ),
    ];
    for (name, key, help) in counters {
        metric(&mut out, name, "counter", help, n(&start[key]));
    }
    metric(
        &mut out,
        "outguard_messages_accepted_today",
        "gauge",
        "Messages accepted today (appliance timezone), from the users' counters.",
        n(&s["messages_accepted_today"]),
    );
    metric(
        &mut out,
        "outguard_queue_size",
        "gauge",
        "Queued messages waiting for delivery.",
        n(&s["queue_size"]),
    );
    metric(
        &mut out,
        "outguard_deliveries_in_queue",
        "gauge",
        "Recipients delivered among the messages still in the queue.",
        n(&s["recipients_delivered_in_queue"]),
    );
    let _ = writeln!(
        out,
        "# HELP outguard_queue_messages Messages in the queue by state."
    );
    let _ = writeln!(out, "# TYPE outguard_queue_messages gauge");
    if let Some(states) = s["queue_by_state"].as_object() {
        for (state, v) in states {
            let _ = writeln!(out, "outguard_queue_messages{{state=\"{state}\"}} {}", n(v));
        }
    }
    metric(
        &mut out,
        "outguard_users",
        "gauge",
        "Outgoing users.",
        n(&s["users"]),
    );
    metric(
        &mut out,
        "outguard_locked_users",
        "gauge",
        "Outgoing users locked now.",
        n(&s["locked_users"]),
    );
    out
}

pub fn render(admin: &Admin) -> Resp {
    match summary(&admin.ctl) {
        Ok(s) => response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            text(&s).into(),
        ),
        Err(a) => json(a),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_format() {
        let s = serde_json::json!({
            "since_start": {"sessions": 3, "auth_failures": 1},
            "queue_size": 2,
            "queue_by_state": {"queued": 2},
            "locked_users": 1,
        });
        let t = super::text(&s);
        assert!(t.contains(
            "# TYPE outguard_smtp_sessions_total counter\noutguard_smtp_sessions_total 3\n"
        ));
        assert!(t.contains("outguard_queue_messages{state=\"queued\"} 2\n"));
        assert!(t.contains("outguard_locked_users 1\n"));
    }
}
