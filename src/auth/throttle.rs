//! Throttling of failed logins, counted two ways: per client network (an
//! IPv4 address, an IPv6 /64: one host holds a whole /64) and per account
//! (guesses spread over many addresses). Past `max_failures` within the
//! window the network is refused for `block`; past `max_account_failures`
//! the account is refused for `block` to every network that has not
//! logged in to it successfully of late, so an attack on an account does
//! not lock out its owner.
//!
//! An attempt is reserved (counted as a failure) before its password is
//! hashed: N concurrent attempts count N before any result is known, and
//! a client that drops the connection mid-hash has spent its guess. A
//! success refunds its own reservation and the failures of the same
//! account from the same network, never failures against other accounts.
//!
//! Both tables are bounded. When one is full, entries without a block go
//! first; a table holding nothing but blocks refuses new keys (fail
//! closed) rather than forget a block.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys kept per table at most.
const MAX_TRACKED: usize = 50_000;
/// Networks remembered per account as having logged in to it.
const MAX_TRUSTED: usize = 8;
/// How long a successful login keeps its network trusted for the account.
const TRUST: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an attempt is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's network is blocked (or the table is full of blocks).
    Address,
    /// The account is under attack and this network is not known to it.
    Account,
}

/// What a failed attempt led to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The client's network is blocked now.
    pub address_blocked: bool,
    /// This failure started a block of the account (an attack: tell the admin).
    pub account_blocked: bool,
}

/// A reserved attempt; resolve it with `succeed` or `fail`. Dropped
/// unresolved (the client left mid-check), it stays counted as a failure.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    net: IpAddr,
    account: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    at: Instant,
    /// The reservation that made it.
    id: u64,
    /// A hash of the other side: the account for a network's failures,
    /// the network for an account's.
    other: u64,
}

#[derive(Default)]
struct Entry {
    failures: Vec<Failure>,
    blocked_until: Option<Instant>,
    /// Accounts only: networks that logged in to it (hash, until).
    trusted: Vec<(u64, Instant)>,
}

impl Entry {
    fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| t > now)
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        self.failures
            .retain(|f| now.saturating_duration_since(f.at) < window);
        self.trusted.retain(|(_, until)| *until > now);
        if self.blocked_until.is_some_and(|t| t <= now) {
            self.blocked_until = None;
        }
    }

    fn idle(&self) -> bool {
        self.failures.is_empty() && self.blocked_until.is_none() && self.trusted.is_empty()
    }
}

/// One bounded table of entries.
struct Table<K> {
    map: HashMap<K, Entry>,
    limit: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: usize) -> Self {
        Table {
            map: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// Makes room for a new key; false if only blocks are left.
    fn room(&mut self, key: &K, cap: usize, now: Instant, window: Duration) -> bool {
        if self.map.len() < cap || self.map.contains_key(key) {
            return true;
        }
        self.map.retain(|_, e| {
            e.prune(now, window);
            !e.idle()
        });
        if self.map.len() >= cap {
            self.map.retain(|_, e| e.blocked(now));
        }
        self.map.len() < cap
    }
}

pub struct Throttle {
    window: Duration,
    block: Duration,
    cap: usize,
    hasher: RandomState,
    next_id: AtomicU64,
    /// Blocks of accounts since start (for the admin's counters).
    account_blocks: AtomicU64,
    tables: Mutex<(Table<IpAddr>, Table<String>)>,
}

/// The network a client address is counted under: IPv4 addresses (and
/// IPv4-mapped IPv6) by themselves, IPv6 by their /64.
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl Throttle {
    pub fn new(
        max_failures: u32,
        max_account_failures: u32,
        window: Duration,
        block: Duration,
    ) -> Throttle {
        Self::with_capacity(
            max_failures,
            max_account_failures,
            window,
            block,
            MAX_TRACKED,
        )
    }

    fn with_capacity(
        max_failures: u32,
        max_account_failures: u32,
        window: Duration,
        block: Duration,
        cap: usize,
    ) -> Throttle {
        // Bounded so that `Instant + block` cannot overflow whatever the
        // configuration says.
        let year = Duration::from_secs(365 * 24 * 3600);
        Throttle {
            window: window.min(year),
            block: block.min(year),
            cap,
            hasher: RandomState::new(),
            next_id: AtomicU64::new(1),
            account_blocks: AtomicU64::new(0),
            tables: Mutex::new((
                Table::new(max_failures as usize),
                Table::new(max_account_failures as usize),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Table<IpAddr>, Table<String>)> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Is the client's network refused right now? (A cheap early check;
    /// `begin` decides.)
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let tables = self.lock();
        tables
            .0
            .map
            .get(&network(ip))
            .is_some_and(|e| e.blocked(now))
    }

    /// Reserves an attempt by `ip` on `account` (`None`: no such account;
    /// only the network counts). Refused when either side is blocked or
    /// already has as many attempts in flight or failed as it may.
    pub fn begin(&self, ip: IpAddr, account: Option<&str>) -> Result<Ticket, Refusal> {
        let now = Instant::now();
        let net = network(ip);
        let (window, cap) = (self.window, self.cap);
        let net_hash = self.hasher.hash_one(net);
        let mut guard = self.lock();
        let (nets, accounts) = &mut *guard;
        if let Some(e) = nets.map.get_mut(&net) {
            e.prune(now, window);
            if e.blocked(now) {
                return Err(Refusal::Address);
            }
            // Attempts in flight count: refused without a block, which
            // only a failure makes.
            if e.failures.len() >= nets.limit {
                return Err(Refusal::Address);
            }
        }
        if let Some(a) = account
            && let Some(e) = accounts.map.get_mut(a)
        {
            e.prune(now, window);
            let trusted = e.trusted.iter().any(|(n, _)| *n == net_hash);
            if !trusted && (e.blocked(now) || e.failures.len() >= accounts.limit) {
                return Err(Refusal::Account);
            }
        }
        if !nets.room(&net, cap, now, window) {
            return Err(Refusal::Address);
        }
        if let Some(a) = account
            && !accounts.room(&a.to_string(), cap, now, window)
        {
            return Err(Refusal::Account);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let account_hash = account.map_or(0, |a| self.hasher.hash_one(a));
        nets.map.entry(net).or_default().failures.push(Failure {
            at: now,
            id,
            other: account_hash,
        });
        if let Some(a) = account {
            accounts
                .map
                .entry(a.to_string())
                .or_default()
                .failures
                .push(Failure {
                    at: now,
                    id,
                    other: net_hash,
                });
        }
        Ok(Ticket {
            id,
            net,
            account: account.map(str::to_string),
        })
    }

    /// The attempt failed: its reservation stays a failure, and a side
    /// over its limit is blocked.
    pub fn fail(&self, t: Ticket) -> Verdict {
        let now = Instant::now();
        let mut guard = self.lock();
        let (nets, accounts) = &mut *guard;
        let mut v = Verdict::default();
        if let Some(e) = nets.map.get_mut(&t.net) {
            e.prune(now, self.window);
            if e.blocked(now) || e.failures.len() >= nets.limit {
                e.failures.clear();
                e.blocked_until.get_or_insert(now + self.block);
                v.address_blocked = true;
            }
        }
        if let Some(a) = &t.account
            && let Some(e) = accounts.map.get_mut(a)
        {
            e.prune(now, self.window);
            if !e.blocked(now) && e.failures.len() >= accounts.limit {
                e.failures.clear();
                e.blocked_until = Some(now + self.block);
                self.account_blocks.fetch_add(1, Ordering::Relaxed);
                v.account_blocked = true;
            }
        }
        v
    }

    /// The attempt succeeded: refunds it and the earlier failures of the
    /// same account from the same network, and trusts that network for
    /// the account.
    pub fn succeed(&self, t: Ticket) {
        let now = Instant::now();
        let net_hash = self.hasher.hash_one(t.net);
        let account_hash = t.account.as_deref().map_or(0, |a| self.hasher.hash_one(a));
        let mut guard = self.lock();
        let (nets, accounts) = &mut *guard;
        if let Some(e) = nets.map.get_mut(&t.net) {
            e.failures
                .retain(|f| f.id != t.id && (t.account.is_none() || f.other != account_hash));
        }
        if let Some(a) = &t.account
            && let Some(e) = accounts.map.get_mut(a)
        {
            e.failures.retain(|f| f.id != t.id && f.other != net_hash);
            e.trusted.retain(|(n, _)| *n != net_hash);
            if e.trusted.len() >= MAX_TRUSTED {
                e.trusted.remove(0);
            }
            e.trusted.push((net_hash, now + TRUST));
        }
    }

    /// Accounts refused right now, and account blocks since start.
    pub fn account_stats(&self) -> (u64, u64) {
        let now = Instant::now();
        let guard = self.lock();
        let blocked = guard.1.map.values().filter(|e| e.blocked(now)).count();
        (blocked as u64, self.account_blocks.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fail(t: &Throttle, ip: IpAddr, account: Option<&str>) -> Result<Verdict, Refusal> {
        t.begin(ip, account).map(|tk| t.fail(tk))
    }

    #[test]
    fn blocks_after_limit() {
        let t = Throttle::new(3, 100, MIN, MIN);
        let a = ip("192.0.2.1");
        assert!(!fail(&t, a, None).unwrap().address_blocked);
        assert!(!fail(&t, a, None).unwrap().address_blocked);
        assert!(!t.is_blocked(a));
        assert!(fail(&t, a, None).unwrap().address_blocked);
        assert!(t.is_blocked(a));
        assert_eq!(t.begin(a, None).unwrap_err(), Refusal::Address);
        assert!(!t.is_blocked(ip("192.0.2.2")));
    }

    #[test]
    fn success_keeps_failures_against_other_accounts() {
        let t = Throttle::new(5, 100, MIN, MIN);
        let a = ip("192.0.2.1");
        let mut evaluated = 0;
        for _ in 0..6 {
            for _ in 0..4 {
                if let Ok(tk) = t.begin(a, Some("colleague@x.example")) {
                    evaluated += 1;
                    t.fail(tk);
                }
            }
            if let Ok(tk) = t.begin(a, Some("me@x.example")) {
                t.succeed(tk);
            }
        }
        assert_eq!(evaluated, 5, "guesses evaluated");
        // My own typos are forgiven by my next good login.
        let t = Throttle::new(3, 100, MIN, MIN);
        for _ in 0..4 {
            fail(&t, a, Some("me@x.example")).unwrap();
            t.succeed(t.begin(a, Some("me@x.example")).unwrap());
        }
    }

    #[test]
    fn concurrent_attempts_are_reserved() {
        let t = Throttle::new(5, 100, MIN, MIN);
        let a = ip("192.0.2.1");
        let held: Vec<_> = (0..20)
            .filter_map(|_| t.begin(a, Some("v@x.example")).ok())
            .collect();
        assert_eq!(held.len(), 5);
        for tk in held {
            t.fail(tk);
        }
        assert!(t.is_blocked(a));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = Throttle::new(2, 100, MIN, MIN);
        fail(&t, ip("2001:db8:1:2::1"), None).unwrap();
        assert!(
            fail(&t, ip("2001:db8:1:2:ffff::9"), None)
                .unwrap()
                .address_blocked
        );
        assert!(t.is_blocked(ip("2001:db8:1:2::abcd")));
        assert!(!t.is_blocked(ip("2001:db8:1:3::1")));
        assert_eq!(network(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn account_under_attack_spares_its_known_networks() {
        let t = Throttle::new(100, 6, MIN, MIN);
        let user = Some("v@x.example");
        let home = ip("192.0.2.200");
        t.succeed(t.begin(home, user).unwrap());
        let mut blocked = 0;
        for i in 0..6 {
            let v = fail(&t, ip(&format!("198.51.100.{i}")), user).unwrap();
            blocked += u32::from(v.account_blocked);
        }
        assert_eq!(blocked, 1);
        assert_eq!(
            t.begin(ip("198.51.100.99"), user).unwrap_err(),
            Refusal::Account
        );
        assert!(
            t.begin(ip("198.51.100.99"), Some("other@x.example"))
                .is_ok()
        );
        t.succeed(t.begin(home, user).unwrap());
        assert_eq!(t.account_stats(), (1, 1));
    }

    #[test]
    fn full_table_keeps_blocks_and_fails_closed() {
        let t = Throttle::with_capacity(1, 100, MIN, MIN, 3);
        // Three blocked networks fill the table.
        for i in 0..3 {
            assert!(
                fail(&t, ip(&format!("192.0.2.{i}")), None)
                    .unwrap()
                    .address_blocked
            );
        }
        assert_eq!(
            t.begin(ip("192.0.2.50"), None).unwrap_err(),
            Refusal::Address
        );
        for i in 0..3 {
            assert!(t.is_blocked(ip(&format!("192.0.2.{i}"))));
        }
        // Unblocked entries make way for new ones; blocks stay.
        let t = Throttle::with_capacity(3, 100, MIN, MIN, 3);
        assert!(fail(&t, ip("192.0.2.1"), None).is_ok());
        for _ in 0..3 {
            let _ = fail(&t, ip("192.0.2.2"), None);
        }
        assert!(fail(&t, ip("192.0.2.3"), None).is_ok());
        assert!(fail(&t, ip("192.0.2.4"), None).is_ok());
        assert!(t.is_blocked(ip("192.0.2.2")));
    }
}
