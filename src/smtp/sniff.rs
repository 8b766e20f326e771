//! Implicit TLS on 587: the vendor's client settings say "STARTTLS or SSL"
//! on one port, so a connection that opens with a TLS ClientHello gets
//! TLS and one that waits for the banner gets plain SMTP with STARTTLS.
//!
//! Only time tells them apart, and the wait is all a plain client pays.
//! An implicit-TLS client writes its ClientHello as soon as its connect
//! returns, and its handshake ACK is what completes our accept, so the
//! hello trails the accept by the client's own work (building the hello),
//! not by the network's round trip: 0.2–5 ms for OpenSSL, Python and curl
//! on a busy host, but 70–90 ms for swaks (Perl loads its TLS modules
//! after connecting). The wait is therefore short (`tls_sniff_ms`, 1 ms by
//! default) for an address never seen being slow.
//!
//! A hello that misses the wait lands after our banner, and no client can
//! recover from that: the banner bytes sit in its TLS read buffer as a
//! bogus record (OpenSSL: "wrong version number"; GnuTLS: "unexpected TLS
//! packet"). The session closes that connection and reports the delay
//! here; its address then waits twice the slowest hello seen from it, for
//! `tls_sniff_remember_secs`, so the client's next attempt (and every
//! other client behind the same NAT) succeeds. Nothing is ever refused
//! for having spoken plain SMTP before: a remembered address costs its
//! plain clients a longer wait, never a failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;

/// First byte of a TLS record carrying a handshake (the ClientHello).
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Addresses remembered at most; beyond it the stalest is dropped, so a
/// scan of many source addresses costs bounded memory.
const CAPACITY: usize = 4096;
/// The longest wait learnt from slow hellos: a plain client behind the
/// same address still gets its banner within this.
const MAX_WAIT: Duration = Duration::from_secs(3);

/// What the first bytes of a 587 connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Tls,
    Plain,
    /// Closed (or failed) before sending anything.
    Gone,
}

/// The sniff wait per client address: `base`, or longer for addresses
/// whose implicit-TLS clients have been seen sending their hello late.
pub struct HelloWait {
    base: Duration,
    ttl: Duration,
    /// Slowest hello delay seen from an address, and when last seen.
    slow: Mutex<HashMap<IpAddr, (Duration, Instant)>>,
}

impl HelloWait {
    /// `ttl` zero: nothing is learnt (every client gets `base`).
    pub fn new(base: Duration, ttl: Duration) -> Self {
        HelloWait {
            base,
            ttl,
            slow: Mutex::new(HashMap::new()),
        }
    }

    /// How long to wait for a ClientHello from `ip`.
    pub fn wait(&self, ip: IpAddr) -> Duration {
        let slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        match slow.get(&ip) {
            Some((delay, seen)) if seen.elapsed() < self.ttl => {
                (*delay * 2).clamp(self.base, MAX_WAIT.max(self.base))
            }
            _ => self.base,
        }
    }

    /// A hello from `ip` arrived `delay` after the accept: remembered if it
    /// came close to (or past) the base wait.
    pub fn saw_hello(&self, ip: IpAddr, delay: Duration) {
        if self.ttl.is_zero() || delay * 2 <= self.base {
            return;
        }
        let mut slow = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        if slow.len() >= CAPACITY && !slow.contains_key(&ip) {
            slow.retain(|_, (_, t)| t.elapsed() < self.ttl);
            if slow.len() >= CAPACITY {
                let stalest = slow.iter().min_by_key(|(_, (_, t))| *t).map(|(ip, _)| *ip);
                if let Some(old) = stalest {
                    slow.remove(&old);
                }
            }
        }
        let now = Instant::now();
        let e = slow.entry(ip).or_insert((delay, now));
        if e.1.elapsed() >= self.ttl {
            e.0 = delay;
        }
        *e = (e.0.max(delay), now);
    }

    /// A hello from `ip` came `after_banner` after the banner, which was
    /// sent when the wait for `ip` ran out.
    pub fn saw_late_hello(&self, ip: IpAddr, after_banner: Duration) {
        let delay = self.wait(ip) + after_banner;
        self.saw_hello(ip, delay);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slow.lock().unwrap_or_else(|e| e.into_inner()).len()
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

/// What to ask tokio's timer for so that it waits `wait`. The timer ticks
/// once a millisecond and rounds a deadline up to its next tick: asked for
/// `wait` it waits between `wait` and `wait` + 1 ms. Asking for half a tick
/// less centres the real wait on `wait` (the 1 ms default then costs a plain
/// client a median 1 ms, not 1.5 ms plus wake-up).
fn timer_wait(wait: Duration) -> Duration {
    wait.saturating_sub(Duration::from_micros(500))
        .max(Duration::from_micros(1))
}

/// Decides how a 587 connection from `ip`, just accepted, opens: by
/// waiting up to the address's wait for a first byte.
pub async fn opening(tcp: &TcpStream, ip: IpAddr, waits: &HelloWait) -> Opening {
    let mut first = [0u8; 1];
    let accepted = Instant::now();
    match timeout(timer_wait(waits.wait(ip)), tcp.peek(&mut first)).await {
        Ok(Ok(n)) => {
            let opened = by_first_byte(n, first[0]);
            if opened == Opening::Tls {
                waits.saw_hello(ip, accepted.elapsed());
            }
            opened
        }
        Ok(Err(_)) => Opening::Gone,
        // Waited for the banner: a plain-first client.
        Err(_) => Opening::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | n))
    }

    const BASE: Duration = Duration::from_millis(1);

    #[test]
    fn timer_is_asked_for_half_a_tick_less() {
        assert_eq!(timer_wait(BASE), Duration::from_micros(500));
        assert_eq!(
            timer_wait(Duration::from_millis(400)),
            Duration::from_micros(399_500)
        );
        assert_eq!(timer_wait(Duration::ZERO), Duration::from_micros(1));
    }

    #[test]
    fn unknown_addresses_get_the_base_wait() {
        let w = HelloWait::new(BASE, Duration::from_secs(60));
        assert_eq!(w.wait(ip(1)), BASE);
        // A fast hello teaches nothing.
        w.saw_hello(ip(1), Duration::from_micros(200));
        assert_eq!((w.wait(ip(1)), w.len()), (BASE, 0));
    }

    #[test]
    fn a_late_hello_doubles_the_wait_for_its_address_only() {
        let w = HelloWait::new(BASE, Duration::from_secs(60));
        w.saw_late_hello(ip(1), Duration::from_millis(80));
        assert_eq!(w.wait(ip(1)), (BASE + Duration::from_millis(80)) * 2);
        assert_eq!(w.wait(ip(2)), BASE);
        // A faster hello later keeps the slowest.
        w.saw_hello(ip(1), Duration::from_millis(10));
        assert_eq!(w.wait(ip(1)), (BASE + Duration::from_millis(80)) * 2);
        // Bounded above.
        w.saw_late_hello(ip(1), Duration::from_secs(60));
        assert_eq!(w.wait(ip(1)), MAX_WAIT);
    }

    #[test]
    fn zero_ttl_learns_nothing() {
        let w = HelloWait::new(BASE, Duration::ZERO);
        w.saw_late_hello(ip(1), Duration::from_secs(1));
        assert_eq!((w.wait(ip(1)), w.len()), (BASE, 0));
    }

    #[test]
    fn capacity_drops_the_stalest() {
        let w = HelloWait::new(BASE, Duration::from_secs(60));
        let slow = Duration::from_millis(5);
        for n in 0..CAPACITY as u32 {
            w.saw_hello(ip(n), slow);
        }
        w.saw_hello(ip(0), slow); // refreshed: now the newest
        w.saw_hello(ip(CAPACITY as u32), slow);
        assert_eq!(w.len(), CAPACITY);
        assert!(w.wait(ip(0)) > BASE && w.wait(ip(1)) == BASE);
        assert!(w.wait(ip(CAPACITY as u32)) > BASE);
    }

    #[tokio::test]
    async fn a_queued_hello_is_tls_and_silence_is_plain() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let w = HelloWait::new(Duration::from_millis(200), Duration::from_secs(60));
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (tcp, peer) = l.accept().await.unwrap();
        assert_eq!(opening(&tcp, peer.ip(), &w).await, Opening::Plain);
        c.write_all(&[TLS_HANDSHAKE_RECORD, 3, 1]).await.unwrap();
        assert_eq!(opening(&tcp, peer.ip(), &w).await, Opening::Tls);
        drop(c);
    }
}
