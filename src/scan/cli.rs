//! Command-line entry points for the scanner (`train`, `scan`,
//! `scan-eval`). Plain functions so the binary's argument parser only has to
//! forward values.

use std::error::Error;
use std::path::{Path, PathBuf};

use super::training::{self, EvalReport};
use super::{ScanConfig, Scanner, Verdict};

type CliResult<T> = Result<T, Box<dyn Error>>;

/// `outguard train --ham DIR... [--hard-ham DIR...] --spam DIR... --out FILE`
pub fn train(
    ham: &[PathBuf],
    hard_ham: &[PathBuf],
    spam: &[PathBuf],
    out: &Path,
    min_count: u32,
) -> CliResult<()> {
    let model = training::train(ham, hard_ham, spam, min_count)?;
    training::save_model(&model, out)?;
    let size = std::fs::metadata(out)?.len();
    crate::outln!(
        "trained on {} ham / {} spam messages: {} tokens, {} bytes -> {}",
        model.ham_messages(),
        model.spam_messages(),
        model.token_count(),
        size,
        out.display()
    );
    Ok(())
}

/// `outguard scan FILE [--json] [--data-dir DIR]`: prints the verdict.
pub fn scan(file: &Path, json: bool, data_dir: Option<&Path>) -> CliResult<Verdict> {
    let raw = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let scanner = Scanner::new(ScanConfig::default(), data_dir)?;
    let verdict = scanner
        .scan(training::strip_mbox_from(&raw))
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

/// `outguard scan-eval --folds K --ham DIR... --spam DIR...`: k-fold
/// cross-validation with the default configuration.
pub fn scan_eval(
    ham: &[PathBuf],
    spam: &[PathBuf],
    folds: usize,
    min_count: u32,
    list_errors: bool,
    seed: u64,
) -> CliResult<EvalReport> {
    if folds < 2 {
        return Err("--folds must be at least 2".into());
    }
    let config = ScanConfig::default();
    let (report, errors) =
        training::cross_validate_dirs(ham, spam, folds, &config, min_count, seed)?;
    crate::outln!(
        "{}-fold cross-validation (seed {seed}): {} ham, {} spam, {} unscannable",
        report.folds,
        report.ham,
        report.spam,
        report.unscannable
    );
    crate::outln!(
        "catch rate: {:.2}% ({}/{})",
        100.0 * report.catch_rate(),
        report.spam_caught,
        report.spam
    );
    crate::outln!(
        "false-positive rate: {:.2}% ({}/{})",
        100.0 * report.false_positive_rate(),
        report.false_positives,
        report.ham
    );
    crate::outln!("threshold sweep (catch% / FP%):");
    for t in [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] {
        let (c, f) = report.rates_at(t);
        let mark = if t == config.spam_threshold {
            "  <- configured"
        } else {
            ""
        };
        crate::outln!("  {t:>4.1}: {:6.2} / {:5.2}{mark}", 100.0 * c, 100.0 * f);
    }
    crate::outln!("rule hits (ham / spam messages):");
    for (name, (h, s)) in &report.rule_hits {
        crate::outln!("  {name:<26} {h:>5} / {s:>4}");
    }
    if list_errors {
        crate::outln!("misclassified:");
        for (path, score) in errors {
            crate::outln!("  {score:8.2} {}", path.display());
        }
    }
    Ok(report)
}

/// `outguard scan-holdout --corpus DIR [--tune] [--time FILE]`: the
/// out-of-distribution protocol of docs/SCANNING.md. `--tune` prints the
/// checks on the tuning part only; without it, the held-out figures.
pub fn scan_holdout(
    corpus: &Path,
    tune: bool,
    c: f64,
    list_errors: bool,
    time: Option<&Path>,
) -> CliResult<()> {
    use super::holdout;
    let config = ScanConfig::default();
    if let Some(file) = time {
        let raw = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let scanner = Scanner::new(config.clone(), None)?;
        let (wall, cpu) = holdout::time_scan(&scanner, training::strip_mbox_from(&raw), 5000);
        let us = |d: std::time::Duration| format!("{:.1} us", d.as_secs_f64() * 1e6);
        println!(
            "scan time per message ({} bytes, shipped model, mean of 5000 scans): \
             CPU {}, wall {}",
            raw.len(),
            cpu.map_or("unknown".into(), us),
            us(wall)
        );
    }
    let items = holdout::load(corpus, &config)?;
    if tune {
        holdout::tune(&items, &config, c, list_errors);
    } else {
        holdout::report(&items, &config, c, list_errors);
    }
    Ok(())
}
