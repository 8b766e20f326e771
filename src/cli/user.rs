//! `outguard user`: outgoing users, their settings, locks and imports.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::control::client::{
    call, call_pages, call_raw, print_json, query_pair, read_password, seg,
};
use crate::users::spec::{Kind, USER_SETTINGS, find, names};

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a user: user@domain with a password, or an IP address/network.
    Add {
        name: String,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// For an IP address user: the domain it may send from.
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        settings: SettingArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's password or settings.
    Set {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        settings: SettingArgs,
        /// Reset a setting to the system default (repeatable): its API
        /// name, e.g. limit_per_day.
        #[arg(long, value_name = "SETTING", value_parser = setting_name)]
        clear: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    List {
        /// Only names containing this text.
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long)]
        json: bool,
    },
    #[command(alias = "delete")]
    Del {
        name: String,
    },
    /// Lock a user until an admin unlocks it, or for --minutes.
    Lock {
        name: String,
        #[arg(long)]
        minutes: Option<u32>,
        #[arg(long)]
        reason: Option<String>,
    },
    Unlock {
        name: String,
    },
    /// Import users from CSV lines `user,domainname,password`.
    Import {
        file: std::path::PathBuf,
        /// Import the valid lines even if some are invalid.
        #[arg(long)]
        skip_invalid: bool,
        /// Hash plaintext passwords at the lighter import cost (argon2id,
        /// 7 MiB, 1 pass instead of 5: about 5 times faster); each user's
        /// first login re-hashes the password at the full cost.
        #[arg(long)]
        fast_hash: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    Active,
    Locked,
}

/// The per-user settings as flags, one per row of
/// `users::spec::USER_SETTINGS` (older spellings kept as aliases); each
/// value is checked as the API checks it. 0 means unlimited for limits.
#[derive(Default)]
pub struct SettingArgs(Map<String, Value>);

impl Args for SettingArgs {
    fn augment_args(cmd: Command) -> Command {
        USER_SETTINGS.iter().fold(cmd, |cmd, s| {
            let order = cmd.get_arguments().count();
            let value_name = match s.kind {
                Kind::Bool => "on|off",
                Kind::Number(_) => "N",
                Kind::Choice(_) => "VALUE",
            };
            cmd.arg(
                Arg::new(s.name)
                    .long(s.cli)
                    .visible_aliases(s.cli_aliases)
                    .value_name(value_name)
                    .display_order(order)
                    .help(format!(
                        "{} [{}; factory default {}]",
                        s.help,
                        s.values_text(),
                        s.default_text()
                    ))
                    .value_parser(move |t: &str| s.parse(t, &format!("--{}", s.cli))),
            )
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut set = Map::new();
        for s in USER_SETTINGS {
            if let Some(v) = m.get_one::<Value>(s.name) {
                set.insert(s.name.into(), v.clone());
            }
        }
        Ok(SettingArgs(set))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// A setting's name as `--clear` takes it.
fn setting_name(text: &str) -> Result<String, String> {
    match find(text) {
        Some(s) => Ok(s.name.to_string()),
        None => Err(format!("unknown setting '{text}'; one of: {}", names())),
    }
}

impl SettingArgs {
    fn to_json(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

pub(super) fn print_user(u: &Value) {
    let e = &u["effective"];
    let usage = &u["usage"];
    let limit = |v: &Value| match v.as_u64() {
        Some(0) => "unlimited".to_string(),
        Some(n) => n.to_string(),
        None => "?".into(),
    };
    crate::outln!("{}", u["name"].as_str().unwrap_or(""));
    crate::outln!(
        "  status:              {}",
        u["status"].as_str().unwrap_or("")
    );
    crate::outln!(
        "  kind:                {}{}",
        u["kind"].as_str().unwrap_or(""),
        if u["has_password"] == true {
            ", password set"
        } else {
            ""
        }
    );
    crate::outln!(
        "  messages today:      {} / {}",
        usage["day"],
        limit(&e["limit_per_day"])
    );
    crate::outln!(
        "  messages this week:  {} / {}",
        usage["week"],
        limit(&e["limit_per_week"])
    );
    crate::outln!(
        "  messages this month: {} / {}",
        usage["month"],
        limit(&e["limit_per_month"])
    );
    crate::outln!(
        "  recipients today:    {} / {}",
        usage["recipients_day"],
        limit(&e["max_recipients_per_day"])
    );
    crate::outln!(
        "  automatic lock:      {} (timeout {} min, max unlocks {}, unlocked by timeout {}x)",
        if e["auto_lock"] == true { "on" } else { "off" },
        e["lock_timeout_minutes"],
        e["max_unlocks"],
        u["unlocks_by_timeout"]
    );
    crate::outln!("  max days to retry:   {}", e["max_retry_days"]);
    crate::outln!(
        "  quarantine response: {}",
        e["quarantine_response"].as_str().unwrap_or("")
    );
    let b = &u["behaviour"];
    if b.is_object() {
        println!(
            "  behaviour:           this hour {} messages to {} recipients ({} new); usual busiest hour {} / {} ({} new){}",
            b["this_hour"]["messages"],
            b["this_hour"]["recipients"],
            b["this_hour"]["new_recipients"],
            b["usual_busiest_hour"]["messages"],
            b["usual_busiest_hour"]["recipients"],
            b["usual_busiest_hour"]["new_recipients"],
            if b["warming_up"] == true {
                "; still learning"
            } else {
                ""
            }
        );
        println!("  holds in the last day: {}", b["holds_last_day"]);
    }
    // The latest events say why the user was held or locked.
    let history = u["history"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if !history.is_empty() {
        println!("  recent events:");
        for h in history.iter().rev().take(5) {
            println!(
                "    {} {}",
                h["at"].as_str().unwrap_or(""),
                h["event"].as_str().unwrap_or("")
            );
        }
    }
}

pub(super) fn user(c: UserCmd, socket: &Path) -> Result<(), String> {
    match c {
        UserCmd::Add {
            name,
            password_stdin,
            domain,
            settings,
            json,
        } => {
            let mut body = json!({ "name": name, "settings": settings.to_json() });
            if password_stdin {
                body["password"] = json!(read_password()?);
            }
            if let Some(d) = domain {
                body["domain"] = json!(d);
            }
            let v = call(socket, "POST", "/v1/users", Some(body))?;
            if json {
                print_json(&v)
            } else {
                crate::outln!("added {}", v["name"].as_str().unwrap_or(""))
            }
        }
        UserCmd::Set {
            name,
            password_stdin,
            settings,
            clear,
            json,
        } => {
            let mut body = json!({ "settings": settings.to_json(), "clear": clear });
            if password_stdin {
                body["password"] = json!(read_password()?);
            }
            let v = call(
                socket,
                "PATCH",
                &format!("/v1/users/{}", seg(&name)),
                Some(body),
            )?;
            if json { print_json(&v) } else { print_user(&v) }
        }
        UserCmd::Show { name, json } => {
            let v = call(socket, "GET", &format!("/v1/users/{}", seg(&name)), None)?;
            if json { print_json(&v) } else { print_user(&v) }
        }
        UserCmd::List {
            filter,
            status,
            json,
        } => {
            let mut q = Vec::new();
            if let Some(f) = filter {
                q.push(query_pair("filter", &f));
            }
            if let Some(s) = status {
                q.push(query_pair(
                    "status",
                    if matches!(s, Status::Locked) {
                        "locked"
                    } else {
                        "active"
                    },
                ));
            }
            let v = call_pages(socket, &format!("/v1/users?{}", q.join("&")), usize::MAX)?;
            if json {
                print_json(&v);
            } else {
                for u in v.as_array().into_iter().flatten() {
                    crate::outln!(
                        "{:<40} {:<8} today {:>5}  {}",
                        u["name"].as_str().unwrap_or(""),
                        u["kind"].as_str().unwrap_or(""),
                        u["usage"]["day"],
                        u["status"].as_str().unwrap_or("")
                    );
                }
            }
        }
        UserCmd::Del { name } => {
            call(socket, "DELETE", &format!("/v1/users/{}", seg(&name)), None)?;
            crate::outln!("deleted {name}");
        }
        UserCmd::Lock {
            name,
            minutes,
            reason,
        } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/users/{}/lock", seg(&name)),
                Some(json!({ "minutes": minutes, "reason": reason })),
            )?;
            crate::outln!(
                "{}: {}",
                v["name"].as_str().unwrap_or(""),
                v["status"].as_str().unwrap_or("")
            );
        }
        UserCmd::Unlock { name } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/users/{}/unlock", seg(&name)),
                None,
            )?;
            crate::outln!(
                "{}: {}",
                v["name"].as_str().unwrap_or(""),
                v["status"].as_str().unwrap_or("")
            );
        }
        UserCmd::Import {
            file,
            skip_invalid,
            fast_hash,
            json,
        } => {
            let data =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let skip = format!("skip_invalid={skip_invalid}&fast_hash={fast_hash}");
            if json {
                // Every name in one answer: for scripts and small files.
                let v = call_raw(
                    socket,
                    "POST",
                    &format!("/v1/users/import?{skip}"),
                    Some(data),
                )?;
                print_json(&v);
                return Ok(());
            }
            // A background job, followed until done: a file of 100,000
            // users takes minutes of hashing, longer than one request may.
            let path = format!("/v1/users/import?background=true&{skip}");
            let started = call_raw(socket, "POST", &path, Some(data))?;
            for e in started["errors"].as_array().into_iter().flatten() {
                crate::outln!(
                    "skipped line {}: {}",
                    e["line"],
                    e["message"].as_str().unwrap_or("")
                );
            }
            if fast_hash {
                eprintln!(
                    "hashing at the lighter import cost; each user's first login re-hashes at the full cost"
                );
            }
            let done = import_watch(socket, &started)?;
            crate::outln!(
                "imported {} user(s); {} already existed and were kept",
                done["added"],
                done["existing"]
            );
        }
    }
    Ok(())
}

/// Polls an import job until it ends, showing its progress on stderr.
pub(super) fn import_watch(socket: &Path, started: &Value) -> Result<Value, String> {
    let id = started["id"]
        .as_u64()
        .ok_or("the daemon started no import job")?;
    let total = started["total"].as_u64().unwrap_or(0);
    let mut shown = Instant::now();
    loop {
        let p = call(socket, "GET", &format!("/v1/users/import/{id}"), None)?;
        match p["state"].as_str() {
            Some("running") => {}
            Some("done") => return Ok(p),
            _ => {
                return Err(format!(
                    "import stopped after {} of {total} user(s): {} (the batches before stay; import the file again to resume)",
                    p["done"],
                    p["error"].as_str().unwrap_or("unknown error")
                ));
            }
        }
        if shown.elapsed() >= Duration::from_secs(2) {
            eprintln!("importing: {} of {total} user(s) done", p["done"]);
            shown = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use clap::{Args, Command};
    use serde_json::json;

    use super::SettingArgs;
    use clap::FromArgMatches;

    fn parse(args: &[&str]) -> Result<serde_json::Value, String> {
        let cmd = SettingArgs::augment_args(Command::new("t"));
        let m = cmd
            .try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Ok(SettingArgs::from_arg_matches(&m).unwrap().to_json())
    }

    #[test]
    fn flags_from_the_table_and_their_old_spellings() {
        let v = parse(&[
            "--limit-day",
            "4",
            "--limit-per-week",
            "9",
            "--lock-timeout",
            "15",
            "--max-recipients-day",
            "0",
            "--auto-lock",
            "off",
            "--quarantine-response",
            "accepted",
        ])
        .unwrap();
        assert_eq!(
            v,
            json!({"limit_per_day": 4, "limit_per_week": 9, "lock_timeout_minutes": 15,
                   "max_recipients_per_day": 0, "auto_lock": false,
                   "quarantine_response": "accepted"})
        );
        assert_eq!(parse(&[]).unwrap(), json!({}));
        let e = parse(&["--max-retry-days", "366"]).unwrap_err();
        assert!(
            e.contains("max_retry_days must be between 0 and 365"),
            "{e}"
        );
        assert!(parse(&["--auto-lock", "maybe"]).is_err());
    }
}
