//! The HTTPS listener: TLS with the shared certificate, HTTP/1.1 by
//! hyper, then per request: static files, login and logout, the JSON API
//! (session + CSRF header), /metrics, or the pages (session + CSRF field).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::session::{self, Session};
use super::{Admin, csrf, form, html, metrics, pages};
use crate::auth::throttle::Refusal;
use crate::control::{Answer, audit, routes};

const MAX_BODY: usize = 16 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections served at once over all admin listeners; more wait in the
/// kernel's backlog. A handful of admins needs far fewer.
const MAX_CONNECTIONS: usize = 64;
pub const SESSION_COOKIE: &str = "og_session";
const LOGIN_COOKIE: &str = "og_login";
pub const CSRF_HEADER: &str = "x-csrf-token";
const STYLE: &str = include_str!("style.css");

pub type Resp = Response<Full<Bytes>>;

/// Serves the admin listeners until `shutdown` turns true.
pub async fn run(
    admin: Arc<Admin>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    for l in listeners {
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        tracing::info!(addr = %l.local_addr()?, "admin HTTPS listening");
        let (admin, slots, mut shutdown) = (admin.clone(), slots.clone(), shutdown.clone());
        tasks.spawn(async move {
            loop {
                let slot = tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => break,
                };
                let (tcp, peer) = tokio::select! {
                    a = l.accept() => match a {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = shutdown.changed() => break,
                };
                let admin = admin.clone();
                tokio::spawn(async move {
                    serve(admin, tcp, peer).await;
                    drop(slot);
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve(admin: Arc<Admin>, tcp: tokio::net::TcpStream, peer: SocketAddr) {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, admin.tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%ip, error = %e, "admin TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = service_fn(move |req| handle(admin.clone(), ip, req));
    let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
}

/// What a handler needs to know about the request.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub ip: IpAddr,
}

impl Req {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn uri(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    pub fn who(&self) -> String {
        format!("admin@{}", self.ip)
    }
}

async fn handle(
    admin: Arc<Admin>,
    ip: IpAddr,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    // An update bundle is the one body larger than a big CSV import.
    let limit = if crate::control::update::is_upload(&parts.method, parts.uri.path()) {
        crate::control::update::MAX_BUNDLE
    } else {
        MAX_BODY
    };
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(json(Answer::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {limit} octets"),
            )));
        }
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        ip,
    };
    // Password checks, store commits and page building are blocking work.
    let resp = tokio::task::spawn_blocking(move || dispatch(&admin, &req))
        .await
        .unwrap_or_else(|_| {
            json(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler failed",
            ))
        });
    Ok(resp)
}

fn dispatch(admin: &Admin, req: &Req) -> Resp {
    let is_api = req.path.starts_with("/v1/") || req.path == "/v1";
    // A browser tells where a request comes from; one from another site
    // is refused outright, whatever its cookies (defence in depth: the
    // cookies are SameSite=Strict and every change needs a CSRF token).
    if !same_origin(req) {
        tracing::warn!(ip = %req.ip, origin = ?req.headers.get(header::ORIGIN), host = ?req.headers.get(header::HOST), "cross-origin request refused");
        return deny(
            is_api,
            StatusCode::FORBIDDEN,
            "cross-origin request refused",
        );
    }
    match (&req.method, req.path.as_str()) {
        (&Method::GET, "/style.css") => {
            return response(StatusCode::OK, "text/css; charset=utf-8", STYLE.into());
        }
        (&Method::GET, "/v1/openapi.json") => return api(admin, req),
        (&Method::GET, "/favicon.ico") => {
            return response(StatusCode::NOT_FOUND, "text/plain", Bytes::new());
        }
        (&Method::GET, "/login") => return login_page(admin, req, None),
        (&Method::POST, "/login") => return login_form(admin, req),
        (&Method::POST, "/v1/session") => return login_json(admin, req),
        (&Method::GET, "/metrics") if admin.cfg.metrics_loopback && req.ip.is_loopback() => {
            return metrics::render(admin);
        }
        _ => {}
    }
    let token = req.cookie(SESSION_COOKIE).map(str::to_string);
    let session = token.as_deref().and_then(|t| admin.sessions.touch(t));
    let current = admin
        .ctl
        .app
        .store
        .admin_password()
        .ok()
        .flatten()
        .map(|phc| session::password_tag(&phc));
    let session = match (session, &token) {
        (Some(s), Some(t)) if Some(s.password) != current => {
            admin.sessions.remove(t);
            None
        }
        (s, _) => s,
    };
    let (Some(token), Some(session)) = (token, session) else {
        if is_api || req.path == "/metrics" {
            return deny(
                true,
                StatusCode::UNAUTHORIZED,
                "log in first (POST /v1/session)",
            );
        }
        if req.method == Method::GET {
            return redirect("/login");
        }
        return deny(
            false,
            StatusCode::UNAUTHORIZED,
            "your session has ended: log in again",
        );
    };
    let changes = !matches!(req.method, Method::GET | Method::HEAD);
    if changes && is_api {
        let given = req.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !csrf::matches(&session.csrf, given) {
            return deny(
                true,
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header",
            );
        }
    }
    match (&req.method, req.path.as_str()) {
        (&Method::GET, "/v1/session") => {
            return json(Answer::ok(session_view(admin, &session)));
        }
        (&Method::DELETE, "/v1/session") => {
            admin.sessions.remove(&token);
            audit::record(
                &admin.ctl.app.store,
                &req.who(),
                "logout".into(),
                200,
                String::new(),
            );
            let mut r = json(Answer::ok(serde_json::json!({ "logged_out": true })));
            set_cookie(&mut r, &expire_cookie(SESSION_COOKIE));
            return r;
        }
        (&Method::GET, "/metrics") => return metrics::render(admin),
        _ => {}
    }
    if is_api {
        return api(admin, req);
    }
    let form = if changes {
        match form::Form::parse(req.content_type(), &req.body) {
            Ok(f) if csrf::matches(&session.csrf, f.get("csrf")) => Some(f),
            Ok(_) => {
                return deny(
                    false,
                    StatusCode::FORBIDDEN,
                    "this form is out of date (missing or wrong CSRF token): go back, reload and try again",
                );
            }
            Err(e) => return deny(false, StatusCode::BAD_REQUEST, &e),
        }
    } else {
        None
    };
    if changes && req.path == "/logout" {
        admin.sessions.remove(&token);
        audit::record(
            &admin.ctl.app.store,
            &req.who(),
            "logout".into(),
            200,
            String::new(),
        );
        let mut r = redirect("/login");
        set_cookie(&mut r, &expire_cookie(SESSION_COOKIE));
        return r;
    }
    pages::handle(admin, req, &token, &session, form.as_ref())
}

/// Same-origin check on `Origin` (sent by browsers on POST and on
/// cross-origin requests); absent for non-browser clients. Pages are sent
/// with `Referrer-Policy: same-origin`: under `no-referrer` browsers send
/// `Origin: null` even for the page's own forms.
fn same_origin(req: &Req) -> bool {
    let Some(origin) = req
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .strip_prefix("https://")
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn session_view(admin: &Admin, s: &Session) -> serde_json::Value {
    serde_json::json!({
        "csrf_token": s.csrf,
        "created": s.created,
        "client": s.ip,
        "idle_timeout_secs": admin.cfg.session_idle_secs,
        "max_age_secs": admin.cfg.session_max_secs,
    })
}

/// Runs an API route as the Unix socket does, recording changes in the
/// audit log under the admin's name.
pub fn api(admin: &Admin, req: &Req) -> Resp {
    let uri: hyper::Uri = match req.uri().parse() {
        Ok(u) => u,
        Err(_) => return json(Answer::error(StatusCode::BAD_REQUEST, "malformed path")),
    };
    let answer = routes::route(&admin.ctl, &req.method, &uri, &req.body);
    after_call(admin, req, &req.method, &req.path, &answer);
    json(answer)
}

/// Calls an API route from a page (same audit as a direct call).
pub fn call(admin: &Admin, req: &Req, method: Method, uri: &str, body: &[u8]) -> Answer {
    let answer = match uri.parse::<hyper::Uri>() {
        Ok(u) => routes::route(&admin.ctl, &method, &u, body),
        Err(_) => Answer::error(StatusCode::BAD_REQUEST, "malformed path"),
    };
    let path = uri.split('?').next().unwrap_or(uri);
    after_call(admin, req, &method, path, &answer);
    answer
}

/// Audits a call. (A new admin password ends every session through the
/// password tag each session carries.)
fn after_call(admin: &Admin, req: &Req, method: &Method, path: &str, answer: &Answer) {
    audit::api_call(&admin.ctl.app.store, &req.who(), method, path, answer);
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

fn expire_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn login_page(_admin: &Admin, req: &Req, error: Option<&str>) -> Resp {
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
    let body = format!(
        r#"<form method="post" action="/login" class="login">
<fieldset><legend>Administrator login</legend>
<input type="hidden" name="csrf" value="{}">
<label>Password<input type="password" name="password" autofocus required autocomplete="current-password"></label>
<p class="actions"><button type="submit">Log in</button></p>
</fieldset></form>"#,
        html::esc(&token)
    );
    let flash = error.map(|text| html::Flash { text, error: true });
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut r = page(status, html::layout("Log in", "", None, flash, &body));
    set_cookie(
        &mut r,
        &format!("{LOGIN_COOKIE}={token}; Path=/login; Secure; HttpOnly; SameSite=Strict"),
    );
    r
}

fn login_form(admin: &Admin, req: &Req) -> Resp {
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
fn login_json(admin: &Admin, req: &Req) -> Resp {
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

pub fn response(status: StatusCode, content_type: &str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

pub fn json(answer: Answer) -> Resp {
    let mut text = serde_json::to_vec_pretty(&answer.body).unwrap_or_default();
    text.push(b'\n');
    response(answer.status, "application/json", text.into())
}

pub fn page(status: StatusCode, html: String) -> Resp {
    response(status, "text/html; charset=utf-8", html.into())
}

pub fn redirect(to: &str) -> Resp {
    let mut r = response(StatusCode::SEE_OTHER, "text/plain", Bytes::new());
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn set_cookie(r: &mut Resp, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// An error as JSON for the API, or as a small page for a browser.
fn deny(api: bool, status: StatusCode, msg: &str) -> Resp {
    if api {
        return json(Answer::error(status, msg));
    }
    let body =
        r#"<p><a href="/dashboard">Back to the dashboard</a> · <a href="/login">Log in</a></p>"#;
    page(
        status,
        html::layout(
            "Request refused",
            "",
            None,
            Some(html::Flash {
                text: msg,
                error: true,
            }),
            body,
        ),
    )
}
