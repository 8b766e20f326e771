//! `outguard queue`: the delivery queue.

use std::path::Path;

use clap::Subcommand;

use crate::control::client::{call, call_pages, print_json, query_pair, seg};

#[derive(Subcommand)]
pub enum QueueCmd {
    List {
        #[arg(long)]
        user: Option<String>,
        /// queued, delivered, failed or expired
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Try the queued recipients of a message now.
    Retry { id: String },
    /// Remove a message from the queue without a bounce.
    #[command(alias = "del")]
    Delete { id: String },
    /// Return a message's queued recipients to the sender (with a bounce).
    Bounce { id: String },
}

pub(super) fn queue(c: QueueCmd, socket: &Path) -> Result<(), String> {
    match c {
        QueueCmd::List { user, state, json } => {
            let mut q = Vec::new();
            if let Some(u) = user {
                q.push(query_pair("user", &u));
            }
            if let Some(s) = state {
                q.push(query_pair("state", &s));
            }
            let v = call_pages(socket, &format!("/v1/queue?{}", q.join("&")), usize::MAX)?;
            if json {
                print_json(&v);
            } else {
                for e in v.as_array().into_iter().flatten() {
                    let rcpts: Vec<&str> = e["recipients"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["address"].as_str())
                        .collect();
                    crate::outln!(
                        "{} {:>8} {} {} <{}> -> {}",
                        e["id"].as_str().unwrap_or(""),
                        e["size"],
                        e["received"].as_str().unwrap_or(""),
                        e["state"].as_str().unwrap_or(""),
                        e["sender"].as_str().unwrap_or(""),
                        rcpts.join(", ")
                    );
                }
            }
        }
        QueueCmd::Show { id, json } => {
            let v = call(socket, "GET", &format!("/v1/queue/{}", seg(&id)), None)?;
            if json {
                print_json(&v);
            } else {
                crate::outln!("id:       {}", v["id"].as_str().unwrap_or(""));
                crate::outln!("user:     {}", v["user"].as_str().unwrap_or(""));
                crate::outln!("sender:   <{}>", v["sender"].as_str().unwrap_or(""));
                for r in v["recipients"].as_array().into_iter().flatten() {
                    crate::outln!(
                        "rcpt:     <{}> {} (attempts {}{}{})",
                        r["address"].as_str().unwrap_or(""),
                        r["state"].as_str().unwrap_or(""),
                        r["attempts"],
                        r["next_attempt"]
                            .as_str()
                            .map(|t| format!(", next {t}"))
                            .unwrap_or_default(),
                        r["last_reply"]
                            .as_str()
                            .map(|t| format!(", last reply: {t}"))
                            .unwrap_or_default()
                    );
                }
                crate::outln!("size:     {}", v["size"]);
                crate::outln!("received: {}", v["received"].as_str().unwrap_or(""));
                crate::outln!("\n{}", v["headers"].as_str().unwrap_or(""));
            }
        }
        QueueCmd::Retry { id } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/queue/{}/retry", seg(&id)),
                None,
            )?;
            crate::outln!("{} queued for retry now", v["id"].as_str().unwrap_or(""));
        }
        QueueCmd::Delete { id } => {
            let v = call(socket, "DELETE", &format!("/v1/queue/{}", seg(&id)), None)?;
            crate::outln!("{} deleted", v["deleted"].as_str().unwrap_or(""));
        }
        QueueCmd::Bounce { id } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/queue/{}/bounce", seg(&id)),
                None,
            )?;
            crate::outln!("{} returned to sender", v["id"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}
