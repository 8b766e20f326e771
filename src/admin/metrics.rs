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
    tls_policy(&mut out, &s["delivery"]["tls_policy"]);
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
    metric(
        &mut out,
        "outguard_auth_accounts_under_attack",
        "gauge",
        "Accounts refused to unknown addresses now after too many failed SMTP logins.",
        n(&s["auth_accounts_under_attack"]),
    );
    metric(
        &mut out,
        "outguard_auth_account_blocks_total",
        "counter",
        "Accounts blocked for too many failed SMTP logins since start.",
        n(&s["auth_account_blocks"]),
    );
    metric(
        &mut out,
        "outguard_admin_login_blocked",
        "gauge",
        "1 while admin logins are refused to unknown addresses after too many failures.",
        n(&s["admin_login_blocked"]),
    );
    let fleet = &s["fleet"];
    if fleet.is_object() {
        metric(
            &mut out,
            "outguard_fleet_degraded",
            "gauge",
            "1 while the fleet's shared store is unreachable (local limits at the degraded fraction).",
            u64::from(fleet["degraded"].as_bool().unwrap_or(true)),
        );
        metric(
            &mut out,
            "outguard_fleet_refused_degraded_total",
            "counter",
            "Messages refused by the reduced limits of degraded mode since start.",
            n(&fleet["refused_degraded"]),
        );
        metric(
            &mut out,
            "outguard_fleet_changes_applied_total",
            "counter",
            "User and settings changes from other boxes applied since start.",
            n(&fleet["changes_applied"]),
        );
    }
    out
}

/// MTA-STS/DANE sessions to MX hosts by policy type and result, as
/// TLS-RPT (RFC 8460) counts them: "success" or a failure result type.
fn tls_policy(out: &mut String, v: &Value) {
    let name = "outguard_delivery_tls_policy_total";
    let _ = writeln!(
        out,
        "# HELP {name} MX sessions under an MTA-STS (sts) or DANE (tlsa) policy since start, by result."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (kind, results) in v.as_object().into_iter().flatten() {
        for (result, n) in results.as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "{name}{{policy=\"{kind}\",result=\"{result}\"}} {}",
                n.as_u64().unwrap_or(0)
            );
        }
    }
}

pub fn render(admin: &Admin) -> Resp {
    match summary(&admin.ctl) {
        Ok(mut s) => {
            s["admin_login_blocked"] = admin.throttle.account_stats().0.into();
            let mut out = text(&s);
            if let Some(c) = crate::appliance::clock::state() {
                metric(
                    &mut out,
                    "outguard_clock_synchronised",
                    "gauge",
                    "1 if the kernel's clock is synchronised by NTP, else 0.",
                    u64::from(c.synchronised),
                );
            }
            response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out.into(),
            )
        }
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
            "delivery": {"tls_policy": {"sts": {"success": 2, "certificate-expired": 1}}},
        });
        let t = super::text(&s);
        assert!(t.contains(
            "# TYPE outguard_smtp_sessions_total counter\noutguard_smtp_sessions_total 3\n"
        ));
        assert!(t.contains("outguard_queue_messages{state=\"queued\"} 2\n"));
        assert!(t.contains("outguard_locked_users 1\n"));
        assert!(t.contains(
            "outguard_delivery_tls_policy_total{policy=\"sts\",result=\"certificate-expired\"} 1\n"
        ));
        // A box alone has no fleet metrics.
        assert!(!t.contains("outguard_fleet"));
    }

    #[test]
    fn fleet_degraded() {
        let s = serde_json::json!({
            "fleet": {"degraded": true, "refused_degraded": 4, "changes_applied": 2},
        });
        let t = super::text(&s);
        assert!(t.contains("# TYPE outguard_fleet_degraded gauge\noutguard_fleet_degraded 1\n"));
        assert!(t.contains("outguard_fleet_refused_degraded_total 4\n"));
        let up = serde_json::json!({"fleet": {"degraded": false}});
        assert!(super::text(&up).contains("outguard_fleet_degraded 0\n"));
    }
}
