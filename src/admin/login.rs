//! Logging in: the login form (with its own double-submit CSRF cookie),
//! the JSON login for API clients, the password check with its throttle
//! and audit, and the session cookies.

use hyper::StatusCode;

use super::server::{LOGIN_COOKIE, Req, Resp, SESSION_COOKIE, json, page, redirect, set_cookie};
use super::session::{self, Session};
use super::{Admin, csrf, form, html};
use crate::auth::throttle::Refusal;
use crate::control::{Answer, audit};

pub(super) fn session_view(admin: &Admin, s: &Session) -> serde_json::Value {
    serde_json::json!(crate::control::views::SessionView {
        csrf_token: &s.csrf,
        created: s.created,
        client: s.ip,
        idle_timeout_secs: admin.cfg.session_idle_secs,
        max_age_secs: admin.cfg.session_max_secs,
    })
}

/// Checks a login attempt: throttled per address and for the admin
/// account as a whole (the attempt reserved before the hash), the hash
/// bounded with the SMTP side's, failures audited coalesced.
/// On success, the tag of the password hash the new session depends on.
fn check_login(admin: &Admin, req: &Req, pw: &str) -> Result<[u8; 32], (StatusCode, &'static str)> {
    let app = &admin.ctl.app;
    let ticket = match admin.throttle.begin(req.ip, Some(ADMIN_ACCOUNT)) {
        Ok(t) => t,
        Err(refusal) => {
            let store = &app.store;
            admin.login_failures.record(
                store,
                app.clock.now(),
                req.ip,
                "login refused: throttled",
                429,
            );
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                match refusal {
                    Refusal::Address => "too many failed logins from your address; try again later",
                    Refusal::Account => {
                        "too many failed admin logins; try again later or from an address that logged in before"
                    }
                },
            ));
        }
    };
    let phc = app.store.admin_password().ok().flatten();
    let ok = match &phc {
        Some(h) => app.verifier.verify_blocking(pw, h),
        None => false,
    };
    if !ok {
        let verdict = admin.throttle.fail(ticket);
        if verdict.account_blocked {
            app.account_under_attack(ADMIN_ACCOUNT, req.ip, "admin HTTPS");
        }
        admin
            .login_failures
            .record(&app.store, app.clock.now(), req.ip, "login failed", 401);
        tracing::warn!(ip = %req.ip, "admin login failed");
        return Err((StatusCode::UNAUTHORIZED, "wrong password"));
    }
    admin.throttle.succeed(ticket);
    audit::record(&app.store, &req.who(), "login".into(), 200, String::new());
    tracing::info!(ip = %req.ip, "admin logged in");
    Ok(session::password_tag(phc.as_deref().unwrap_or("")))
}

/// The throttle's name for the one admin account.
const ADMIN_ACCOUNT: &str = "admin";

fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

pub(super) fn expire_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub(super) fn login_page(_admin: &Admin, req: &Req, error: Option<&str>) -> Resp {
    // Keep the browser's current login token: a second load of the form
    // (another tab, a favicon redirect) must not invalidate the first.
    let token = req
        .cookie(LOGIN_COOKIE)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(csrf::token, str::to_string);
    let body = maud::html! {
        form method="post" action="/login" class="login" {
            fieldset {
                legend { "Administrator login" }
                (html::csrf_field(&token))
                label { "Password" input type="password" name="password" autofocus required autocomplete="current-password"; }
                p.actions { button type="submit" { "Log in" } }
            }
        }
    };
    let flash = error.map(|text| html::Flash { text, error: true });
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut r = page(status, html::page("Log in", "", None, flash, body));
    set_cookie(
        &mut r,
        &format!("{LOGIN_COOKIE}={token}; Path=/login; Secure; HttpOnly; SameSite=Strict"),
    );
    r
}

pub(super) fn login_form(admin: &Admin, req: &Req) -> Resp {
    let f = form::urlencoded(&req.body);
    // Double submit: the form's token must be the one in its cookie, so
    // another site cannot log the browser in to an account of its own.
    if !csrf::matches(req.cookie(LOGIN_COOKIE).unwrap_or(""), f.get("csrf")) {
        return login_page(
            admin,
            req,
            Some("The login form expired; please try again."),
        );
    }
    match check_login(admin, req, f.get("password").unwrap_or("")) {
        Ok(tag) => {
            let (token, _) = admin.sessions.create(req.ip, tag);
            let mut r = redirect("/dashboard");
            set_cookie(&mut r, &session_cookie(&token));
            set_cookie(&mut r, &expire_cookie(LOGIN_COOKIE));
            r
        }
        Err((status, msg)) => {
            let mut r = login_page(admin, req, Some(msg));
            *r.status_mut() = status;
            r
        }
    }
}

/// JSON login for API clients. Requiring a JSON content type is the login
/// CSRF defence here: a cross-site form cannot send one without a CORS
/// preflight, which this server never grants.
pub(super) fn login_json(admin: &Admin, req: &Req) -> Resp {
    if !req.content_type().starts_with("application/json") {
        return json(Answer::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send {\"password\": ...} as application/json",
        ));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        password: String,
    }
    let login: Login = match serde_json::from_slice(&req.body) {
        Ok(l) => l,
        Err(e) => {
            return json(Answer::error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            ));
        }
    };
    match check_login(admin, req, &login.password) {
        Ok(tag) => {
            let (token, session) = admin.sessions.create(req.ip, tag);
            let mut r = json(Answer {
                status: StatusCode::CREATED,
                body: session_view(admin, &session),
            });
            set_cookie(&mut r, &session_cookie(&token));
            r
        }
        Err((status, msg)) => json(Answer::error(status, msg)),
    }
}
