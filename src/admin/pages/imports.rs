//! 'Import from CSV file' (upload, preview with line-numbered errors,
//! fix, import), 'Import from incoming users', and the directory of
//! incoming domains and users.

use std::fmt::Write as _;

use hyper::Method;
use serde_json::{Value, json};

use super::{Ctx, cell, error_text, line_errors, ok};
use crate::admin::html::{button, csrf_field, esc, seg};
use crate::admin::server::{self, Resp};

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

fn upload_form(c: &Ctx, action: &str, csv: &str, buttons: &str) -> String {
    format!(
        r#"<form method="post" action="{}" enctype="multipart/form-data" id="csv-form">{}
<fieldset><legend>CSV file</legend>
<label for="file">Upload a file<input type="file" name="file" id="file" accept=".csv,text/csv,text/plain"></label>
<label for="csv">or edit the lines here<textarea name="csv" id="csv" spellcheck="false">{}</textarea></label>
</fieldset><p class="actions">{buttons}</p></form>"#,
        esc(action),
        csrf_field(c.csrf()),
        esc(csv)
    )
}

pub fn csv_form(c: &Ctx) -> Resp {
    let body = format!(
        "<p>One user a line: <code>user,domainname,password</code>. An IP address or network \
with an empty password makes an IP address user (<code>192.168.1.10,,</code>).</p>{}",
        upload_form(
            c,
            "/users/import",
            "",
            r#"<button type="submit" name="action" value="preview" id="preview">Upload and preview</button> <a class="btn secondary" href="/users">Cancel</a>"#
        )
    );
    c.render("Import from CSV file", "/users", &body)
}

fn names(list: &Value) -> String {
    let items: String = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = if e.is_string() {
                cell(e)
            } else {
                cell(&e["name"])
            };
            match e.get("line") {
                Some(l) => format!(
                    "<li>{} <span class=\"muted\">(line {l})</span></li>",
                    esc(&name)
                ),
                None => format!("<li>{}</li>", esc(&name)),
            }
        })
        .collect();
    if items.is_empty() {
        "<p class=\"muted\">none</p>".into()
    } else {
        format!("<ul>{items}</ul>")
    }
}

pub fn csv_post(c: &Ctx) -> Resp {
    let csv = csv_of(c);
    let text = String::from_utf8_lossy(&csv).into_owned();
    let action = c.field("action").unwrap_or("preview");
    if action == "import" || action == "import_valid" {
        let uri = if action == "import_valid" {
            "/v1/users/import?skip_invalid=true"
        } else {
            "/v1/users/import"
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
            &format!(
                r#"<meta http-equiv="refresh" content="2">
<p><progress id="import-progress" value="{done}" max="{total}"></progress> {done} of {total} user(s) done.</p>
<p class="muted">Users are committed 1,000 at a time. If the import stops, the users committed so far stay; importing the same file again resumes it.</p>"#
            ),
        ),
        _ => c.render_with(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "Import from CSV file",
            "/users",
            Some(&format!(
                "The import stopped after {done} of {total} user(s): {}. The users committed so far stay; import the same file again to resume.",
                p["error"].as_str().unwrap_or("unknown error")
            )),
            r#"<p><a href="/users/import">Back</a></p>"#,
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
            format!(
                "<p><strong>{errs} line(s) have errors.</strong> Fix them below and preview again, or import only the valid lines.</p>{}",
                line_errors(&a.body)
            ),
            r#"<button type="submit" name="action" value="preview" id="preview">Preview again</button>
<button type="submit" name="action" value="import_valid" class="secondary" id="import-valid">Import the valid lines only</button>"#,
        )
    } else {
        (
            format!("<p>No errors. {adds} user(s) will be added.</p>"),
            r#"<button type="submit" name="action" value="import" id="import">Import</button>
<button type="submit" name="action" value="preview" class="secondary" id="preview">Preview again</button>"#,
        )
    };
    let body = format!(
        r#"{summary}<div class="grid"><div><h2>Will be added</h2>{}</div><div><h2>Already exist (kept as they are)</h2>{}</div></div>
{}"#,
        names(&a.body["add"]),
        names(&a.body["existing"]),
        upload_form(c, "/users/import", text, buttons)
    );
    c.render_with(
        hyper::StatusCode::OK,
        "Import from CSV file: preview",
        "/users",
        error,
        &body,
    )
}

const NO_PASSWORD_NOTE: &str = "New users get the default settings and <strong>no password</strong>: \
they cannot authenticate until a password is set for each (edit the user). Users that already exist are kept as they are.";

pub fn incoming_preview(c: &Ctx) -> Resp {
    let a = c.call(Method::POST, "/v1/users/import-incoming?preview=true", b"");
    if !ok(&a) {
        return c.failed("Import from incoming users", "/users", &a, "/users");
    }
    let body = format!(
        r#"<p>{NO_PASSWORD_NOTE}</p><div class="grid"><div><h2>Will be added</h2>{}</div><div><h2>Already exist</h2>{}</div></div>
<form method="post" action="/users/import-incoming">{}<p class="actions"><button type="submit" id="import">Import all incoming users</button>
<a class="btn secondary" href="/incoming">Edit the incoming users</a></p></form>"#,
        names(&a.body["added"]),
        names(&a.body["existing"]),
        csrf_field(c.csrf())
    );
    c.render("Import from incoming users", "/users", &body)
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

pub fn incoming(c: &Ctx) -> Resp {
    let (d, u) = (c.get("/v1/incoming/domains"), c.get("/v1/incoming/users"));
    for a in [&d, &u] {
        if !ok(a) {
            return c.failed("Incoming", "/incoming", a, "/dashboard");
        }
    }
    let mut domains = String::new();
    for x in d.body.as_array().into_iter().flatten() {
        let n = cell(&x["name"]);
        let _ = write!(
            domains,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n),
            esc(&super::when(&x["added"])),
            button(
                &format!("/incoming/domains/{}/delete", seg(&n)),
                "Delete",
                c.csrf(),
                "danger small"
            )
        );
    }
    let mut users = String::new();
    for x in u.body.as_array().into_iter().flatten() {
        let n = cell(&x["name"]);
        let _ = write!(
            users,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&n),
            esc(&super::when(&x["added"])),
            button(
                &format!("/incoming/users/{}/delete", seg(&n)),
                "Delete",
                c.csrf(),
                "danger small"
            )
        );
    }
    let csrf = csrf_field(c.csrf());
    let body = format!(
        r#"<p>The protected domains and their incoming users. <a href="/users/import-incoming">Import from incoming users</a> adds them all as outgoing users.</p>
<h2>Protected domains</h2>
<form method="post" action="/incoming/domains" class="toolbar">{csrf}<label>Domain<input type="text" name="domain" id="new-domain" required></label><button type="submit" id="add-domain">Add domain</button></form>
<table id="domains"><thead><tr><th>Domain</th><th>Added</th><th></th></tr></thead><tbody>{domains}</tbody></table>
<p class="hint">Deleting a domain deletes its incoming users too.</p>
<h2>Incoming users</h2>
<form method="post" action="/incoming/users" class="toolbar">{csrf}<label>User (user@domain)<input type="text" name="name" id="new-incoming" required></label><button type="submit" id="add-incoming">Add user</button></form>
<table id="incoming-users"><thead><tr><th>User</th><th>Added</th><th></th></tr></thead><tbody>{users}</tbody></table>
<h2>Import incoming users from CSV</h2><p>One user a line: <code>user@domain</code> or <code>user,domain</code>. Domains not yet protected are added.</p>
{}"#,
        upload_form(
            c,
            "/incoming/import",
            "",
            r#"<button type="submit" id="import-incoming-csv">Import</button>"#
        )
    );
    c.render("Incoming domains and users", "/incoming", &body)
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
