//! Throttling of failed logins per client address: after `max_failures`
//! within the window, the address is refused for a while. The table is
//! bounded; when full, the stalest addresses are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_TRACKED: usize = 50_000;

struct Entry {
    failures: Vec<Instant>,
    blocked_until: Option<Instant>,
}

pub struct Throttle {
    max_failures: usize,
    window: Duration,
    block: Duration,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration, block: Duration) -> Throttle {
        Throttle {
            max_failures: max_failures.max(1) as usize,
            window,
            block,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Is `ip` refused right now?
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table
            .get(&ip)
            .and_then(|e| e.blocked_until)
            .is_some_and(|t| t > now)
    }

    /// Records a failure; returns true if `ip` is now blocked.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_TRACKED && !table.contains_key(&ip) {
            let window = self.window;
            table.retain(|_, e| {
                e.blocked_until.is_some_and(|t| t > now)
                    || e.failures
                        .last()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
            if table.len() >= MAX_TRACKED {
                table.clear();
            }
        }
        let e = table.entry(ip).or_insert(Entry {
            failures: Vec::new(),
            blocked_until: None,
        });
        e.failures.retain(|t| now.duration_since(*t) < self.window);
        e.failures.push(now);
        if e.failures.len() >= self.max_failures {
            e.failures.clear();
            e.blocked_until = Some(now + self.block);
            return true;
        }
        false
    }

    /// A successful login clears the address's recent failures.
    pub fn succeed(&self, ip: IpAddr) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = table.get_mut(&ip) {
            e.failures.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!t.fail(ip));
        assert!(!t.fail(ip));
        assert!(!t.is_blocked(ip));
        assert!(t.fail(ip));
        assert!(t.is_blocked(ip));
        assert!(!t.is_blocked("192.0.2.2".parse().unwrap()));
    }
}
