//! Content screening at the end of DATA, before the reply, so the reply
//! can carry the verdict. Scans are CPU-bound: they run on blocking
//! threads, a bounded number at once, each with a deadline. A scan that
//! fails or runs out of time yields `Failed`, and the configured failure
//! action decides; nothing is kept.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::ScanSettings;
use crate::scan::{Class, Scanner, Verdict};

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
    slots: Semaphore,
    timeout: Duration,
}

impl Screener {
    pub fn new(cfg: &ScanSettings, data_dir: &std::path::Path) -> Result<Screener, String> {
        let scanner = if cfg.enabled {
            let s = Scanner::new(cfg.builtin.clone(), Some(data_dir))
                .map_err(|e| format!("scanner: {e}"))?;
            Some(Arc::new(s))
        } else {
            None
        };
        Ok(Screener {
            scanner,
            slots: Semaphore::new(cfg.max_parallel.max(1)),
            timeout: Duration::from_millis(cfg.timeout_ms),
        })
    }

    pub async fn screen(&self, message: Bytes) -> Screened {
        let Some(scanner) = self.scanner.clone() else {
            return Screened::Clean(Verdict {
                class: Class::Clean,
                score: 0.0,
                reasons: Vec::new(),
            });
        };
        let run = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| "scanner closed".to_string())?;
            tokio::task::spawn_blocking(move || scanner.scan(&message))
                .await
                .map_err(|e| format!("scanner crashed: {e}"))?
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(self.timeout, run).await {
            Err(_) => Screened::Failed(format!(
                "scan took longer than {} ms",
                self.timeout.as_millis()
            )),
            Ok(Err(e)) => Screened::Failed(e),
            Ok(Ok(v)) if v.class == Class::Clean => Screened::Clean(v),
            Ok(Ok(v)) => Screened::Caught(v),
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
