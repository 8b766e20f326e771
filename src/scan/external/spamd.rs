//! SpamAssassin daemon client: the `SYMBOLS` command of the SPAMC/1.5
//! protocol over TCP.
//!
//! Request: `SYMBOLS SPAMC/1.5`, `Content-length`, optional `User`, a blank
//! line, the message. Reply: `SPAMD/1.1 0 EX_OK`, headers including
//! `Spam: True ; 15.2 / 5.0`, a blank line, and the comma-separated names
//! of the rules that hit.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ErrorKind, ExternalError, Finding, SpamdConfig};
use crate::scan::Class;

pub const ENGINE: &str = "spamd";

/// Longest reply accepted: headers plus the symbol list (a few hundred
/// bytes in practice).
const MAX_REPLY: u64 = 64 * 1024;

fn protocol(msg: impl Into<String>) -> ExternalError {
    ExternalError::new(ENGINE, ErrorKind::Protocol(msg.into()))
}

/// Scans one message; the caller applies the timeout.
pub async fn scan(cfg: &SpamdConfig, message: &[u8]) -> Result<Finding, ExternalError> {
    if let Some(user) = &cfg.user
        && (user.is_empty() || user.bytes().any(|b| b.is_ascii_control() || b == b' '))
    {
        return Err(ExternalError::new(
            ENGINE,
            ErrorKind::Config(format!("invalid user name {user:?}")),
        ));
    }
    if message.len() as u64 > cfg.max_message_bytes {
        return Ok(Finding {
            engine: ENGINE,
            class: Class::Clean,
            score: None,
            reason: format!(
                "not asked: {} bytes is over max_message_bytes ({})",
                message.len(),
                cfg.max_message_bytes
            ),
        });
    }
    let io = |what: &str, e: std::io::Error| {
        ExternalError::new(
            ENGINE,
            ErrorKind::Io(format!("{what} {}: {e}", cfg.address)),
        )
    };
    let mut stream = TcpStream::connect(cfg.address.as_str())
        .await
        .map_err(|e| io("connect", e))?;
    let mut head = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\n", message.len());
    if let Some(user) = &cfg.user {
        head.push_str(&format!("User: {user}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| io("write to", e))?;
    stream
        .write_all(message)
        .await
        .map_err(|e| io("write to", e))?;
    stream.shutdown().await.map_err(|e| io("write to", e))?;

    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY + 1)
        .read_to_end(&mut reply)
        .await
        .map_err(|e| io("read from", e))?;
    if reply.len() as u64 > MAX_REPLY {
        return Err(protocol(format!("reply longer than {MAX_REPLY} bytes")));
    }
    parse_reply(&reply)
}

/// Interprets a complete spamd reply to `SYMBOLS`.
pub fn parse_reply(reply: &[u8]) -> Result<Finding, ExternalError> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = match text.split_once("\r\n\r\n") {
        Some((h, b)) => (h, b),
        None => (text.trim_end(), ""),
    };
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.splitn(3, ' ');
    let proto = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    let message = parts.next().unwrap_or_default();
    if !proto.starts_with("SPAMD/") {
        return Err(protocol(format!("unexpected status line {status:?}")));
    }
    if code != "0" {
        return Err(ExternalError::new(
            ENGINE,
            ErrorKind::Engine(format!("{code} {message}")),
        ));
    }
    let mut spam = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol(format!("bad header line {line:?}")));
        };
        if name.trim().eq_ignore_ascii_case("Spam") {
            spam = Some(parse_spam_header(value.trim())?);
        }
    }
    let (is_spam, score, threshold) = spam.ok_or_else(|| protocol("no Spam header"))?;
    let symbols: Vec<&str> = body
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    Ok(Finding {
        engine: ENGINE,
        class: if is_spam { Class::Spam } else { Class::Clean },
        score: Some(score),
        reason: format!(
            "score {score:.1} / {threshold:.1}{}{}",
            if symbols.is_empty() { "" } else { ": " },
            symbols.join(",")
        ),
    })
}

/// `True ; 15.2 / 5.0` -> (true, 15.2, 5.0).
fn parse_spam_header(value: &str) -> Result<(bool, f64, f64), ExternalError> {
    let bad = || protocol(format!("bad Spam header {value:?}"));
    let (flag, scores) = value.split_once(';').ok_or_else(bad)?;
    let is_spam = match flag.trim() {
        f if f.eq_ignore_ascii_case("true") || f.eq_ignore_ascii_case("yes") => true,
        f if f.eq_ignore_ascii_case("false") || f.eq_ignore_ascii_case("no") => false,
        _ => return Err(bad()),
    };
    let (score, threshold) = scores.split_once('/').ok_or_else(bad)?;
    let score: f64 = score.trim().parse().map_err(|_| bad())?;
    let threshold: f64 = threshold.trim().parse().map_err(|_| bad())?;
    if !score.is_finite() || !threshold.is_finite() {
        return Err(bad());
    }
    Ok((is_spam, score, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_reply() {
        let f = parse_reply(
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 23\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,MISSING_DATE\r\n",
        )
        .expect("parse");
        assert_eq!(f.class, Class::Spam);
        assert_eq!(f.score, Some(1000.0));
        assert_eq!(f.reason, "score 1000.0 / 5.0: GTUBE,MISSING_DATE");
    }

    #[test]
    fn ham_reply_without_symbols() {
        let f = parse_reply(
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; -0.3 / 5.0\r\n\r\n",
        )
        .expect("parse");
        assert_eq!(f.class, Class::Clean);
        assert_eq!(f.score, Some(-0.3));
        assert_eq!(f.reason, "score -0.3 / 5.0");
    }

    #[tokio::test]
    async fn large_messages_are_not_sent() {
        // Nothing listens on the discard port: only a skip answers Ok.
        let cfg = SpamdConfig {
            address: "127.0.0.1:9".into(),
            max_message_bytes: 10,
            ..SpamdConfig::default()
        };
        let f = scan(&cfg, &[b'x'; 11]).await.expect("skipped");
        assert_eq!(f.class, Class::Clean);
        assert_eq!(f.score, None);
        assert!(f.reason.starts_with("not asked: 11 bytes"), "{}", f.reason);
    }

    #[test]
    fn errors() {
        let e = parse_reply(b"SPAMD/1.0 76 Bad header line: x\r\n").expect_err("engine error");
        assert_eq!(e.kind, ErrorKind::Engine("76 Bad header line: x".into()));
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\n\r\n").is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n").is_err());
        assert!(parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5\r\n\r\n").is_err());
    }
}
