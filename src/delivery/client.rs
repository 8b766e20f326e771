//! A small SMTP client session (RFC 5321) over TCP, with STARTTLS
//! (rustls) and AUTH PLAIN/LOGIN: just what delivery to a next hop
//! needs. One `Session` carries several messages, with RSET between.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::store::envelope::{MessageDsn, RcptDsn, Ret, xtext};

/// Longest reply accepted (lines together), against a hostile peer.
const MAX_REPLY: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A reply of the next hop: code and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl std::fmt::Display for Reply {
    /// One line: "550 5.1.1 text / more text".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

#[derive(Debug)]
pub enum Error {
    /// The next hop answered with a negative reply.
    Reply(Reply),
    /// Connection or protocol trouble: always temporary.
    Io(String),
    /// The STARTTLS handshake failed (the connection is lost).
    Tls(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Reply(r) => r.fmt(f),
            Error::Io(e) | Error::Tls(e) => f.write_str(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// How to talk TLS to this host.
#[derive(Clone)]
pub struct TlsPolicy {
    /// Refuse to go on without TLS.
    pub required: bool,
    pub connector: TlsConnector,
}

/// Credentials for AUTH, sent only over TLS.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

pub struct Session {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    command_timeout: Duration,
    pub host: String,
    extensions: Vec<String>,
    pub tls: bool,
}

impl Session {
    /// Connects, reads the greeting, says EHLO, starts TLS (when offered
    /// and `try_tls`) and authenticates as the policy asks.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        addr: SocketAddr,
        host: &str,
        helo: &str,
        connect_timeout: Duration,
        command_timeout: Duration,
        tls: &TlsPolicy,
        try_tls: bool,
        auth: Option<&Credentials>,
    ) -> Result<Session> {
        let tcp = timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Io(format!("connect to {addr} timed out")))?
            .map_err(|e| Error::Io(format!("connect to {addr}: {e}")))?;
        tcp.set_nodelay(true)?;
        let mut s = Session {
            io: Box::new(tcp),
            buf: Vec::new(),
            command_timeout,
            host: host.to_string(),
            extensions: Vec::new(),
            tls: false,
        };
        s.expect(220).await?;
        s.ehlo(helo).await?;
        if s.has("STARTTLS") && (try_tls || tls.required) {
            s.command("STARTTLS").await?.ok(220)?;
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| Error::Io(format!("bad TLS name {host}: {e}")))?;
            // The buffer must be empty: anything after 220 would be an
            // injection attempt (CVE-2011-0411 style).
            if !s.buf.is_empty() {
                return Err(Error::Io("data after STARTTLS reply".into()));
            }
            let io = std::mem::replace(&mut s.io, Box::new(tokio::io::empty()));
            let stream = timeout(command_timeout, tls.connector.connect(name, io))
                .await
                .map_err(|_| Error::Tls("TLS handshake timed out".into()))?
                .map_err(|e| Error::Tls(format!("TLS handshake with {host}: {e}")))?;
            s.io = Box::new(stream);
            s.tls = true;
            s.ehlo(helo).await?;
        } else if tls.required {
            return Err(Error::Io(format!(
                "{host} does not offer STARTTLS, which is required"
            )));
        }
        if let Some(c) = auth {
            if !s.tls {
                return Err(Error::Io("refusing to send credentials without TLS".into()));
            }
            s.authenticate(c).await?;
        }
        Ok(s)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<()> {
        let r = self.command(&format!("EHLO {helo}")).await?;
        self.extensions = if r.code == 250 {
            r.lines
                .iter()
                .skip(1)
                .map(|l| l.to_ascii_uppercase())
                .collect()
        } else {
            self.command(&format!("HELO {helo}")).await?.ok(250)?;
            Vec::new()
        };
        Ok(())
    }

    /// Whether the next hop announced `ext` (upper case) in its EHLO reply.
    pub fn supports(&self, ext: &str) -> bool {
        self.has(ext)
    }

    fn has(&self, ext: &str) -> bool {
        self.extensions
            .iter()
            .any(|l| l.split_whitespace().next() == Some(ext))
    }

    fn auth_mechanisms(&self) -> Vec<String> {
        self.extensions
            .iter()
            .filter_map(|l| l.strip_prefix("AUTH "))
            .flat_map(|m| m.split_whitespace().map(str::to_string))
            .collect()
    }

    async fn authenticate(&mut self, c: &Credentials) -> Result<()> {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let mechs = self.auth_mechanisms();
        if mechs.iter().any(|m| m == "PLAIN") {
            let token = b64(format!("\0{}\0{}", c.user, c.password).as_bytes());
            self.command(&format!("AUTH PLAIN {token}"))
                .await?
                .ok(235)?;
        } else if mechs.iter().any(|m| m == "LOGIN") {
            self.command("AUTH LOGIN").await?.ok(334)?;
            self.command(&b64(c.user.as_bytes())).await?.ok(334)?;
            self.command(&b64(c.password.as_bytes())).await?.ok(235)?;
        } else {
            return Err(Error::Io(format!(
                "{} offers no AUTH mechanism we know (PLAIN, LOGIN)",
                self.host
            )));
        }
        Ok(())
    }

    /// Sends one command line and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply> {
        self.io.write_all(line.as_bytes()).await?;
        self.io.write_all(b"\r\n").await?;
        self.io.flush().await?;
        self.read_reply().await
    }

    /// MAIL FROM, with RET/ENVID when the next hop speaks DSN. `smtputf8`:
    /// the message needs SMTPUTF8, which the caller has seen offered.
    pub async fn mail_from(
        &mut self,
        sender: &str,
        size: usize,
        dsn: &MessageDsn,
        smtputf8: bool,
    ) -> Result<Reply> {
        let mut cmd = format!("MAIL FROM:<{sender}>");
        if smtputf8 {
            cmd.push_str(" SMTPUTF8");
        }
        if self.has("SIZE") {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        if self.has("8BITMIME") {
            cmd.push_str(" BODY=8BITMIME");
        }
        if self.has("DSN") {
            match dsn.ret {
                Some(Ret::Full) => cmd.push_str(" RET=FULL"),
                Some(Ret::Hdrs) => cmd.push_str(" RET=HDRS"),
                None => {}
            }
            if let Some(id) = &dsn.envid {
                cmd.push_str(&format!(" ENVID={}", xtext(id)));
            }
        }
        self.command(&cmd).await
    }

    /// RCPT TO, with NOTIFY/ORCPT when the next hop speaks DSN.
    pub async fn rcpt_to(&mut self, rcpt: &str, dsn: &RcptDsn) -> Result<Reply> {
        let mut cmd = format!("RCPT TO:<{rcpt}>");
        if self.has("DSN") {
            if let Some(n) = dsn.notify {
                let on: Vec<&str> = [
                    (n.success, "SUCCESS"),
                    (n.failure, "FAILURE"),
                    (n.delay, "DELAY"),
                ]
                .iter()
                .filter(|(set, _)| *set)
                .map(|(_, name)| *name)
                .collect();
                let list = if on.is_empty() {
                    "NEVER".to_string()
                } else {
                    on.join(",")
                };
                cmd.push_str(&format!(" NOTIFY={list}"));
            }
            if let Some(o) = &dsn.orcpt {
                cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(o)));
            }
        }
        self.command(&cmd).await
    }

    /// DATA, the dot-stuffed message and the final dot; returns the
    /// reply to the end of data.
    pub async fn data(&mut self, message: &[u8]) -> Result<Reply> {
        let r = self.command("DATA").await?;
        if r.code != 354 {
            return Ok(r);
        }
        let stuffed = dot_stuff(message);
        self.io.write_all(&stuffed).await?;
        self.io.write_all(b".\r\n").await?;
        self.io.flush().await?;
        self.read_reply().await
    }

    pub async fn rset(&mut self) -> Result<()> {
        self.command("RSET").await?.ok(250)
    }

    /// QUIT, then close our side (TLS close_notify, then FIN), so the next
    /// hop logs an orderly end rather than a lost connection.
    pub async fn quit(mut self) {
        let _ = timeout(Duration::from_secs(5), async {
            let _ = self.command("QUIT").await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }

    async fn expect(&mut self, code: u16) -> Result<()> {
        self.read_reply().await?.ok(code)
    }

    async fn read_reply(&mut self) -> Result<Reply> {
        timeout(self.command_timeout, self.read_reply_inner())
            .await
            .map_err(|_| Error::Io(format!("{} did not answer in time", self.host)))?
    }

    async fn read_reply_inner(&mut self) -> Result<Reply> {
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_line().await?;
            total += line.len();
            if total > MAX_REPLY {
                return Err(Error::Io("reply too long".into()));
            }
            let b = line.as_bytes();
            if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
                return Err(Error::Io(format!("malformed reply: {line:?}")));
            }
            let code: u16 = line[..3].parse().unwrap_or(0);
            let last = b.get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    async fn read_line(&mut self) -> Result<String> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=p).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_REPLY {
                return Err(Error::Io("reply line too long".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await?;
            if n == 0 {
                return Err(Error::Io(format!("{} closed the connection", self.host)));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

impl Reply {
    /// The reply as a result: Ok if it has the expected code.
    pub fn ok(self, code: u16) -> Result<()> {
        if self.code == code {
            Ok(())
        } else {
            Err(Error::Reply(self))
        }
    }
}

/// Doubles a leading dot on every line (RFC 5321 4.5.2) and makes sure
/// the message ends with CRLF before the final dot.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 2);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Client TLS configuration: the system CA store plus `extra` PEM roots
/// (a self-signed certificate among them is trusted as it is), or only
/// `pins` when there are any (see `pin`), or no verification at all when
/// `verify` is off.
pub fn tls_connector(
    verify: bool,
    extra_pem: Option<&[u8]>,
    pins: &[super::pin::Pin],
) -> std::result::Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?;
    let config = if verify || !pins.is_empty() {
        let mut roots = rustls::RootCertStore::empty();
        let mut listed = Vec::new();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "reading system CA certificates");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_pem {
            for c in rustls_pemfile::certs(&mut &pem[..]) {
                let c = c.map_err(|e| format!("CA file: {e}"))?;
                listed.push(c.clone());
                roots.add(c).map_err(|e| format!("CA file: {e}"))?;
            }
        }
        if roots.is_empty() && pins.is_empty() {
            // Fail closed, not at start: every certificate check fails (and
            // mail stays queued) until roots are installed.
            tracing::error!(
                "no CA certificates for the next hop: install ca-certificates or set delivery.ca_file"
            );
        }
        tracing::debug!(system = added, total = roots.len(), "CA roots loaded");
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("CA certificates: {e}"))?;
        let verifier = super::pin::Verifier {
            provider,
            inner,
            pins: pins.to_vec(),
            listed,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate: opportunistic TLS to MX hosts (RFC 7435),
/// where the alternative is plain text, and smarthosts with
/// `tls_verify = false`. Signatures are still checked, so the session
/// keys are bound to the certificate presented.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n");
        assert_eq!(dot_stuff(b"x"), b"x\r\n");
        assert_eq!(dot_stuff(b""), b"\r\n");
    }

    #[tokio::test]
    async fn reads_multiline_replies() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"250-first\r\n250-SIZE 10\r\n250 last\r\n")
            .await
            .unwrap();
        let mut s = Session {
            io: Box::new(a),
            buf: Vec::new(),
            command_timeout: Duration::from_secs(5),
            host: "h".into(),
            extensions: Vec::new(),
            tls: false,
        };
        let r = s.read_reply().await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, ["first", "SIZE 10", "last"]);
        assert_eq!(r.to_string(), "250 first / SIZE 10 / last");
    }
}
