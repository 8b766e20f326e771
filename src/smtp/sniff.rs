//! Implicit TLS on 587: the vendor's client settings say "STARTTLS or SSL"
//! on one port, so a connection that opens with a TLS ClientHello gets
//! TLS and one that waits for the banner gets plain SMTP with STARTTLS.
//!
//! Telling them apart costs a plain client a wait (`tls_sniff_ms`) before
//! its banner. A mail client keeps its setting, so once an address has
//! waited for a banner it is remembered as plain-first for
//! `tls_sniff_remember_secs` and later connections get the banner at
//! once (a ClientHello already queued is still seen). If such a client
//! switches to implicit TLS, its ClientHello arrives after the banner: the
//! session closes that connection and forgets the address, so the
//! client's retry gets the full wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{MsgFlags, recv};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// First byte of a TLS record carrying a handshake (the ClientHello).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Addresses remembered at most; beyond it the stalest is dropped, so a
/// scan of many source addresses costs bounded memory.
const CAPACITY: usize = 4096;

/// What the first bytes of a 587 connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Tls,
    Plain,
    /// Closed (or failed) before sending anything.
    Gone,
}

/// Client addresses known to wait for the banner, with when that was last
/// seen.
pub struct PlainFirst {
    ttl: Duration,
    seen: Mutex<HashMap<IpAddr, Instant>>,
}

impl PlainFirst {
    /// `ttl` zero: nothing is remembered (every plain client waits).
    pub fn new(ttl: Duration) -> Self {
        PlainFirst {
            ttl,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn knows(&self, ip: IpAddr) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(&ip).is_some_and(|t| t.elapsed() < self.ttl)
    }

    pub fn remember(&self, ip: IpAddr) {
        if self.ttl.is_zero() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY && !seen.contains_key(&ip) {
            seen.retain(|_, t| t.elapsed() < self.ttl);
            if seen.len() >= CAPACITY {
                let stalest = seen.iter().min_by_key(|(_, t)| **t).map(|(ip, _)| *ip);
                if let Some(old) = stalest {
                    seen.remove(&old);
                }
            }
        }
        seen.insert(ip, Instant::now());
    }

    pub fn forget(&self, ip: IpAddr) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(&ip);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What a peek of `n` bytes starting with `first` says.
fn by_first_byte(n: usize, first: u8) -> Opening {
    match (n, first) {
        (0, _) => Opening::Gone,
        (_, TLS_HANDSHAKE_RECORD) => Opening::Tls,
        _ => Opening::Plain,
    }
}

/// Decides how a 587 connection from `ip` opens: at once from what is
/// already queued if the address is known plain-first, else by waiting up
/// to `wait` for a first byte.
pub async fn opening(tcp: &TcpStream, ip: IpAddr, wait: Duration, known: &PlainFirst) -> Opening {
    let mut first = [0u8; 1];
    if known.knows(ip) {
        // Only what has already arrived: a plain-first client sends nothing
        // before its banner (EAGAIN; other errors surface on the first read).
        let queued = recv(
            tcp.as_raw_fd(),
            &mut first,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        );
        return queued.map_or(Opening::Plain, |n| by_first_byte(n, first[0]));
    }
    match timeout(wait, tcp.peek(&mut first)).await {
        Ok(Ok(n)) => by_first_byte(n, first[0]),
        Ok(Err(_)) => Opening::Gone,
        Err(_) => {
            // Waited for the banner: a plain-first client.
            known.remember(ip);
            Opening::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | n))
    }

    #[test]
    fn remembers_and_forgets() {
        let m = PlainFirst::new(Duration::from_secs(60));
        assert!(!m.knows(ip(1)));
        m.remember(ip(1));
        assert!(m.knows(ip(1)));
        m.forget(ip(1));
        assert!(!m.knows(ip(1)));
    }

    #[test]
    fn zero_ttl_remembers_nothing() {
        let m = PlainFirst::new(Duration::ZERO);
        m.remember(ip(1));
        assert!(!m.knows(ip(1)) && m.len() == 0);
    }

    #[test]
    fn capacity_drops_the_stalest() {
        let m = PlainFirst::new(Duration::from_secs(60));
        for n in 0..CAPACITY as u32 {
            m.remember(ip(n));
        }
        m.remember(ip(0)); // refreshed: now the newest
        m.remember(ip(CAPACITY as u32));
        assert_eq!(m.len(), CAPACITY);
        assert!(m.knows(ip(0)) && !m.knows(ip(1)) && m.knows(ip(CAPACITY as u32)));
    }

    #[tokio::test]
    async fn known_address_opens_without_waiting() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let m = PlainFirst::new(Duration::from_secs(60));
        let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
        let (tcp, peer) = l.accept().await.unwrap();
        let _c = client.await.unwrap();
        // Unknown: waits out the whole window, then remembers.
        let t = Instant::now();
        let wait = Duration::from_millis(300);
        assert_eq!(opening(&tcp, peer.ip(), wait, &m).await, Opening::Plain);
        assert!(t.elapsed() >= wait && m.knows(peer.ip()));
        // Known: decided on the first poll, without waiting for anything.
        let known = std::pin::pin!(opening(&tcp, peer.ip(), wait, &m));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert_eq!(known.poll(&mut cx), std::task::Poll::Ready(Opening::Plain));
    }

    #[tokio::test]
    async fn known_address_still_gets_tls_when_hello_is_queued() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (tcp, peer) = l.accept().await.unwrap();
        c.write_all(&[TLS_HANDSHAKE_RECORD, 3, 1]).await.unwrap();
        let m = PlainFirst::new(Duration::from_secs(60));
        m.remember(peer.ip());
        // Loopback delivers at once, but allow the kernel a moment.
        let mut opened = Opening::Plain;
        for _ in 0..100 {
            opened = opening(&tcp, peer.ip(), Duration::from_secs(1), &m).await;
            if opened == Opening::Tls {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(opened, Opening::Tls);
    }
}
