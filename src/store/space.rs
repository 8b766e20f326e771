//! The disk-space reserve: new mail is refused (452 4.3.1) while the
//! filesystem of the store would keep less than `[store] min_free_mib`
//! free after taking it, so the disk never fills with accepted mail and
//! the writes that empty the queue (delivery results, bounces, admin
//! changes) always have room. Measured with fstatvfs on the store file
//! itself: no path lookup, and the right filesystem whatever is mounted
//! where.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Store;

/// The `[store]` section.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Free space (MiB) new mail must leave on the store's filesystem; 0 = no check.
    pub min_free_mib: u64,
    /// A Valkey/Redis URL (`valkey://`, `valkeys://`, `redis://`,
    /// `rediss://`) shared by a fleet of boxes; none: this box alone.
    pub shared: Option<crate::store::fleet::SharedUrl>,
    /// PEM CA certificate(s) the shared store's TLS certificate must
    /// chain to; none: the system's CA store.
    pub shared_ca: Option<std::path::PathBuf>,
    /// While the shared store is unreachable, each limit at this fraction
    /// for what this box accepts on its own (docs/FLEET.md).
    pub degraded_fraction: f64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            min_free_mib: 32,
            shared: None,
            shared_ca: None,
            degraded_fraction: 0.25,
        }
    }
}

/// Why new mail is refused now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Taking `needed` more octets would leave less than the reserve.
    Full {
        free: u64,
        needed: u64,
        reserve: u64,
    },
    /// The store has failed (see `health`); the daemon is stopping.
    Failed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Full { .. } => write!(f, "Insufficient system storage, try again later"),
            Refusal::Failed(_) => write!(f, "Local storage error, try again later"),
        }
    }
}

pub(super) struct Space {
    /// A second descriptor of the store file, for fstatvfs.
    file: Option<File>,
    reserve: AtomicU64,
}

impl Space {
    pub(super) fn new(file: Option<File>) -> Space {
        Space {
            file,
            reserve: AtomicU64::new(0),
        }
    }

    /// Octets the filesystem still gives an unprivileged writer.
    fn free(&self) -> Option<u64> {
        let st = nix::sys::statvfs::fstatvfs(self.file.as_ref()?)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot measure free disk space"))
            .ok()?;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        Some(u64::from(st.blocks_available()).saturating_mul(st.fragment_size() as u64))
    }
}

/// Free space a delivery needs beyond the message's size, to record its
/// outcome (and a bounce, at most the message's header).
const OUTCOME_ROOM: u64 = 1 << 20;

impl Store {
    /// Sets the reserve (0: no check).
    pub fn set_min_free(&self, bytes: u64) {
        self.space.reserve.store(bytes, Ordering::Relaxed);
    }

    /// Whether `incoming` more octets of new mail may be stored now.
    pub fn admit(&self, incoming: u64) -> Result<(), Refusal> {
        if let Some(why) = self.health.failure() {
            return Err(Refusal::Failed(why));
        }
        let reserve = self.space.reserve.load(Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        // Unmeasurable (logged): better to accept than to refuse all mail.
        let Some(free) = self.space.free() else {
            return Ok(());
        };
        if free < incoming.saturating_add(reserve) {
            return Err(Refusal::Full {
                free,
                needed: incoming,
                reserve,
            });
        }
        Ok(())
    }

    /// Whether a message of `size` octets may be sent now: only if its
    /// outcome can be recorded. Otherwise a disk filled by something else
    /// would have every start send it again and fail to record it.
    pub fn delivery_room(&self, size: u64) -> Result<(), Refusal> {
        if let Some(why) = self.health.failure() {
            return Err(Refusal::Failed(why));
        }
        if self.space.reserve.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let needed = size.saturating_add(OUTCOME_ROOM);
        match self.space.free() {
            Some(free) if free < needed => Err(Refusal::Full {
                free,
                needed,
                reserve: 0,
            }),
            _ => Ok(()),
        }
    }
}
