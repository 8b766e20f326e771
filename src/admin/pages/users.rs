//! Outgoing users: the list with filters and counters against limits,
//! the 'Add outgoing user' and edit dialogs with every setting of the
//! vendor document, lock, unlock and delete.

use std::collections::HashMap;
use std::fmt::Write as _;

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Ctx, cell, error_text, ok};
use crate::admin::html::{button, csrf_field, esc, seg};
use crate::admin::server::Resp;
use crate::users::spec::{Kind, USER_SETTINGS};

/// Field texts of a settings form, by setting name.
type Values = HashMap<String, String>;

fn values_of(settings: &Value) -> Values {
    USER_SETTINGS
        .iter()
        .map(|s| (s.name.to_string(), cell(&settings[s.name])))
        .collect()
}

fn values_of_form(c: &Ctx) -> Values {
    USER_SETTINGS
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                c.field(s.name).unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn shown_default(v: &Value) -> String {
    match v {
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        Value::Number(n) if n.as_u64() == Some(0) => "0, unlimited".into(),
        other => cell(other),
    }
}

fn option(value: &str, label: &str, current: &str) -> String {
    let sel = if value == current { " selected" } else { "" };
    format!(
        "<option value=\"{}\"{sel}>{}</option>",
        esc(value),
        esc(label)
    )
}

/// The 'Edit outgoing settings' part of the dialogs. Blank means the
/// system default, which is shown beside each field.
fn settings_fields(values: &Values, defaults: &Value) -> String {
    let mut out = String::from(
        "<fieldset><legend>Edit outgoing settings</legend>\
<p class=\"hint\">Leave a field blank to use the system default (shown in grey). \
A limit of 0 means unlimited. If quarantine is enabled, spam and malware are quarantined \
whatever the quarantine response: it only decides what the sending server is told.</p><div class=\"grid\">",
    );
    for s in USER_SETTINGS {
        let key = s.name;
        let current = values.get(key).map(String::as_str).unwrap_or("");
        let default = shown_default(&defaults[key]);
        let default_option = option("", &format!("Default ({default})"), current);
        let input = match s.kind {
            Kind::Number(r) => format!(
                "<input type=\"number\" min=\"{}\" max=\"{}\" step=\"1\" name=\"{key}\" id=\"{key}\" value=\"{}\" placeholder=\"default: {}\">",
                r.min,
                r.max,
                esc(current),
                esc(&default)
            ),
            Kind::Bool => format!(
                "<select name=\"{key}\" id=\"{key}\">{default_option}{}{}</select>",
                option("true", "On", current),
                option("false", "Off", current)
            ),
            Kind::Choice(choices) => {
                let options: String = choices
                    .iter()
                    .map(|(value, meaning)| option(value, meaning, current))
                    .collect();
                format!("<select name=\"{key}\" id=\"{key}\">{default_option}{options}</select>")
            }
        };
        let _ = write!(
            out,
            "<label for=\"{key}\" title=\"{}\">{}{input}</label>",
            esc(s.help),
            esc(s.label)
        );
    }
    out.push_str("</div></fieldset>");
    out
}

/// Reads the settings of a submitted dialog: the values set, the ones
/// left blank, and a message per field that is wrong.
fn read_settings(c: &Ctx) -> (Map<String, Value>, Vec<String>, Vec<String>) {
    let (mut set, mut blank, mut errors) = (Map::new(), Vec::new(), Vec::new());
    for s in USER_SETTINGS {
        let Some(text) = c.field(s.name) else {
            blank.push(s.name.to_string());
            continue;
        };
        // The form sends true/false for on/off; parse takes both.
        match s.parse(text, s.label) {
            Ok(v) => {
                set.insert(s.name.to_string(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    (set, blank, errors)
}

fn defaults(c: &Ctx) -> (Value, bool) {
    let s = c.admin.ctl.app.settings.get();
    let v = serde_json::to_value(&s).unwrap_or(Value::Null);
    (v["defaults"].clone(), s.ip_auth)
}

fn usage_cell(used: &Value, limit: &Value) -> String {
    let (u, l) = (used.as_u64().unwrap_or(0), limit.as_u64().unwrap_or(0));
    let limit = if l == 0 {
        "∞".to_string()
    } else {
        l.to_string()
    };
    let cls = if l > 0 && u >= l { "num over" } else { "num" };
    format!("<td class=\"{cls}\">{u} / {limit}</td>")
}

pub fn list(c: &Ctx) -> Resp {
    let q = c.query();
    let filter = q.text("filter").unwrap_or("");
    let status = q.text("status").unwrap_or("");
    let mut query = Vec::new();
    if !filter.is_empty() {
        query.push(format!("filter={}", seg(filter)));
    }
    if !status.is_empty() {
        query.push(format!("status={}", seg(status)));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let a = c.get_page(&format!("/v1/users{query}"));
    if !ok(&a) {
        return c.failed("Outgoing users", "/users", &a, "/users");
    }
    let mut rows = String::new();
    let mut shown = 0;
    for u in super::items(&a) {
        let locked = u["locked"] == true;
        shown += 1;
        let name = u["name"].as_str().unwrap_or("");
        let href = format!("/users/{}", seg(name));
        let (e, use_) = (&u["effective"], &u["usage"]);
        let badge = if locked {
            format!(
                "<span class=\"badge locked\">{}</span>",
                esc(u["status"].as_str().unwrap_or("locked"))
            )
        } else {
            "<span class=\"badge\">active</span>".into()
        };
        let nopw = if u["kind"] == "address" && u["has_password"] != true {
            " <span class=\"muted\">(no password: cannot log in)</span>"
        } else {
            ""
        };
        let mut actions = format!(
            "<a class=\"btn secondary small\" href=\"{}\">Edit</a> ",
            esc(&href)
        );
        if locked {
            actions.push_str(&button(
                &format!("{href}/unlock"),
                "Unlock",
                c.csrf(),
                "small",
            ));
        }
        actions.push(' ');
        actions.push_str(&button(
            &format!("{href}/delete"),
            "Delete",
            c.csrf(),
            "danger small",
        ));
        let _ = write!(
            rows,
            "<tr data-user=\"{}\"><td><a href=\"{}\">{}</a>{nopw}</td><td>{}</td><td>{badge}</td>{}{}{}{}<td>{actions}</td></tr>",
            esc(name),
            esc(&href),
            esc(name),
            esc(u["kind"].as_str().unwrap_or("")),
            usage_cell(&use_["day"], &e["limit_per_day"]),
            usage_cell(&use_["week"], &e["limit_per_week"]),
            usage_cell(&use_["month"], &e["limit_per_month"]),
            usage_cell(&use_["recipients_day"], &e["max_recipients_per_day"]),
        );
    }
    let statuses = [
        ("", "Any status"),
        ("active", "Active"),
        ("locked_until", "Locked until a time"),
        ("locked_until_admin", "Locked until admin unlocks"),
    ];
    let opts: String = statuses.iter().map(|(v, l)| option(v, l, status)).collect();
    let body = format!(
        r#"<div class="actions"><a class="btn" href="/users/new" id="add-user">Add</a>
<a class="btn secondary" href="/users/import" id="import-csv">Import from CSV file</a>
<a class="btn secondary" href="/users/import-incoming" id="import-incoming">Import from incoming users</a>
<a class="btn secondary" href="/users/export.csv">Export CSV</a></div>
<form method="get" action="/users" class="toolbar">
<label>Username contains<input type="search" name="filter" value="{}"></label>
<label>Status<select name="status">{opts}</select></label>
<button type="submit" class="secondary">Filter</button></form>
<table id="users"><thead><tr><th>User</th><th>Kind</th><th>Status</th><th class="num">Today</th><th class="num">This week</th><th class="num">This month</th><th class="num">Recipients today</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>{}
<p class="muted">{shown} user(s) shown, in name order. Counters are against the limits in force (∞: unlimited).</p>"#,
        esc(filter),
        c.pager(&format!("/users{query}"), &a)
    );
    c.render("Outgoing users", "/users", &body)
}

fn user_form(c: &Ctx, name: &str, domain: &str, values: &Values) -> String {
    let (defaults, ip_auth) = defaults(c);
    let ip_note = if ip_auth {
        ""
    } else {
        " <strong>IP authorisation is currently disabled in Settings.</strong>"
    };
    format!(
        r#"<form method="post" action="/users/new" id="user-form">{}
<fieldset><legend>User</legend><div class="grid">
<label for="name">Username<input type="text" name="name" id="name" value="{}" required placeholder="user@domain or IP address"></label>
<label for="password">Password<input type="password" name="password" id="password" autocomplete="new-password"></label>
<label for="domain">Domain (IP address users only)<input type="text" name="domain" id="domain" value="{}"></label>
</div><p class="hint">If the password is left blank, the username must be an IP address (or network):
connections from it count as authenticated without SMTP AUTH.{ip_note} Passwords have at least 8 characters.</p></fieldset>
{}
<p class="actions"><button type="submit" id="save">Save</button> <a class="btn secondary" href="/users">Cancel</a></p></form>"#,
        csrf_field(c.csrf()),
        esc(name),
        esc(domain),
        settings_fields(values, &defaults)
    )
}

pub fn new_form(c: &Ctx, error: Option<&str>) -> Resp {
    let (name, domain, values) = if error.is_some() {
        (
            c.field("name").unwrap_or(""),
            c.field("domain").unwrap_or(""),
            values_of_form(c),
        )
    } else {
        ("", "", Values::new())
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(
        status,
        "Add outgoing user",
        "/users",
        error,
        &user_form(c, name, domain, &values),
    )
}

pub fn add(c: &Ctx) -> Resp {
    let (set, _, errors) = read_settings(c);
    if !errors.is_empty() {
        return new_form(c, Some(&errors.join("; ")));
    }
    let mut req = json!({ "name": c.field("name").unwrap_or(""), "settings": set });
    if let Some(p) = c
        .form
        .and_then(|f| f.get("password"))
        .filter(|p| !p.is_empty())
    {
        req["password"] = json!(p);
    }
    if let Some(d) = c.field("domain") {
        req["domain"] = json!(d);
    }
    let a = c.send(Method::POST, "/v1/users", &req);
    if !ok(&a) {
        return new_form(c, Some(&error_text(&a)));
    }
    let name = a.body["name"].as_str().unwrap_or("");
    c.done(format!("User {name} added."), "/users")
}

pub fn show(c: &Ctx, name: &str, error: Option<&str>) -> Resp {
    let a = c.get(&format!("/v1/users/{}", seg(name)));
    if !ok(&a) {
        return c.failed("Outgoing user", "/users", &a, "/users");
    }
    let u = &a.body;
    let name = u["name"].as_str().unwrap_or(name);
    let href = format!("/users/{}", seg(name));
    let (defaults, _) = defaults(c);
    let values = if error.is_some() {
        values_of_form(c)
    } else {
        values_of(&u["settings"])
    };
    let password = if u["kind"] == "ip" {
        "<p class=\"hint\">An IP address user has no password: connections from it are authenticated by address.</p>".to_string()
    } else {
        let note = if u["has_password"] == true {
            "Leave blank to keep the current password."
        } else {
            "<strong>This user has no password yet and cannot authenticate until one is set.</strong>"
        };
        format!(
            "<label for=\"password\">New password<input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"new-password\"></label><p class=\"hint\">{note}</p>"
        )
    };
    let lock = if u["locked"] == true {
        format!(
            "<p>Status: <span class=\"badge locked\">{}</span> {}</p>",
            esc(u["status"].as_str().unwrap_or("")),
            button(&format!("{href}/unlock"), "Unlock", c.csrf(), "")
        )
    } else {
        format!(
            r#"<form method="post" action="{}/lock" class="toolbar">{}<span>Status: <span class="badge">active</span></span>
<label>Lock for minutes (blank: until an admin unlocks)<input type="number" min="1" name="minutes"></label>
<label>Reason<input type="text" name="reason"></label><button type="submit" class="danger">Lock</button></form>"#,
            esc(&href),
            csrf_field(c.csrf())
        )
    };
    let history: String = u["history"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .map(|h| {
            format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&cell(&h["at"])),
                esc(&cell(&h["event"]))
            )
        })
        .collect();
    let e = &u["effective"];
    let us = &u["usage"];
    // What the behaviour model sees (holds and locks say why in the history).
    let b = &u["behaviour"];
    let behaviour = if b.is_object() {
        let row = |t: &Value| {
            format!(
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
                esc(&cell(&t["messages"])),
                esc(&cell(&t["recipients"])),
                esc(&cell(&t["new_recipients"])),
                esc(&cell(&t["domains"]))
            )
        };
        format!(
            "<h2>Sending behaviour</h2><table id=\"behaviour\"><thead><tr><th></th><th class=\"num\">Messages</th><th class=\"num\">Recipients</th><th class=\"num\">New recipients</th><th class=\"num\">Domains</th></tr></thead><tbody><tr><td>This hour</td>{}</tr><tr><td>Usual busiest hour</td>{}</tr></tbody></table><p class=\"muted\">Held in the last day: {}; failed recipients today: {}{}</p>",
            row(&b["this_hour"]),
            row(&b["usual_busiest_hour"]),
            esc(&cell(&b["holds_last_day"])),
            esc(&cell(&b["failed_recipients_today"])),
            if b["warming_up"] == true {
                "; still learning this user's usual sending"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"{lock}
<table><thead><tr><th class="num">Today</th><th class="num">This week</th><th class="num">This month</th><th class="num">Recipients today</th><th class="num">Unlocked by timeout</th></tr></thead>
<tbody><tr>{}{}{}{}<td class="num">{} / {}</td></tr></tbody></table>
{behaviour}
<h2>Edit outgoing user</h2>
<form method="post" action="{}" id="user-form">{}
<fieldset><legend>Password</legend>{password}</fieldset>
{}
<p class="actions"><button type="submit" id="save">Save</button> <a class="btn secondary" href="/users">Back to the list</a></p></form>
<p>{}</p>
<h2>History</h2><table><thead><tr><th>When</th><th>What</th></tr></thead><tbody>{history}</tbody></table>"#,
        usage_cell(&us["day"], &e["limit_per_day"]),
        usage_cell(&us["week"], &e["limit_per_week"]),
        usage_cell(&us["month"], &e["limit_per_month"]),
        usage_cell(&us["recipients_day"], &e["max_recipients_per_day"]),
        cell(&u["unlocks_by_timeout"]),
        cell(&e["max_unlocks"]),
        esc(&href),
        csrf_field(c.csrf()),
        settings_fields(&values, &defaults),
        button(
            &format!("{href}/delete"),
            "Delete this user",
            c.csrf(),
            "danger"
        ),
    );
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, name, "/users", error, &body)
}

pub fn edit(c: &Ctx, name: &str) -> Resp {
    let (set, blank, errors) = read_settings(c);
    if !errors.is_empty() {
        return show(c, name, Some(&errors.join("; ")));
    }
    let mut req = json!({ "settings": set, "clear": blank });
    if let Some(p) = c
        .form
        .and_then(|f| f.get("password"))
        .filter(|p| !p.is_empty())
    {
        req["password"] = json!(p);
    }
    let a = c.send(Method::PATCH, &format!("/v1/users/{}", seg(name)), &req);
    if !ok(&a) {
        return show(c, name, Some(&error_text(&a)));
    }
    c.done(
        format!("User {name} saved."),
        &format!("/users/{}", seg(name)),
    )
}

pub fn unlock(c: &Ctx, name: &str) -> Resp {
    let a = c.send(
        Method::POST,
        &format!("/v1/users/{}/unlock", seg(name)),
        &json!({}),
    );
    if !ok(&a) {
        return c.failed("Unlock", "/users", &a, "/users");
    }
    c.done(format!("User {name} unlocked."), "/users")
}

pub fn lock(c: &Ctx, name: &str) -> Resp {
    let mut req = json!({});
    if let Some(m) = c.field("minutes") {
        match m.parse::<u32>() {
            Ok(m) => req["minutes"] = json!(m),
            Err(_) => {
                return show(
                    c,
                    name,
                    Some("Minutes must be a whole number of at least 1"),
                );
            }
        }
    }
    if let Some(r) = c.field("reason") {
        req["reason"] = json!(r);
    }
    let a = c.send(Method::POST, &format!("/v1/users/{}/lock", seg(name)), &req);
    if !ok(&a) {
        return show(c, name, Some(&error_text(&a)));
    }
    c.done(
        format!("User {name} locked."),
        &format!("/users/{}", seg(name)),
    )
}

pub fn delete(c: &Ctx, name: &str) -> Resp {
    let a = c.call(Method::DELETE, &format!("/v1/users/{}", seg(name)), b"");
    if !ok(&a) {
        return c.failed("Delete", "/users", &a, "/users");
    }
    c.done(format!("User {name} deleted."), "/users")
}
