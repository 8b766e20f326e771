//! 'Import from CSV file' (upload, preview with line-numbered errors,
//! fix, import), 'Import from incoming users', and the directory of
//! incoming domains and users.

use hyper::Method;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{Ctx, cell, error_text, line_errors, ok, pager_links};
use crate::admin::html::{button, csrf_field, seg};
use crate::admin::server::{self, Resp};
use crate::control::Answer;

/// The CSV of a submitted form: the uploaded file if one was chosen,
/// else the text area.
fn csv_of(c: &Ctx) -> Vec<u8> {
    let file = c.form.and_then(|f| f.bytes("file")).unwrap_or(b"");
    if file.iter().any(|b| !b.is_ascii_whitespace()) {
        file.to_vec()
    } else {
        c.form.and_then(|f| f.bytes("csv")).unwrap_or(b"").to_vec()
    }
}

fn upload_form(c: &Ctx, action: &str, csv: &str, buttons: Markup) -> Markup {
    html! {
        form method="post" action=(action) enctype="multipart/form-data" #csv-form {
            (csrf_field(c.csrf()))
            fieldset {
                legend { "CSV file" }
                label for="file" {
                    "Upload a file"
                    input type="file" name="file" #file accept=".csv,text/csv,text/plain";
                }
                label for="csv" {
                    "or edit the lines here"
                    textarea name="csv" #csv spellcheck="false" { (csv) }
                }
            }
            p.actions { (buttons) }
        }
    }
}

pub fn csv_form(c: &Ctx) -> Resp {
    let buttons = html! {
        button type="submit" name="action" value="preview" #preview { "Upload and preview" }
        " "
        a.btn.secondary href="/users" { "Cancel" }
    };
    let body = html! {
        p {
            "One user a line: " code { "user,domainname,password" } ". An IP address or network \
    with an empty password makes an IP address user (" code { "192.168.1.10,," } ")."
        }
        (upload_form(c, "/users/import", "", buttons))
    };
    c.render("Import from CSV file", "/users", body)
}

fn names(list: &Value) -> Markup {
    let list = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let name = |e: &Value| {
        if e.is_string() {
            cell(e)
        } else {
            cell(&e["name"])
        }
    };
    html! {
        @if list.is_empty() {
            p.muted { "none" }
        } @else {
            ul {
                @for e in list {
                    li {
                        (name(e))
                        @if let Some(l) = e.get("line") {
                            " " span.muted { "(line " (cell(l)) ")" }
                        }
                    }
                }
            }
        }
    }
}

pub fn csv_post(c: &Ctx) -> Resp {
    let csv = csv_of(c);
    let text = String::from_utf8_lossy(&csv).into_owned();
    let action = c.field("action").unwrap_or("preview");
    if action == "import" || action == "import_valid" {
        let uri = match (action == "import_valid", c.field("fast_hash") == Some("on")) {
            (true, true) => "/v1/users/import?skip_invalid=true&fast_hash=true",
            (true, false) => "/v1/users/import?skip_invalid=true",
            (false, true) => "/v1/users/import?fast_hash=true",
            (false, false) => "/v1/users/import",
        };
        // More than one batch: a background job and a page that follows
        // it, since hashing 100,000 passwords takes minutes.
        if crate::import::parse(&csv).0.len() > crate::import::job::BATCH {
            let a = c.call(
                Method::POST,
                &format!(
                    "{uri}{}background=true",
                    if uri.contains('?') { "&" } else { "?" }
                ),
                &csv,
            );
            if !ok(&a) {
                return preview(c, &text, Some(&error_text(&a)));
            }
            return server::redirect(&format!("/users/import/{}", a.body["id"]));
        }
        let a = c.call(Method::POST, uri, &csv);
        if !ok(&a) {
            return preview(c, &text, Some(&error_text(&a)));
        }
        let added = a.body["added"].as_array().map_or(0, Vec::len);
        let existing = a.body["existing"].as_array().map_or(0, Vec::len);
        return c.done(
            format!(
                "Imported {added} user(s); {existing} already existed and were kept as they are."
            ),
            "/users",
        );
    }
    preview(c, &text, None)
}

/// The progress of a background import; the page reloads itself every
/// two seconds until the job ends, then shows its outcome on the users page.
pub fn progress(c: &Ctx, id: &str) -> Resp {
    let a = c.get(&format!("/v1/users/import/{}", seg(id)));
    if !ok(&a) {
        return c.failed("Import from CSV file", "/users", &a, "/users/import");
    }
    let p = &a.body;
    let (done, total) = (
        p["done"].as_u64().unwrap_or(0),
        p["total"].as_u64().unwrap_or(0),
    );
    match p["state"].as_str() {
        Some("done") => c.done(
            format!(
                "Imported {} user(s); {} already existed and were kept as they are.",
                p["added"], p["existing"]
            ),
            "/users",
        ),
        Some("running") => c.render(
            "Importing users",
            "/users",
            html! {
                meta http-equiv="refresh" content="2";
                p {
                    progress #import-progress value=(done) max=(total) {}
                    " " (done) " of " (total) " user(s) done."
                }
                p.muted { "Users are committed 1,000 at a time. If the import stops, the users committed so far stay; importing the same file again resumes it." }
            },
        ),
        _ => c.render_with(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "Import from CSV file",
            "/users",
            Some(&format!(
                "The import stopped after {done} of {total} user(s): {}. The users committed so far stay; import the same file again to resume.",
                p["error"].as_str().unwrap_or("unknown error")
            )),
            html! { p { a href="/users/import" { "Back" } } },
        ),
    }
}

fn preview(c: &Ctx, text: &str, error: Option<&str>) -> Resp {
    let a = c.call(
        Method::POST,
        "/v1/users/import?preview=true",
        text.as_bytes(),
    );
    if !ok(&a) {
        return c.failed("Import from CSV file", "/users", &a, "/users/import");
    }
    let errs = a.body["errors"].as_array().map_or(0, Vec::len);
    let adds = a.body["add"].as_array().map_or(0, Vec::len);
    let (summary, buttons) = if errs > 0 {
        (
            html! {
                p {
                    strong { (errs) " line(s) have errors." }
                    " Fix them below and preview again, or import only the valid lines."
                }
                (line_errors(&a.body))
            },
            html! {
                button type="submit" name="action" value="preview" #preview { "Preview again" }
                " "
                button type="submit" name="action" value="import_valid" .secondary #import-valid { "Import the valid lines only" }
            },
        )
    } else {
        (
            html! { p { "No errors. " (adds) " user(s) will be added." } },
            html! {
                button type="submit" name="action" value="import" #import { "Import" }
                " "
                button type="submit" name="action" value="preview" .secondary #preview { "Preview again" }
            },
        )
    };
    // A lighter argon2 cost for the import, upgraded at each user's first
    // login (docs/ADMIN.md, "Bulk import of users"); off unless ticked.
    let fast = c.field("fast_hash") == Some("on");
    let buttons = html! {
        label.inline for="fast-hash" {
            input type="checkbox" name="fast_hash" #fast-hash checked[fast];
            " Fast import: hash at a lighter cost, made full at each user's first login"
        }
        br;
        (buttons)
    };
    let body = html! {
        (summary)
        div.grid {
            div { h2 { "Will be added" } (names(&a.body["add"])) }
            div { h2 { "Already exist (kept as they are)" } (names(&a.body["existing"])) }
        }
        (upload_form(c, "/users/import", text, buttons))
    };
    c.render_with(
        hyper::StatusCode::OK,
        "Import from CSV file: preview",
        "/users",
        error,
        body,
    )
}

/// New users get the default settings and no password.
fn no_password_note() -> Markup {
    html! {
        "New users get the default settings and " strong { "no password" } ": \
    they cannot authenticate until a password is set for each (edit the user). Users that already exist are kept as they are."
    }
}

pub fn incoming_preview(c: &Ctx) -> Resp {
    let a = c.call(Method::POST, "/v1/users/import-incoming?preview=true", b"");
    if !ok(&a) {
        return c.failed("Import from incoming users", "/users", &a, "/users");
    }
    let body = html! {
        p { (no_password_note()) }
        div.grid {
            div { h2 { "Will be added" } (names(&a.body["added"])) }
            div { h2 { "Already exist" } (names(&a.body["existing"])) }
        }
        form method="post" action="/users/import-incoming" {
            (csrf_field(c.csrf()))
            p.actions {
                button type="submit" #import { "Import all incoming users" }
                " "
                a.btn.secondary href="/incoming" { "Edit the incoming users" }
            }
        }
    };
    c.render("Import from incoming users", "/users", body)
}

pub fn incoming_post(c: &Ctx) -> Resp {
    let a = c.call(Method::POST, "/v1/users/import-incoming", b"");
    if !ok(&a) {
        return c.failed("Import from incoming users", "/users", &a, "/users");
    }
    let added = a.body["added"].as_array().map_or(0, Vec::len);
    let existing = a.body["existing"].as_array().map_or(0, Vec::len);
    c.done(
        format!("Added {added} incoming user(s) as outgoing users, without passwords (set one for each before they can send); {existing} already existed."),
        "/users",
    )
}

/// The protected domains and the incoming users: one page of each list,
/// each with its own cursor (`domains_after`, `users_after`).
pub fn incoming(c: &Ctx) -> Resp {
    let q = c.query();
    let cursor = |param: &str| q.text(param).filter(|a| !a.is_empty());
    let list = |api: &str, param: &str| match cursor(param) {
        Some(after) => c.get(&format!("{api}?after={}", seg(after))),
        None => c.get(api),
    };
    let d = list("/v1/incoming/domains", "domains_after");
    let u = list("/v1/incoming/users", "users_after");
    for a in [&d, &u] {
        if !ok(a) {
            return c.failed("Incoming", "/incoming", a, "/dashboard");
        }
    }
    let rows = |list: &Answer, kind: &str| {
        html! {
            @for x in super::items(list) {
                @let n = cell(&x["name"]);
                tr {
                    td { (n) }
                    td { (super::when(&x["added"])) }
                    td {
                        (button(
                            &format!("/incoming/{kind}/{}/delete", seg(&n)),
                            "Delete",
                            c.csrf(),
                            "danger small"
                        ))
                    }
                }
            }
        }
    };
    let csrf = csrf_field(c.csrf());
    let body = html! {
        p {
            "The protected domains and their incoming users. "
            a href="/users/import-incoming" { "Import from incoming users" }
            " adds them all as outgoing users."
        }
        h2 { "Protected domains" }
        form method="post" action="/incoming/domains" .toolbar {
            (csrf)
            label { "Domain" input type="text" name="domain" #new-domain required; }
            button type="submit" #add-domain { "Add domain" }
        }
        table #domains {
            thead { tr { th { "Domain" } th { "Added" } th {} } }
            tbody { (rows(&d, "domains")) }
        }
        (pager_links("/incoming", "domains_after", "domains", cursor("domains_after").is_some(), &d))
        p.hint { "Deleting a domain deletes its incoming users too." }
        h2 { "Incoming users" }
        form method="post" action="/incoming/users" .toolbar {
            (csrf)
            label { "User (user@domain)" input type="text" name="name" #new-incoming required; }
            button type="submit" #add-incoming { "Add user" }
        }
        table #incoming-users {
            thead { tr { th { "User" } th { "Added" } th {} } }
            tbody { (rows(&u, "users")) }
        }
        (pager_links("/incoming", "users_after", "users", cursor("users_after").is_some(), &u))
        h2 { "Import incoming users from CSV" }
        p {
            "One user a line: " code { "user@domain" } " or " code { "user,domain" }
            ". Domains not yet protected are added."
        }
        (upload_form(
            c,
            "/incoming/import",
            "",
            html! { button type="submit" #import-incoming-csv { "Import" } },
        ))
    };
    c.render("Incoming domains and users", "/incoming", body)
}

pub fn add_domain(c: &Ctx) -> Resp {
    let a = c.send(
        Method::POST,
        "/v1/incoming/domains",
        &json!({ "domain": c.field("domain").unwrap_or("") }),
    );
    if !ok(&a) {
        return c.failed("Incoming", "/incoming", &a, "/incoming");
    }
    c.done(
        format!("Domain {} added.", cell(&a.body["name"])),
        "/incoming",
    )
}

pub fn delete_domain(c: &Ctx, d: &str) -> Resp {
    let a = c.call(
        Method::DELETE,
        &format!("/v1/incoming/domains/{}", seg(d)),
        b"",
    );
    if !ok(&a) {
        return c.failed("Incoming", "/incoming", &a, "/incoming");
    }
    c.done(
        format!(
            "Domain {d} deleted with {} incoming user(s).",
            cell(&a.body["users_deleted"])
        ),
        "/incoming",
    )
}

pub fn add_incoming(c: &Ctx) -> Resp {
    let a = c.send(
        Method::POST,
        "/v1/incoming/users",
        &json!({ "name": c.field("name").unwrap_or("") }),
    );
    if !ok(&a) {
        return c.failed("Incoming", "/incoming", &a, "/incoming");
    }
    c.done(
        format!("Incoming user {} added.", cell(&a.body["name"])),
        "/incoming",
    )
}

pub fn delete_incoming(c: &Ctx, n: &str) -> Resp {
    let a = c.call(
        Method::DELETE,
        &format!("/v1/incoming/users/{}", seg(n)),
        b"",
    );
    if !ok(&a) {
        return c.failed("Incoming", "/incoming", &a, "/incoming");
    }
    c.done(format!("Incoming user {n} deleted."), "/incoming")
}

pub fn import_incoming_csv(c: &Ctx) -> Resp {
    let a = c.call(Method::POST, "/v1/incoming/users/import", &csv_of(c));
    if !ok(&a) {
        return c.failed("Import incoming users", "/incoming", &a, "/incoming");
    }
    let n = |k: &str| a.body[k].as_array().map_or(0, Vec::len);
    c.done(
        format!(
            "Imported {} incoming user(s) ({} already there); {} domain(s) added.",
            n("added"),
            n("existing"),
            n("domains_added")
        ),
        "/incoming",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_and_line_errors_are_escaped() {
        let list = json!(["<script>x</script>", {"name": "<i>n</i>", "line": 3}]);
        assert_eq!(
            names(&list).into_string(),
            "<ul><li>&lt;script&gt;x&lt;/script&gt;</li>\
             <li>&lt;i&gt;n&lt;/i&gt; <span class=\"muted\">(line 3)</span></li></ul>"
        );
        assert_eq!(
            names(&json!([])).into_string(),
            "<p class=\"muted\">none</p>"
        );
        let errs = json!({"errors": [{"line": 2, "message": "bad <script>"}]});
        assert_eq!(
            super::super::line_errors(&errs).into_string(),
            "<ul class=\"errors\" id=\"line-errors\"><li>Line 2: bad &lt;script&gt;</li></ul>"
        );
    }
}
