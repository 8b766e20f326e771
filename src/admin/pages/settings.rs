//! The system settings page: a form built from the settings' JSON (so
//! settings added by other parts of the daemon appear without a page
//! change), the patch built back from it, and the admin password.

use hyper::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::{Ctx, error_text, ok};
use crate::admin::html::csrf_field;
use crate::admin::server::Resp;
use crate::users::spec::{self, Kind, SettingSpec};

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
fn settings_fields(prefix: &str, v: &Map<String, Value>) -> Markup {
    let path_of = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let nested: Vec<(String, &Map<String, Value>)> = v
        .iter()
        .filter_map(|(k, val)| val.as_object().map(|o| (path_of(k), o)))
        .collect();
    html! {
        div.grid {
            @for (k, val) in v {
                @let path = path_of(k);
                @let spec = user_setting(&path);
                @let label = spec.map_or_else(|| label(k), |s| s.label.to_string());
                @let (min, max) = match spec.map(|s| s.kind) {
                    Some(Kind::Number(r)) => (r.min, Some(r.max)),
                    _ => (0, None),
                };
                @match val {
                    Value::Object(_) => {}
                    Value::Bool(b) => {
                        label {
                            input type="hidden" name=(path) value="false";
                            input type="checkbox" name=(path) value="true" checked[*b];
                            " " (label)
                        }
                    }
                    Value::Number(n) => {
                        label {
                            (label)
                            // Fractional settings (scores) take any step.
                            input type="number" min=(min) max=[max] step=[n.is_f64().then_some("any")]
                                name=(path) value=(n);
                        }
                    }
                    Value::String(s) => {
                        @if let Some(opts) = choices(&path) {
                            label {
                                (label)
                                select name=(path) {
                                    @for o in opts { option selected[o == s] { (o) } }
                                }
                            }
                        } @else {
                            label { (label) input type="text" name=(path) value=(s); }
                        }
                    }
                    other => {
                        // Lists and unset values: edited as JSON text.
                        label {
                            (label) " (JSON)"
                            input type="text" name=(path) value=(other.to_string()) data-json="1";
                        }
                    }
                }
            }
        }
        @for (path, o) in &nested {
            h2 {
                @if path == "defaults" {
                    "Defaults of the user settings"
                } @else if path == "response" {
                    "Response to caught and unusual mail (hold or lock)"
                } @else {
                    (label(path))
                }
            }
            (settings_fields(path, o))
        }
    }
}

pub fn settings(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/settings");
    if !ok(&a) {
        return c.failed("Settings", "/settings", &a, "/dashboard");
    }
    let empty = Map::new();
    let fields = settings_fields("", a.body.as_object().unwrap_or(&empty));
    let body = html! {
        form method="post" action="/settings" #settings-form {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "System settings" }
                (fields)
                p.hint { "\"defaults\" are the values of user settings that a user leaves unset. Limits of 0 mean unlimited." }
            }
            p.actions { button type="submit" #save { "Save settings" } }
        }
        form method="post" action="/settings/password" .toolbar {
            (csrf_field(c.csrf()))
            label {
                "New admin password (at least 8 characters)"
                input type="password" name="password" autocomplete="new-password" required;
            }
            " "
            button type="submit" .secondary { "Change admin password" }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "Settings", "/settings", error, body)
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
