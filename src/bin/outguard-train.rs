//! `outguard-train`: the classifier's training and evaluation tools, kept
//! out of the appliance's `outguard` binary so that the firmware does not
//! link them (L-BFGS training, cross-validation, the held-out protocol of
//! docs/SCANNING.md). Built with `--features tools`:
//!
//! ```sh
//! cargo run --release --features tools --bin outguard-train -- train ...
//! ```
//!
//! The subcommands and their options are the ones `outguard` had
//! (`train`, `scan-eval`, `scan-holdout`); scanning one message stays in
//! the daemon (`outguard scan FILE`).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use outguard::outln;
use outguard::scan::training::{self, EvalReport};
use outguard::scan::{self, ScanConfig, Scanner, holdout};

type CliResult<T> = Result<T, Box<dyn Error>>;

#[derive(Parser)]
#[command(
    name = "outguard-train",
    version,
    about = "Train and evaluate Outguard's spam classifier (docs/SCANNING.md)"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the spam classifier and write the model file.
    Train {
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<PathBuf>,
        /// Legitimate bulk and commercial mail (ham, weighted up).
        #[arg(long, num_args = 1..)]
        hard_ham: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Drop tokens seen in fewer messages than this.
        #[arg(long, default_value_t = training::DEFAULT_MIN_COUNT)]
        min_count: u32,
    },
    /// K-fold cross-validation of the scanner on a labelled corpus.
    ScanEval {
        #[arg(long, default_value_t = 10)]
        folds: usize,
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<PathBuf>,
        #[arg(long, default_value_t = training::DEFAULT_MIN_COUNT)]
        min_count: u32,
        /// Print the paths and scores of misclassified messages.
        #[arg(long)]
        list_errors: bool,
        /// Shuffle seed for the folds; 0 (the default) gives the folds that
        /// bench/accuracy.py reproduces. Another value gives another split,
        /// to check that a setting does not only suit one.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The classifier's out-of-distribution protocol (docs/SCANNING.md).
    ScanHoldout {
        /// Directory with ham/, hard-ham/ and spam/.
        #[arg(long)]
        corpus: PathBuf,
        /// Print the tuning checks (never the held-out figures).
        #[arg(long)]
        tune: bool,
        /// Inverse regularisation strength.
        #[arg(long, default_value_t = scan::linear::DEFAULT_C)]
        c: f64,
        #[arg(long)]
        list_errors: bool,
        /// Also time the scan of this message file.
        #[arg(long)]
        time: Option<PathBuf>,
        /// With --tune: instead of the checks, explain the source-disjoint
        /// scores of these tuning messages (file names or their prefixes)
        /// by their strongest weighted tokens.
        #[arg(long, num_args = 1.., requires = "tune")]
        explain: Vec<String>,
        /// With --tune: instead of the checks, print the N strongest spam
        /// and ham tokens of a model trained on the tuning part.
        #[arg(long, requires = "tune")]
        top_tokens: Option<usize>,
        /// With --tune --list-errors: list at this threshold, not the
        /// default one (e.g. the "97 % caught" threshold printed before).
        #[arg(long, requires = "list_errors", allow_hyphen_values = true)]
        list_at: Option<f64>,
        /// With --tune: group the sources of the source-disjoint check by
        /// this salt (another split of the same sources; "" is the
        /// protocol's own).
        #[arg(long, requires = "tune", default_value = "")]
        split_salt: String,
    },
}

fn main() -> ExitCode {
    let result = match Args::parse().command {
        Command::Train {
            ham,
            hard_ham,
            spam,
            out,
            min_count,
        } => train(&ham, &hard_ham, &spam, &out, min_count),
        Command::ScanEval {
            folds,
            ham,
            spam,
            min_count,
            list_errors,
            seed,
        } => scan_eval(&ham, &spam, folds, min_count, list_errors, seed).map(drop),
        Command::ScanHoldout {
            corpus,
            tune,
            c,
            list_errors,
            time,
            explain,
            top_tokens,
            list_at,
            split_salt,
        } => scan_holdout(
            &corpus,
            tune,
            c,
            time.as_deref(),
            &explain,
            top_tokens,
            holdout::TuneOptions {
                list_at: list_errors
                    .then(|| list_at.unwrap_or(ScanConfig::default().spam_threshold)),
                salt: split_salt,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outguard-train: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `train --ham DIR... [--hard-ham DIR...] --spam DIR... --out FILE`
fn train(
    ham: &[PathBuf],
    hard_ham: &[PathBuf],
    spam: &[PathBuf],
    out: &Path,
    min_count: u32,
) -> CliResult<()> {
    let model = training::train(ham, hard_ham, spam, min_count)?;
    training::save_model(&model, out)?;
    let size = std::fs::metadata(out)?.len();
    outln!(
        "trained on {} ham / {} spam messages: {} tokens, {} bytes -> {}",
        model.ham_messages(),
        model.spam_messages(),
        model.token_count(),
        size,
        out.display()
    );
    Ok(())
}

/// `scan-eval --folds K --ham DIR... --spam DIR...`: k-fold
/// cross-validation with the default configuration.
fn scan_eval(
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
    outln!(
        "{}-fold cross-validation (seed {seed}): {} ham, {} spam, {} unscannable",
        report.folds,
        report.ham,
        report.spam,
        report.unscannable
    );
    outln!(
        "catch rate: {:.2}% ({}/{})",
        100.0 * report.catch_rate(),
        report.spam_caught,
        report.spam
    );
    outln!(
        "false-positive rate: {:.2}% ({}/{})",
        100.0 * report.false_positive_rate(),
        report.false_positives,
        report.ham
    );
    outln!("threshold sweep (catch% / FP%):");
    for t in [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] {
        let (c, f) = report.rates_at(t);
        let mark = if t == config.spam_threshold {
            "  <- configured"
        } else {
            ""
        };
        outln!("  {t:>4.1}: {:6.2} / {:5.2}{mark}", 100.0 * c, 100.0 * f);
    }
    outln!("rule hits (ham / spam messages):");
    for (name, (h, s)) in &report.rule_hits {
        outln!("  {name:<26} {h:>5} / {s:>4}");
    }
    if list_errors {
        outln!("misclassified:");
        for (path, score) in errors {
            outln!("  {score:8.2} {}", path.display());
        }
    }
    Ok(report)
}

/// `scan-holdout --corpus DIR [--tune] [--time FILE]`: the
/// out-of-distribution protocol of docs/SCANNING.md. `--tune` prints the
/// checks on the tuning part only; without it, the held-out figures.
fn scan_holdout(
    corpus: &Path,
    tune: bool,
    c: f64,
    time: Option<&Path>,
    explain: &[String],
    top_tokens: Option<usize>,
    tuning: holdout::TuneOptions,
) -> CliResult<()> {
    let config = ScanConfig::default();
    if let Some(file) = time {
        let raw = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let scanner = Scanner::new(config.clone(), None)?;
        let (wall, cpu) = holdout::time_scan(&scanner, scan::strip_mbox_from(&raw), 5000);
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
    if let (true, Some(n)) = (tune, top_tokens) {
        holdout::top_tokens(&items, &config, c, n);
    } else if tune && !explain.is_empty() {
        holdout::explain(&items, &config, c, explain, 25);
    } else if tune {
        holdout::tune(&items, &config, c, &tuning);
    } else {
        // The held-out figures list their errors at the default threshold.
        holdout::report(&items, &config, c, tuning.list_at.is_some());
    }
    Ok(())
}
