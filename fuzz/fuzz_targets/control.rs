//! The control API's request handling: method, path, query and body sent
//! through the router the Unix socket serves (`control::socket_app`), on a
//! real store. Every answer must be a
//! JSON object with a status in 2xx/4xx; 5xx would mean a handler failed.
//! Password hashing is argon2 (tens of ms): CSV imports are kept to a few
//! lines so the loop stays fast.
#![no_main]

use std::sync::{Arc, OnceLock};

use hyper::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use outguard::app::App;
use outguard::config::Config;
use outguard::control::router::{Who, call};
use outguard::control::{Control, socket_app};

/// The socket's router over one control, and a runtime to drive it.
fn harness() -> &'static (axum::Router, tokio::runtime::Runtime) {
    static H: OnceLock<(axum::Router, tokio::runtime::Runtime)> = OnceLock::new();
    H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        (socket_app(Arc::new(control())), rt)
    })
}

fn control() -> Control {
    {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("outguard-fuzz-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fuzz data dir");
        let app = App::standalone(&dir).expect("app");
        let (cert, key) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
        outguard::tls::ensure_self_signed(&cert, &key, "outguard.test").expect("certificate");
        let (_, certs) = outguard::tls::server_config(&cert, &key).expect("certificate");
        Control {
            app: Arc::new(app),
            certs,
            config: Arc::new(Config::default()),
            delivery: Arc::new(outguard::delivery::Stats::default()),
            imports: Default::default(),
            data: Arc::new(outguard::datadir::DataDir::open(&dir, None).expect("fuzz data dir")),
        }
    }
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::PUT,
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = &METHODS[usize::from(m) % METHODS.len()];
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    if uri.path().contains("import") && body.iter().filter(|&&b| b == b'\n').count() > 3 {
        return;
    }
    let (app, rt) = harness();
    let who = Who("fuzz@control".into());
    let answer = rt.block_on(call(
        app.clone(),
        who,
        method.clone(),
        &uri.to_string(),
        body,
    ));
    assert!(
        answer.body.is_object() || answer.body.is_array(),
        "{:?}",
        answer.body
    );
    assert!(
        !answer.status.is_server_error(),
        "{method} {uri}: {} {}",
        answer.status,
        answer.body
    );
});
