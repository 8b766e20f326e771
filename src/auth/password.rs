//! Passwords are stored as argon2id PHC strings and verified in constant
//! time. Verification is deliberately expensive, so it runs off the async
//! workers, a bounded number at once (each holds the memory cost), and a
//! successful login is remembered for a while as a keyed SHA-256 tag: a
//! client that authenticates for every message (most do) then costs one
//! hash, not one argon2 run. The cache never holds a password, and a
//! changed password hash invalidates it.
//!
//! Two costs: [`FULL`], what every stored hash ends at, and [`IMPORT`], a
//! lighter one a bulk import may ask for (`--fast-hash`) so that 100,000
//! plaintext passwords hash in minutes, not an hour. The cost is in the
//! PHC string (`m=…,t=…`), verification reads it from there, and the first
//! successful login of a user whose hash is weaker than [`FULL`] re-hashes
//! the password at full cost ([`Login::Upgraded`]), which the caller stores
//! as a password change would. A wrong password never re-hashes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// An argon2id cost (one lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over it.
    pub t: u32,
}

/// The daemon's cost, of every password it sets and of every hash after
/// its user's first login: OWASP's argon2id alternative for small
/// machines, 7 MiB and 5 passes.
pub const FULL: Cost = Cost {
    m_kib: 7 * 1024,
    t: 5,
};

/// The lighter cost of a bulk import that asks for it (`outguard user
/// import --fast-hash`, `?fast_hash=true`): the same 7 MiB per guess, so
/// the memory hardness stays, but one pass, about 5 times faster (100,000
/// users in minutes on 2 cores instead of an hour). The trade-off: until a
/// user's first login re-hashes it at [`FULL`], a stolen store costs an
/// attacker 5 times fewer passes per guess for that user.
pub const IMPORT: Cost = Cost {
    m_kib: 7 * 1024,
    t: 1,
};

/// argon2 over `memory` (grown to the blocks `params` need): a caller
/// that keeps it between runs spares the 7 MiB of fresh pages each run
/// otherwise faults in (a third of the CPU of a one-pass hash).
fn fill(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut memory[..blocks],
    )
}

/// The cost a PHC string was made with, if it is one.
pub fn cost_of(phc: &str) -> Option<Cost> {
    let parsed = PasswordHash::new(phc).ok()?;
    let p = Params::try_from(&parsed).ok()?;
    Some(Cost {
        m_kib: p.m_cost(),
        t: p.t_cost(),
    })
}

/// Is `phc` weaker than [`FULL`] (less memory or fewer passes: an import's
/// [`IMPORT`] hash, or a migrated one)? Then a successful login re-hashes it.
/// A hash with more passes at full memory is left as it is.
pub fn needs_rehash(phc: &str) -> bool {
    cost_of(phc).is_some_and(|c| c.m_kib < FULL.m_kib || c.t < FULL.t)
}

/// A new PHC string for `password` at [`FULL`] cost.
pub fn hash(password: &str) -> String {
    hash_with(password, FULL)
}

/// A new PHC string for `password` at `cost` (its parameters are in it).
pub fn hash_with(password: &str, cost: Cost) -> String {
    hash_in(password, cost, &mut Vec::new())
}

/// [`hash_with`] in `memory` (see [`fill`]).
pub fn hash_in(password: &str, cost: Cost, memory: &mut Vec<Block>) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut salt)
        .expect("OS random source");
    let encoded = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    let params = Params::new(cost.m_kib, cost.t, 1, None).expect("valid argon2 parameters");
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        fill(
            Algorithm::Argon2id,
            Version::V0x13,
            params.clone(),
            password.as_bytes(),
            &salt,
            out,
            memory,
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .expect("argon2 hashing of a bounded password");
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("argon2 parameters encode"),
        salt: Some(encoded.as_salt()),
        hash: Some(output),
    }
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

/// Checks `password` against a PHC string (constant-time comparison),
/// at the cost written in it ([`FULL`], [`IMPORT`] or a migrated hash's).
pub fn verify(password: &str, phc: &str) -> bool {
    verify_in(password, phc, &mut Vec::new())
}

/// [`verify`] in `memory` (see [`fill`]).
pub fn verify_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    fill(
        algorithm,
        version,
        params,
        password.as_bytes(),
        salt,
        &mut out,
        memory,
    )
    .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
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

/// See [`Verifier::importing`].
pub struct Importing(Arc<Verifier>);

impl Drop for Importing {
    fn drop(&mut self) {
        let v = &self.0;
        if v.importing
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            == 1
        {
            v.memory.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

/// The outcome of a login check.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    Refused,
    Accepted,
    /// Accepted, and the stored hash was weaker than [`FULL`]: this is the
    /// password hashed again at full cost, for the caller to store in place
    /// of the one it passed (if that is still the stored one).
    Upgraded(String),
}

impl Login {
    pub fn ok(&self) -> bool {
        !matches!(self, Login::Refused)
    }
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
    /// argon2 memory kept between runs while an import runs (`importing`),
    /// taken only by a slot holder: never more buffers than slots, so the
    /// memory bound holds, and no 7 MiB of fresh pages per hash.
    memory: Mutex<Vec<Vec<Block>>>,
    importing: std::sync::atomic::AtomicUsize,
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
            memory: Mutex::new(Vec::new()),
            importing: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Runs `f` with a memory buffer; for slot holders only.
    fn with_memory<R>(&self, f: impl FnOnce(&mut Vec<Block>) -> R) -> R {
        let pool = || self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let mut memory = pool().pop().unwrap_or_default();
        let r = f(&mut memory);
        if self.importing.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            pool().push(memory);
        }
        r
    }

    /// While the guard lives (a bulk import), argon2 memory is kept
    /// between runs; after the last one it is freed.
    pub fn importing(self: &Arc<Self>) -> Importing {
        self.importing
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Importing(self.clone())
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
        self.with_memory(|m| verify_in(password, phc, m))
    }

    /// How many argon2 runs may go at once (`[auth] max_parallel_hashes`).
    pub fn parallel(&self) -> usize {
        self.parallel
    }

    /// A new hash of `password` at `cost`, made within the same bound on
    /// hashes at once as logins (a bulk import shares the memory bound with
    /// them); for plain threads, which wait for a slot on `runtime`
    /// (outside a runtime, in tools and the fuzz harness, nothing else
    /// hashes).
    pub fn hash_blocking(
        &self,
        runtime: Option<&tokio::runtime::Handle>,
        password: &str,
        cost: Cost,
    ) -> String {
        let _slot = runtime.map(|rt| rt.block_on(self.slots.acquire()));
        self.with_memory(|m| hash_in(password, cost, m))
    }

    /// Does `password` match `phc` (the user's stored hash, if any)?
    pub async fn check(self: &Arc<Self>, user: &str, password: &str, phc: Option<&str>) -> bool {
        self.login(user, password, phc).await.ok()
    }

    /// Does `password` match `phc` (the user's stored hash, if any), and
    /// if it does and `phc` is weaker than [`FULL`], the full-cost hash to
    /// store instead (made in the same slot, once the password is known
    /// right; a wrong password never re-hashes).
    pub async fn login(self: &Arc<Self>, user: &str, password: &str, phc: Option<&str>) -> Login {
        let tag = self.tag(user, password);
        if self.cached(user, &tag, phc) {
            return Login::Accepted;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return Login::Refused;
        };
        // Sessions that queued for a slot behind a verification of the same
        // login (a burst of clients after a restart) find it cached now
        // instead of each running argon2 again.
        if self.cached(user, &tag, phc) {
            return Login::Accepted;
        }
        let (pw, stored, me) = (password.to_string(), phc.map(str::to_string), self.clone());
        let login = tokio::task::spawn_blocking(move || {
            me.with_memory(|m| match stored {
                Some(phc) if verify_in(&pw, &phc, m) => match needs_rehash(&phc) {
                    true => Login::Upgraded(hash_in(&pw, FULL, m)),
                    false => Login::Accepted,
                },
                Some(_) => Login::Refused,
                None => {
                    verify_in(&pw, decoy(), m);
                    Login::Refused
                }
            })
        })
        .await
        .unwrap_or(Login::Refused);
        // Cached against the hash that will be stored: the upgraded one.
        let cached_phc = match &login {
            Login::Upgraded(new) => Some(new.as_str()),
            Login::Accepted => phc,
            Login::Refused => None,
        };
        if let Some(phc) = cached_phc {
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
        login
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

    #[tokio::test]
    async fn an_import_cost_hash_is_upgraded_on_the_first_right_password() {
        let light = hash_with("imported-1", IMPORT);
        assert_eq!(cost_of(&light), Some(IMPORT));
        assert!(needs_rehash(&light) && !needs_rehash(&hash("x")));
        // More passes at full memory is not weaker: left as it is.
        assert!(!needs_rehash(&light.replace("t=1", "t=10")));
        assert!(verify("imported-1", &light));
        let v = Verifier::new(1, Duration::from_secs(60));
        assert_eq!(
            v.login("a@b.c", "wrong-one", Some(&light)).await,
            Login::Refused
        );
        let Login::Upgraded(full) = v.login("a@b.c", "imported-1", Some(&light)).await else {
            panic!("the light hash was not upgraded");
        };
        assert_eq!(cost_of(&full), Some(FULL));
        assert!(verify("imported-1", &full) && !verify("imported-2", &full));
        // Once the caller stored it: a plain, cached success.
        assert_eq!(
            v.login("a@b.c", "imported-1", Some(&full)).await,
            Login::Accepted
        );
    }

    #[test]
    fn reused_memory_agrees_with_argon2s_own_hasher() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        // Both costs through one buffer, then argon2's own verifier.
        for cost in [FULL, IMPORT, FULL] {
            let h = hash_in("shared-memory", cost, &mut memory);
            assert_eq!(cost_of(&h), Some(cost));
            let parsed = PasswordHash::new(&h).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"shared-memory", &parsed)
                    .is_ok()
            );
            assert!(verify_in("shared-memory", &h, &mut memory));
            assert!(!verify_in("shared-memorx", &h, &mut memory));
        }
        // A hash made by argon2's own hasher verifies here.
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 2, 1, None).unwrap(),
        )
        .hash_password(b"theirs-1", &salt)
        .unwrap()
        .to_string();
        assert!(verify_in("theirs-1", &theirs, &mut memory));
        assert!(!verify("theirs-2", &theirs));
    }
}
