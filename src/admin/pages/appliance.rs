//! The appliance page: the clock's synchronisation, the NTP servers and
//! the factory reset (confirmed by typing the hostname).

use hyper::{Method, StatusCode};
use maud::html;
use serde_json::{Value, json};

use super::{Ctx, error_text, ok};
use crate::admin::html::csrf_field;
use crate::admin::server::Resp;

pub fn page(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/appliance");
    if !ok(&a) {
        return c.failed("Appliance", "/appliance", &a, "/dashboard");
    }
    let s = &a.body;
    let clock = match s["clock"]["synchronised"].as_bool() {
        Some(true) => html! { span #clock .ok { "synchronised" } },
        Some(false) => html! {
            span #clock .bad { "NOT synchronised" }
            ": set NTP servers below (or in provisioning); mail dates and limits windows follow this clock"
        },
        None => html! { span #clock { "unknown" } },
    };
    let servers: Vec<&str> = s["ntp_servers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let host = s["hostname"].as_str().unwrap_or("");
    let body = html! {
        p { "Clock: " (clock) "." }
        @if s["factory_reset_pending"].as_bool() == Some(true) {
            p.bad #reset-pending { "A factory reset is under way." }
        }
        form method="post" action="/appliance/ntp" {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "NTP servers" }
                label {
                    "Host names or addresses, separated by spaces or commas (at most 8)"
                    input type="text" name="servers" #ntp-servers value=(servers.join(" "));
                }
                p.hint { "Empty: the servers given at provisioning apply (none: no NTP traffic)." }
            }
            p.actions { button type="submit" { "Save NTP servers" } }
        }
        form method="post" action="/appliance/factory-reset" {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "Factory reset" }
                p { "Deletes every user, queued message, key, certificate and setting, then reboots into an unprovisioned appliance. This cannot be undone." }
                label {
                    "Type the hostname " code { (host) } " to confirm"
                    input type="text" name="confirm" #reset-confirm autocomplete="off" required;
                }
            }
            p.actions { button type="submit" .danger { "Factory reset" } }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "Appliance", "/appliance", error, body)
}

pub fn set_ntp(c: &Ctx) -> Resp {
    let text = c.form.and_then(|f| f.get("servers")).unwrap_or("");
    let servers: Vec<&str> = text
        .split(|ch: char| ch == ',' || ch.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    let a = c.send(
        Method::PUT,
        "/v1/appliance/ntp",
        &json!({ "servers": servers }),
    );
    if !ok(&a) {
        return page(c, Some(&error_text(&a)));
    }
    c.done("NTP servers saved.", "/appliance")
}

pub fn factory_reset(c: &Ctx) -> Resp {
    let confirm = c.form.and_then(|f| f.get("confirm")).unwrap_or("");
    let a = c.send(
        Method::POST,
        "/v1/appliance/factory-reset",
        &json!({ "confirm": confirm }),
    );
    if !ok(&a) {
        return page(c, Some(&error_text(&a)));
    }
    c.done(
        "Factory reset requested: the appliance wipes its data and reboots.",
        "/appliance",
    )
}
