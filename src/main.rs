use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use outguard::scan;

#[derive(Parser)]
#[command(name = "outguard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the spam classifier and write the model file.
    Train {
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Drop tokens seen in fewer messages than this.
        #[arg(long, default_value_t = scan::training::DEFAULT_MIN_COUNT)]
        min_count: u32,
    },
    /// Scan one message file and print the verdict.
    Scan {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Directory with signatures/ and an optional model.bin.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// K-fold cross-validation of the scanner on a labelled corpus.
    ScanEval {
        #[arg(long, default_value_t = 10)]
        folds: usize,
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<PathBuf>,
        #[arg(long, default_value_t = scan::training::DEFAULT_MIN_COUNT)]
        min_count: u32,
        /// Print the paths and scores of misclassified messages.
        #[arg(long)]
        list_errors: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Train {
            ham,
            spam,
            out,
            min_count,
        } => scan::cli::train(&ham, &spam, &out, min_count),
        Command::Scan {
            file,
            json,
            data_dir,
        } => scan::cli::scan(&file, json, data_dir.as_deref()).map(drop),
        Command::ScanEval {
            folds,
            ham,
            spam,
            min_count,
            list_errors,
        } => scan::cli::scan_eval(&ham, &spam, folds, min_count, list_errors).map(drop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outguard: {e}");
            ExitCode::FAILURE
        }
    }
}
