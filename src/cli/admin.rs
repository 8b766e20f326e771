//! The commands for what issue 5 added to the control API, over the Unix
//! socket like the others: the incoming directory, import of incoming
//! users as outgoing users, CSV export, audit log, log search, the TLS
//! certificate and the admin password.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};

use crate::control::client::{call, call_pages, call_raw, print_json, seg};

#[derive(Subcommand)]
pub enum AdminCmd {
    /// Protected domains and their incoming users.
    #[command(subcommand)]
    Incoming(IncomingCmd),
    /// Print the outgoing users as CSV (never password hashes).
    Export {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The audit log of admin actions, newest first.
    Audit {
        /// Only entries containing this text.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Search the recent log lines the daemon keeps in memory.
    Logs {
        text: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// The TLS certificate of every listener.
    #[command(subcommand)]
    Tls(TlsCmd),
    /// Set the admin password of the HTTPS face (read from standard input).
    AdminPassword,
}

#[derive(Subcommand)]
pub enum IncomingCmd {
    /// List the protected domains.
    Domains,
    AddDomain {
        domain: String,
    },
    /// Delete a domain and its incoming users.
    DelDomain {
        domain: String,
    },
    /// List the incoming users.
    Users,
    AddUser {
        name: String,
    },
    DelUser {
        name: String,
    },
    /// Import incoming users: `user@domain` or `user,domain` a line.
    Import {
        file: PathBuf,
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Add every incoming user as an outgoing user (default settings, no
    /// password: they cannot authenticate until one is set).
    ToOutgoing {
        /// Only say what would happen.
        #[arg(long)]
        preview: bool,
    },
}

#[derive(Subcommand)]
pub enum TlsCmd {
    /// Fingerprint and PEM of the certificate in use.
    Show,
    /// Replace the certificate (checked against the key first).
    Set {
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

fn names(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().or_else(|| x["name"].as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn list(v: &Value) {
    for x in v.as_array().into_iter().flatten() {
        crate::outln!(
            "{}\t{}",
            x["name"].as_str().unwrap_or(""),
            x["added"].as_str().unwrap_or("")
        );
    }
}

pub fn run(c: AdminCmd, socket: &Path) -> Result<(), String> {
    match c {
        AdminCmd::Incoming(c) => incoming(c, socket),
        AdminCmd::Export { out } => {
            let v = call(socket, "GET", "/v1/users/export", None)?;
            let csv = v["csv"].as_str().unwrap_or("");
            match out {
                Some(p) => std::fs::write(&p, csv)
                    .map_err(|e| format!("cannot write {}: {e}", p.display())),
                None => {
                    crate::out!("{csv}");
                    Ok(())
                }
            }
        }
        AdminCmd::Audit {
            filter,
            limit,
            json,
        } => {
            let mut path = "/v1/audit".to_string();
            if let Some(f) = filter {
                path.push_str(&format!("?filter={}", seg(&f)));
            }
            let v = call_pages(socket, &path, limit as usize)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            for e in v.as_array().into_iter().flatten() {
                crate::outln!(
                    "{}\t{}\t{}\t{}\t{}",
                    e["at"].as_str().unwrap_or(""),
                    e["who"].as_str().unwrap_or(""),
                    e["action"].as_str().unwrap_or(""),
                    e["status"],
                    e["detail"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        AdminCmd::Logs { text, limit } => {
            let q = seg(text.as_deref().unwrap_or(""));
            let v = call(
                socket,
                "GET",
                &format!("/v1/logs?limit={limit}&q={q}"),
                None,
            )?;
            for l in v.as_array().into_iter().flatten() {
                crate::outln!("{}", l.as_str().unwrap_or(""));
            }
            Ok(())
        }
        AdminCmd::Tls(TlsCmd::Show) => {
            let v = call(socket, "GET", "/v1/tls/certificate", None)?;
            crate::outln!("sha256 {}", v["sha256_fingerprint"].as_str().unwrap_or(""));
            crate::out!("{}", v["certificate"].as_str().unwrap_or(""));
            Ok(())
        }
        AdminCmd::Tls(TlsCmd::Set { cert, key }) => {
            let read = |p: &Path| {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            let body = json!({ "certificate": read(&cert)?, "private_key": read(&key)? });
            let v = call(socket, "PUT", "/v1/tls/certificate", Some(body))?;
            crate::outln!(
                "certificate replaced: sha256 {}",
                v["sha256_fingerprint"].as_str().unwrap_or("")
            );
            Ok(())
        }
        AdminCmd::AdminPassword => {
            let password = crate::control::client::read_password()?;
            call(
                socket,
                "PUT",
                "/v1/admin/password",
                Some(json!({ "password": password })),
            )?;
            crate::outln!("admin password changed");
            Ok(())
        }
    }
}

fn incoming(c: IncomingCmd, socket: &Path) -> Result<(), String> {
    match c {
        IncomingCmd::Domains => list(&call_pages(socket, "/v1/incoming/domains", usize::MAX)?),
        IncomingCmd::Users => list(&call_pages(socket, "/v1/incoming/users", usize::MAX)?),
        IncomingCmd::AddDomain { domain } => {
            let v = call(
                socket,
                "POST",
                "/v1/incoming/domains",
                Some(json!({ "domain": domain })),
            )?;
            crate::outln!("domain {} added", v["name"].as_str().unwrap_or(""));
        }
        IncomingCmd::DelDomain { domain } => {
            let v = call(
                socket,
                "DELETE",
                &format!("/v1/incoming/domains/{}", seg(&domain)),
                None,
            )?;
            crate::outln!(
                "domain {domain} deleted with {} incoming user(s)",
                v["users_deleted"]
            );
        }
        IncomingCmd::AddUser { name } => {
            let v = call(
                socket,
                "POST",
                "/v1/incoming/users",
                Some(json!({ "name": name })),
            )?;
            crate::outln!("incoming user {} added", v["name"].as_str().unwrap_or(""));
        }
        IncomingCmd::DelUser { name } => {
            call(
                socket,
                "DELETE",
                &format!("/v1/incoming/users/{}", seg(&name)),
                None,
            )?;
            crate::outln!("incoming user {name} deleted");
        }
        IncomingCmd::Import { file, skip_invalid } => {
            let body =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let path = format!("/v1/incoming/users/import?skip_invalid={skip_invalid}");
            let v = call_raw(socket, "POST", &path, Some(body))?;
            crate::outln!(
                "added: {}\nexisting: {}\ndomains added: {}",
                names(&v["added"]),
                names(&v["existing"]),
                names(&v["domains_added"])
            );
            for e in v["errors"].as_array().into_iter().flatten() {
                crate::outln!(
                    "skipped line {}: {}",
                    e["line"],
                    e["message"].as_str().unwrap_or("")
                );
            }
        }
        IncomingCmd::ToOutgoing { preview } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/users/import-incoming?preview={preview}"),
                None,
            )?;
            let verb = if preview { "would add" } else { "added" };
            crate::outln!(
                "{verb}: {}\nkept as they are: {}",
                names(&v["added"]),
                names(&v["existing"])
            );
            if !preview {
                crate::outln!("new users have no password: set one before they can send");
            }
        }
    }
    Ok(())
}
