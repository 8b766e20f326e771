//! og-loadgen: an SMTP load generator for Outguard's benchmarks, and a
//! trivial STARTTLS sink to measure the generator's own ceiling.
//!
//! `og-loadgen gen --addr 127.0.0.1:PORT --sessions N --count M --duration-secs D
//!     [--starttls] [--auth USER:PASS] [--size BYTES] [--threads T] [--resume]`
//! runs N concurrent sessions; each message is one new connection: connect,
//! EHLO, (STARTTLS, EHLO, AUTH PLAIN,) MAIL, RCPT, DATA, QUIT. It stops after
//! M messages or D seconds, whichever comes first, and prints one JSON line.
//!
//! `og-loadgen sink --addr 127.0.0.1:PORT --cert PEM --key PEM --duration-secs D`
//! answers every command with success, offers STARTTLS and AUTH, discards
//! the data, and exits after D seconds.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest one message (connection to QUIT) may take before it counts as failed.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest line either side accepts.
const MAX_LINE: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => {
            Opts::parse(&args[1..]).and_then(|o| runtime(o.threads)?.block_on(generate(o)))
        }
        Some("sink") => Opts::parse(&args[1..]).and_then(|o| runtime(o.threads)?.block_on(sink(o))),
        _ => Err(
            "usage: og-loadgen gen|sink --addr HOST:PORT [options] (see the source header)".into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("og-loadgen: {e}");
        std::process::exit(2);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn runtime(threads: usize) -> Res<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(rt)
}

#[derive(Debug, Clone)]
struct Opts {
    addr: SocketAddr,
    sessions: usize,
    count: u64,
    duration: Duration,
    starttls: bool,
    auth: Option<(String, String)>,
    size: usize,
    threads: usize,
    resume: bool,
    from: String,
    to: String,
    cert: Option<String>,
    key: Option<String>,
    /// A message file (header and body, LF or CRLF lines) to send instead
    /// of the built-in one.
    message: Option<String>,
}

impl Opts {
    fn parse(args: &[String]) -> Res<Opts> {
        let mut o = Opts {
            addr: "127.0.0.1:2525".parse()?,
            sessions: 10,
            count: 1000,
            duration: Duration::from_secs(30),
            starttls: false,
            auth: None,
            size: 5120,
            threads: 1,
            resume: false,
            from: "bench@example.com".into(),
            to: "sink@example.net".into(),
            cert: None,
            key: None,
            message: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--addr" => o.addr = val()?.parse()?,
                "--sessions" => o.sessions = val()?.parse()?,
                "--count" => o.count = val()?.parse()?,
                "--duration-secs" => o.duration = Duration::from_secs_f64(val()?.parse()?),
                "--starttls" => o.starttls = true,
                "--auth" => {
                    let v = val()?;
                    let (u, p) = v.split_once(':').ok_or("--auth takes USER:PASS")?;
                    o.auth = Some((u.into(), p.into()));
                }
                "--size" => o.size = val()?.parse()?,
                "--threads" => o.threads = val()?.parse()?,
                "--resume" => o.resume = true,
                "--from" => o.from = val()?,
                "--to" => o.to = val()?,
                "--cert" => o.cert = Some(val()?),
                "--key" => o.key = Some(val()?),
                "--message" => o.message = Some(val()?),
                other => return Err(format!("unknown option {other}").into()),
            }
        }
        if !o.addr.ip().is_loopback() {
            return Err("only loopback addresses are allowed".into());
        }
        if o.sessions == 0 || o.count == 0 {
            return Err("--sessions and --count must be positive".into());
        }
        Ok(o)
    }
}

/// A stream with a read buffer, speaking SMTP lines.
struct Conn<S> {
    s: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(s: S) -> Self {
        Conn {
            s,
            buf: Vec::with_capacity(1024),
        }
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut l: Vec<u8> = self.buf.drain(..p + 2).collect();
                l.truncate(p);
                return Ok(l);
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            let mut chunk = [0u8; 2048];
            let n = self.s.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A whole (multi-line) reply; its code.
    async fn reply(&mut self) -> io::Result<u16> {
        loop {
            let l = self.line().await?;
            if l.len() < 3 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short reply"));
            }
            if l.len() == 3 || l[3] == b' ' {
                let code = std::str::from_utf8(&l[..3])
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad reply code"))?;
                return Ok(code);
            }
        }
    }

    async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.s.write_all(data).await?;
        self.s.flush().await
    }

    /// Sends a command and expects a reply in `class` (2 = 2xx, 3 = 3xx).
    async fn cmd(&mut self, data: &[u8], class: u16) -> io::Result<()> {
        self.send(data).await?;
        let code = self.reply().await?;
        if code / 100 != class {
            let what = String::from_utf8_lossy(data.split(|b| *b == b' ').next().unwrap_or(b""));
            return Err(io::Error::other(format!("{} got {code}", what.trim())));
        }
        Ok(())
    }
}

/// Accepts any server certificate: the bench talks to its own servers on
/// loopback with self-signed certificates.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn message(o: &Opts) -> Res<Vec<u8>> {
    if let Some(path) = &o.message {
        // Like smtp-source -F: CRLF line ends, dot-stuffing, terminator.
        let text = std::fs::read(path)?;
        let mut m = Vec::with_capacity(text.len() + 64);
        for line in text.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first() == Some(&b'.') {
                m.push(b'.');
            }
            m.extend_from_slice(line);
            m.extend_from_slice(b"\r\n");
        }
        if text.ends_with(b"\n") {
            m.truncate(m.len() - 2);
        }
        m.extend_from_slice(b".\r\n");
        return Ok(m);
    }
    let mut m = format!(
        "From: Bench <{}>\r\nTo: <{}>\r\nSubject: quarterly report draft\r\n\
         Message-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        o.from, o.to
    )
    .into_bytes();
    let line = b"Hello team, attached are the notes from the planning meeting on Tuesday.\r\n";
    while m.len() + line.len() <= o.size {
        m.extend_from_slice(line);
    }
    while m.len() + 2 < o.size {
        m.push(b'x');
    }
    m.extend_from_slice(b"\r\n.\r\n");
    Ok(m)
}

struct Shared {
    opts: Opts,
    tls: Option<tokio_rustls::TlsConnector>,
    body: Vec<u8>,
    auth_line: Vec<u8>,
    tickets: AtomicU64,
    deadline: Instant,
}

async fn one_message(sh: &Shared) -> Res<()> {
    let o = &sh.opts;
    let tcp = TcpStream::connect(o.addr).await?;
    tcp.set_nodelay(true)?;
    let mut c = Conn::new(tcp);
    if c.reply().await? != 220 {
        return Err("no 220 banner".into());
    }
    c.cmd(b"EHLO loadgen.example\r\n", 2).await?;
    if let Some(tls) = &sh.tls {
        c.cmd(b"STARTTLS\r\n", 2).await?;
        if !c.buf.is_empty() {
            return Err("data after STARTTLS reply".into());
        }
        let name = ServerName::try_from("localhost")?;
        let s = tls.connect(name, c.s).await?;
        let mut c = Conn::new(s);
        c.cmd(b"EHLO loadgen.example\r\n", 2).await?;
        transaction(sh, &mut c).await
    } else {
        transaction(sh, &mut c).await
    }
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(sh: &Shared, c: &mut Conn<S>) -> Res<()> {
    let o = &sh.opts;
    if !sh.auth_line.is_empty() {
        c.cmd(&sh.auth_line, 2).await?;
    }
    c.cmd(format!("MAIL FROM:<{}>\r\n", o.from).as_bytes(), 2)
        .await?;
    c.cmd(format!("RCPT TO:<{}>\r\n", o.to).as_bytes(), 2)
        .await?;
    c.cmd(b"DATA\r\n", 3).await?;
    c.cmd(&sh.body, 2).await?;
    // The message is accepted; QUIT is courtesy, its reply not waited for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), c.cmd(b"QUIT\r\n", 2)).await;
    Ok(())
}

struct SessionStats {
    latencies_us: Vec<u64>,
    failed: u64,
    first_error: Option<String>,
}

async fn session(sh: Arc<Shared>) -> SessionStats {
    let mut st = SessionStats {
        latencies_us: Vec::new(),
        failed: 0,
        first_error: None,
    };
    loop {
        if Instant::now() >= sh.deadline {
            break;
        }
        let t = sh.tickets.fetch_add(1, Ordering::Relaxed);
        if t >= sh.opts.count {
            break;
        }
        let start = Instant::now();
        let left = sh
            .deadline
            .saturating_duration_since(start)
            .min(MESSAGE_TIMEOUT);
        match tokio::time::timeout(left, one_message(&sh)).await {
            Ok(Ok(())) => st.latencies_us.push(start.elapsed().as_micros() as u64),
            Ok(Err(e)) => {
                st.failed += 1;
                st.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                st.failed += 1;
                st.first_error.get_or_insert_with(|| "timed out".into());
            }
        }
    }
    st
}

/// utime + stime of this process, in seconds (Linux, USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn generate(o: Opts) -> Res<()> {
    let tls = if o.starttls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        if !o.resume {
            cfg.resumption = rustls::client::Resumption::disabled();
        }
        Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
    } else {
        None
    };
    let auth_line = match &o.auth {
        Some((u, p)) => {
            let raw = format!("\0{u}\0{p}");
            format!(
                "AUTH PLAIN {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
            .into_bytes()
        }
        None => Vec::new(),
    };
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let sh = Arc::new(Shared {
        body: message(&o)?,
        tls,
        auth_line,
        tickets: AtomicU64::new(0),
        deadline: start + o.duration,
        opts: o.clone(),
    });
    let tasks: Vec<_> = (0..o.sessions)
        .map(|_| tokio::spawn(session(sh.clone())))
        .collect();
    let mut lat = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        let st = t.await?;
        lat.extend(st.latencies_us);
        failed += st.failed;
        if first_error.is_none() {
            first_error = st.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let err = first_error.map_or("null".to_string(), |e| format!("{:?}", e));
    println!(
        "{{\"sent\":{},\"failed\":{},\"elapsed_s\":{:.3},\"msgs_per_s\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"gen_cpu_s\":{:.2},\"first_error\":{}}}",
        lat.len(),
        failed,
        elapsed,
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        cpu_seconds() - cpu0,
        err
    );
    Ok(())
}

fn load_tls(o: &Opts) -> Res<tokio_rustls::TlsAcceptor> {
    let cert_path = o.cert.as_ref().ok_or("sink needs --cert")?;
    let key_path = o.key.as_ref().ok_or("sink needs --key")?;
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut io::BufReader::new(std::fs::File::open(cert_path)?))
            .collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut io::BufReader::new(std::fs::File::open(key_path)?))?
            .ok_or("no private key")?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

async fn sink(o: Opts) -> Res<()> {
    let tls = load_tls(&o)?;
    let listener = TcpListener::bind(o.addr).await?;
    let served = Arc::new(AtomicU64::new(0));
    let accept = async {
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            let tls = tls.clone();
            let served = served.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(MESSAGE_TIMEOUT, sink_session(tcp, tls, &served)).await;
            });
        }
        #[allow(unreachable_code)]
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(o.duration, accept).await;
    println!("{{\"sink_messages\":{}}}", served.load(Ordering::Relaxed));
    Ok(())
}

async fn sink_session(
    tcp: TcpStream,
    tls: tokio_rustls::TlsAcceptor,
    served: &AtomicU64,
) -> Res<()> {
    let mut c = Conn::new(tcp);
    c.send(b"220 sink ESMTP\r\n").await?;
    loop {
        let l = c.line().await?;
        let verb = l
            .get(..4)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default();
        match &verb[..] {
            b"EHLO" => {
                c.send(b"250-sink\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
                    .await?
            }
            b"STAR" => {
                c.send(b"220 go ahead\r\n").await?;
                let s = tls.accept(c.s).await?;
                return sink_inner(Conn::new(s), served).await;
            }
            b"QUIT" => return c.send(b"221 bye\r\n").await.map_err(Into::into),
            _ => c.send(b"503 STARTTLS first\r\n").await?,
        }
    }
}

async fn sink_inner<S: AsyncRead + AsyncWrite + Unpin>(
    mut c: Conn<S>,
    served: &AtomicU64,
) -> Res<()> {
    loop {
        let l = c.line().await?;
        let verb = l
            .get(..4)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default();
        match &verb[..] {
            b"EHLO" => c.send(b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n").await?,
            b"AUTH" => c.send(b"235 ok\r\n").await?,
            b"DATA" => {
                c.send(b"354 go\r\n").await?;
                while c.line().await? != b"." {}
                served.fetch_add(1, Ordering::Relaxed);
                c.send(b"250 ok\r\n").await?;
            }
            b"QUIT" => return c.send(b"221 bye\r\n").await.map_err(Into::into),
            _ => c.send(b"250 ok\r\n").await?,
        }
    }
}
