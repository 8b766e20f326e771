//! Content screening at the end of DATA, before the reply, so the reply
//! can carry the verdict. Scans are CPU-bound: they run on blocking
//! threads, a bounded number at once, each with a deadline. A scan that
//! fails or runs out of time yields `Failed`, and the configured failure
//! action decides; nothing is kept.
//!
//! When external engines are configured (`[scan.clamd]`, `[scan.spamd]`,
//! `[scan.rspamd]`), they are asked after the built-in scan, concurrently,
//! each under its own timeout, unless the built-in engine already found
//! malware; their findings are merged into the verdict and an engine that
//! cannot answer makes the screening `Failed`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::ScanSettings;
use crate::scan::external::{self, ExternalConfig};
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
    external: ExternalConfig,
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
        let external = cfg.external();
        external.validate()?;
        Ok(Screener {
            scanner,
            slots: Semaphore::new(cfg.max_parallel.max(1)),
            timeout: Duration::from_millis(cfg.timeout_ms),
            external,
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
        let copy = message.clone();
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
        let mut v = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                return Screened::Failed(format!(
                    "scan took longer than {} ms",
                    self.timeout.as_millis()
                ));
            }
            Ok(Err(e)) => return Screened::Failed(e),
            Ok(Ok(v)) => v,
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
