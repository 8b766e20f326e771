//! Content screening at the end of DATA, before the reply, so the reply
//! can carry the verdict. Scans are CPU-bound: they run on blocking
//! threads, a bounded number at once, each with a deadline that the
//! scanner checks itself. A scan's slot moves into its blocking thread and
//! is given back only when that thread is done, so `max_parallel` bounds
//! the CPU in use even when scans run out of time. A scan that fails or
//! runs out of time yields `Failed`, and the configured failure action
//! decides; nothing is kept.
//!
//! When external engines are configured (`[scan.clamd]`, `[scan.spamd]`,
//! `[scan.rspamd]`), they are asked after the built-in scan, concurrently,
//! each under its own timeout, unless the built-in engine already found
//! malware; their findings are merged into the verdict and an engine that
//! cannot answer makes the screening `Failed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::ScanSettings;
use crate::scan::external::{self, ExternalConfig};
use crate::scan::{Class, ScanError, Scanner, Verdict};

#[derive(Debug)]
pub enum Screened {
    Clean(Verdict),
    /// Spam or malware.
    Caught(Verdict),
    /// Could not be judged (error, timeout, over the scanner's bounds).
    Failed(String),
}

pub struct Screener {
    /// `None` when scanning is off.
    scanner: Option<Arc<Scanner>>,
    slots: Arc<Semaphore>,
    timeout: Duration,
    external: ExternalConfig,
    running: Arc<Running>,
}

/// Scans whose thread is running, and the most seen at once.
#[derive(Debug, Default)]
pub struct Running {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Running {
    fn enter(self: &Arc<Self>) -> RunningGuard {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        RunningGuard(self.clone())
    }

    /// (running now, most at once since start)
    pub fn counts(&self) -> (usize, usize) {
        (
            self.now.load(Ordering::SeqCst),
            self.peak.load(Ordering::SeqCst),
        )
    }
}

struct RunningGuard(Arc<Running>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long past its deadline a scan's thread may take to notice it
/// before the session stops waiting (its slot stays taken until it ends).
const STOP_GRACE: Duration = Duration::from_secs(2);

impl Screener {
    pub fn new(cfg: &ScanSettings, data_dir: &std::path::Path) -> Result<Screener, String> {
        let scanner = if cfg.enabled {
            let s = Scanner::new(cfg.builtin.clone(), Some(data_dir))
                .map_err(|e| format!("scanner: {e}"))?;
            Some(Arc::new(s))
        } else {
            None
        };
        let external = cfg.external();
        external.validate()?;
        Ok(Screener {
            scanner,
            slots: Arc::new(Semaphore::new(cfg.max_parallel.max(1))),
            timeout: Duration::from_millis(cfg.timeout_ms),
            external,
            running: Arc::default(),
        })
    }

    /// Scans running now and the most at once (health, tests).
    pub fn running(&self) -> (usize, usize) {
        self.running.counts()
    }

    pub async fn screen(&self, message: Bytes) -> Screened {
        let Some(scanner) = self.scanner.clone() else {
            return Screened::Clean(Verdict {
                class: Class::Clean,
                score: 0.0,
                reasons: Vec::new(),
                lock_score: 0.0,
                classifier_only: false,
                fingerprint: 0,
            });
        };
        let copy = message.clone();
        let late = || format!("scan took longer than {} ms", self.timeout.as_millis());
        let deadline = Instant::now() + self.timeout;
        let slot = match tokio::time::timeout_at(
            deadline.into(),
            self.slots.clone().acquire_owned(),
        )
        .await
        {
            Err(_) => return Screened::Failed(late()),
            Ok(Err(_)) => return Screened::Failed("scanner closed".into()),
            Ok(Ok(slot)) => slot,
        };
        let running = self.running.clone();
        let work = tokio::task::spawn_blocking(move || {
            // Dropped in reverse order: the count, then the slot.
            let _slot = slot;
            let _running = running.enter();
            scanner.scan_until(&message, Some(deadline))
        });
        let mut v = match tokio::time::timeout_at((deadline + STOP_GRACE).into(), work).await {
            Err(_) | Ok(Ok(Err(ScanError::DeadlinePassed))) => return Screened::Failed(late()),
            Ok(Err(e)) => return Screened::Failed(format!("scanner crashed: {e}")),
            Ok(Ok(Err(e))) => return Screened::Failed(e.to_string()),
            Ok(Ok(Ok(v))) => v,
        };
        if v.class != Class::Malware && !self.external.is_empty() {
            match external::check(&self.external, &copy).await {
                Ok(findings) => v = external::combine(v, &findings),
                Err(e) => return Screened::Failed(e.to_string()),
            }
        }
        if v.class == Class::Clean {
            Screened::Clean(v)
        } else {
            Screened::Caught(v)
        }
    }
}

/// A short reason for a reply line: the first reasons, bounded.
pub fn summary(v: &Verdict) -> String {
    let mut s = v
        .reasons
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if s.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message the scanner needs far longer than 20 ms for.
    fn slow_message() -> Bytes {
        let mut m = b"Subject: x\r\nContent-Type: text/html\r\n\r\n".to_vec();
        for _ in 0..40 {
            m.extend_from_slice(&b"<p>spam words <b>here</b> ".repeat(1000));
            m.extend_from_slice(b"\r\n");
        }
        Bytes::from(m)
    }

    /// A scan that runs out of time keeps its slot until its thread has
    /// stopped: with one slot, never two scans run at once (before, the
    /// slot was given back at the timeout while the thread went on).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timed_out_scan_keeps_its_slot_until_it_stops() {
        let cfg = ScanSettings {
            enabled: true,
            timeout_ms: 20,
            max_parallel: 1,
            ..Default::default()
        };
        let dir = std::env::temp_dir().join("outguard-screen-test-none");
        let screener = Arc::new(Screener::new(&cfg, &dir).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (s, m) = (screener.clone(), slow_message());
            tasks.spawn(async move { s.screen(m).await });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Screened::Failed(why) => assert!(why.contains("longer than 20 ms"), "{why}"),
                other => panic!("a scan finished in 20 ms: {other:?}"),
            }
        }
        // Every screening has answered; the thread that ran may finish
        // just after, and no other started beside it.
        let (_, peak) = screener.running();
        assert_eq!(peak, 1);
        for _ in 0..100 {
            if screener.running().0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(screener.running().0, 0);
    }
}
