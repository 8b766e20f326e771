//! The admin pages: server-rendered HTML over the same API routes the
//! JSON clients use (so validation and audit are the same), forms that
//! work without JavaScript, and post/redirect/get with a flash message.

mod appliance;
mod dkim;
mod imports;
mod settings;
mod system;
mod update;
mod users;

use hyper::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::Value;

use super::Admin;
use super::form::Form;
use super::html::{self, Flash};
use super::server::{self, Req, Resp};
use super::session::Session;
use crate::control::Answer;
use crate::control::routes::unescape;

/// One page request with its session.
pub struct Ctx<'a> {
    pub admin: &'a Admin,
    pub req: &'a Req,
    pub token: &'a str,
    pub session: &'a Session,
    pub form: Option<&'a Form>,
}

impl Ctx<'_> {
    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }

    /// Calls an API route; changes are audited as the admin's.
    pub fn call(&self, method: Method, uri: &str, body: &[u8]) -> Answer {
        server::call(self.admin, self.req, method, uri, body)
    }

    pub fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, b"")
    }

    /// One page of a paged API list (`{"items", "next"}`): `api` with the
    /// page's own `after` (its query string) added.
    pub fn get_page(&self, api: &str) -> Answer {
        let q = self.query();
        let Some(after) = q.text("after") else {
            return self.get(api);
        };
        let sep = if api.contains('?') { '&' } else { '?' };
        self.get(&format!("{api}{sep}after={}", html::seg(after)))
    }

    /// The "First page" and "Next page" links under a paged list: `base`
    /// is the page with its filters (its query string, if any, escaped).
    pub fn pager(&self, base: &str, a: &Answer) -> Markup {
        let later = self.query().text("after").is_some();
        pager_links(base, "after", "page", later, a)
    }

    pub fn send(&self, method: Method, uri: &str, body: &Value) -> Answer {
        self.call(method, uri, body.to_string().as_bytes())
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.and_then(|f| f.text(name))
    }

    /// The query string as a form.
    pub fn query(&self) -> Form {
        super::form::urlencoded(self.req.query.as_bytes())
    }

    pub fn render(&self, title: &str, active: &str, body: Markup) -> Resp {
        self.render_with(StatusCode::OK, title, active, None, body)
    }

    pub fn render_with(
        &self,
        status: StatusCode,
        title: &str,
        active: &str,
        error: Option<&str>,
        body: Markup,
    ) -> Resp {
        let flash = match (error, &self.session.flash) {
            (Some(e), _) => Some(Flash {
                text: e,
                error: true,
            }),
            (None, Some(f)) => Some(Flash {
                text: f,
                error: false,
            }),
            (None, None) => None,
        };
        server::page(
            status,
            html::page(title, active, Some(self.csrf()), flash, body),
        )
    }

    /// Redirects to `to` with a message shown there.
    pub fn done(&self, msg: impl Into<String>, to: &str) -> Resp {
        self.admin.sessions.flash(self.token, msg.into());
        server::redirect(to)
    }

    /// A page showing what went wrong with an API call.
    pub fn failed(&self, title: &str, active: &str, a: &Answer, back: &str) -> Resp {
        let body = html! {
            (line_errors(&a.body))
            p { a href=(back) { "Back" } }
        };
        self.render_with(status_of(a), title, active, Some(&error_text(a)), body)
    }
}

/// The "First page" and "Next page" links of one paged list whose cursor
/// is the query parameter `param` of `base`; `id` prefixes the links' ids.
/// `later` says the list shown is not the first page.
pub fn pager_links(base: &str, param: &str, id: &str, later: bool, a: &Answer) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    let next = a.body["next"].as_str();
    html! {
        @if later || next.is_some() {
            nav.pager {
                @if later {
                    a.btn.secondary.small id={ (id) "-first" } href=(base) { "First page" } " "
                }
                @if let Some(next) = next {
                    a.btn.secondary.small id={ (id) "-next" }
                        href={ (base) (sep) (param) "=" (html::seg(next)) } { "Next page" }
                }
            }
        }
    }
}

/// The items of a paged API answer.
pub fn items(a: &Answer) -> impl Iterator<Item = &Value> {
    a.body["items"].as_array().into_iter().flatten()
}

pub fn ok(a: &Answer) -> bool {
    a.status.is_success()
}

pub fn status_of(a: &Answer) -> StatusCode {
    if a.status.is_client_error() || a.status.is_server_error() {
        a.status
    } else {
        StatusCode::BAD_REQUEST
    }
}

pub fn error_text(a: &Answer) -> String {
    a.body["error"]
        .as_str()
        .unwrap_or("the request failed")
        .to_string()
}

/// Line-numbered CSV errors as a list, if the answer has any.
pub fn line_errors(body: &Value) -> Markup {
    let errs = body["errors"].as_array().filter(|e| !e.is_empty());
    html! {
        @if let Some(errs) = errs {
            ul.errors #line-errors {
                @for e in errs {
                    li { "Line " (cell(&e["line"])) ": " (e["message"].as_str().unwrap_or("")) }
                }
            }
        }
    }
}

/// An RFC 3339 time as `2026-11-27 12:08:10 UTC`, for tables.
pub fn when(v: &Value) -> String {
    match v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => cell(v),
    }
}

/// Text of a JSON scalar for a table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn handle(
    admin: &Admin,
    req: &Req,
    token: &str,
    session: &Session,
    form: Option<&Form>,
) -> Resp {
    let c = Ctx {
        admin,
        req,
        token,
        session,
        form,
    };
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(|s| unescape(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let post = req.method == Method::POST;
    match (post, segs.as_slice()) {
        (false, [""]) => server::redirect("/dashboard"),
        (false, ["dashboard"]) => system::dashboard(&c),
        (false, ["users"]) => users::list(&c),
        (false, ["users", "new"]) => users::new_form(&c, None),
        (true, ["users", "new"]) => users::add(&c),
        (false, ["users", "export.csv"]) => system::export(&c),
        (false, ["users", "import"]) => imports::csv_form(&c),
        (true, ["users", "import"]) => imports::csv_post(&c),
        (false, ["users", "import", id]) => imports::progress(&c, id),
        (false, ["users", "import-incoming"]) => imports::incoming_preview(&c),
        (true, ["users", "import-incoming"]) => imports::incoming_post(&c),
        (false, ["users", name]) => users::show(&c, name, None),
        (true, ["users", name]) => users::edit(&c, name),
        (true, ["users", name, "unlock"]) => users::unlock(&c, name),
        (true, ["users", name, "lock"]) => users::lock(&c, name),
        (true, ["users", name, "delete"]) => users::delete(&c, name),
        (false, ["incoming"]) => imports::incoming(&c),
        (true, ["incoming", "domains"]) => imports::add_domain(&c),
        (true, ["incoming", "domains", d, "delete"]) => imports::delete_domain(&c, d),
        (true, ["incoming", "users"]) => imports::add_incoming(&c),
        (true, ["incoming", "users", n, "delete"]) => imports::delete_incoming(&c, n),
        (true, ["incoming", "import"]) => imports::import_incoming_csv(&c),
        (false, ["queue"]) => system::queue(&c),
        (false, ["queue", id]) => system::queue_entry(&c, id),
        (true, ["queue", id, action @ ("retry" | "bounce" | "delete")]) => {
            system::queue_action(&c, id, action)
        }
        (false, ["quarantine"]) => system::quarantine(&c),
        (false, ["quarantine", id]) => system::quarantine_entry(&c, id),
        (
            true,
            [
                "quarantine",
                id,
                action @ ("release" | "release-copies" | "delete"),
            ],
        ) => system::quarantine_action(&c, id, action),
        (false, ["settings"]) => settings::settings(&c, None),
        (true, ["settings"]) => settings::save_settings(&c),
        (true, ["settings", "password"]) => settings::admin_password(&c),
        (false, ["dkim"]) => dkim::page(&c),
        (true, ["dkim"]) => dkim::generate(&c),
        (true, ["dkim", d, action @ ("rotate" | "activate" | "delete")]) => {
            dkim::action(&c, d, action)
        }
        (false, ["tls"]) => system::tls(&c, None),
        (true, ["tls"]) => system::upload_tls(&c),
        (false, ["appliance"]) => appliance::page(&c, None),
        (true, ["appliance", "ntp"]) => appliance::set_ntp(&c),
        (true, ["appliance", "factory-reset"]) => appliance::factory_reset(&c),
        (false, ["update"]) => update::page(&c, None),
        (true, ["update"]) => update::upload(&c),
        (false, ["audit"]) => system::audit(&c),
        (false, ["logs"]) => system::logs(&c),
        _ => c.render_with(
            StatusCode::NOT_FOUND,
            "Not found",
            "",
            Some("There is no such page."),
            html! { p { a href="/dashboard" { "Dashboard" } } },
        ),
    }
}
