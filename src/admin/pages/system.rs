//! Dashboard, queue, quarantine, certificate, audit log and log search
//! (the system settings are in settings.rs).

use hyper::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{Ctx, cell, error_text, items, ok, when};
use crate::admin::html::{button, csrf_field, seg};
use crate::admin::server::{self, Resp};

/// The dashboard's counters: where each is in `GET /v1/dashboard` (a
/// JSON pointer), its label and its element id.
type Card = (&'static str, &'static str, &'static str);

const TODAY: [Card; 7] = [
    (
        "/messages_accepted_today",
        "messages accepted today",
        "accepted-today",
    ),
    (
        "/messages_refused_today",
        "messages refused today",
        "refused-today",
    ),
    (
        "/messages_caught_today",
        "spam and malware caught today",
        "caught-today",
    ),
    (
        "/messages_quarantined_today",
        "caught today, still in quarantine",
        "quarantined-today",
    ),
    ("/locked_users", "locked users", "locked-users"),
    ("/queue_size", "messages in the queue", "queue-size"),
    (
        "/quarantine_size",
        "messages in quarantine",
        "quarantine-size",
    ),
];

const SINCE_START: [Card; 8] = [
    (
        "/since_start/messages_accepted",
        "messages accepted",
        "accepted",
    ),
    (
        "/since_start/messages_refused",
        "messages refused (limits, locks, policy)",
        "refused",
    ),
    (
        "/since_start/messages_caught",
        "spam and malware caught",
        "caught",
    ),
    ("/delivery/delivered", "recipients delivered", "delivered"),
    ("/delivery/bounced", "recipients bounced", "bounced"),
    ("/since_start/sessions", "SMTP sessions", "sessions"),
    (
        "/since_start/auth_failures",
        "authentication failures",
        "auth-failures",
    ),
    (
        "/since_start/sessions_refused",
        "sessions refused",
        "sessions-refused",
    ),
];

const DIRECTORY: [Card; 3] = [
    ("/users", "outgoing users", "users"),
    ("/incoming_domains", "protected domains", "incoming-domains"),
    ("/incoming_users", "incoming users", "incoming-users"),
];

fn cards(s: &Value, cards: &[Card]) -> Markup {
    html! {
        div.cards {
            @for (pointer, label, id) in cards {
                div.card id=(id) {
                    div.n { (s.pointer(pointer).map(cell).unwrap_or_default()) }
                    div.l { (label) }
                }
            }
        }
    }
}

pub fn dashboard(c: &Ctx) -> Resp {
    let a = c.get("/v1/dashboard");
    if !ok(&a) {
        return c.failed("Dashboard", "/dashboard", &a, "/dashboard");
    }
    let s = &a.body;
    let system = c.get("/v1/system");
    let body = html! {
        @if ok(&system) {
            p.muted #running {
                (super::update::summary(&system.body))
                " (" a href="/update" { "update" } ")"
            }
        }
        p.muted { "Today is " (cell(&s["today"])) " in the appliance's timezone." }
        (fleet_line(&s["fleet"]))
        (cards(s, &TODAY))
        h2 { "Since the daemon started" }
        (cards(s, &SINCE_START))
        h2 { "Directory" }
        (cards(s, &DIRECTORY))
    };
    c.render("Dashboard", "/dashboard", body)
}

/// The fleet's state, for a box with `[store] shared`.
fn fleet_line(f: &Value) -> Markup {
    if !f.is_object() {
        return html! {};
    }
    let store = f["store"].as_str().unwrap_or_default();
    let id = f["box_id"].as_str().unwrap_or_default();
    if f["degraded"].as_bool().unwrap_or(true) {
        let pct = f["degraded_fraction"].as_f64().unwrap_or(0.0) * 100.0;
        html! {
            p.flash.error #fleet {
                "Fleet: DEGRADED: the shared store " (store) " is unreachable; this box (id " (id)
                ") enforces each limit at " (format!("{pct:.0}")) "% for what it accepts on its own until it is back."
            }
        }
    } else {
        html! {
            p.muted #fleet {
                "Fleet: shared store " (store) " reachable; users, locks, settings and limits are shared (this box: "
                (id) ")."
            }
        }
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
    let row = |e: &Value| {
        let id = cell(&e["id"]);
        let rcpts: Vec<String> = e["recipients"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{} ({})", cell(&r["address"]), cell(&r["state"])))
            .collect();
        html! {
            tr data-id=(id) {
                td { a href={ "/queue/" (seg(&id)) } { (id) } }
                td { (when(&e["received"])) }
                td { (who_sent(e)) }
                td { (rcpts.join(", ")) }
                td.num { (cell(&e["size"])) }
                td { (cell(&e["state"])) }
                td { (when(&e["next_attempt"])) }
                td.nowrap { (queue_buttons(c, &id, e["state"] == "queued")) }
            }
        }
    };
    let body = html! {
        p.muted { "Retry tries delivery now; Bounce gives up and returns the message to its sender; Delete drops it silently." }
        table #queue {
            thead {
                tr {
                    th { "Id" } th { "Received" } th { "User" } th { "Recipients" } th.num { "Size" }
                    th { "State" } th { "Next attempt" } th {}
                }
            }
            tbody { @for e in items(&a) { (row(e)) } }
        }
        (c.pager("/queue", &a))
    };
    c.render("Queue", "/queue", body)
}

fn queue_buttons(c: &Ctx, id: &str, waiting: bool) -> Markup {
    let href = format!("/queue/{}", seg(id));
    html! {
        @if waiting {
            (button(&format!("{href}/retry"), "Retry", c.csrf(), "small"))
            " "
            (button(&format!("{href}/bounce"), "Bounce", c.csrf(), "secondary small"))
            " "
        }
        (button(&format!("{href}/delete"), "Delete", c.csrf(), "danger small"))
    }
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
fn object_table(v: &Value) -> Markup {
    let fields = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "headers");
    html! {
        table {
            @for (k, v) in fields {
                tr {
                    th { (k) }
                    td {
                        pre {
                            @match v {
                                Value::Array(_) | Value::Object(_) => {
                                    (serde_json::to_string_pretty(v).unwrap_or_default())
                                }
                                other => (cell(other)),
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn queue_entry(c: &Ctx, id: &str) -> Resp {
    let a = c.get(&format!("/v1/queue/{}", seg(id)));
    if !ok(&a) {
        return c.failed("Queued message", "/queue", &a, "/queue");
    }
    let body = html! {
        p { (queue_buttons(c, id, a.body["state"] == "queued")) }
        (object_table(&a.body))
        h2 { "Headers" }
        pre { (cell(&a.body["headers"])) }
        p { a href="/queue" { "Back to the queue" } }
    };
    c.render(&format!("Queued message {id}"), "/queue", body)
}

/// The user, and the envelope sender when it is another address.
fn who_sent(e: &Value) -> Markup {
    let (user, sender) = (cell(&e["user"]), cell(&e["sender"]));
    html! {
        (user)
        @if sender != user {
            br;
            span.muted { "from " (if sender.is_empty() { "<>" } else { &sender }) }
        }
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
            html! {
                p.muted #no-quarantine { "The quarantine is not available in this build of the daemon." }
            },
        );
    }
    if !ok(&a) {
        return c.failed("Quarantine", "/quarantine", &a, "/dashboard");
    }
    let row = |e: &Value| {
        let id = cell(&e["id"]);
        let class = match e["fate"].as_str() {
            Some(f) if !f.is_empty() => format!("{} ({f})", cell(&e["class"])),
            _ => cell(&e["class"]),
        };
        html! {
            tr data-id=(id) {
                td { a href={ "/quarantine/" (seg(&id)) } { (id) } }
                td { (when(&e["received"])) }
                td { (who_sent(e)) }
                td { (recipients(&e["recipients"])) }
                td { (class) }
                td {
                    ul.reasons {
                        @for r in e["reasons"].as_array().into_iter().flatten() {
                            li { (cell(r)) }
                        }
                    }
                }
                td.nowrap {
                    (button(&format!("/quarantine/{}/release", seg(&id)), "Release", c.csrf(), "small"))
                    " "
                    (button(&format!("/quarantine/{}/delete", seg(&id)), "Delete", c.csrf(), "danger small"))
                }
            }
        }
    };
    let body = html! {
        p.muted { "Spam, malware and mail held for unusual sending (fate: hold, or lock when it locked the sender); releasing a message queues it for delivery." }
        table #quarantine {
            thead {
                tr {
                    th { "Id" } th { "Received" } th { "User" } th { "Recipients" }
                    th { "Class (fate)" } th { "Reasons" } th {}
                }
            }
            tbody { @for e in items(&a) { (row(e)) } }
        }
        (c.pager("/quarantine", &a))
    };
    c.render("Quarantine", "/quarantine", body)
}

pub fn quarantine_entry(c: &Ctx, id: &str) -> Resp {
    let a = c.get(&format!("/v1/quarantine/{}", seg(id)));
    if !ok(&a) {
        return c.failed("Quarantined message", "/quarantine", &a, "/quarantine");
    }
    let href = format!("/quarantine/{}", seg(id));
    let copies = a.body["copies"].as_array().map_or(0, Vec::len);
    let body = html! {
        p {
            (button(&format!("{href}/release"), "Release", c.csrf(), ""))
            " "
            @if copies > 0 {
                (button(&format!("{href}/release-copies"), &format!("Release with its {copies} copies"), c.csrf(), ""))
                " "
            }
            (button(&format!("{href}/delete"), "Delete", c.csrf(), "danger"))
        }
        @if copies > 0 {
            p.muted #copies {
                (copies) " other held messages of this user have the same text (a mail merge): "
                "releasing with its copies queues them all."
            }
        }
        (object_table(&a.body))
        h2 { "Headers" }
        pre { (cell(&a.body["headers"])) }
    };
    c.render(&format!("Quarantined message {id}"), "/quarantine", body)
}

pub fn quarantine_action(c: &Ctx, id: &str, action: &str) -> Resp {
    let a = match action {
        "delete" => c.call(Method::DELETE, &format!("/v1/quarantine/{}", seg(id)), b""),
        _ => c.call(
            Method::POST,
            &format!(
                "/v1/quarantine/{}/release?copies={}",
                seg(id),
                action == "release-copies"
            ),
            b"",
        ),
    };
    if !ok(&a) {
        return c.failed("Quarantine", "/quarantine", &a, "/quarantine");
    }
    let done = match (action, a.body["copies"].as_array().map_or(0, Vec::len)) {
        ("delete", _) => format!("Message {id} deleted."),
        (_, 0) => format!("Message {id} released."),
        (_, n) => format!("Message {id} released with {n} copies."),
    };
    c.done(done, "/quarantine")
}

pub fn tls(c: &Ctx, error: Option<&str>) -> Resp {
    let a = c.get("/v1/tls/certificate");
    if !ok(&a) {
        return c.failed("Certificate", "/tls", &a, "/dashboard");
    }
    let body = html! {
        p {
            "SHA-256 fingerprint: " code #fingerprint { (cell(&a.body["sha256_fingerprint"])) }
            " (" (cell(&a.body["chain_length"])) " certificate(s) in the chain). It is served on the SMTP listeners and on this page."
        }
        form method="post" action="/tls" enctype="multipart/form-data" {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "Upload a new certificate" }
                div.grid {
                    label { "Certificate chain (PEM)" input type="file" name="certificate" accept=".pem,.crt"; }
                    label { "Private key (PEM)" input type="file" name="private_key" accept=".pem,.key"; }
                }
                p.hint { "Both are checked (the key must match the certificate) before anything is replaced; new connections get the new certificate at once." }
            }
            p.actions { button type="submit" { "Upload" } }
        }
        h2 { "Certificate in use" }
        pre { (cell(&a.body["certificate"])) }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    c.render_with(status, "TLS certificate", "/tls", error, body)
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
    let body = html! {
        form method="get" action="/audit" .toolbar {
            label { "Contains" input type="search" name="filter" value=(filter); }
            button type="submit" .secondary { "Search" }
        }
        table #audit {
            thead {
                tr { th { "When" } th { "Who" } th { "What" } th.num { "Result" } th { "Detail" } }
            }
            tbody {
                @for e in items(&a) {
                    tr {
                        td { (when(&e["at"])) }
                        td { (cell(&e["who"])) }
                        td { (cell(&e["action"])) }
                        td.num { (cell(&e["status"])) }
                        td { (cell(&e["detail"])) }
                    }
                }
            }
        }
        (c.pager(&format!("/audit{query}"), &a))
    };
    c.render("Audit log", "/audit", body)
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
    let body = html! {
        form method="get" action="/logs" .toolbar {
            label { "Contains" input type="search" name="q" value=(text); }
            button type="submit" .secondary { "Search" }
        }
        p.muted { "The newest " (lines.len()) " matching line(s) of the recent log kept in memory." }
        pre #log-lines { (lines.join("\n")) }
    };
    c.render("Logs", "/logs", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_message_fields_are_escaped() {
        let e = json!({
            "user": "<script>alert(1)</script>@x.example",
            "sender": "\"><img src=x onerror=alert(1)>",
            "headers": "Subject: <b>hi</b>",
            "<k>": ["<v>"],
        });
        let who = who_sent(&e).into_string();
        assert_eq!(
            who,
            "&lt;script&gt;alert(1)&lt;/script&gt;@x.example<br>\
             <span class=\"muted\">from &quot;&gt;&lt;img src=x onerror=alert(1)&gt;</span>"
        );
        let table = object_table(&e).into_string();
        assert!(table.contains("<th>&lt;k&gt;</th>"), "{table}");
        assert!(table.contains("&quot;&lt;v&gt;&quot;"), "{table}");
        assert!(!table.contains("<script>") && !table.contains("<b>") && !table.contains("<img"));
        // The null sender is shown as text too.
        let bounce = who_sent(&json!({"user": "u@x.example", "sender": ""})).into_string();
        assert!(bounce.ends_with("from &lt;&gt;</span>"), "{bounce}");
        let fleet = fleet_line(&json!({"store": "<s>", "box_id": "<i>", "degraded": false}));
        assert!(
            fleet
                .into_string()
                .contains("shared store &lt;s&gt; reachable")
        );
    }
}
