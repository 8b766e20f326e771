//! The one route table of the JSON API: an axum `Router` of the `/v1`
//! routes, served as it is on the Unix socket (`control::run`) and behind
//! the session and CSRF middleware on HTTPS (`admin::server`). Handlers run
//! on a blocking thread (argon2, store commits) and answer JSON; every call
//! is audited under the caller's name (the [`Who`] extension its transport
//! set). Paths here lie under `/v1`, where the callers nest the router.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, OriginalUri, Path, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{RequestPartsExt, Router};
use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, StatusCode};

use super::routes::{self, bad, incoming, quarantine, queue, users};
use super::{Answer, Control, appliance, audit, dkim, ext, update};

/// Largest request body (a CSV import of many thousands of users); an
/// update bundle has its own, larger bound (`update::MAX_BUNDLE`).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Who makes the calls of a connection, as the audit log names them: set
/// by the transport (`root@control-socket`, `admin@ADDRESS`).
#[derive(Clone)]
pub struct Who(pub Arc<str>);

/// A route's handler: the control and the call to an answer.
pub type Handler = fn(&Control, &Call) -> Result<Answer, Answer>;

/// One API call, taken apart: its path parameters, query pairs and body.
pub struct Call {
    ctl: Arc<Control>,
    who: Option<Who>,
    method: Method,
    /// The path as the client sent it (the router sees it without `/v1`).
    path: String,
    pub params: Vec<String>,
    pub q: Vec<(String, String)>,
    pub body: Bytes,
}

impl Call {
    /// The first path parameter.
    pub fn p(&self) -> &str {
        self.params.first().map_or("", String::as_str)
    }

    /// Refuses a boolean query parameter other than true/false/1/0, so
    /// that `?preview=maybe` is an error rather than a silent "no".
    pub fn flags(&self, keys: &[&str]) -> Result<(), Answer> {
        for (k, v) in &self.q {
            if keys.contains(&k.as_str()) && !["true", "false", "1", "0"].contains(&v.as_str()) {
                return Err(bad(format!("{k} must be true or false, not '{v}'")));
            }
        }
        Ok(())
    }

    /// The 404 of a path or method under `/v1` that no route serves.
    fn no_route(&self) -> Answer {
        let (m, path) = (&self.method, &self.path);
        Answer::error(StatusCode::NOT_FOUND, format!("no route {m} {path}"))
    }

    /// Runs `f` on a blocking thread, audits the call, answers JSON.
    /// `f` is a plain function (the routes' closures capture nothing), so
    /// one copy of this future serves every route.
    pub async fn run(self, f: Handler) -> Response {
        let answer = tokio::task::spawn_blocking(move || {
            let answer = f(&self.ctl, &self).unwrap_or_else(|e| e);
            if let Some(who) = &self.who {
                let (store, m) = (&self.ctl.app.store, &self.method);
                audit::api_call(store, &who.0, m, &self.path, &answer);
            }
            answer
        })
        .await
        .unwrap_or_else(|_| Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "handler failed"));
        json(answer)
    }
}

/// One call through `app` as `who`, to its JSON answer: how a page calls
/// the API (admin::server::call) and how the fuzz target drives it.
pub async fn call(app: Router, who: Who, method: Method, uri: &str, body: &[u8]) -> Answer {
    use tower::ServiceExt;
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .extension(who)
        .body(Body::from(Bytes::copy_from_slice(body)));
    let Ok(request) = request else {
        return Answer::error(StatusCode::BAD_REQUEST, "malformed path");
    };
    let resp = app.oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = resp.status();
    match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => Answer {
            status,
            body: serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        },
        Err(e) => Answer::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The largest body `method` on `path` may carry.
pub fn body_limit(method: &Method, path: &str) -> usize {
    if update::is_upload(method, path) {
        update::MAX_BUNDLE
    } else {
        MAX_BODY
    }
}

/// Reads a whole body of at most `limit` octets; over it, the 413 answer.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        json(Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {limit} octets"),
        ))
    })
}

/// Middleware of both transports: reads the whole body first, bounded by
/// [`body_limit`] (over it, 413). An answer given before the body was read
/// (a refusal by a middleware) would otherwise close the connection on
/// unread data, and the client could lose the answer to the reset.
pub async fn buffer_body(req: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path().to_string(), |o| o.0.path().to_string());
    match read_body(body, body_limit(&parts.method, &path)).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(r) => r,
    }
}

impl FromRequest<Arc<Control>> for Call {
    type Rejection = Response;

    async fn from_request(req: Request, ctl: &Arc<Control>) -> Result<Call, Response> {
        let (mut parts, body) = req.into_parts();
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let params = match parts.extract::<Option<Path<Vec<String>>>>().await {
            Ok(p) => p.map(|Path(v)| v).unwrap_or_default(),
            Err(e) => return Err(json(bad(format!("malformed path: {}", e.body_text())))),
        };
        let limit = body_limit(&parts.method, uri.path());
        let body = read_body(body, limit).await?;
        Ok(Call {
            ctl: ctl.clone(),
            who: parts.extensions.get::<Who>().cloned(),
            method: parts.method,
            path: uri.path().to_string(),
            params,
            q: routes::query(&uri),
            body,
        })
    }
}

/// An API answer as the response: pretty JSON and a newline.
pub fn json(answer: Answer) -> Response {
    let mut text = serde_json::to_vec_pretty(&answer.body).unwrap_or_default();
    text.push(b'\n');
    let mut r = (answer.status, text).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A handler from a function of the control and the call.
macro_rules! h {
    ($f:expr) => {
        |call: Call| call.run($f)
    };
}

/// The `/v1` routes (nested under `/v1` by the transports), with the
/// API's 404 for any other path or method under it.
pub fn api(ctl: Arc<Control>) -> Router {
    Router::new()
        .route("/health", get(h!(|c, _| Ok(routes::health(c)))))
        .route("/openapi.json", get(h!(|_, _| ext::openapi())))
        .route("/dashboard", get(h!(|c, _| ext::dashboard(c))))
        .route("/audit", get(h!(|c, a| ext::audit(c, &a.q))))
        .route("/logs", get(h!(|_, a| ext::logs(&a.q))))
        .merge(users_routes())
        .merge(incoming_routes())
        .route(
            "/settings",
            get(h!(|c, _| routes::show_settings(c)))
                .patch(h!(|c, a| routes::edit_settings(c, &a.body))),
        )
        .route("/queue", get(h!(|c, a| queue::list_queue(c, &a.q))))
        .route(
            "/queue/{id}",
            get(h!(|c, a| queue::show_queue(c, a.p())))
                .delete(h!(|c, a| queue::delete_queue(c, a.p()))),
        )
        .route(
            "/queue/{id}/retry",
            post(h!(|c, a| queue::retry_queue(c, a.p()))),
        )
        .route(
            "/queue/{id}/bounce",
            post(h!(|c, a| queue::bounce_queue(c, a.p()))),
        )
        .route(
            "/quarantine",
            get(h!(|c, a| quarantine::list_quarantine(c, &a.q))),
        )
        .route(
            "/quarantine/{id}",
            get(h!(|c, a| quarantine::show_quarantine(c, a.p())))
                .delete(h!(|c, a| quarantine::delete_quarantine(c, a.p()))),
        )
        .route(
            "/quarantine/{id}/release",
            post(h!(|c, a| quarantine::release_quarantine(c, a.p(), &a.q))),
        )
        .route(
            "/debug/clock",
            put(h!(|c, a| routes::set_clock(c, &a.body))),
        )
        .route("/dkim", get(h!(|c, a| dkim::list(c, &a.q))))
        .route(
            "/dkim/{domain}",
            get(h!(|c, a| dkim::show(c, a.p())))
                .post(h!(|c, a| dkim::generate(c, a.p(), &a.body)))
                .delete(h!(|c, a| dkim::delete(c, a.p(), &a.q))),
        )
        .route(
            "/dkim/{domain}/rotate",
            post(h!(|c, a| dkim::rotate(c, a.p(), &a.body))),
        )
        .route(
            "/dkim/{domain}/activate",
            post(h!(|c, a| dkim::activate(c, a.p()))),
        )
        .route("/appliance", get(h!(|c, _| appliance::status(c))))
        .route(
            "/appliance/ntp",
            put(h!(|c, a| appliance::set_ntp(c, &a.body))),
        )
        .route(
            "/appliance/factory-reset",
            post(h!(|c, a| appliance::factory_reset(c, &a.body))),
        )
        .route("/system", get(h!(|c, _| Ok(update::system(c)))))
        .route(
            "/system/update",
            post(h!(|c, a| update::upload(c, &a.body))),
        )
        .route(
            "/tls/certificate",
            get(h!(|c, _| ext::show_cert(c))).put(h!(|c, a| ext::put_cert(c, &a.body))),
        )
        .route(
            "/admin/password",
            put(h!(|c, a| ext::set_admin_password(c, &a.body))),
        )
        // Audited like any call: a change sent to no route is recorded too.
        .fallback(h!(|_, a| Err(a.no_route())))
        .method_not_allowed_fallback(h!(|_, a| Err(a.no_route())))
        .with_state(ctl)
}

fn users_routes() -> Router<Arc<Control>> {
    const IMPORT_FLAGS: &[&str] = &["skip_invalid", "preview", "background"];
    Router::new()
        .route(
            "/users",
            get(h!(|c, a| users::list_users(c, &a.q))).post(h!(|c, a| users::add_user(c, &a.body))),
        )
        .route(
            "/users/export",
            get(h!(|c, _| users::export_users(c))).fallback(h!(|c, a| user_named(c, a, "export"))),
        )
        .route(
            "/users/import",
            post(h!(|c, a| {
                a.flags(IMPORT_FLAGS)?;
                if routes::flag(&a.q, "preview") {
                    users::preview_import(c, &a.body)
                } else {
                    users::import_users(c, &a.q, &a.body)
                }
            }))
            .fallback(h!(|c, a| user_named(c, a, "import"))),
        )
        .route(
            "/users/import/{id}",
            get(h!(|c, a| users::import_progress(c, a.p()))).fallback(h!(|c, a| {
                match (&a.method, a.p()) {
                    (&Method::POST, "lock") => users::lock_user(c, "import", &a.body),
                    (&Method::POST, "unlock") => users::unlock_user(c, "import"),
                    _ => Err(a.no_route()),
                }
            })),
        )
        .route(
            "/users/import-incoming",
            post(h!(|c, a| {
                a.flags(&["preview"])?;
                incoming::import_incoming(c, &a.q)
            }))
            .fallback(h!(|c, a| user_named(c, a, "import-incoming"))),
        )
        .route(
            "/users/{name}",
            get(h!(|c, a| users::show_user(c, a.p())))
                .patch(h!(|c, a| users::edit_user(c, a.p(), &a.body)))
                .delete(h!(|c, a| users::delete_user(c, a.p()))),
        )
        .route(
            "/users/{name}/lock",
            post(h!(|c, a| users::lock_user(c, a.p(), &a.body))),
        )
        .route(
            "/users/{name}/unlock",
            post(h!(|c, a| users::unlock_user(c, a.p()))),
        )
}

fn incoming_routes() -> Router<Arc<Control>> {
    Router::new()
        .route(
            "/incoming/domains",
            get(h!(|c, a| incoming::list_domains(c, &a.q)))
                .post(h!(|c, a| incoming::add_domain(c, &a.body))),
        )
        .route(
            "/incoming/domains/{domain}",
            delete(h!(|c, a| incoming::delete_domain(c, a.p()))),
        )
        .route(
            "/incoming/users",
            get(h!(|c, a| incoming::list_incoming(c, &a.q)))
                .post(h!(|c, a| incoming::add_incoming(c, &a.body))),
        )
        .route(
            "/incoming/users/import",
            post(h!(|c, a| {
                a.flags(&["skip_invalid"])?;
                incoming::import_incoming_csv(c, &a.q, &a.body)
            }))
            .fallback(h!(|c, a| match a.method {
                Method::DELETE => incoming::delete_incoming(c, "import"),
                _ => Err(a.no_route()),
            })),
        )
        .route(
            "/incoming/users/{name}",
            delete(h!(|c, a| incoming::delete_incoming(c, a.p()))),
        )
}

/// Other methods on a static path that is also a user's name (`export`,
/// `import`, `import-incoming`) reach the user routes with that name, as
/// when routes were matched segment by segment.
fn user_named(c: &Control, a: &Call, name: &str) -> Result<Answer, Answer> {
    match a.method {
        Method::GET => users::show_user(c, name),
        Method::PATCH => users::edit_user(c, name, &a.body),
        Method::DELETE => users::delete_user(c, name),
        _ => Err(a.no_route()),
    }
}

/// The 404 of a path or method under `/v1` that no route serves.
pub async fn no_route(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    json(Answer::error(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
    ))
}

/// The 404 of a path outside `/v1`.
pub async fn unknown_path() -> Response {
    json(routes::not_found("unknown path; the API lives under /v1/"))
}
