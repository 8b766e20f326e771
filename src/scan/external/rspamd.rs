//! rspamd client: `POST /checkv2` over HTTP/1.1 (plain TCP), one request
//! per connection. The JSON reply carries `action`, `score`,
//! `required_score` and a `symbols` object; `reject`, `add header` and
//! `rewrite subject` classify the message as spam.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::{ErrorKind, ExternalError, Finding, RspamdConfig};
use crate::scan::Class;

pub const ENGINE: &str = "rspamd";

/// Longest reply body accepted. A checkv2 answer is a few KiB; symbol
/// options can make it larger, never anywhere near this.
const MAX_REPLY: usize = 1 << 20;
/// Symbols listed in the finding's reason, highest scores first.
const MAX_SYMBOLS_SHOWN: usize = 20;

fn protocol(msg: impl Into<String>) -> ExternalError {
    ExternalError::new(ENGINE, ErrorKind::Protocol(msg.into()))
}

/// Where to send requests, from a `http://host[:port][/prefix]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path of the check endpoint, e.g. `/checkv2`.
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(format!("{url:?}: bad host"));
        }
        let has_port = match authority.rsplit_once(':') {
            // IPv6 literals are bracketed: `[::1]:11333`.
            Some((host, port)) if !port.contains(']') => {
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(format!("{url:?}: bad port"));
                }
                true
            }
            _ => false,
        };
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        if prefix.contains(['?', '#', ' ']) {
            return Err(format!("{url:?}: bad path"));
        }
        Ok(Self {
            authority,
            path: format!("{}/checkv2", prefix.trim_end_matches('/')),
        })
    }
}

/// Scans one message; the caller applies the timeout.
pub async fn scan(cfg: &RspamdConfig, message: &[u8]) -> Result<Finding, ExternalError> {
    let endpoint =
        Endpoint::parse(&cfg.url).map_err(|e| ExternalError::new(ENGINE, ErrorKind::Config(e)))?;
    let io = |what: &str, e: &dyn std::fmt::Display| {
        ExternalError::new(
            ENGINE,
            ErrorKind::Io(format!("{what} {}: {e}", endpoint.authority)),
        )
    };
    let stream = TcpStream::connect(endpoint.authority.as_str())
        .await
        .map_err(|e| io("connect", &e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io("connect", &e))?;

    let mut req = Request::post(endpoint.path.as_str())
        .header(hyper::header::HOST, endpoint.authority.as_str())
        .header(hyper::header::CONTENT_LENGTH, message.len())
        .header(hyper::header::CONNECTION, "close");
    if let Some(pw) = &cfg.password {
        req = req.header("Password", pw.as_str());
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(message)))
        .map_err(|e| ExternalError::new(ENGINE, ErrorKind::Config(e.to_string())))?;

    let exchange = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| io("request to", &e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| protocol(format!("reading the reply: {e}")))?
            .to_bytes();
        Ok::<_, ExternalError>((status, body))
    };
    // Drive the connection in this task (no spawned task outlives a
    // timeout); if it ends first, the response may still be buffered.
    tokio::pin!(exchange);
    let (status, body) = tokio::select! {
        biased;
        r = &mut exchange => r?,
        c = conn => {
            c.map_err(|e| io("connection to", &e))?;
            exchange.await?
        }
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(ExternalError::new(
            ENGINE,
            ErrorKind::Engine(format!("HTTP {status}: {}", text.trim())),
        ));
    }
    parse_reply(&body)
}

#[derive(Debug, Deserialize)]
struct Reply {
    action: Option<String>,
    score: Option<f64>,
    required_score: Option<f64>,
    #[serde(default)]
    is_skipped: bool,
    #[serde(default)]
    symbols: BTreeMap<String, Symbol>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Symbol {
    #[serde(default)]
    score: f64,
}

/// Interprets the JSON body of a checkv2 reply.
pub fn parse_reply(body: &[u8]) -> Result<Finding, ExternalError> {
    let reply: Reply =
        serde_json::from_slice(body).map_err(|e| protocol(format!("bad JSON reply: {e}")))?;
    if let Some(e) = reply.error {
        return Err(ExternalError::new(ENGINE, ErrorKind::Engine(e)));
    }
    let action = reply
        .action
        .ok_or_else(|| protocol("reply without action"))?;
    let score = reply.score.ok_or_else(|| protocol("reply without score"))?;
    if !score.is_finite() {
        return Err(protocol("score is not a number"));
    }
    let class = match action.as_str() {
        "reject" | "add header" | "rewrite subject" => Class::Spam,
        // Greylisting and soft rejects are about timing, not content.
        "no action" | "greylist" | "soft reject" => Class::Clean,
        other => return Err(protocol(format!("unknown action {other:?}"))),
    };
    let mut symbols: Vec<(&String, f64)> =
        reply.symbols.iter().map(|(n, s)| (n, s.score)).collect();
    symbols.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let shown: Vec<String> = symbols
        .iter()
        .take(MAX_SYMBOLS_SHOWN)
        .map(|(n, s)| format!("{n}({s:.1})"))
        .collect();
    let mut reason = format!("action {action:?}, score {score:.1}");
    if let Some(req) = reply.required_score {
        reason.push_str(&format!(" / {req:.1}"));
    }
    if reply.is_skipped {
        reason.push_str(", skipped");
    }
    if !shown.is_empty() {
        reason.push_str(": ");
        reason.push_str(&shown.join(","));
        if symbols.len() > MAX_SYMBOLS_SHOWN {
            reason.push_str(",...");
        }
    }
    Ok(Finding {
        engine: ENGINE,
        class,
        score: Some(score),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:11333").expect("parse");
        assert_eq!(e.authority, "127.0.0.1:11333");
        assert_eq!(e.path, "/checkv2");
        let e = Endpoint::parse("http://rspamd.local/spam/").expect("parse");
        assert_eq!(e.authority, "rspamd.local:80");
        assert_eq!(e.path, "/spam/checkv2");
        let e = Endpoint::parse("http://[::1]:11333").expect("parse");
        assert_eq!(e.authority, "[::1]:11333");
        assert!(Endpoint::parse("https://127.0.0.1").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(Endpoint::parse("http://h:99999").is_err());
        assert!(Endpoint::parse("http://u@h:1").is_err());
    }

    #[test]
    fn gtube_reply() {
        let f = parse_reply(
            br#"{"is_skipped":false,"score":0.0,"required_score":15.0,"action":"reject",
                "symbols":{"GTUBE":{"name":"GTUBE","score":0.0},"MIME_GOOD":{"name":"MIME_GOOD","score":-0.1}},
                "messages":{"smtp_message":"Gtube pattern"}}"#,
        )
        .expect("parse");
        assert_eq!(f.class, Class::Spam);
        assert_eq!(f.score, Some(0.0));
        assert_eq!(
            f.reason,
            "action \"reject\", score 0.0 / 15.0: GTUBE(0.0),MIME_GOOD(-0.1)"
        );
    }

    #[test]
    fn clean_and_bad_replies() {
        let f =
            parse_reply(br#"{"score":1.5,"required_score":15,"action":"no action","symbols":{}}"#)
                .expect("parse");
        assert_eq!(f.class, Class::Clean);
        assert!(parse_reply(br#"{"error":"cannot parse input"}"#).is_err());
        assert!(parse_reply(br#"{"score":1,"action":"discard"}"#).is_err());
        assert!(parse_reply(br#"{"action":"reject"}"#).is_err());
        assert!(parse_reply(b"<html>").is_err());
    }
}
