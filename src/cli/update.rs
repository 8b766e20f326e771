//! `outguard update status` and `outguard update install FILE`: clients of
//! `GET /v1/system` and `POST /v1/system/update` on the control socket.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use crate::control::client::{call, call_raw, print_json};

#[derive(Subcommand)]
pub enum UpdateCmd {
    /// Running version, booted slot, the other slot's state and the last install.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Hand a signed RAUC bundle (.raucb) to the appliance's update agent, which
    /// checks its signature and installs it into the other slot; reboot to run it.
    Install { file: PathBuf },
}

pub fn run(c: UpdateCmd, socket: &Path) -> Result<(), String> {
    match c {
        UpdateCmd::Status { json } => {
            let v = call(socket, "GET", "/v1/system", None)?;
            if json {
                print_json(&v);
            } else {
                print_status(&v);
            }
            Ok(())
        }
        UpdateCmd::Install { file } => {
            let f = std::fs::File::open(&file)
                .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            let mut bundle = Vec::new();
            // one byte over the limit tells "too large" from "exactly the limit"
            f.take(crate::control::update::MAX_BUNDLE as u64 + 1)
                .read_to_end(&mut bundle)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if bundle.len() > crate::control::update::MAX_BUNDLE {
                return Err(format!(
                    "{} is larger than {} octets",
                    file.display(),
                    crate::control::update::MAX_BUNDLE
                ));
            }
            let v = call_raw(socket, "POST", "/v1/system/update", Some(bundle))?;
            crate::outln!("{}", v["message"].as_str().unwrap_or("accepted"));
            Ok(())
        }
    }
}

fn print_status(v: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    crate::outln!(
        "version:      {} (image {})",
        s(&v["version"]),
        s(&v["os_version"])
    );
    crate::outln!("booted slot:  {}", s(&v["booted_slot"]));
    for slot in ["A", "B"] {
        crate::outln!("slot {slot}:       {}", s(&v["slots"][slot]["state"]));
    }
    match v["last_install"].as_object() {
        Some(li) => crate::outln!(
            "last install: {} {} at {}: {}",
            li.get("state").map(s).unwrap_or_default(),
            li.get("version").map(s).unwrap_or_default(),
            li.get("time").map(s).unwrap_or_default(),
            li.get("message").map(s).unwrap_or_default()
        ),
        None => crate::outln!("last install: none"),
    }
    if v["update_waiting"].as_bool() == Some(true) {
        crate::outln!("an uploaded bundle is waiting for the update agent");
    }
}
