//! Client side of the control API, used by the CLI: one request per
//! connection over the Unix socket (`request`), `call` turning an error
//! answer into a message, and the small helpers every command group uses.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

/// Sends one request; returns the status code and the JSON body.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, serde_json::Value), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            format!("cannot reach the daemon at {}: {e} (is `outguard serve` running, and are you root?)", socket.display())
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "outguard")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let json = serde_json::from_slice(&bytes).map_err(|e| format!("bad answer from daemon: {e}"))?;
        Ok((status, json))
    })
}

// What every CLI command group uses: one request, its error as a
// message (with the per-line errors of an import), and printing.

pub fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read password: {e}"))?;
    let p = s.lines().next().unwrap_or("").to_string();
    if p.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(p)
}

/// Path segment escaping for user names (which may hold '/' as CIDR).
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'@' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn query_pair(k: &str, v: &str) -> String {
    format!("{k}={}", seg(v))
}

/// Every item of a paged list (`GET` answering `{"items", "next"}`),
/// following `next` page by page, up to `max` items; as one JSON array.
pub fn call_pages(socket: &Path, path: &str, max: usize) -> Result<Value, String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    while items.len() < max {
        let limit = (max - items.len()).min(1000);
        let mut uri = format!("{path}{sep}limit={limit}");
        if let Some(a) = &after {
            uri.push_str(&format!("&after={}", seg(a)));
        }
        let mut page = call(socket, "GET", &uri, None)?;
        if let Some(Value::Array(mut got)) = page.get_mut("items").map(Value::take) {
            items.append(&mut got);
        }
        match page.get("next").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => after = Some(n.to_string()),
            _ => break,
        }
    }
    items.truncate(max);
    Ok(Value::Array(items))
}

pub fn call(socket: &Path, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    call_raw(
        socket,
        method,
        path,
        body.map(|b| b.to_string().into_bytes()),
    )
}

pub fn call_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Value, String> {
    let (status, v) = request(socket, method, path, body)?;
    if status >= 400 {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("request failed")
            .to_string();
        let details = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|errs| {
                errs.iter()
                    .map(|e| {
                        format!(
                            "\n  line {}: {}",
                            e["line"],
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<String>()
            })
            .unwrap_or_default();
        return Err(format!("{msg}{details}"));
    }
    Ok(v)
}

pub fn print_json(v: &Value) {
    crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}
