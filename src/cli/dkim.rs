//! `outguard dkim ...`: the CLI face of `/v1/dkim`.

use std::path::Path;

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::control::client::{call, call_pages, print_json, seg};

#[derive(Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Ed25519,
    Rsa,
}

impl AlgorithmArg {
    fn name(self) -> &'static str {
        match self {
            AlgorithmArg::Ed25519 => "ed25519",
            AlgorithmArg::Rsa => "rsa",
        }
    }
}

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Generate a signing key for a sender domain and print its DNS record.
    Generate {
        domain: String,
        /// Default: outguard1.
        #[arg(long)]
        selector: Option<String>,
        /// Default: ed25519. RSA-2048 reaches verifiers without RFC 8463.
        #[arg(long, value_enum)]
        algorithm: Option<AlgorithmArg>,
        #[arg(long)]
        json: bool,
    },
    /// The domains with keys and their selectors.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print a domain's DNS TXT records (active, next, retired).
    Show {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Step 1 of a rotation: generate the next key under the other
    /// selector. Publish its record, wait for the DNS TTL, then activate.
    Rotate {
        domain: String,
        #[arg(long)]
        selector: Option<String>,
        /// Default: the active key's algorithm.
        #[arg(long, value_enum)]
        algorithm: Option<AlgorithmArg>,
        #[arg(long)]
        json: bool,
    },
    /// Step 2 of a rotation: sign with the next key from now on; the old
    /// key is kept as retired until its record is removed and it is deleted.
    Activate {
        domain: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a domain's keys (its mail goes unsigned), or with --selector
    /// only its next or retired key.
    Delete {
        domain: String,
        #[arg(long)]
        selector: Option<String>,
    },
}

pub fn run(c: DkimCmd, socket: &Path) -> Result<(), String> {
    let path = |d: &str| format!("/v1/dkim/{}", seg(d));
    let new_key = |selector: Option<String>, algorithm: Option<AlgorithmArg>| {
        let mut body = serde_json::Map::new();
        if let Some(s) = selector {
            body.insert("selector".into(), json!(s));
        }
        if let Some(a) = algorithm {
            body.insert("algorithm".into(), json!(a.name()));
        }
        Some(Value::Object(body))
    };
    let (v, json) = match c {
        DkimCmd::Generate {
            domain,
            selector,
            algorithm,
            json,
        } => (
            call(socket, "POST", &path(&domain), new_key(selector, algorithm))?,
            json,
        ),
        DkimCmd::Rotate {
            domain,
            selector,
            algorithm,
            json,
        } => {
            let p = format!("{}/rotate", path(&domain));
            (
                call(socket, "POST", &p, new_key(selector, algorithm))?,
                json,
            )
        }
        DkimCmd::Activate { domain, json } => {
            let p = format!("{}/activate", path(&domain));
            (call(socket, "POST", &p, None)?, json)
        }
        DkimCmd::Show { domain, json } => (call(socket, "GET", &path(&domain), None)?, json),
        DkimCmd::List { json } => {
            // Every page, in domain order.
            let v = call_pages(socket, "/v1/dkim", usize::MAX)?;
            if json {
                print_json(&v);
            } else {
                for d in v.as_array().into_iter().flatten() {
                    println!("{}", summary(d));
                }
            }
            return Ok(());
        }
        DkimCmd::Delete { domain, selector } => {
            let mut p = path(&domain);
            if let Some(s) = &selector {
                p = format!("{p}?selector={}", seg(s));
            }
            call(socket, "DELETE", &p, None)?;
            match selector {
                Some(s) => println!("deleted key {s} of {domain}"),
                None => println!("deleted the DKIM keys of {domain}"),
            }
            return Ok(());
        }
    };
    if json {
        print_json(&v);
    } else {
        print_records(&v);
    }
    Ok(())
}

fn summary(d: &Value) -> String {
    let sel = |k: &str| {
        let s = &d[k];
        if s.is_null() {
            "-".to_string()
        } else {
            format!(
                "{} ({})",
                s["selector"].as_str().unwrap_or(""),
                s["algorithm"].as_str().unwrap_or("")
            )
        }
    };
    format!(
        "{} active={} next={} retired={}",
        d["domain"].as_str().unwrap_or(""),
        sel("active"),
        sel("next"),
        sel("retired")
    )
}

/// One zone-file line per key, with a comment saying its role.
fn print_records(d: &Value) {
    for (role, note) in [
        ("active", "signing now"),
        (
            "next",
            "publish now; `outguard dkim activate` once it resolves",
        ),
        (
            "retired",
            "no longer used; remove the record, then `dkim delete --selector`",
        ),
    ] {
        let k = &d[role];
        if !k.is_null() {
            println!("; {role}: {note}");
            println!("{}", k["zone"].as_str().unwrap_or(""));
        }
    }
}
