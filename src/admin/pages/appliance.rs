//! The appliance page: the clock's synchronisation, the NTP servers and
//! the factory reset (confirmed by typing the hostname).

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Ctx, error_text, ok};
use crate::admin::html::{csrf_field, esc};
use crate::admin::server::Resp;

pub fn page(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/appliance");
    if !ok(&a) {
        return c.failed("Appliance", "/appliance", &a, "/dashboard");
    }
    let s = &a.body;
    let clock = match s["clock"]["synchronised"].as_bool() {
        Some(true) => "<span id=\"clock\" class=\"ok\">synchronised</span>".to_string(),
        Some(false) => "<span id=\"clock\" class=\"bad\">NOT synchronised</span>: set NTP servers below (or in provisioning); mail dates and limits windows follow this clock".to_string(),
        None => "<span id=\"clock\">unknown</span>".to_string(),
    };
    let servers: Vec<&str> = s["ntp_servers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let host = s["hostname"].as_str().unwrap_or("");
    let pending = if s["factory_reset_pending"].as_bool() == Some(true) {
        "<p class=\"bad\" id=\"reset-pending\">A factory reset is under way.</p>"
    } else {
        ""
    };
    let body = format!(
        r#"<p>Clock: {clock}.</p>{pending}
<form method="post" action="/appliance/ntp">{}<fieldset><legend>NTP servers</legend>
<label>Host names or addresses, separated by spaces or commas (at most 8)<input type="text" name="servers" id="ntp-servers" value="{}"></label>
<p class="hint">Empty: the servers given at provisioning apply (none: no NTP traffic).</p></fieldset>
<p class="actions"><button type="submit">Save NTP servers</button></p></form>
<form method="post" action="/appliance/factory-reset">{}<fieldset><legend>Factory reset</legend>
<p>Deletes every user, queued message, key, certificate and setting, then reboots into an unprovisioned appliance. This cannot be undone.</p>
<label>Type the hostname <code>{}</code> to confirm<input type="text" name="confirm" id="reset-confirm" autocomplete="off" required></label></fieldset>
<p class="actions"><button type="submit" class="danger">Factory reset</button></p></form>"#,
        csrf_field(c.csrf()),
        esc(&servers.join(" ")),
        csrf_field(c.csrf()),
        esc(host),
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "Appliance", "/appliance", error, &body)
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
