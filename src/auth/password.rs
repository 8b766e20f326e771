//! Passwords are stored as argon2id PHC strings and verified in constant
//! time. Verification is deliberately expensive, so it runs off the async
//! workers, a bounded number at once (each holds the memory cost), and a
//! successful login is remembered for a while as a keyed SHA-256 tag: a
//! client that authenticates for every message (most do) then costs one
//! hash, not one argon2 run. The cache never holds a password, and a
//! changed password hash invalidates it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// OWASP's argon2id alternative for small machines: 7 MiB, 5 passes.
fn hasher() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A new PHC string for `password`.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .expect("OS random source");
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing of a bounded password")
        .to_string()
}

/// Most a pre-hashed password may ask per login: no more memory than the
/// daemon's own hashes (each verifier slot is sized for 7 MiB), at most
/// this many passes, one lane.
const MAX_PHC_PASSES: u32 = 10;

/// Checks an argon2id PHC string brought from another system (an import
/// for a migration): well formed, argon2id v19, with a salt, and no
/// costlier to verify than the daemon's own hashes allow.
pub fn check_phc(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!("{} is not argon2id", parsed.algorithm));
    }
    if parsed.version != Some(0x13) {
        return Err("argon2id hashes must be version 19 (v=19)".into());
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the PHC string has no salt or no hash".into());
    }
    let p = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if p.m_cost() > 7 * 1024 || p.t_cost() > MAX_PHC_PASSES || p.p_cost() != 1 {
        return Err(format!(
            "argon2id parameters m={},t={},p={} are over the daemon's bound \
             (m at most 7168 KiB, t at most {MAX_PHC_PASSES}, p=1)",
            p.m_cost(),
            p.t_cost(),
            p.p_cost()
        ));
    }
    Ok(())
}

/// Checks `password` against a PHC string (constant time inside argon2).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the user is unknown
/// so that the reply time does not tell which user names exist.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 24];
        rand::rngs::OsRng
            .try_fill_bytes(&mut pw)
            .expect("OS random source");
        hash(&base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            pw,
        ))
    })
}

struct Cached {
    phc: String,
    tag: [u8; 32],
    until: Instant,
}

/// Verifies passwords with bounded parallelism and a success cache.
pub struct Verifier {
    slots: Semaphore,
    parallel: usize,
    ttl: Duration,
    key: [u8; 32],
    cache: Mutex<HashMap<String, Cached>>,
}

/// Entries kept in the success cache at most.
const CACHE_CAP: usize = 10_000;

impl Verifier {
    pub fn new(parallel: usize, ttl: Duration) -> Arc<Verifier> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut key)
            .expect("OS random source");
        Arc::new(Verifier {
            slots: Semaphore::new(parallel.max(1)),
            parallel: parallel.max(1),
            // Bounded: `Instant + ttl` must not overflow.
            ttl: ttl.min(Duration::from_secs(365 * 24 * 3600)),
            key,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn tag(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Is this login (keyed hash `tag`) cached as verified against `phc`?
    fn cached(&self, user: &str, tag: &[u8; 32], phc: Option<&str>) -> bool {
        let Some(phc) = phc else {
            return false;
        };
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(user).is_some_and(|c| {
            c.phc == phc && c.until > Instant::now() && bool::from(c.tag.ct_eq(tag))
        })
    }

    /// Does `password` match `phc`? Uncached, but within the same bound
    /// on hashes at once; for callers already on a blocking thread (the
    /// admin face), which wait here for a slot.
    pub fn verify_blocking(&self, password: &str, phc: &str) -> bool {
        let handle = tokio::runtime::Handle::current();
        let Ok(_slot) = handle.block_on(self.slots.acquire()) else {
            return false;
        };
        verify(password, phc)
    }

    /// How many argon2 runs may go at once (`[auth] max_parallel_hashes`).
    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// A new hash of `password`, made within the same bound on hashes at
    /// once as logins (a bulk import shares the memory bound with them);
    /// for plain threads, which wait for a slot on `runtime` (outside a
    /// runtime, in tools and the fuzz harness, nothing else hashes).
    pub fn hash_blocking(
        &self,
        runtime: Option<&tokio::runtime::Handle>,
        password: &str,
    ) -> String {
        let _slot = runtime.map(|rt| rt.block_on(self.slots.acquire()));
        hash(password)
    }

    /// Does `password` match `phc` (the user's stored hash, if any)?
    pub async fn check(self: &Arc<Self>, user: &str, password: &str, phc: Option<&str>) -> bool {
        let tag = self.tag(user, password);
        if self.cached(user, &tag, phc) {
            return true;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        // Sessions that queued for a slot behind a verification of the same
        // login (a burst of clients after a restart) find it cached now
        // instead of each running argon2 again.
        if self.cached(user, &tag, phc) {
            return true;
        }
        let (pw, stored) = (password.to_string(), phc.map(str::to_string));
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(phc) => verify(&pw, &phc),
            None => {
                verify(&pw, decoy());
                false
            }
        })
        .await
        .unwrap_or(false);
        if ok && let Some(phc) = phc {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_CAP {
                let now = Instant::now();
                cache.retain(|_, c| c.until > now);
                if cache.len() >= CACHE_CAP {
                    cache.clear();
                }
            }
            let until = Instant::now() + self.ttl;
            cache.insert(
                user.to_string(),
                Cached {
                    phc: phc.to_string(),
                    tag,
                    until,
                },
            );
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_hashed_passwords_are_bounded() {
        let own = hash("a long password");
        assert!(check_phc(&own).is_ok());
        assert!(verify("a long password", &own));
        let big = own.replace("m=7168", "m=1048576");
        assert!(
            check_phc(&big)
                .unwrap_err()
                .contains("over the daemon's bound")
        );
        let argon2i = own.replace("$argon2id$", "$argon2i$");
        assert!(check_phc(&argon2i).unwrap_err().contains("not argon2id"));
        assert!(check_phc("$argon2id$nonsense").is_err());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret!", &h));
        assert!(!verify("s3cret", "not a hash"));
    }

    #[tokio::test]
    async fn cache_respects_password_changes() {
        let v = Verifier::new(1, Duration::from_secs(60));
        let h1 = hash("one");
        assert!(v.check("a@b.c", "one", Some(&h1)).await);
        assert!(v.check("a@b.c", "one", Some(&h1)).await);
        assert!(!v.check("a@b.c", "two", Some(&h1)).await);
        let h2 = hash("two");
        assert!(!v.check("a@b.c", "one", Some(&h2)).await);
        assert!(v.check("a@b.c", "two", Some(&h2)).await);
        assert!(!v.check("a@b.c", "two", None).await);
    }
}
