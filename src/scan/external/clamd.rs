//! ClamAV daemon client: `zINSTREAM` over a Unix or TCP socket.
//!
//! The command is `zINSTREAM\0`, followed by chunks `[u32 big-endian
//! length][bytes]` and a zero-length chunk; clamd answers one
//! NUL-terminated line: `stream: OK`, `stream: <Name> FOUND` or
//! `<text> ERROR`. clamd closes the connection when the stream exceeds its
//! `StreamMaxLength`, so a larger message is refused here before sending.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::{ClamdConfig, ErrorKind, ExternalError, Finding};
use crate::scan::Class;

pub const ENGINE: &str = "clamd";

/// Bytes sent per INSTREAM chunk.
const CHUNK: usize = 64 * 1024;
/// Longest reply accepted (a virus name is short; clamd's lines are < 1 KiB).
const MAX_REPLY: usize = 4096;

fn io_err(e: std::io::Error) -> ExternalError {
    ExternalError::new(ENGINE, ErrorKind::Io(e.to_string()))
}

/// Scans one message; the caller applies the timeout.
pub async fn scan(cfg: &ClamdConfig, message: &[u8]) -> Result<Finding, ExternalError> {
    if message.len() as u64 > cfg.max_stream_bytes {
        return Err(ExternalError::new(
            ENGINE,
            ErrorKind::TooLarge {
                size: message.len(),
                limit: cfg.max_stream_bytes,
            },
        ));
    }
    let reply = match (&cfg.socket, &cfg.address) {
        (Some(path), None) => {
            let stream = UnixStream::connect(path).await.map_err(|e| {
                ExternalError::new(
                    ENGINE,
                    ErrorKind::Io(format!("connect {}: {e}", path.display())),
                )
            })?;
            instream(stream, message).await?
        }
        (None, Some(addr)) => {
            let stream = TcpStream::connect(addr.as_str()).await.map_err(|e| {
                ExternalError::new(ENGINE, ErrorKind::Io(format!("connect {addr}: {e}")))
            })?;
            instream(stream, message).await?
        }
        _ => {
            return Err(ExternalError::new(
                ENGINE,
                ErrorKind::Config("set exactly one of `socket` and `address`".into()),
            ));
        }
    };
    parse_reply(&reply)
}

/// Streams the message and returns clamd's reply line.
async fn instream<S>(mut stream: S, message: &[u8]) -> Result<String, ExternalError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sent = send(&mut stream, message).await;
    // clamd may answer and close early (size limit, internal error): read its
    // reply even when sending failed, and only report the write error if
    // there is no reply to explain it.
    let reply = read_reply(&mut stream).await;
    match (sent, reply) {
        (_, Ok(r)) if !r.is_empty() => Ok(r),
        (Err(e), _) => Err(io_err(e)),
        (Ok(()), Ok(_)) => Err(ExternalError::new(
            ENGINE,
            ErrorKind::Protocol("connection closed without a reply".into()),
        )),
        (Ok(()), Err(e)) => Err(e),
    }
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) -> std::io::Result<()> {
    stream.write_all(b"zINSTREAM\0").await?;
    for chunk in message.chunks(CHUNK) {
        // Chunks are at most CHUNK bytes, so the length fits in u32.
        let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(chunk).await?;
    }
    stream.write_all(&0u32.to_be_bytes()).await?;
    stream.flush().await
}

/// Reads up to the terminating NUL (or EOF), at most [`MAX_REPLY`] bytes.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<String, ExternalError> {
    let mut buf = Vec::with_capacity(256);
    let mut limited = stream.take(MAX_REPLY as u64 + 1);
    let mut chunk = [0u8; 512];
    loop {
        let n = limited.read(&mut chunk).await.map_err(io_err)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&0) {
            break;
        }
        if buf.len() > MAX_REPLY {
            return Err(ExternalError::new(
                ENGINE,
                ErrorKind::Protocol(format!("reply longer than {MAX_REPLY} bytes")),
            ));
        }
    }
    if let Some(end) = buf.iter().position(|&b| b == 0) {
        buf.truncate(end);
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_owned())
}

/// Interprets clamd's reply to INSTREAM.
pub fn parse_reply(reply: &str) -> Result<Finding, ExternalError> {
    let reply = reply.trim_end_matches(['\0', '\n', '\r', ' ']);
    if let Some(text) = reply.strip_suffix(" ERROR") {
        return Err(ExternalError::new(
            ENGINE,
            ErrorKind::Engine(text.to_owned()),
        ));
    }
    let body = reply.strip_prefix("stream:").map(str::trim_start);
    match body {
        Some("OK") => Ok(Finding {
            engine: ENGINE,
            class: Class::Clean,
            score: None,
            reason: "no virus found".to_owned(),
        }),
        Some(b) => match b.strip_suffix(" FOUND") {
            Some(name) if !name.is_empty() => Ok(Finding {
                engine: ENGINE,
                class: Class::Malware,
                score: None,
                reason: format!("virus found: {name}"),
            }),
            _ => Err(ExternalError::new(
                ENGINE,
                ErrorKind::Protocol(format!("unexpected reply {reply:?}")),
            )),
        },
        None => Err(ExternalError::new(
            ENGINE,
            ErrorKind::Protocol(format!("unexpected reply {reply:?}")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply("stream: OK").expect("ok").class, Class::Clean);
        let f = parse_reply("stream: Eicar-Test-Signature FOUND").expect("found");
        assert_eq!(f.class, Class::Malware);
        assert_eq!(f.reason, "virus found: Eicar-Test-Signature");
        let e = parse_reply("INSTREAM size limit exceeded. ERROR").expect_err("error");
        assert_eq!(
            e.kind,
            ErrorKind::Engine("INSTREAM size limit exceeded.".into())
        );
        assert!(parse_reply("PONG").is_err());
        assert!(parse_reply("stream: FOUND").is_err());
    }

    #[tokio::test]
    async fn too_large_is_refused_before_connecting() {
        let cfg = ClamdConfig {
            address: Some("127.0.0.1:9".into()),
            max_stream_bytes: 10,
            ..ClamdConfig::default()
        };
        let e = scan(&cfg, &[b'x'; 11]).await.expect_err("too large");
        assert_eq!(
            e.kind,
            ErrorKind::TooLarge {
                size: 11,
                limit: 10
            }
        );
    }
}
