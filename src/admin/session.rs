//! Admin sessions, in memory: a random token in a cookie names a session
//! holding its CSRF token and times. Sessions end when idle too long,
//! when too old, and at logout. The map is keyed by a hash of the token,
//! so looking one up reveals nothing about other tokens through timing.
//! Times come from the daemon's clock so tests can pass an expiry by
//! moving it (debug.clock_override).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use super::csrf;
use crate::clock::Clock;

/// Sessions kept at most; the least recently used go first past this.
const MAX_SESSIONS: usize = 1_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub ip: IpAddr,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    /// A message for the next page shown (after a redirect).
    pub flash: Option<String>,
    /// Hash of the admin password hash in force at login: a session
    /// outlives no password change, whichever face made it.
    pub password: [u8; 32],
}

/// What a session remembers of the admin password (never the password).
pub fn password_tag(phc: &str) -> [u8; 32] {
    Sha256::digest(phc.as_bytes()).into()
}

pub struct Sessions {
    clock: Arc<Clock>,
    idle: SignedDuration,
    max: SignedDuration,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(clock: Arc<Clock>, idle: Duration, max: Duration) -> Sessions {
        let d = |x: Duration| SignedDuration::try_from(x).unwrap_or(SignedDuration::MAX);
        Sessions {
            clock,
            idle: d(idle),
            max: d(max),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, s: &Session, now: Timestamp) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < self.max
    }

    /// Starts a session; returns its cookie token.
    pub fn create(&self, ip: IpAddr, password: [u8; 32]) -> (String, Session) {
        let now = self.clock.now();
        let token = csrf::token();
        let s = Session {
            csrf: csrf::token(),
            ip,
            created: now,
            last_seen: now,
            flash: None,
            password,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| self.live(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(key(&token), s.clone());
        (token, s)
    }

    /// The live session named by `token`, marked as used now (and its
    /// flash message taken); an expired one is removed.
    pub fn touch(&self, token: &str) -> Option<Session> {
        let now = self.clock.now();
        let k = key(token);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.get_mut(&k)?;
        if !self.live(s, now) {
            map.remove(&k);
            return None;
        }
        s.last_seen = now;
        let out = s.clone();
        s.flash = None;
        Some(out)
    }

    pub fn flash(&self, token: &str, message: String) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(&key(token)) {
            s.flash = Some(message);
        }
    }

    pub fn remove(&self, token: &str) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(token)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_logout() {
        let clock = Arc::new(Clock::default());
        let s = Sessions::new(
            clock.clone(),
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (t, sess) = s.create(ip, [0; 32]);
        assert_eq!(s.touch(&t).unwrap().csrf, sess.csrf);
        assert!(s.touch("not-a-token").is_none());
        // Idle past the limit: gone.
        clock.set(Timestamp::now() + SignedDuration::from_secs(61));
        assert!(s.touch(&t).is_none());
        // Used often but too old: gone too.
        clock.reset();
        let (t2, _) = s.create(ip, [0; 32]);
        for step in 1..=12 {
            clock.set(Timestamp::now() + SignedDuration::from_secs(55 * step));
            let alive = s.touch(&t2).is_some();
            assert_eq!(alive, 55 * step < 600, "step {step}");
        }
        clock.reset();
        let (t3, _) = s.create(ip, [0; 32]);
        s.flash(&t3, "saved".into());
        assert_eq!(s.touch(&t3).unwrap().flash.as_deref(), Some("saved"));
        assert_eq!(s.touch(&t3).unwrap().flash, None);
        assert!(s.remove(&t3));
        assert!(s.touch(&t3).is_none());
    }
}
