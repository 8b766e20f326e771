//! The HTTPS listener: TLS with the shared certificate, HTTP/1.1 by
//! hyper, and one axum router: static files and login (public), then the
//! session middleware, then the JSON API of `control::router` behind the
//! CSRF-header middleware, /metrics, or the pages behind the CSRF-field
//! middleware. Every answer carries the security headers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use super::form::Form;
use super::login::{expire_cookie, login_form, login_json, login_page, session_view};
use super::session::{self, Session};
use super::{Admin, csrf, html, metrics, pages};
use crate::control::router::{self as api_router, Who, body_limit, read_body};
use crate::control::{Answer, audit};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections served at once over all admin listeners; more wait in the
/// kernel's backlog. A handful of admins needs far fewer.
const MAX_CONNECTIONS: usize = 64;
pub const SESSION_COOKIE: &str = "og_session";
pub(super) const LOGIN_COOKIE: &str = "og_login";
pub const CSRF_HEADER: &str = "x-csrf-token";
const STYLE: &str = include_str!("style.css");

pub type Resp = hyper::Response<Full<Bytes>>;

/// The client address of a connection (IPv4-mapped addresses as IPv4).
#[derive(Clone, Copy)]
struct Peer(IpAddr);

/// The session of a request that passed the session middleware.
#[derive(Clone)]
struct Authed {
    token: Arc<str>,
    session: Session,
}

/// Serves the admin listeners until `shutdown` turns true.
pub async fn run(
    admin: Arc<Admin>,
    listeners: Vec<std::net::TcpListener>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let app = router(admin.clone());
    for l in listeners {
        l.set_nonblocking(true)?;
        let l = TcpListener::from_std(l)?;
        tracing::info!(addr = %l.local_addr()?, "admin HTTPS listening");
        let (admin, slots, mut shutdown) = (admin.clone(), slots.clone(), shutdown.clone());
        let app = app.clone();
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
                let (admin, app) = (admin.clone(), app.clone());
                tokio::spawn(async move {
                    serve(admin, app, tcp, peer).await;
                    drop(slot);
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve(admin: Arc<Admin>, app: Router, tcp: tokio::net::TcpStream, peer: SocketAddr) {
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
    let who = Who(format!("admin@{ip}").into());
    let service = service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(Peer(ip));
        req.extensions_mut().insert(who.clone());
        app.clone().oneshot(req.map(Body::new))
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
}

/// The HTTPS routes. Public: the style sheet, the login form and JSON
/// login, the OpenAPI description, /metrics from loopback when allowed.
/// Everything else passes the session middleware first.
fn router(admin: Arc<Admin>) -> Router {
    let pages = Router::new()
        .fallback(page_fallback)
        .layer(middleware::from_fn_with_state(admin.clone(), csrf_field))
        .with_state(admin.clone());
    let v1 = api_router::api(admin.ctl.clone())
        .route(
            "/session",
            get(session_view_h)
                .delete(logout_json)
                .fallback(api_router::no_route)
                .with_state(admin.clone()),
        )
        .layer(middleware::from_fn_with_state(admin.clone(), csrf_header));
    let protected = Router::new()
        .nest_service("/v1", v1)
        .route(
            "/metrics",
            get(|State(admin): State<Arc<Admin>>| blocking(move || metrics::render(&admin)))
                .fallback_service(pages.clone()),
        )
        .fallback_service(pages)
        .layer(middleware::from_fn_with_state(admin.clone(), need_session))
        .with_state(admin.clone());
    let p = protected.clone();
    let metrics_loopback = move |State(admin): State<Arc<Admin>>, req: Request| async move {
        let ip = peer(&req);
        if admin.cfg.metrics_loopback && ip.is_loopback() {
            blocking(move || metrics::render(&admin)).await
        } else {
            p.oneshot(req).await.unwrap_or_else(|e| match e {})
        }
    };
    Router::new()
        .route(
            "/style.css",
            get(|| async {
                plain(response(
                    StatusCode::OK,
                    "text/css; charset=utf-8",
                    STYLE.into(),
                ))
            })
            .fallback_service(protected.clone()),
        )
        .route(
            "/favicon.ico",
            get(|| async { plain(response(StatusCode::NOT_FOUND, "text/plain", Bytes::new())) })
                .fallback_service(protected.clone()),
        )
        .route(
            "/v1/openapi.json",
            get(|| async {
                api_router::json(crate::control::ext::openapi().unwrap_or_else(|e| e))
            })
            .fallback_service(protected.clone()),
        )
        .route(
            "/login",
            get(with_req(|a, r| login_page(a, r, None)))
                .post(with_req(login_form))
                .fallback_service(protected.clone()),
        )
        .route(
            "/v1/session",
            post(with_req(login_json)).fallback_service(protected.clone()),
        )
        .route(
            "/metrics",
            get(metrics_loopback).fallback_service(protected.clone()),
        )
        .fallback_service(protected)
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(api_router::buffer_body))
        .layer(middleware::map_response(security_headers))
        .with_state(admin)
}

fn peer(req: &Request) -> IpAddr {
    req.extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0)
}

fn plain(r: Resp) -> Response {
    r.map(Body::new)
}

/// Runs blocking work (password checks, store commits, page building).
async fn blocking(f: impl FnOnce() -> Resp + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => plain(r),
        Err(_) => api_router::json(Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler failed",
        )),
    }
}

/// A handler from a blocking function of the request as [`Req`].
fn with_req<F>(
    f: F,
) -> impl Fn(State<Arc<Admin>>, Request) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>
+ Clone
+ Send
+ Sync
+ 'static
where
    F: Fn(&Admin, &Req) -> Resp + Copy + Send + Sync + 'static,
{
    move |State(admin), req| {
        Box::pin(async move {
            match to_req(req).await {
                Ok(req) => blocking(move || f(&admin, &req)).await,
                Err(r) => r,
            }
        })
    }
}

/// Reads the body (bounded) and takes the request apart for a handler.
async fn to_req(req: Request) -> Result<Req, Response> {
    let ip = peer(&req);
    let (parts, body) = req.into_parts();
    let body = read_body(body, body_limit(&parts.method, parts.uri.path())).await?;
    Ok(Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
        ip,
    })
}

/// Middleware: a browser tells where a request comes from; one from
/// another site is refused outright, whatever its cookies (defence in
/// depth: the cookies are SameSite=Strict and every change needs a CSRF
/// token).
async fn same_origin(req: Request, next: Next) -> Response {
    if !same_origin_headers(req.headers()) {
        let path = req.uri().path();
        let is_api = path.starts_with("/v1/") || path == "/v1";
        tracing::warn!(ip = %peer(&req), origin = ?req.headers().get(header::ORIGIN), host = ?req.headers().get(header::HOST), "cross-origin request refused");
        return plain(deny(
            is_api,
            StatusCode::FORBIDDEN,
            "cross-origin request refused",
        ));
    }
    next.run(req).await
}

/// Middleware: the security headers on every answer.
async fn security_headers(mut r: Response) -> Response {
    add_security_headers(r.headers_mut());
    r
}

/// Middleware: a live session (its cookie, not expired, made under the
/// current admin password), put in the request for the handlers.
async fn need_session(State(admin): State<Arc<Admin>>, mut req: Request, next: Next) -> Response {
    let token = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
    // The password tag is a store read: blocking work, as the handlers'.
    let (a, t) = (admin.clone(), token.clone());
    let session = tokio::task::spawn_blocking(move || current_session(&a, t.as_deref()))
        .await
        .ok()
        .flatten();
    let (Some(token), Some(session)) = (token, session) else {
        let path = req.uri().path();
        let is_api = path.starts_with("/v1/") || path == "/v1";
        if is_api || path == "/metrics" {
            return plain(deny(
                true,
                StatusCode::UNAUTHORIZED,
                "log in first (POST /v1/session)",
            ));
        }
        if req.method() == Method::GET {
            return plain(redirect("/login"));
        }
        return plain(deny(
            false,
            StatusCode::UNAUTHORIZED,
            "your session has ended: log in again",
        ));
    };
    req.extensions_mut().insert(Authed {
        token: token.into(),
        session,
    });
    next.run(req).await
}

/// The live session of `token`, if it was made under the current admin
/// password (a new password ends every session).
fn current_session(admin: &Admin, token: Option<&str>) -> Option<Session> {
    let token = token?;
    let session = admin.sessions.touch(token)?;
    let current = admin
        .ctl
        .app
        .store
        .admin_password()
        .ok()
        .flatten()
        .map(|phc| session::password_tag(&phc));
    if Some(session.password) != current {
        admin.sessions.remove(token);
        return None;
    }
    Some(session)
}

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

fn authed(req: &Request) -> Option<Authed> {
    req.extensions().get::<Authed>().cloned()
}

/// Middleware of the API on HTTPS: a change needs the session's CSRF
/// token in the `X-CSRF-Token` header.
async fn csrf_header(req: Request, next: Next) -> Response {
    if changes(req.method()) {
        let given = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let expected = authed(&req).map(|a| a.session.csrf);
        if !expected.is_some_and(|e| csrf::matches(&e, given)) {
            return plain(deny(
                true,
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header",
            ));
        }
    }
    next.run(req).await
}

/// Middleware of the pages: a change is a form (read whole, bounded)
/// carrying the session's CSRF token in its `csrf` field; the parsed form
/// goes into the request for the page.
async fn csrf_field(req: Request, next: Next) -> Response {
    if !changes(req.method()) {
        return next.run(req).await;
    }
    let expected = authed(&req).map(|a| a.session.csrf).unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    let body = match read_body(body, body_limit(&parts.method, parts.uri.path())).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // A form may be a 64 MiB upload: parsing it is blocking work.
    let b = body.clone();
    let parsed = tokio::task::spawn_blocking(move || Form::parse(&ct, &b))
        .await
        .unwrap_or_else(|_| Err("the form could not be read".into()));
    match parsed {
        Ok(f) if !expected.is_empty() && csrf::matches(&expected, f.get("csrf")) => {
            parts.extensions.insert(Arc::new(f));
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Ok(_) => plain(deny(
            false,
            StatusCode::FORBIDDEN,
            "this form is out of date (missing or wrong CSRF token): go back, reload and try again",
        )),
        Err(e) => plain(deny(false, StatusCode::BAD_REQUEST, &e)),
    }
}

/// The pages (and the logout form), behind the session and the CSRF field.
async fn page_fallback(State(admin): State<Arc<Admin>>, req: Request) -> Response {
    let (Some(authed), form) = (authed(&req), req.extensions().get::<Arc<Form>>().cloned()) else {
        return plain(redirect("/login"));
    };
    let req = match to_req(req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    blocking(move || {
        if changes(&req.method) && req.path == "/logout" {
            admin.sessions.remove(&authed.token);
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
        pages::handle(
            &admin,
            &req,
            &authed.token,
            &authed.session,
            form.as_deref(),
        )
    })
    .await
}

async fn session_view_h(State(admin): State<Arc<Admin>>, req: Request) -> Response {
    match authed(&req) {
        Some(a) => api_router::json(Answer::ok(session_view(&admin, &a.session))),
        None => api_router::json(Answer::error(StatusCode::UNAUTHORIZED, "log in first")),
    }
}

async fn logout_json(State(admin): State<Arc<Admin>>, req: Request) -> Response {
    let Some(a) = authed(&req) else {
        return api_router::json(Answer::error(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let who = format!("admin@{}", peer(&req));
    blocking(move || {
        admin.sessions.remove(&a.token);
        audit::record(
            &admin.ctl.app.store,
            &who,
            "logout".into(),
            200,
            String::new(),
        );
        let mut r = json(Answer::ok(serde_json::json!({ "logged_out": true })));
        set_cookie(&mut r, &expire_cookie(SESSION_COOKIE));
        r
    })
    .await
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
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
        cookie(&self.headers, name)
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn who(&self) -> String {
        format!("admin@{}", self.ip)
    }
}

/// Same-origin check on `Origin` (sent by browsers on POST and on
/// cross-origin requests); absent for non-browser clients. Pages are sent
/// with `Referrer-Policy: same-origin`: under `no-referrer` browsers send
/// `Origin: null` even for the page's own forms.
fn same_origin_headers(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .strip_prefix("https://")
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// Calls an API route from a page, through the API router as a direct
/// call goes (same validation, same audit under the admin's name). Runs on
/// a blocking thread (the pages do).
pub fn call(admin: &Admin, req: &Req, method: Method, uri: &str, body: &[u8]) -> Answer {
    let who = Who(req.who().into());
    tokio::runtime::Handle::current().block_on(api_router::call(
        admin.api.clone(),
        who,
        method,
        uri,
        body,
    ))
}

pub fn response(status: StatusCode, content_type: &str, body: Bytes) -> Resp {
    let mut r = hyper::Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    add_security_headers(h);
    r
}

/// The headers every HTTPS answer carries (those already set are kept).
fn add_security_headers(h: &mut HeaderMap) {
    let all = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in all {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
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

pub(super) fn set_cookie(r: &mut Resp, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// An error as JSON for the API, or as a small page for a browser.
pub(super) fn deny(api: bool, status: StatusCode, msg: &str) -> Resp {
    if api {
        return json(Answer::error(status, msg));
    }
    let body = maud::html! {
        p {
            a href="/dashboard" { "Back to the dashboard" }
            " · "
            a href="/login" { "Log in" }
        }
    };
    page(
        status,
        html::page(
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
