//! The control API: HTTP/1.1 + JSON on a Unix socket in the data
//! directory. The socket file is made mode 0600 while the process is still
//! root, so only root can connect; the peer's credentials are checked
//! again on every connection. The CLI is its client.

pub mod appliance;
pub mod audit;
pub mod client;
pub mod dkim;
pub mod ext;
pub mod logs;
#[cfg(test)]
mod openapi;
pub mod router;
pub mod routes;
pub mod update;
pub(crate) mod views;

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::app::App;
use crate::config::Config;

const CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// How the audit log names changes made through the socket.
const SOCKET_WHO: &str = "root@control-socket";

pub struct Control {
    /// The house shared with the other faces.
    pub app: Arc<App>,
    pub config: Arc<Config>,
    /// The certificate served by every TLS listener, replaced on upload.
    pub certs: Arc<crate::tls::Certs>,
    pub delivery: Arc<crate::delivery::Stats>,
    /// Bulk user imports running in the background, and the last few done.
    pub imports: crate::import::job::Jobs,
    /// The data directory, opened before the privilege drop (its parents
    /// may not be searchable by the run user): files for the root side.
    pub data: Arc<crate::datadir::DataDir>,
}

/// Binds the control socket (0600, root's: only root and the daemon's
/// user may connect). A leftover entry is removed without following it,
/// and the umask makes the socket private from its creation, with no
/// chmod by path afterwards.
pub fn bind(
    _root: &crate::privilege::Privileged,
    data: &crate::datadir::DataDir,
    socket: &std::path::Path,
) -> Result<std::os::unix::net::UnixListener, String> {
    use nix::sys::stat::{Mode, umask};
    match data.relative(socket) {
        Some(rel) => data.remove(&rel)?,
        None => {
            let _ = std::fs::remove_file(socket);
        }
    }
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(socket);
    umask(old);
    bound.map_err(|e| format!("cannot bind {}: {e}", socket.display()))
}

/// What the socket serves: the API under `/v1`, bodies read whole and
/// bounded first (the fuzz target drives the same).
pub fn socket_app(ctl: Arc<Control>) -> axum::Router {
    axum::Router::new()
        .nest("/v1", router::api(ctl))
        .fallback(router::unknown_path)
        .layer(axum::middleware::from_fn(router::buffer_body))
}

pub async fn run(
    ctl: Arc<Control>,
    listener: std::os::unix::net::UnixListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    let me = nix::unistd::geteuid().as_raw();
    let app = socket_app(ctl);
    let who = router::Who(SOCKET_WHO.into());
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = shutdown.changed() => return Ok(()),
        };
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        if !matches!(peer, Some(uid) if uid == 0 || uid == me) {
            tracing::warn!(
                ?peer,
                "control connection refused: not root or the daemon's user"
            );
            continue;
        }
        let (app, who) = (app.clone(), who.clone());
        tokio::spawn(async move {
            // Every call of the connection is audited as root's.
            let service = service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(who.clone());
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

/// An API answer: status and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn ok(body: serde_json::Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
        }
    }
    pub fn error(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: serde_json::json!(ErrorBody {
                error: message.into(),
                errors: None,
            }),
        }
    }
}

// An error answer (`Error` in the OpenAPI description).
#[derive(serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Error))]
pub(crate) struct ErrorBody<'a> {
    /// What went wrong.
    pub error: String,
    /// The invalid lines of an import (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        test,
        schema(value_type = Vec<crate::import::LineError>, required = false)
    )]
    pub errors: Option<&'a [crate::import::LineError]>,
}
