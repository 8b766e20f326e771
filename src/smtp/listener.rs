//! Accept loops: one task per listening socket, caps on sessions overall,
//! per client address (per /64 for IPv6, which one host usually has whole)
//! and on sessions not yet authenticated, and the start of each session
//! (TLS first on 465; on 587 TLS if the client opens with a ClientHello,
//! else plain).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::timeout;

use super::preauth::PreAuth;
use super::{Server, session, sniff};
use crate::app::Stats;

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

/// Counts sessions per client address (IPv6: per /64); the guard gives
/// its place back.
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
    // Draining: every session holds a permit until it ends.
    let all = u32::try_from(server.smtp.max_sessions).unwrap_or(u32::MAX);
    let grace = Duration::from_secs(server.smtp.shutdown_grace_secs);
    if timeout(grace, sessions.acquire_many(all)).await.is_err() {
        tracing::warn!(
            open = server.smtp.max_sessions - sessions.available_permits(),
            "shutdown grace period over; closing the remaining sessions"
        );
    }
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
        Stats::bump(&server.app.stats.sessions_refused);
        tracing::warn!(%ip, "session refused: too many sessions");
        refuse(
            tcp,
            kind,
            "421 4.3.2 Too many connections, try again later\r\n",
        )
        .await;
        return;
    };
    let Some(_ip_slot) = per_ip.enter(cap_key(ip), server.smtp.max_sessions_per_ip) else {
        Stats::bump(&server.app.stats.sessions_refused);
        tracing::warn!(%ip, "session refused: too many sessions from this address");
        refuse(
            tcp,
            kind,
            "421 4.7.0 Too many connections from your address, try again later\r\n",
        )
        .await;
        return;
    };
    // IP-authorised clients are authenticated from the start; others
    // need a place under the cap on unauthenticated sessions until AUTH.
    let ip_user = session::ip_user(&server, ip);
    let preauth_limit = server.smtp.preauth_timeout();
    let preauth = match ip_user {
        Some(_) => PreAuth::new(None, preauth_limit),
        None => match server.guards.unauthenticated.enter(preauth_limit) {
            Some(p) => p,
            None => {
                Stats::bump(&server.app.stats.sessions_refused);
                tracing::warn!(%ip, "session refused: too many unauthenticated sessions");
                refuse(
                    tcp,
                    kind,
                    "421 4.3.2 Too many unauthenticated connections, try again later\r\n",
                )
                .await;
                return;
            }
        },
    };
    Stats::bump(&server.app.stats.sessions);
    tracing::info!(%ip, ?kind, "connect");
    let limit = server.smtp.session_timeout();
    let session = start(&server, tcp, ip, kind, ip_user, preauth);
    if timeout(limit, session).await.is_err() {
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

async fn start(
    server: &Server,
    tcp: TcpStream,
    ip: IpAddr,
    kind: Kind,
    ip_user: Option<String>,
    preauth: Arc<PreAuth>,
) {
    let implicit_tls = match kind {
        Kind::Submissions => true,
        Kind::Plain => false,
        Kind::Submission => match sniff::opening(&tcp, ip, &server.hello_wait).await {
            sniff::Opening::Tls => true,
            sniff::Opening::Plain => false,
            sniff::Opening::Gone => return,
        },
    };
    use session::{Mode, run_admitted as run};
    if implicit_tls {
        if let Some(tls) = handshake(server, tcp, ip).await {
            run(server, tls, ip, ip_user, Mode::Tls, true, preauth).await;
        }
        return;
    }
    let plain = run(
        server,
        tcp,
        ip,
        ip_user.clone(),
        Mode::Plain,
        true,
        preauth.clone(),
    );
    if let Some(conn) = plain.await {
        // STARTTLS: the session handed back the connection; anything the
        // client pipelined after the command has been discarded.
        if let Some(tls) = handshake(server, conn, ip).await {
            run(server, tls, ip, ip_user, Mode::Tls, false, preauth).await;
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

/// The key of the per-address cap: the address, or for IPv6 its /64 (a
/// host is usually given a whole /64 and can pick any address in it).
fn cap_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// IPv4 clients on a dual-stack socket appear as IPv4-mapped addresses.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_cap_per_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let per_ip = PerIp::default();
        let a = per_ip.enter(cap_key(ip("2001:db8:1:2::1")), 2);
        let b = per_ip.enter(cap_key(ip("2001:db8:1:2:ffff:1:2:3")), 2);
        assert!(a.is_some() && b.is_some());
        assert!(per_ip.enter(cap_key(ip("2001:db8:1:2::9")), 2).is_none());
        // Another /64, and IPv4 addresses, have their own places.
        assert!(per_ip.enter(cap_key(ip("2001:db8:1:3::1")), 2).is_some());
        assert_eq!(cap_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            cap_key(canonical_ip(ip("::ffff:192.0.2.7"))),
            ip("192.0.2.7")
        );
        drop(a);
        assert!(per_ip.enter(cap_key(ip("2001:db8:1:2::9")), 2).is_some());
    }
}
