//! The scanner's command on the appliance: `outguard scan FILE` scans one
//! message and prints the verdict. Training and evaluation (`train`,
//! `scan-eval`, `scan-holdout`) are the separate `outguard-train` binary
//! (src/bin/outguard-train.rs), so the daemon does not link them.

use std::error::Error;
use std::path::Path;

use super::{ScanConfig, Scanner, Verdict, strip_mbox_from};

type CliResult<T> = Result<T, Box<dyn Error>>;

/// `outguard scan FILE [--json] [--data-dir DIR]`: prints the verdict.
pub fn scan(file: &Path, json: bool, data_dir: Option<&Path>) -> CliResult<Verdict> {
    let raw = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let scanner = Scanner::new(ScanConfig::default(), data_dir)?;
    let verdict = scanner
        .scan(strip_mbox_from(&raw))
        .map_err(|e| format!("scan refused: {e}"))?;
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        crate::outln!("verdict: {}", verdict.class);
        crate::outln!(
            "score: {:.2} (threshold {:.1})",
            verdict.score,
            scanner.config().spam_threshold
        );
        for r in &verdict.reasons {
            crate::outln!("  {r}");
        }
    }
    Ok(verdict)
}
