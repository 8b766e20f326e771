//! `outguard appliance`: the box itself (status, network, time).

use std::path::Path;

use clap::Subcommand;
use serde_json::Value;

use crate::control::client::{call, print_json};

#[derive(Subcommand)]
pub enum ApplianceCmd {
    /// Clock synchronisation, NTP servers, a pending factory reset.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Set the NTP servers (host names or addresses, at most 8); none
    /// falls back to the provisioned ones.
    Ntp { servers: Vec<String> },
    /// Mark the kernel's clock synchronised or not (root; the image's NTP
    /// script, when OpenNTPD says so). Does not talk to the daemon.
    #[command(hide = true)]
    MarkClock {
        #[arg(value_parser = ["synced", "unsynced"])]
        state: String,
    },
    /// Wipe all data (users, queue, keys, configuration) and reboot into
    /// an unprovisioned appliance.
    FactoryReset {
        /// The appliance's hostname, to confirm.
        #[arg(long)]
        confirm: String,
    },
}

pub(super) fn appliance(c: ApplianceCmd, socket: &Path) -> Result<(), String> {
    match c {
        ApplianceCmd::Status { json } => {
            let v = call(socket, "GET", "/v1/appliance", None)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let sync = match v["clock"]["synchronised"].as_bool() {
                Some(true) => "synchronised",
                Some(false) => "NOT synchronised",
                None => "unknown",
            };
            println!("clock: {sync}");
            let servers: Vec<&str> = v["ntp_servers"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if servers.is_empty() {
                println!("ntp servers: none set here (provisioned ones, if any, apply)");
            } else {
                println!("ntp servers: {}", servers.join(" "));
            }
            if v["factory_reset_pending"].as_bool() == Some(true) {
                println!("factory reset: pending");
            }
        }
        ApplianceCmd::MarkClock { state } => {
            crate::appliance::clock::mark(state == "synced")?;
        }
        ApplianceCmd::Ntp { servers } => {
            let v = call(
                socket,
                "PUT",
                "/v1/appliance/ntp",
                Some(serde_json::json!({ "servers": servers })),
            )?;
            print_json(&v);
        }
        ApplianceCmd::FactoryReset { confirm } => {
            let v = call(
                socket,
                "POST",
                "/v1/appliance/factory-reset",
                Some(serde_json::json!({ "confirm": confirm })),
            )?;
            println!(
                "{}",
                v["status"].as_str().unwrap_or("factory reset requested")
            );
        }
    }
    Ok(())
}
