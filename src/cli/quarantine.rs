//! `outguard quarantine`: held messages.

use std::path::Path;

use clap::Subcommand;

use crate::control::client::{call, call_pages, print_json, seg};

#[derive(Subcommand)]
pub enum QuarantineCmd {
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Queue the message for delivery.
    Release {
        id: String,
        /// The user's other held messages with the same text (the copies
        /// of a mail merge) too.
        #[arg(long)]
        copies: bool,
    },
    Delete {
        id: String,
    },
}

pub(super) fn quarantine(c: QuarantineCmd, socket: &Path) -> Result<(), String> {
    match c {
        QuarantineCmd::List { json } => {
            let v = call_pages(socket, "/v1/quarantine", usize::MAX)?;
            if json {
                print_json(&v);
            } else {
                for e in v.as_array().into_iter().flatten() {
                    crate::outln!(
                        "{} {} {:>6.1} {} <{}> {}",
                        e["id"].as_str().unwrap_or(""),
                        e["received"].as_str().unwrap_or(""),
                        e["score"].as_f64().unwrap_or(0.0),
                        e["class"].as_str().unwrap_or(""),
                        e["sender"].as_str().unwrap_or(""),
                        e["user"].as_str().unwrap_or("")
                    );
                }
            }
        }
        QuarantineCmd::Show { id, json } => {
            let v = call(socket, "GET", &format!("/v1/quarantine/{}", seg(&id)), None)?;
            if json {
                print_json(&v);
            } else {
                crate::outln!("id:      {}", v["id"].as_str().unwrap_or(""));
                crate::outln!("user:    {}", v["user"].as_str().unwrap_or(""));
                crate::outln!(
                    "class:   {} (score {})",
                    v["class"].as_str().unwrap_or(""),
                    v["score"]
                );
                for r in v["reasons"].as_array().into_iter().flatten() {
                    crate::outln!("reason:  {}", r.as_str().unwrap_or(""));
                }
                crate::outln!("\n{}", v["headers"].as_str().unwrap_or(""));
            }
        }
        QuarantineCmd::Release { id, copies } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/quarantine/{}/release?copies={copies}", seg(&id)),
                None,
            )?;
            crate::outln!(
                "released {id} as queue id {}",
                v["queue_id"].as_str().unwrap_or("")
            );
            for c in v["copies"].as_array().into_iter().flatten() {
                crate::outln!(
                    "released {} as queue id {}",
                    c["released"].as_str().unwrap_or(""),
                    c["queue_id"].as_str().unwrap_or("")
                );
            }
        }
        QuarantineCmd::Delete { id } => {
            call(
                socket,
                "DELETE",
                &format!("/v1/quarantine/{}", seg(&id)),
                None,
            )?;
            crate::outln!("deleted {id}");
        }
    }
    Ok(())
}
