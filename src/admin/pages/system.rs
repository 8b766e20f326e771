//! Dashboard, queue, quarantine, system settings, certificate, audit log
//! and log search.

use std::fmt::Write as _;

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Ctx, cell, error_text, items, ok, when};
use crate::admin::html::{button, csrf_field, esc, seg};
use crate::admin::server::{self, Resp};
use crate::users::spec::{self, Kind, SettingSpec};

fn card(n: &Value, label: &str, id: &str) -> String {
    format!(
        "<div class=\"card\" id=\"{id}\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        esc(&cell(n)),
        esc(label)
    )
}

pub fn dashboard(c: &Ctx) -> Resp {
    let a = c.get("/v1/dashboard");
    if !ok(&a) {
        return c.failed("Dashboard", "/dashboard", &a, "/dashboard");
    }
    let s = &a.body;
    let st = &s["since_start"];
    let today = [
        card(
            &s["messages_accepted_today"],
            "messages accepted today",
            "accepted-today",
        ),
        card(
            &s["messages_refused_today"],
            "messages refused today",
            "refused-today",
        ),
        card(
            &s["messages_caught_today"],
            "spam and malware caught today",
            "caught-today",
        ),
        card(
            &s["messages_quarantined_today"],
            "caught today, still in quarantine",
            "quarantined-today",
        ),
        card(&s["locked_users"], "locked users", "locked-users"),
        card(&s["queue_size"], "messages in the queue", "queue-size"),
        card(
            &s["quarantine_size"],
            "messages in quarantine",
            "quarantine-size",
        ),
    ];
    let since = [
        card(&st["messages_accepted"], "messages accepted", "accepted"),
        card(
            &st["messages_refused"],
            "messages refused (limits, locks, policy)",
            "refused",
        ),
        card(&st["messages_caught"], "spam and malware caught", "caught"),
        card(
            &s["delivery"]["delivered"],
            "recipients delivered",
            "delivered",
        ),
        card(&s["delivery"]["bounced"], "recipients bounced", "bounced"),
        card(&st["sessions"], "SMTP sessions", "sessions"),
        card(
            &st["auth_failures"],
            "authentication failures",
            "auth-failures",
        ),
        card(
            &st["sessions_refused"],
            "sessions refused",
            "sessions-refused",
        ),
    ];
    let directory = [
        card(&s["users"], "outgoing users", "users"),
        card(
            &s["incoming_domains"],
            "protected domains",
            "incoming-domains",
        ),
        card(&s["incoming_users"], "incoming users", "incoming-users"),
    ];
    let system = c.get("/v1/system");
    let running = if ok(&system) {
        format!(
            "<p class=\"muted\" id=\"running\">{} (<a href=\"/update\">update</a>)</p>",
            esc(&super::update::summary(&system.body))
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"{running}<p class="muted">Today is {} in the appliance's timezone.</p>{}<div class="cards">{}</div>
<h2>Since the daemon started</h2><div class="cards">{}</div>
<h2>Directory</h2><div class="cards">{}</div>"#,
        esc(&cell(&s["today"])),
        fleet_line(&s["fleet"]),
        today.concat(),
        since.concat(),
        directory.concat()
    );
    c.render("Dashboard", "/dashboard", &body)
}

/// The fleet's state, for a box with `[store] shared`.
fn fleet_line(f: &Value) -> String {
    if !f.is_object() {
        return String::new();
    }
    let store = esc(f["store"].as_str().unwrap_or_default());
    let id = esc(f["box_id"].as_str().unwrap_or_default());
    if f["degraded"].as_bool().unwrap_or(true) {
        let pct = f["degraded_fraction"].as_f64().unwrap_or(0.0) * 100.0;
        format!(
            r#"<p class="flash error" id="fleet">Fleet: DEGRADED: the shared store {store} is unreachable; this box (id {id}) enforces each limit at {pct:.0}% for what it accepts on its own until it is back.</p>"#
        )
    } else {
        format!(
            r#"<p class="muted" id="fleet">Fleet: shared store {store} reachable; users, locks, settings and limits are shared (this box: {id}).</p>"#
        )
    }
}

pub fn export(c: &Ctx) -> Resp {
    let a = c.get("/v1/users/export");
    if !ok(&a) {
        return c.failed("Export", "/users", &a, "/users");
    }
    let mut r = server::response(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        cell(&a.body["csv"]).into(),
    );
    r.headers_mut().insert(
        hyper::header::CONTENT_DISPOSITION,
        hyper::header::HeaderValue::from_static("attachment; filename=\"outgoing-users.csv\""),
    );
    r
}

pub fn queue(c: &Ctx) -> Resp {
    let a = c.get_page("/v1/queue");
    if !ok(&a) {
        return c.failed("Queue", "/queue", &a, "/dashboard");
    }
    let mut rows = String::new();
    for e in items(&a) {
        let id = cell(&e["id"]);
        let rcpts: Vec<String> = e["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{} ({})", cell(&r["address"]), cell(&r["state"])))
            .collect();
        let _ = write!(
            rows,
            "<tr data-id=\"{}\"><td><a href=\"/queue/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"nowrap\">{}</td></tr>",
            esc(&id),
            seg(&id),
            esc(&id),
            esc(&when(&e["received"])),
            who_sent(e),
            esc(&rcpts.join(", ")),
            esc(&cell(&e["size"])),
            esc(&cell(&e["state"])),
            esc(&when(&e["next_attempt"])),
            queue_buttons(c, &id, e["state"] == "queued"),
        );
    }
    let body = format!(
        r#"<p class="muted">Retry tries delivery now; Bounce gives up and returns the message to its sender; Delete drops it silently.</p>
<table id="queue"><thead><tr><th>Id</th><th>Received</th><th>User</th><th>Recipients</th><th class="num">Size</th><th>State</th><th>Next attempt</th><th></th></tr></thead><tbody>{rows}</tbody></table>{}"#,
        c.pager("/queue", &a)
    );
    c.render("Queue", "/queue", &body)
}

fn queue_buttons(c: &Ctx, id: &str, waiting: bool) -> String {
    let href = format!("/queue/{}", seg(id));
    let mut out = String::new();
    if waiting {
        out.push_str(&button(
            &format!("{href}/retry"),
            "Retry",
            c.csrf(),
            "small",
        ));
        out.push(' ');
        out.push_str(&button(
            &format!("{href}/bounce"),
            "Bounce",
            c.csrf(),
            "secondary small",
        ));
        out.push(' ');
    }
    out.push_str(&button(
        &format!("{href}/delete"),
        "Delete",
        c.csrf(),
        "danger small",
    ));
    out
}

pub fn queue_action(c: &Ctx, id: &str, action: &str) -> Resp {
    let uri = format!("/v1/queue/{}", seg(id));
    let a = match action {
        "delete" => c.call(Method::DELETE, &uri, b""),
        _ => c.call(Method::POST, &format!("{uri}/{action}"), b""),
    };
    if !ok(&a) {
        return c.failed("Queue", "/queue", &a, "/queue");
    }
    let done = match action {
        "retry" => "set for delivery now",
        "bounce" => "returned to its sender",
        _ => "deleted",
    };
    c.done(format!("Message {id} {done}."), "/queue")
}

/// A JSON object as a two-column table (for entries whose shape belongs
/// to another part of the daemon).
fn object_table(v: &Value) -> String {
    let mut rows = String::new();
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            if k == "headers" {
                continue;
            }
            let text = match v {
                Value::Array(_) | Value::Object(_) => {
                    serde_json::to_string_pretty(v).unwrap_or_default()
                }
                other => cell(other),
            };
            let _ = write!(
                rows,
                "<tr><th>{}</th><td><pre>{}</pre></td></tr>",
                esc(k),
                esc(&text)
            );
        }
    }
    format!("<table>{rows}</table>")
}

pub fn queue_entry(c: &Ctx, id: &str) -> Resp {
    let a = c.get(&format!("/v1/queue/{}", seg(id)));
    if !ok(&a) {
        return c.failed("Queued message", "/queue", &a, "/queue");
    }
    let body = format!(
        "<p>{}</p>{}<h2>Headers</h2><pre>{}</pre><p><a href=\"/queue\">Back to the queue</a></p>",
        queue_buttons(c, id, a.body["state"] == "queued"),
        object_table(&a.body),
        esc(&cell(&a.body["headers"]))
    );
    c.render(&format!("Queued message {id}"), "/queue", &body)
}

/// The user, and the envelope sender when it is another address.
fn who_sent(e: &Value) -> String {
    let (user, sender) = (cell(&e["user"]), cell(&e["sender"]));
    if sender == user {
        esc(&user)
    } else {
        format!(
            "{}<br><span class=\"muted\">from {}</span>",
            esc(&user),
            esc(if sender.is_empty() { "<>" } else { &sender })
        )
    }
}

fn recipients(v: &Value) -> String {
    match v {
        Value::Array(r) => r.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => cell(other),
    }
}

/// Lists what `GET /v1/quarantine` answers (a daemon without the
/// quarantine answers 404, and the page says so).
pub fn quarantine(c: &Ctx) -> Resp {
    let a = c.get_page("/v1/quarantine");
    if a.status == StatusCode::NOT_FOUND {
        return c.render(
            "Quarantine",
            "/quarantine",
            "<p class=\"muted\" id=\"no-quarantine\">The quarantine is not available in this build of the daemon.</p>",
        );
    }
    if !ok(&a) {
        return c.failed("Quarantine", "/quarantine", &a, "/dashboard");
    }
    let mut rows = String::new();
    for e in items(&a) {
        let id = cell(&e["id"]);
        let reasons: String = e["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("<li>{}</li>", esc(&cell(r))))
            .collect();
        let _ = write!(
            rows,
            "<tr data-id=\"{}\"><td><a href=\"/quarantine/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><ul class=\"reasons\">{}</ul></td><td class=\"nowrap\">{} {}</td></tr>",
            esc(&id),
            seg(&id),
            esc(&id),
            esc(&when(&e["received"])),
            who_sent(e),
            esc(&recipients(&e["recipients"])),
            esc(&match e["fate"].as_str() {
                Some(f) if !f.is_empty() => format!("{} ({f})", cell(&e["class"])),
                _ => cell(&e["class"]),
            }),
            reasons,
            button(
                &format!("/quarantine/{}/release", seg(&id)),
                "Release",
                c.csrf(),
                "small"
            ),
            button(
                &format!("/quarantine/{}/delete", seg(&id)),
                "Delete",
                c.csrf(),
                "danger small"
            ),
        );
    }
    let body = format!(
        "<p class=\"muted\">Spam, malware and mail held for unusual sending (fate: hold, or lock when it locked the sender); releasing a message queues it for delivery.</p><table id=\"quarantine\"><thead><tr><th>Id</th><th>Received</th><th>User</th><th>Recipients</th><th>Class (fate)</th><th>Reasons</th><th></th></tr></thead><tbody>{rows}</tbody></table>{}",
        c.pager("/quarantine", &a)
    );
    c.render("Quarantine", "/quarantine", &body)
}

pub fn quarantine_entry(c: &Ctx, id: &str) -> Resp {
    let a = c.get(&format!("/v1/quarantine/{}", seg(id)));
    if !ok(&a) {
        return c.failed("Quarantined message", "/quarantine", &a, "/quarantine");
    }
    let href = format!("/quarantine/{}", seg(id));
    let body = format!(
        "<p>{} {}</p>{}<h2>Headers</h2><pre>{}</pre>",
        button(&format!("{href}/release"), "Release", c.csrf(), ""),
        button(&format!("{href}/delete"), "Delete", c.csrf(), "danger"),
        object_table(&a.body),
        esc(&cell(&a.body["headers"]))
    );
    c.render(&format!("Quarantined message {id}"), "/quarantine", &body)
}

pub fn quarantine_action(c: &Ctx, id: &str, release: bool) -> Resp {
    let a = if release {
        c.call(
            Method::POST,
            &format!("/v1/quarantine/{}/release", seg(id)),
            b"",
        )
    } else {
        c.call(Method::DELETE, &format!("/v1/quarantine/{}", seg(id)), b"")
    };
    if !ok(&a) {
        return c.failed("Quarantine", "/quarantine", &a, "/quarantine");
    }
    let what = if release { "released" } else { "deleted" };
    c.done(format!("Message {id} {what}."), "/quarantine")
}

/// The per-user setting whose system default this is (`defaults.NAME`).
fn user_setting(path: &str) -> Option<&'static SettingSpec> {
    path.strip_prefix("defaults.").and_then(spec::find)
}

/// Choices of the settings that are enumerations; other strings are text.
fn choices(path: &str) -> Option<Vec<&'static str>> {
    if let Some(Kind::Choice(c)) = user_setting(path).map(|s| s.kind) {
        return Some(c.iter().map(|(value, _)| *value).collect());
    }
    match path {
        "sender_check" | "header_from_check" => Some(vec!["exact", "domain", "off"]),
        _ => None,
    }
}

/// A readable label for a setting's key.
fn label(key: &str) -> String {
    match key {
        "ip_auth" => "IP authorisation (IP address users need no AUTH)".into(),
        "sender_check" => "Envelope sender must match the user".into(),
        "header_from_check" => "Header From and Sender must match the user".into(),
        "timezone" => "Timezone of the limit windows (IANA name)".into(),
        _ => {
            let text = key.replace('_', " ");
            let mut chars = text.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// The settings form, built from the settings' JSON so that settings
/// added by other parts of the daemon appear without a page change.
fn settings_fields(out: &mut String, prefix: &str, v: &Map<String, Value>) {
    let mut nested = Vec::new();
    out.push_str("<div class=\"grid\">");
    for (k, val) in v {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let label = esc(&user_setting(&path).map_or_else(|| label(k), |s| s.label.to_string()));
        let name = esc(&path);
        let (min, max) = match user_setting(&path).map(|s| s.kind) {
            Some(Kind::Number(r)) => (r.min, format!(" max=\"{}\"", r.max)),
            _ => (0, String::new()),
        };
        match val {
            Value::Object(o) => nested.push((path, o)),
            Value::Bool(b) => {
                let _ = write!(
                    out,
                    "<label><input type=\"hidden\" name=\"{name}\" value=\"false\"><input type=\"checkbox\" name=\"{name}\" value=\"true\"{}> {label}</label>",
                    if *b { " checked" } else { "" }
                );
            }
            Value::Number(n) => {
                // Fractional settings (scores) take any step.
                let step = if n.is_f64() { " step=\"any\"" } else { "" };
                let _ = write!(
                    out,
                    "<label>{label}<input type=\"number\" min=\"{min}\"{max}{step} name=\"{name}\" value=\"{n}\"></label>"
                );
            }
            Value::String(s) => match choices(&path) {
                Some(opts) => {
                    let o: String = opts
                        .iter()
                        .map(|o| {
                            format!(
                                "<option{}>{o}</option>",
                                if o == s { " selected" } else { "" }
                            )
                        })
                        .collect();
                    let _ = write!(
                        out,
                        "<label>{label}<select name=\"{name}\">{o}</select></label>"
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        "<label>{label}<input type=\"text\" name=\"{name}\" value=\"{}\"></label>",
                        esc(s)
                    );
                }
            },
            other => {
                // Lists and unset values: edited as JSON text.
                let _ = write!(
                    out,
                    "<label>{label} (JSON)<input type=\"text\" name=\"{name}\" value=\"{}\" data-json=\"1\"></label>",
                    esc(&other.to_string())
                );
            }
        }
    }
    out.push_str("</div>");
    for (path, o) in nested {
        let title = if path == "defaults" {
            "Defaults of the user settings".to_string()
        } else if path == "response" {
            "Response to caught and unusual mail (hold or lock)".to_string()
        } else {
            label(&path)
        };
        let _ = write!(out, "<h2>{}</h2>", esc(&title));
        settings_fields(out, &path, o);
    }
}

pub fn settings(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/settings");
    if !ok(&a) {
        return c.failed("Settings", "/settings", &a, "/dashboard");
    }
    let mut fields = String::new();
    if let Some(o) = a.body.as_object() {
        settings_fields(&mut fields, "", o);
    }
    let body = format!(
        r#"<form method="post" action="/settings" id="settings-form">{}<fieldset><legend>System settings</legend>{fields}
<p class="hint">"defaults" are the values of user settings that a user leaves unset. Limits of 0 mean unlimited.</p></fieldset>
<p class="actions"><button type="submit" id="save">Save settings</button></p></form>
<form method="post" action="/settings/password" class="toolbar">{}<label>New admin password (at least 8 characters)<input type="password" name="password" autocomplete="new-password" required></label>
<button type="submit" class="secondary">Change admin password</button></form>"#,
        csrf_field(c.csrf()),
        csrf_field(c.csrf())
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "Settings", "/settings", error, &body)
}

/// Builds the settings patch from the form, typed like the current value.
fn patch_from(c: &Ctx, prefix: &str, current: &Map<String, Value>) -> Result<Value, String> {
    let form = c.form.ok_or("no form")?;
    let mut out = Map::new();
    for (k, cur) in current {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        // A checkbox posts its hidden "false" and, when ticked, "true".
        let vals: Vec<&str> = form
            .0
            .iter()
            .filter(|(n, _)| *n == path)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect();
        let v = match cur {
            Value::Object(o) => patch_from(c, &path, o)?,
            _ if vals.is_empty() => continue,
            Value::Bool(_) => json!(vals.contains(&"true")),
            Value::Number(n) if n.is_f64() => {
                let t = vals[0].trim();
                let f: f64 = t
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                    .ok_or_else(|| format!("{path} must be a number, not '{t}'"))?;
                json!(f)
            }
            Value::Number(_) => {
                let t = vals[0].trim();
                let n: i64 = t
                    .parse()
                    .map_err(|_| format!("{path} must be a whole number, not '{t}'"))?;
                if n < 0 {
                    return Err(format!("{path} must not be negative"));
                }
                json!(n)
            }
            Value::String(_) => json!(vals[0].trim()),
            _ => {
                serde_json::from_str(vals[0]).map_err(|e| format!("{path}: not valid JSON: {e}"))?
            }
        };
        out.insert(k.clone(), v);
    }
    Ok(Value::Object(out))
}

pub fn save_settings(c: &Ctx) -> Resp {
    let current = serde_json::to_value(c.admin.ctl.app.settings.get()).unwrap_or(Value::Null);
    let patch = match current.as_object().map(|o| patch_from(c, "", o)) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return settings(c, Some(&e)),
        None => return settings(c, Some("settings are not an object")),
    };
    let a = c.send(Method::PATCH, "/v1/settings", &patch);
    if !ok(&a) {
        return settings(c, Some(&error_text(&a)));
    }
    c.done("Settings saved.", "/settings")
}

pub fn admin_password(c: &Ctx) -> Resp {
    let pw = c.form.and_then(|f| f.get("password")).unwrap_or("");
    let a = c.send(
        Method::PUT,
        "/v1/admin/password",
        &json!({ "password": pw }),
    );
    if !ok(&a) {
        return settings(c, Some(&error_text(&a)));
    }
    c.done("Admin password changed.", "/settings")
}

pub fn tls(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/tls/certificate");
    if !ok(&a) {
        return c.failed("Certificate", "/tls", &a, "/dashboard");
    }
    let body = format!(
        r#"<p>SHA-256 fingerprint: <code id="fingerprint">{}</code> ({} certificate(s) in the chain). It is served on the SMTP listeners and on this page.</p>
<form method="post" action="/tls" enctype="multipart/form-data">{}<fieldset><legend>Upload a new certificate</legend><div class="grid">
<label>Certificate chain (PEM)<input type="file" name="certificate" accept=".pem,.crt"></label>
<label>Private key (PEM)<input type="file" name="private_key" accept=".pem,.key"></label></div>
<p class="hint">Both are checked (the key must match the certificate) before anything is replaced; new connections get the new certificate at once.</p></fieldset>
<p class="actions"><button type="submit">Upload</button></p></form><h2>Certificate in use</h2><pre>{}</pre>"#,
        esc(&cell(&a.body["sha256_fingerprint"])),
        esc(&cell(&a.body["chain_length"])),
        csrf_field(c.csrf()),
        esc(&cell(&a.body["certificate"]))
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "TLS certificate", "/tls", error, &body)
}

pub fn upload_tls(c: &Ctx) -> Resp {
    let get = |k: &str| {
        c.form
            .and_then(|f| f.bytes(k))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let req = json!({ "certificate": get("certificate"), "private_key": get("private_key") });
    let a = c.send(Method::PUT, "/v1/tls/certificate", &req);
    if !ok(&a) {
        return tls(c, Some(&error_text(&a)));
    }
    c.done("Certificate replaced.", "/tls")
}

pub fn audit(c: &Ctx) -> Resp {
    let q = c.query();
    let filter = q.text("filter").unwrap_or("");
    let query = if filter.is_empty() {
        String::new()
    } else {
        format!("?filter={}", seg(filter))
    };
    let a = c.get_page(&format!("/v1/audit{query}"));
    if !ok(&a) {
        return c.failed("Audit log", "/audit", &a, "/dashboard");
    }
    let mut rows = String::new();
    for e in items(&a) {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&when(&e["at"])),
            esc(&cell(&e["who"])),
            esc(&cell(&e["action"])),
            esc(&cell(&e["status"])),
            esc(&cell(&e["detail"]))
        );
    }
    let body = format!(
        r#"<form method="get" action="/audit" class="toolbar"><label>Contains<input type="search" name="filter" value="{}"></label><button type="submit" class="secondary">Search</button></form>
<table id="audit"><thead><tr><th>When</th><th>Who</th><th>What</th><th class="num">Result</th><th>Detail</th></tr></thead><tbody>{rows}</tbody></table>{}"#,
        esc(filter),
        c.pager(&format!("/audit{query}"), &a)
    );
    c.render("Audit log", "/audit", &body)
}

pub fn logs(c: &Ctx) -> Resp {
    let q = c.query();
    let text = q.text("q").unwrap_or("");
    let uri = format!("/v1/logs?limit=500&q={}", seg(text));
    let a = c.get(&uri);
    if !ok(&a) {
        return c.failed("Logs", "/logs", &a, "/dashboard");
    }
    let lines: Vec<String> = a.body.as_array().into_iter().flatten().map(cell).collect();
    let body = format!(
        r#"<form method="get" action="/logs" class="toolbar"><label>Contains<input type="search" name="q" value="{}"></label><button type="submit" class="secondary">Search</button></form>
<p class="muted">The newest {} matching line(s) of the recent log kept in memory.</p><pre id="log-lines">{}</pre>"#,
        esc(text),
        lines.len(),
        esc(&lines.join("\n"))
    );
    c.render("Logs", "/logs", &body)
}
