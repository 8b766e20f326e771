//! The `outguard` command: `outguard serve` runs the relay; the other
//! subcommands administer it through the daemon's control socket, or scan
//! one message file. Training and evaluating the classifier is the separate
//! `outguard-train` binary (src/bin/outguard-train.rs, `--features tools`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use outguard::config::Config;
use outguard::{cli, daemon};

#[derive(Parser)]
#[command(name = "outguard", version, about = "Outbound spam-gateway relay")]
struct Args {
    /// Configuration file (TOML). Without it, embedded defaults apply.
    #[arg(long, global = true, env = "OUTGUARD_CONFIG")]
    config: Option<PathBuf>,
    /// Development defaults: ports 2587/2465 on loopback, data in ./outguard-data.
    #[arg(long, global = true)]
    dev: bool,
    /// Control socket to talk to (default: from the configuration).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match (&args.config, args.dev) {
        (Some(path), _) => Config::load(path),
        (None, true) => Ok(Config::dev()),
        (None, false) => Ok(Config::default()),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            eprintln!("outguard: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.command {
        cli::Command::Serve => {
            if let Some(e) = tune_malloc() {
                eprintln!("outguard: cannot re-execute with malloc settings: {e}");
            }
            init_logging(&cfg);
            daemon::serve(cfg)
        }
        command => {
            let socket = args.socket.unwrap_or_else(|| cfg.control_socket());
            cli::run(command, &socket)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outguard: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's allocator, tuned for a long-running daemon:
/// - each thread that contends for the heap gets an arena of its own (up to
///   8 per core) and keeps freed memory in it: with the runtime's workers
///   and blocking threads (scans, argon2, store) that was a third of the
///   peak RSS (31 MiB at 50 STARTTLS sessions, 23 MiB with two arenas);
/// - freeing an mmap'd block raises the mmap threshold to its size, so after
///   the first argon2 run (7 MiB) later ones came from an arena and stayed
///   resident, 7 MiB per arena. A fixed threshold keeps big blocks mmap'd
///   and gives their memory back when they are freed.
///
/// The crate forbids `unsafe`, so not mallopt: the daemon re-executes itself
/// once with the settings in its environment (same PID, same arguments)
/// unless the environment already has them. Returns only if that failed.
fn tune_malloc() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MALLOC_ARENA_MAX";
    const MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";
    if std::env::var_os(VAR).is_some() {
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    Some(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(VAR, "2")
            .env(MMAP_THRESHOLD, "1048576")
            .exec(),
    )
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level: tracing::Level = cfg.log.level.parse().unwrap_or(tracing::Level::INFO);
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // The ring layer keeps recent lines for the admin face's log search.
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(outguard::control::logs::RingLayer)
        .with(outguard::appliance::syslog::layer(
            &cfg.log,
            &cfg.hostname(),
        ));
    // Client text in fields is escaped (outguard::logsafe): one event, one line.
    if cfg.log.json {
        registry.with(fmt.json()).init();
    } else {
        registry
            .with(fmt.fmt_fields(outguard::logsafe::fields()))
            .init();
    }
}
