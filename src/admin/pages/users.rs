//! Outgoing users: the list with filters and counters against limits,
//! the 'Add outgoing user' and edit dialogs with every setting of the
//! vendor document, lock, unlock and delete.

use hyper::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

use super::{Ctx, cell, error_text, ok};
use crate::admin::html::{button, csrf_field, seg};
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

fn option(value: &str, label: &str, current: &str) -> Markup {
    html! { option value=(value) selected[value == current] { (label) } }
}

/// The 'Edit outgoing settings' part of the dialogs. Blank means the
/// system default, which is shown beside each field.
fn settings_fields(values: &Values, defaults: &Value) -> Markup {
    html! {
        fieldset {
            legend { "Edit outgoing settings" }
            p.hint {
                "Leave a field blank to use the system default (shown in grey). \
    A limit of 0 means unlimited. If quarantine is enabled, spam and malware are quarantined \
    whatever the quarantine response: it only decides what the sending server is told."
            }
            div.grid {
                @for s in USER_SETTINGS {
                    @let key = s.name;
                    @let current = values.get(key).map(String::as_str).unwrap_or("");
                    @let default = shown_default(&defaults[key]);
                    label for=(key) title=(s.help) {
                        (s.label)
                        @match s.kind {
                            Kind::Number(r) => {
                                input type="number" min=(r.min) max=(r.max) step="1" name=(key) id=(key)
                                    value=(current) placeholder={ "default: " (default) };
                            }
                            Kind::Bool => {
                                select name=(key) id=(key) {
                                    (option("", &format!("Default ({default})"), current))
                                    (option("true", "On", current))
                                    (option("false", "Off", current))
                                }
                            }
                            Kind::Choice(choices) => {
                                select name=(key) id=(key) {
                                    (option("", &format!("Default ({default})"), current))
                                    @for (value, meaning) in choices {
                                        (option(value, meaning, current))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
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

fn usage_cell(used: &Value, limit: &Value) -> Markup {
    let (u, l) = (used.as_u64().unwrap_or(0), limit.as_u64().unwrap_or(0));
    let limit = if l == 0 {
        "∞".to_string()
    } else {
        l.to_string()
    };
    html! { td.num.over[l > 0 && u >= l] { (u) " / " (limit) } }
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
    let row = |u: &Value| {
        let locked = u["locked"] == true;
        let name = u["name"].as_str().unwrap_or("");
        let href = format!("/users/{}", seg(name));
        let (e, use_) = (&u["effective"], &u["usage"]);
        let nopw = u["kind"] == "address" && u["has_password"] != true;
        html! {
            tr data-user=(name) {
                td {
                    a href=(href) { (name) }
                    @if nopw {
                        " " span.muted { "(no password: cannot log in)" }
                    }
                }
                td { (u["kind"].as_str().unwrap_or("")) }
                td {
                    @if locked {
                        span.badge.locked { (u["status"].as_str().unwrap_or("locked")) }
                    } @else {
                        span.badge { "active" }
                    }
                }
                (usage_cell(&use_["day"], &e["limit_per_day"]))
                (usage_cell(&use_["week"], &e["limit_per_week"]))
                (usage_cell(&use_["month"], &e["limit_per_month"]))
                (usage_cell(&use_["recipients_day"], &e["max_recipients_per_day"]))
                td {
                    a.btn.secondary.small href=(href) { "Edit" }
                    " "
                    @if locked {
                        (button(&format!("{href}/unlock"), "Unlock", c.csrf(), "small"))
                    }
                    " "
                    (button(&format!("{href}/delete"), "Delete", c.csrf(), "danger small"))
                }
            }
        }
    };
    let shown = super::items(&a).count();
    let statuses = [
        ("", "Any status"),
        ("active", "Active"),
        ("locked_until", "Locked until a time"),
        ("locked_until_admin", "Locked until admin unlocks"),
    ];
    let body = html! {
        div.actions {
            a.btn href="/users/new" #add-user { "Add" } " "
            a.btn.secondary href="/users/import" #import-csv { "Import from CSV file" } " "
            a.btn.secondary href="/users/import-incoming" #import-incoming { "Import from incoming users" } " "
            a.btn.secondary href="/users/export.csv" { "Export CSV" }
        }
        form method="get" action="/users" .toolbar {
            label { "Username contains" input type="search" name="filter" value=(filter); }
            " "
            label {
                "Status"
                select name="status" {
                    @for (v, l) in statuses { (option(v, l, status)) }
                }
            }
            " "
            button type="submit" .secondary { "Filter" }
        }
        table #users {
            thead {
                tr {
                    th { "User" } th { "Kind" } th { "Status" } th.num { "Today" } th.num { "This week" }
                    th.num { "This month" } th.num { "Recipients today" } th {}
                }
            }
            tbody {
                @for u in super::items(&a) { (row(u)) }
            }
        }
        (c.pager(&format!("/users{query}"), &a))
        p.muted { (shown) " user(s) shown, in name order. Counters are against the limits in force (∞: unlimited)." }
    };
    c.render("Outgoing users", "/users", body)
}

fn user_form(c: &Ctx, name: &str, domain: &str, values: &Values) -> Markup {
    let (defaults, ip_auth) = defaults(c);
    html! {
        form method="post" action="/users/new" #user-form {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "User" }
                div.grid {
                    label for="name" {
                        "Username"
                        input type="text" name="name" #name value=(name) required placeholder="user@domain or IP address";
                    }
                    label for="password" {
                        "Password"
                        input type="password" name="password" #password autocomplete="new-password";
                    }
                    label for="domain" {
                        "Domain (IP address users only)"
                        input type="text" name="domain" #domain value=(domain);
                    }
                }
                p.hint {
                    "If the password is left blank, the username must be an IP address (or network): \
    connections from it count as authenticated without SMTP AUTH."
                    @if !ip_auth {
                        " " strong { "IP authorisation is currently disabled in Settings." }
                    }
                    " Passwords have at least 8 characters."
                }
            }
            (settings_fields(values, &defaults))
            p.actions {
                button type="submit" #save { "Save" }
                " "
                a.btn.secondary href="/users" { "Cancel" }
            }
        }
    }
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
        user_form(c, name, domain, &values),
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
        html! { p.hint { "An IP address user has no password: connections from it are authenticated by address." } }
    } else {
        html! {
            label for="password" {
                "New password"
                input type="password" name="password" #password autocomplete="new-password";
            }
            p.hint {
                @if u["has_password"] == true {
                    "Leave blank to keep the current password."
                } @else {
                    strong { "This user has no password yet and cannot authenticate until one is set." }
                }
            }
        }
    };
    let lock = if u["locked"] == true {
        html! {
            p {
                "Status: " span.badge.locked { (u["status"].as_str().unwrap_or("")) }
                " " (button(&format!("{href}/unlock"), "Unlock", c.csrf(), ""))
            }
        }
    } else {
        html! {
            form method="post" action={ (href) "/lock" } .toolbar {
                (csrf_field(c.csrf()))
                span { "Status: " span.badge { "active" } }
                " "
                label { "Lock for minutes (blank: until an admin unlocks)" input type="number" min="1" name="minutes"; }
                " "
                label { "Reason" input type="text" name="reason"; }
                button type="submit" .danger { "Lock" }
            }
        }
    };
    let e = &u["effective"];
    let us = &u["usage"];
    // What the behaviour model sees (holds and locks say why in the history).
    let b = &u["behaviour"];
    let counts = |t: &Value| {
        html! {
            td.num { (cell(&t["messages"])) }
            td.num { (cell(&t["recipients"])) }
            td.num { (cell(&t["new_recipients"])) }
            td.num { (cell(&t["domains"])) }
        }
    };
    let body = html! {
        (lock)
        table {
            thead {
                tr {
                    th.num { "Today" } th.num { "This week" } th.num { "This month" }
                    th.num { "Recipients today" } th.num { "Unlocked by timeout" }
                }
            }
            tbody {
                tr {
                    (usage_cell(&us["day"], &e["limit_per_day"]))
                    (usage_cell(&us["week"], &e["limit_per_week"]))
                    (usage_cell(&us["month"], &e["limit_per_month"]))
                    (usage_cell(&us["recipients_day"], &e["max_recipients_per_day"]))
                    td.num { (cell(&u["unlocks_by_timeout"])) " / " (cell(&e["max_unlocks"])) }
                }
            }
        }
        @if b.is_object() {
            h2 { "Sending behaviour" }
            table #behaviour {
                thead {
                    tr {
                        th {} th.num { "Messages" } th.num { "Recipients" }
                        th.num { "New recipients" } th.num { "Domains" }
                    }
                }
                tbody {
                    tr { td { "This hour" } (counts(&b["this_hour"])) }
                    tr { td { "Usual busiest hour" } (counts(&b["usual_busiest_hour"])) }
                }
            }
            p.muted {
                "Held in the last day: " (cell(&b["holds_last_day"]))
                "; failed recipients today: " (cell(&b["failed_recipients_today"]))
                @if b["warming_up"] == true { "; still learning this user's usual sending" }
            }
        }
        h2 { "Edit outgoing user" }
        form method="post" action=(href) #user-form {
            (csrf_field(c.csrf()))
            fieldset { legend { "Password" } (password) }
            (settings_fields(&values, &defaults))
            p.actions {
                button type="submit" #save { "Save" }
                " "
                a.btn.secondary href="/users" { "Back to the list" }
            }
        }
        p { (button(&format!("{href}/delete"), "Delete this user", c.csrf(), "danger")) }
        h2 { "History" }
        table {
            thead { tr { th { "When" } th { "What" } } }
            tbody {
                @for h in u["history"].as_array().into_iter().flatten().rev() {
                    tr { td { (cell(&h["at"])) } td { (cell(&h["event"])) } }
                }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, name, "/users", error, body)
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
