//! Accept loops: one task per listening socket, a cap on sessions overall
//! and per client address, and the start of each session (TLS first on
//! 465; on 587 TLS if the client opens with a ClientHello, else plain).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use super::{Server, Stats, session, sniff};

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 587: STARTTLS, or implicit TLS if the client starts with TLS.
    Submission,
    /// 465: implicit TLS.
    Submissions,
    /// Plain SMTP for trusted IP-authorised peers; STARTTLS offered.
    Plain,
}

pub struct Listeners(pub Vec<(std::net::TcpListener, Kind)>);

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts sessions per client address; the guard gives its place back.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

struct IpGuard<'a>(&'a PerIp, IpAddr);

impl PerIp {
    fn enter(&self, ip: IpAddr, cap: usize) -> Option<IpGuard<'_>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IpGuard(self, ip))
    }
}

impl Drop for IpGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Serves every listener until `shutdown` turns true.
pub async fn run(
    server: Arc<Server>,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let sessions = Arc::new(Semaphore::new(server.smtp.max_sessions));
    let per_ip = Arc::new(PerIp::default());
    let mut tasks = tokio::task::JoinSet::new();
    for (std_listener, kind) in listeners.0 {
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        tracing::info!(addr = %listener.local_addr()?, ?kind, "listening");
        let (server, sessions, per_ip, mut shutdown) = (
            server.clone(),
            sessions.clone(),
            per_ip.clone(),
            shutdown.clone(),
        );
        tasks.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.changed() => break,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (server, sessions, per_ip) = (server.clone(), sessions.clone(), per_ip.clone());
                tokio::spawn(async move { admit(server, sessions, per_ip, tcp, peer, kind).await });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn admit(
    server: Arc<Server>,
    sessions: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    tcp: TcpStream,
    peer: SocketAddr,
    kind: Kind,
) {
    let _ = tcp.set_nodelay(true);
    let ip = canonical_ip(peer.ip());
    let Ok(_slot) = sessions.try_acquire_owned() else {
        Stats::bump(&server.stats.sessions_refused);
        tracing::warn!(%ip, "session refused: too many sessions");
        refuse(
            tcp,
            kind,
            "421 4.3.2 Too many connections, try again later\r\n",
        )
        .await;
        return;
    };
    let Some(_ip_slot) = per_ip.enter(ip, server.smtp.max_sessions_per_ip) else {
        Stats::bump(&server.stats.sessions_refused);
        tracing::warn!(%ip, "session refused: too many sessions from this address");
        refuse(
            tcp,
            kind,
            "421 4.7.0 Too many connections from your address, try again later\r\n",
        )
        .await;
        return;
    };
    Stats::bump(&server.stats.sessions);
    tracing::info!(%ip, ?kind, "connect");
    let limit = server.smtp.session_timeout();
    if timeout(limit, start(&server, tcp, ip, kind)).await.is_err() {
        tracing::info!(%ip, "session closed: session time limit");
    }
}

/// Says why before closing, where the client can read it (not on 465,
/// whose clients expect TLS first).
async fn refuse(mut tcp: TcpStream, kind: Kind, text: &str) {
    if kind != Kind::Submissions {
        let _ = timeout(Duration::from_secs(5), tcp.write_all(text.as_bytes())).await;
    }
    let _ = tcp.shutdown().await;
}

async fn start(server: &Server, tcp: TcpStream, ip: IpAddr, kind: Kind) {
    let implicit_tls = match kind {
        Kind::Submissions => true,
        Kind::Plain => false,
        Kind::Submission => {
            let wait = server.smtp.tls_sniff();
            match sniff::opening(&tcp, ip, wait, &server.plain_first).await {
                sniff::Opening::Tls => true,
                sniff::Opening::Plain => false,
                sniff::Opening::Gone => return,
            }
        }
    };
    let ip_user = session::ip_user(server, ip);
    if implicit_tls {
        if let Some(tls) = handshake(server, tcp, ip).await {
            session::run(server, tls, ip, ip_user, session::Mode::Tls, true).await;
        }
        return;
    }
    if let Some(conn) =
        session::run(server, tcp, ip, ip_user.clone(), session::Mode::Plain, true).await
    {
        // STARTTLS: the session handed back the connection; anything the
        // client pipelined after the command has been discarded.
        if let Some(tls) = handshake(server, conn, ip).await {
            session::run(server, tls, ip, ip_user, session::Mode::Tls, false).await;
        }
    }
}

async fn handshake(
    server: &Server,
    tcp: TcpStream,
    ip: IpAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match timeout(TLS_HANDSHAKE_TIMEOUT, server.tls.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(%ip, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%ip, "TLS handshake timed out");
            None
        }
    }
}

/// IPv4 clients on a dual-stack socket appear as IPv4-mapped addresses.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
