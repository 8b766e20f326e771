//! The administration commands: each becomes one control API request.
//! Passwords are read from standard input, never from the command line
//! (argv is visible to every user of the box).

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::control::client;
use crate::scan;

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
    Dkim(crate::dkim::cli::DkimCmd),
    /// A/B system updates (signed RAUC bundles) and the running version.
    #[command(subcommand)]
    Update(crate::update::cli::UpdateCmd),
    #[command(flatten)]
    Admin(crate::admin::cli::AdminCmd),
    /// Train the spam classifier and write the model file.
    Train {
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<std::path::PathBuf>,
        /// Legitimate bulk and commercial mail (ham, weighted up).
        #[arg(long, num_args = 1..)]
        hard_ham: Vec<std::path::PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<std::path::PathBuf>,
        #[arg(long)]
        out: std::path::PathBuf,
        /// Drop tokens seen in fewer messages than this.
        #[arg(long, default_value_t = scan::training::DEFAULT_MIN_COUNT)]
        min_count: u32,
    },
    /// Scan one message file and print the verdict, score and reasons.
    Scan {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        /// Directory with signatures/ and an optional model.bin.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// K-fold cross-validation of the scanner on a labelled corpus.
    ScanEval {
        #[arg(long, default_value_t = 10)]
        folds: usize,
        #[arg(long, required = true, num_args = 1..)]
        ham: Vec<std::path::PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        spam: Vec<std::path::PathBuf>,
        #[arg(long, default_value_t = scan::training::DEFAULT_MIN_COUNT)]
        min_count: u32,
        /// Print the paths and scores of misclassified messages.
        #[arg(long)]
        list_errors: bool,
        /// Shuffle seed for the folds; 0 (the default) gives the folds that
        /// bench/accuracy.py reproduces. Another value gives another split,
        /// to check that a setting does not only suit one.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// The classifier's out-of-distribution protocol (docs/SCANNING.md).
    ScanHoldout {
        /// Directory with ham/, hard-ham/ and spam/.
        #[arg(long)]
        corpus: std::path::PathBuf,
        /// Print the tuning checks (never the held-out figures).
        #[arg(long)]
        tune: bool,
        /// Inverse regularisation strength.
        #[arg(long, default_value_t = scan::linear::DEFAULT_C)]
        c: f64,
        #[arg(long)]
        list_errors: bool,
        /// Also time the scan of this message file.
        #[arg(long)]
        time: Option<std::path::PathBuf>,
    },
}

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
        /// Reset a setting to the system default (repeatable).
        #[arg(long, value_name = "SETTING")]
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
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    Active,
    Locked,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Response {
    Rejected,
    Accepted,
}

/// The seed's per-user settings; 0 means unlimited for limits.
#[derive(Args, Default)]
pub struct SettingArgs {
    #[arg(long, value_enum)]
    auto_lock: Option<OnOff>,
    /// User lock timeout, in minutes.
    #[arg(long)]
    lock_timeout: Option<u32>,
    #[arg(long)]
    max_unlocks: Option<u32>,
    #[arg(long)]
    limit_month: Option<u32>,
    #[arg(long)]
    limit_week: Option<u32>,
    #[arg(long)]
    limit_day: Option<u32>,
    #[arg(long)]
    max_recipients_day: Option<u32>,
    #[arg(long)]
    max_retry_days: Option<u32>,
    #[arg(long, value_enum)]
    quarantine_response: Option<Response>,
}

impl SettingArgs {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put(
            "auto_lock",
            self.auto_lock.map(|v| json!(matches!(v, OnOff::On))),
        );
        put("lock_timeout_minutes", self.lock_timeout.map(|v| json!(v)));
        put("max_unlocks", self.max_unlocks.map(|v| json!(v)));
        put("limit_per_month", self.limit_month.map(|v| json!(v)));
        put("limit_per_week", self.limit_week.map(|v| json!(v)));
        put("limit_per_day", self.limit_day.map(|v| json!(v)));
        put(
            "max_recipients_per_day",
            self.max_recipients_day.map(|v| json!(v)),
        );
        put("max_retry_days", self.max_retry_days.map(|v| json!(v)));
        put(
            "quarantine_response",
            self.quarantine_response.map(|v| {
                json!(if matches!(v, Response::Accepted) {
                    "accepted"
                } else {
                    "rejected"
                })
            }),
        );
        Value::Object(m)
    }
}

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
    },
    Delete {
        id: String,
    },
}

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

#[derive(Subcommand)]
pub enum DebugCmd {
    /// Move the daemon's clock to an RFC 3339 time, or back with "now".
    Clock { time: String },
}

pub(crate) fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read password: {e}"))?;
    let p = s.lines().next().unwrap_or("").to_string();
    if p.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(p)
}

/// Path segment escaping for user names (which may hold '/' as CIDR).
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'@' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query_pair(k: &str, v: &str) -> String {
    format!("{k}={}", seg(v))
}

pub(crate) fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    call_raw(
        socket,
        method,
        path,
        body.map(|b| b.to_string().into_bytes()),
    )
}

pub(crate) fn call_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<Value, String> {
    let (status, v) = client::call(socket, method, path, body)?;
    if status >= 400 {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("request failed")
            .to_string();
        let details = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|errs| {
                errs.iter()
                    .map(|e| {
                        format!(
                            "\n  line {}: {}",
                            e["line"],
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<String>()
            })
            .unwrap_or_default();
        return Err(format!("{msg}{details}"));
    }
    Ok(v)
}

pub(crate) fn print_json(v: &Value) {
    crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn print_user(u: &Value) {
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

pub fn run(command: Command, socket: &Path) -> Result<(), String> {
    match command {
        Command::Serve => unreachable!("handled by main"),
        Command::Train {
            ham,
            hard_ham,
            spam,
            out,
            min_count,
        } => scan::cli::train(&ham, &hard_ham, &spam, &out, min_count).map_err(|e| e.to_string()),
        Command::Scan {
            file,
            json,
            data_dir,
        } => scan::cli::scan(&file, json, data_dir.as_deref())
            .map(drop)
            .map_err(|e| e.to_string()),
        Command::ScanEval {
            folds,
            ham,
            spam,
            min_count,
            list_errors,
            seed,
        } => scan::cli::scan_eval(&ham, &spam, folds, min_count, list_errors, seed)
            .map(drop)
            .map_err(|e| e.to_string()),
        Command::ScanHoldout {
            corpus,
            tune,
            c,
            list_errors,
            time,
        } => scan::cli::scan_holdout(&corpus, tune, c, list_errors, time.as_deref())
            .map_err(|e| e.to_string()),
        Command::User(c) => user(c, socket),
        Command::Queue(c) => queue(c, socket),
        Command::Settings(c) => settings(c, socket),
        Command::Quarantine(c) => quarantine(c, socket),
        Command::Admin(c) => crate::admin::cli::run(c, socket),
        Command::Dkim(c) => crate::dkim::cli::run(c, socket),
        Command::Appliance(c) => appliance(c, socket),
        Command::Update(c) => crate::update::cli::run(c, socket),
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

fn user(c: UserCmd, socket: &Path) -> Result<(), String> {
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
            let v = call(socket, "GET", &format!("/v1/users?{}", q.join("&")), None)?;
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
            json,
        } => {
            let data =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let skip = if skip_invalid {
                "skip_invalid=true"
            } else {
                ""
            };
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
fn import_watch(socket: &Path, started: &Value) -> Result<Value, String> {
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

fn queue(c: QueueCmd, socket: &Path) -> Result<(), String> {
    match c {
        QueueCmd::List { user, state, json } => {
            let mut q = Vec::new();
            if let Some(u) = user {
                q.push(query_pair("user", &u));
            }
            if let Some(s) = state {
                q.push(query_pair("state", &s));
            }
            let v = call(socket, "GET", &format!("/v1/queue?{}", q.join("&")), None)?;
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

fn quarantine(c: QuarantineCmd, socket: &Path) -> Result<(), String> {
    match c {
        QuarantineCmd::List { json } => {
            let v = call(socket, "GET", "/v1/quarantine", None)?;
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
        QuarantineCmd::Release { id } => {
            let v = call(
                socket,
                "POST",
                &format!("/v1/quarantine/{}/release", seg(&id)),
                None,
            )?;
            crate::outln!(
                "released {id} as queue id {}",
                v["queue_id"].as_str().unwrap_or("")
            );
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

fn settings(c: SettingsCmd, socket: &Path) -> Result<(), String> {
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

fn appliance(c: ApplianceCmd, socket: &Path) -> Result<(), String> {
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
