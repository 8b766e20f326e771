//! A fleet of appliances behind one name sharing users, settings, locks
//! and usage counters through a Valkey/Redis server (`[store] shared`).
//! Each box keeps its own queue and quarantine in its redb store: mail
//! never leaves the box that acknowledged it. See docs/FLEET.md.
//!
//! - `limits`: check-and-count in the shared store at commit time (one
//!   Lua script, atomic on the server), and the degraded check used while
//!   the store is unreachable.
//! - `behaviour`: the users' behaviour profiles, read before and written
//!   after each group commit (only over the copy the commit read; else
//!   the commit's changes are made again on the newer one).
//! - `sync`: a thread that publishes this box's changes to users and
//!   settings, applies the others' from a change log (a stream), and
//!   reconciles when the store comes back.

mod behaviour;
mod limits;
mod marks;
mod sync;
#[cfg(test)]
mod test_server;
pub mod url;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::policy::limits::Counts;
use crate::settings;
use crate::store::Store;

pub use behaviour::{Pending, Read};
pub use limits::{Counted, Reservation};
pub use url::SharedUrl;

/// Connect, read and write timeouts towards the shared store: a commit
/// waits at most about this long before the box degrades.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Users whose last shared counts are cached for the degraded check.
const CACHE_USERS: usize = 100_000;

pub struct Fleet {
    client: redis::Client,
    /// The URL without its password, for logs and the admin page.
    shown: String,
    /// This box's name in the shared store (`og:box:<id>`).
    box_id: String,
    fraction: f64,
    /// The committer's connection; `None` until (re)connected.
    conn: Mutex<Option<redis::Connection>>,
    degraded: AtomicBool,
    /// Whether this outage has been logged (a box starts degraded).
    announced: AtomicBool,
    /// Last counts the shared store returned per user, with their day.
    cache: Mutex<HashMap<String, (crate::policy::windows::Windows, Counts)>>,
    /// What this box counted while degraded, added to the shared counters
    /// once the store is back.
    owed: Mutex<HashMap<String, crate::store::Usage>>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    degraded_since_start: AtomicU64,
    refused_degraded: AtomicU64,
    changes_published: AtomicU64,
    changes_applied: AtomicU64,
}

static CURRENT: OnceLock<Arc<Fleet>> = OnceLock::new();

/// The running fleet link, if `[store] shared` is set (for the admin
/// page and metrics).
pub fn current() -> Option<&'static Arc<Fleet>> {
    CURRENT.get()
}

impl Fleet {
    /// Builds the client (with the CA certificates `ca`, PEM, read before
    /// the jail: see `url::ca_pem`) and
    /// starts the sync thread. The box starts degraded until that thread
    /// has connected and reconciled.
    pub fn start(
        cfg: &crate::store::StoreConfig,
        ca: Vec<u8>,
        store: Arc<Store>,
        settings: settings::Shared,
    ) -> Result<Arc<Fleet>, String> {
        let Some(shared) = &cfg.shared else {
            return Err("no [store] shared".into());
        };
        let url = url::client_url(&shared.0)?;
        let shown = url::redacted(&shared.0);
        // No CLIENT SETINFO after connecting: the library's name is of no
        // use to the server, and the documented ACL (docs/FLEET.md) does
        // not grant the CLIENT command.
        let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
            .map_err(|e| format!("[store] shared {shown}: {e}"))?;
        let no_lib_name = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_redis_settings(no_lib_name);
        let client = if url.starts_with("rediss:") {
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            )
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| format!("[store] shared {shown}: {e}"))?;
        let box_id = store
            .fleet_box_id()
            .map_err(|e| format!("fleet box id: {e}"))?;
        let fleet = Arc::new(Fleet {
            client,
            shown,
            box_id: format!("{box_id:016x}"),
            fraction: cfg.degraded_fraction,
            conn: Mutex::new(None),
            degraded: AtomicBool::new(true),
            announced: AtomicBool::new(false),
            cache: Mutex::new(HashMap::new()),
            owed: Mutex::new(HashMap::new()),
            stats: Stats::default(),
        });
        let _ = CURRENT.set(fleet.clone());
        sync::start(fleet.clone(), store, settings)?;
        Ok(fleet)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(TIMEOUT)?;
        c.set_read_timeout(Some(TIMEOUT))?;
        c.set_write_timeout(Some(TIMEOUT))?;
        Ok(c)
    }

    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Marks the store unreachable (logged once per outage).
    fn enter_degraded(&self, why: &str) {
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.degraded.store(true, Ordering::Release);
        if !self.announced.swap(true, Ordering::AcqRel) {
            self.stats
                .degraded_since_start
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                store = %self.shown,
                error = why,
                fraction = self.fraction,
                "fleet store unreachable: degraded, local limits at the degraded fraction"
            );
        }
    }

    fn leave_degraded(&self) {
        self.announced.store(false, Ordering::Release);
        if self.degraded.swap(false, Ordering::AcqRel) {
            tracing::info!(store = %self.shown, box_id = %self.box_id, "fleet store reachable: shared limits in force");
        }
    }

    /// For the admin page and metrics.
    pub fn status(&self) -> serde_json::Value {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let owed = self.owed.lock().map(|o| o.len()).unwrap_or(0);
        serde_json::json!({
            "store": self.shown,
            "box_id": self.box_id,
            "degraded": self.degraded(),
            "degraded_fraction": self.fraction,
            "degraded_episodes": n(&self.stats.degraded_since_start),
            "refused_degraded": n(&self.stats.refused_degraded),
            "changes_published": n(&self.stats.changes_published),
            "changes_applied": n(&self.stats.changes_applied),
            "users_owing_usage": owed,
        })
    }
}

/// Keys in the shared store. Names of one user share a hash tag.
mod keys {
    pub const USERS: &str = "og:users";
    pub const SETTINGS: &str = "og:settings";
    pub const CHANGES: &str = "og:changes";
    /// The change log keeps about this many entries.
    pub const CHANGES_KEEP: usize = 10_000;

    pub fn usage(user: &str, what: &str, window: &str) -> String {
        format!("og:u:{{{user}}}:{what}:{window}")
    }

    pub fn profile(user: &str) -> String {
        format!("og:b:{{{user}}}")
    }

    /// The admin's decisions on the user's holds (`marks`).
    pub fn marks(user: &str) -> String {
        format!("og:bm:{{{user}}}")
    }

    pub fn box_mark(id: &str) -> String {
        format!("og:box:{id}")
    }
}
