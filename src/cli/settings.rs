//! `outguard settings`: the system settings.

use std::path::Path;

use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::control::client::{call, print_json};

#[derive(Subcommand)]
pub enum SettingsCmd {
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set KEY=VALUE pairs, e.g. ip_auth=false timezone=Europe/Paris
    /// sender_check=exact header_from_check=exact defaults.limit_per_day=200
    Set {
        #[arg(required = true)]
        pairs: Vec<String>,
    },
}

pub(super) fn settings(c: SettingsCmd, socket: &Path) -> Result<(), String> {
    match c {
        SettingsCmd::Show { json: _ } => print_json(&call(socket, "GET", "/v1/settings", None)?),
        SettingsCmd::Set { pairs } => {
            let mut patch = Map::new();
            for p in pairs {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| format!("'{p}' is not KEY=VALUE"))?;
                // Numbers and booleans as JSON, anything else as a string.
                let value: Value = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
                match k.split_once('.') {
                    Some((outer, inner)) => {
                        let o = patch.entry(outer.to_string()).or_insert_with(|| json!({}));
                        o[inner] = value;
                    }
                    None => {
                        patch.insert(k.to_string(), value);
                    }
                }
            }
            print_json(&call(
                socket,
                "PATCH",
                "/v1/settings",
                Some(Value::Object(patch)),
            )?);
        }
    }
    Ok(())
}
