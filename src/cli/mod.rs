//! The administration commands: each becomes one control API request.
//! Passwords are read from standard input, never from the command line
//! (argv is visible to every user of the box).

use std::path::Path;

use clap::Subcommand;
use serde_json::json;

use crate::control::client::call;
use crate::scan;

mod admin;
mod appliance;
mod dkim;
mod quarantine;
mod queue;
mod settings;
mod update;
mod user;

pub use admin::AdminCmd;
pub use appliance::ApplianceCmd;
use appliance::appliance;
pub use dkim::DkimCmd;
pub use quarantine::QuarantineCmd;
use quarantine::quarantine;
pub use queue::QueueCmd;
use queue::queue;
pub use settings::SettingsCmd;
use settings::settings;
pub use update::UpdateCmd;
use user::user;
pub use user::{SettingArgs, Status, UserCmd};

#[derive(Subcommand)]
pub enum Command {
    /// Run the relay in the foreground.
    Serve,
    /// Outgoing users.
    #[command(subcommand)]
    User(UserCmd),
    /// Accepted mail waiting in the queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// Spam and malware kept for review.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// System settings (timezone, IP authorisation, sender check, defaults).
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Test support (needs debug.clock_override in the daemon's config).
    #[command(subcommand)]
    Debug(DebugCmd),
    /// The appliance: clock and NTP servers, factory reset.
    #[command(subcommand)]
    Appliance(ApplianceCmd),
    /// DKIM signing keys per sender domain.
    #[command(subcommand)]
    Dkim(dkim::DkimCmd),
    /// A/B system updates (signed RAUC bundles) and the running version.
    #[command(subcommand)]
    Update(update::UpdateCmd),
    #[command(flatten)]
    Admin(admin::AdminCmd),
    // Training and evaluating the classifier is the separate
    // `outguard-train` binary (src/bin/outguard-train.rs).
    /// Scan one message file and print the verdict, score and reasons.
    Scan {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        /// Directory with signatures/ and an optional model.bin.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DebugCmd {
    /// Move the daemon's clock to an RFC 3339 time, or back with "now".
    Clock { time: String },
}

pub fn run(command: Command, socket: &Path) -> Result<(), String> {
    match command {
        Command::Serve => unreachable!("handled by main"),
        Command::Scan {
            file,
            json,
            data_dir,
        } => scan::cli::scan(&file, json, data_dir.as_deref())
            .map(drop)
            .map_err(|e| e.to_string()),
        Command::User(c) => user(c, socket),
        Command::Queue(c) => queue(c, socket),
        Command::Settings(c) => settings(c, socket),
        Command::Quarantine(c) => quarantine(c, socket),
        Command::Admin(c) => admin::run(c, socket),
        Command::Dkim(c) => dkim::run(c, socket),
        Command::Appliance(c) => appliance(c, socket),
        Command::Update(c) => update::run(c, socket),
        Command::Debug(DebugCmd::Clock { time }) => {
            let body = if time == "now" {
                json!({})
            } else {
                json!({ "now": time })
            };
            let v = call(socket, "PUT", "/v1/debug/clock", Some(body))?;
            crate::outln!("{}", v["now"].as_str().unwrap_or(""));
            Ok(())
        }
    }
}
