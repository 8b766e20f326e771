//! Remote syslog: every log event also goes, as an RFC 5424 message, to a
//! collector over TLS (RFC 5425: octet-counted frames, port 6514 by
//! custom), configured by `[log] remote = "IP:port"` with `ca_file` (the
//! collector's CA; the system CAs otherwise) and `server_name` (the name
//! its certificate holds; the IP address otherwise).
//!
//! The tracing layer only formats and queues (bounded: when the collector
//! is slow or away, new events are dropped and counted, never waited on);
//! one thread, started once the daemon is confined, sends them and
//! reconnects with a growing backoff. The local log is unaffected.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::config::LogConfig;
use crate::logsafe::Fields;

/// Messages waiting for the collector; more are dropped (and counted).
const QUEUE: usize = 4096;
/// Longest message sent (RFC 5425 requires collectors to take 2048).
const MAX_MESSAGE: usize = 2048;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// RFC 5424 facility: mail system.
const FACILITY: u8 = 2;

static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The queue's receiving end, from the layer's creation until the sender
/// thread takes it.
static PENDING: OnceLock<Mutex<Option<Receiver<Vec<u8>>>>> = OnceLock::new();

/// The layer to add to the subscriber when `[log] remote` is set.
pub fn layer(cfg: &LogConfig, hostname: &str) -> Option<SyslogLayer> {
    if cfg.remote.is_empty() {
        return None;
    }
    let (tx, rx) = sync_channel(QUEUE);
    PENDING.get_or_init(|| Mutex::new(Some(rx)));
    Some(SyslogLayer {
        tx,
        hostname: header_field(hostname),
        pid: std::process::id(),
    })
}

/// An RFC 5424 header field: printable US-ASCII, no space, at most 255.
fn header_field(s: &str) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

pub struct SyslogLayer {
    tx: SyncSender<Vec<u8>>,
    hostname: String,
    pid: u32,
}

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl SyslogLayer {
    /// One RFC 5424 message: header, no structured data, the event's text.
    pub fn format(&self, level: &Level, target: &str, text: &str, now: jiff::Timestamp) -> Vec<u8> {
        let pri = FACILITY * 8 + severity(level);
        let now = now.round(jiff::Unit::Microsecond).unwrap_or(now);
        let mut m = format!(
            "<{pri}>1 {now} {} outguard {} - - {target}:{text}",
            self.hostname, self.pid
        );
        if m.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
        m.into_bytes()
    }
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The sender's own complaints stay local: they would queue behind
        // the very connection that fails.
        if meta.target() == module_path!() {
            return;
        }
        let mut text = Fields(String::new());
        event.record(&mut text);
        let msg = self.format(meta.level(), meta.target(), &text.0, jiff::Timestamp::now());
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the sender needs, prepared while the daemon may still read a
/// root-only CA file.
pub struct Prepared {
    addr: SocketAddr,
    name: rustls::pki_types::ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl Prepared {
    pub fn load(
        _root: &crate::privilege::Privileged,
        cfg: &LogConfig,
    ) -> Result<Option<Prepared>, String> {
        if cfg.remote.is_empty() {
            return Ok(None);
        }
        crate::config::check_remote(&cfg.remote)?;
        let addr: SocketAddr = cfg
            .remote
            .parse()
            .map_err(|e| format!("[log] remote: {e}"))?;
        let pem = if cfg.ca_file.as_os_str().is_empty() {
            None
        } else {
            Some(
                std::fs::read(&cfg.ca_file)
                    .map_err(|e| format!("[log] ca_file {}: {e}", cfg.ca_file.display()))?,
            )
        };
        let roots = match &pem {
            // Only the named CA: a private collector is trusted for this.
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut &pem[..]) {
                    let c = c.map_err(|e| format!("[log] ca_file: {e}"))?;
                    roots.add(c).map_err(|e| format!("[log] ca_file: {e}"))?;
                }
                Arc::new(roots)
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                Arc::new(roots)
            }
        };
        let name = if cfg.server_name.is_empty() {
            rustls::pki_types::ServerName::IpAddress(addr.ip().into())
        } else {
            rustls::pki_types::ServerName::try_from(cfg.server_name.clone())
                .map_err(|e| format!("[log] server_name: {e}"))?
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Some(Prepared {
            addr,
            name,
            tls: Arc::new(tls),
        }))
    }

    /// Starts the sender thread (call once confined: the thread inherits
    /// the jail).
    pub fn start(self) -> Result<(), String> {
        let rx = PENDING
            .get()
            .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take())
            .ok_or("remote syslog: logging was not set up for it")?;
        std::thread::Builder::new()
            .name("syslog".into())
            .spawn(move || self.run(rx))
            .map_err(|e| format!("remote syslog thread: {e}"))?;
        Ok(())
    }

    fn connect(&self) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
        let tcp = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))
            .and_then(|()| tcp.set_read_timeout(Some(WRITE_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), self.name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now, so a bad certificate shows here.
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(s)
    }

    fn run(self, rx: Receiver<Vec<u8>>) {
        let mut backoff = Duration::from_secs(1);
        let mut held: Option<Vec<u8>> = None;
        loop {
            let mut stream = match self.connect() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(collector = %self.addr, error = %e, "remote syslog unreachable");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_secs(1);
            tracing::info!(collector = %self.addr, "remote syslog connected");
            loop {
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let note = format!(
                        "{dropped} log message(s) dropped: the remote syslog queue was full"
                    );
                    tracing::warn!("{note}");
                }
                let msg = match held.take() {
                    Some(m) => m,
                    None => match rx.recv_timeout(Duration::from_secs(30)) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    },
                };
                let mut frame = format!("{} ", msg.len()).into_bytes();
                frame.extend_from_slice(&msg);
                if let Err(e) = stream.write_all(&frame).and_then(|()| stream.flush()) {
                    tracing::warn!(collector = %self.addr, error = %e, "remote syslog connection lost");
                    held = Some(msg);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_message() {
        let (tx, _rx) = sync_channel(1);
        let l = SyslogLayer {
            tx,
            hostname: header_field("relay 1.example"),
            pid: 42,
        };
        let t: jiff::Timestamp = "2026-12-06T17:00:00.123456789Z".parse().unwrap();
        let m = l.format(&Level::WARN, "outguard::x", " user locked user=a", t);
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "<20>1 2026-12-06T17:00:00.123457Z relay1.example outguard 42 - - outguard::x: user locked user=a"
        );
        let long = "x".repeat(5000);
        assert_eq!(l.format(&Level::INFO, "t", &long, t).len(), MAX_MESSAGE);
        assert!(crate::config::check_remote("127.0.0.1:6514").is_ok());
        assert!(crate::config::check_remote("[::1]:6514").is_ok());
        assert!(crate::config::check_remote("logs.example:6514").is_err());
    }
}
