//! The one house: what every face of the daemon shares (the SMTP
//! sessions, the control socket, the admin web face, housekeeping), built
//! once by `daemon::Jailed::run` and handed out as `Arc<App>`. Each face keeps
//! only its own things next to it (`smtp::Server`: TLS acceptor, screener,
//! session bounds; `control::Control`: config, certificates, imports).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::password::Verifier;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::jail::Hardening;
use crate::policy::response::Held;
use crate::settings;
use crate::store::{Committer, Store};

pub struct App {
    /// The name the appliance gives itself (banner, notices, reports).
    pub hostname: String,
    pub store: Arc<Store>,
    pub committer: Arc<Committer>,
    pub settings: settings::Shared,
    pub clock: Arc<Clock>,
    /// Password checks (SMTP AUTH and the admin login).
    pub verifier: Arc<Verifier>,
    /// Failed SMTP logins per address and per account.
    pub throttle: Throttle,
    pub stats: Stats,
    /// What confinement is in force (reported by the health endpoint).
    pub hardening: Hardening,
}

impl App {
    /// The shared parts on an open store, with the `[auth]` bounds.
    pub fn new(
        hostname: String,
        store: Arc<Store>,
        committer: Arc<Committer>,
        settings: settings::Shared,
        clock: Arc<Clock>,
        auth: &AuthConfig,
        hardening: Hardening,
    ) -> App {
        let secs = std::time::Duration::from_secs;
        App {
            hostname,
            store,
            committer,
            settings,
            clock,
            verifier: Verifier::new(auth.max_parallel_hashes, secs(auth.cache_secs)),
            throttle: Throttle::new(
                auth.max_failures,
                auth.max_account_failures,
                secs(auth.failure_window_secs),
                secs(auth.block_secs),
            ),
            stats: Stats::default(),
            hardening,
        }
    }

    /// An in-process house on a store in `dir` (made if missing), with
    /// default `[auth]` bounds and nothing confined: for tests and fuzz
    /// targets. The daemon builds its own in `daemon::serve`.
    pub fn standalone(dir: &std::path::Path) -> Result<App, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let store = Arc::new(Store::open(&dir.join("outguard.redb")).map_err(|e| e.to_string())?);
        let settings = settings::Shared::new(store.settings().map_err(|e| e.to_string())?)?;
        let clock = Arc::new(Clock::default());
        let committer = Committer::start(store.clone(), settings.clone(), clock.clone())
            .map_err(|e| e.to_string())?;
        Ok(App::new(
            "outguard.test".into(),
            store,
            Arc::new(committer),
            settings,
            clock,
            &AuthConfig::default(),
            Hardening {
                uid: nix::unistd::geteuid().as_raw(),
                no_new_privs: false,
                landlock: "off".into(),
                seccomp: false,
            },
        ))
    }

    /// Tells the admin about an account under attack: when the failed
    /// logins against one account (from any addresses) reach the
    /// per-account limit, the throttle blocks it for unknown networks once;
    /// this logs it and mails a notice to the admin address, if one is set.
    /// The count of such blocks is in the summary and /metrics. `face` is
    /// where the last failure came in, `ip` its address.
    pub fn account_under_attack(&self, account: &str, ip: IpAddr, face: &str) {
        tracing::warn!(
            account = %account, last_ip = %ip, face,
            "account under attack: too many failed logins, refused to unknown addresses for a while"
        );
        let admin = self.settings.read(|c| c.settings.admin_address.clone());
        if admin.is_empty() {
            return;
        }
        self.notify_admin(
            &admin,
            &format!("Outguard: logins to {account} under attack"),
            &format!(
                "Too many failed {face} logins to {account} (the last from {ip}).\n\
                 Logins to it are refused for a while, except from addresses that\n\
                 logged in to it successfully before. Check the log and the audit log.\n"
            ),
            self.clock.now(),
            "attack",
        );
    }

    /// Logs a hold or lock and mails the admin notice, naming the reasons.
    pub fn announce_held(&self, admin: &str, user: &str, held: &Held, tz: &jiff::tz::TimeZone) {
        let id = held.kept.map(crate::store::queue_id).unwrap_or_default();
        let reasons = held.reasons.join("; ");
        let (subject, mut text) = match &held.lock {
            Some(lock) => {
                let status = crate::policy::lock_text(lock, tz);
                tracing::warn!(user, quarantine_id = %id, status = %status, reasons = %reasons, "user locked automatically");
                (
                    format!("Outguard: {user} locked"),
                    format!(
                        "The outgoing user {user} was locked automatically.\n\nStatus: {status}\n"
                    ),
                )
            }
            None => {
                tracing::warn!(user, quarantine_id = %id, fate = %held.fate, reasons = %reasons, "message held for review");
                if held.repeat {
                    return;
                }
                (
                    format!("Outguard: message from {user} held"),
                    format!(
                        "A message from the outgoing user {user} was held for review; the user can still send.\n"
                    ),
                )
            }
        };
        if admin.is_empty() {
            return;
        }
        if held.kept.is_some() {
            text.push_str(&format!("Quarantine id: {id}\n"));
        }
        text.push_str("\nReasons:\n");
        for r in &held.reasons {
            text.push_str(&format!("- {r}\n"));
        }
        self.notify_admin(admin, &subject, &text, self.clock.now(), "admin");
    }

    /// Queues a notice to `admin` under a fresh queue id. A failure is
    /// logged (`what` names the notice in the log line), never fatal: the
    /// event it reports has already happened.
    pub fn notify_admin(
        &self,
        admin: &str,
        subject: &str,
        text: &str,
        now: jiff::Timestamp,
        what: &str,
    ) {
        let queued = crate::notify::queue_notice(
            &self.store,
            self.committer.reserve_id(),
            &self.hostname,
            admin,
            subject,
            text,
            now,
        );
        if let Err(e) = queued {
            tracing::error!(error = %e, "queueing the {what} notice failed");
        }
    }

    fn today(&self, change: impl FnOnce(&mut Today)) {
        let day = self
            .settings
            .read(|c| crate::policy::windows::windows(self.clock.now(), &c.tz).day);
        let mut t = self.stats.today.lock().unwrap_or_else(|e| e.into_inner());
        if t.day != day {
            *t = Today {
                day,
                ..Today::default()
            };
        }
        change(&mut t);
    }

    /// Counts a refused message (since start and today).
    pub fn note_refused(&self) {
        Stats::bump(&self.stats.refused);
        self.today(|t| t.refused += 1);
    }

    /// Counts a message caught as spam or malware (since start and today).
    pub fn note_caught(&self) {
        Stats::bump(&self.stats.quarantined);
        self.today(|t| t.caught += 1);
    }

    /// Today's refused and caught counts.
    pub fn today_counts(&self) -> Today {
        let mut out = Today::default();
        self.today(|t| out = t.clone());
        out
    }
}

/// Counters since start, for health and metrics, and today's refused and
/// caught messages for the dashboard (in memory: they restart from zero
/// with the daemon).
#[derive(Debug, Default)]
pub struct Stats {
    pub today: std::sync::Mutex<Today>,
    pub sessions: AtomicU64,
    pub sessions_refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub quarantined: AtomicU64,
}

/// Refusals and catches in one calendar day of the appliance's timezone.
#[derive(Debug, Default, Clone)]
pub struct Today {
    pub day: String,
    pub refused: u64,
    pub caught: u64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            sessions: g(&self.sessions),
            sessions_refused: g(&self.sessions_refused),
            auth_failures: g(&self.auth_failures),
            messages_accepted: g(&self.accepted),
            messages_refused: g(&self.refused),
            messages_caught: g(&self.quarantined),
        }
    }
}

/// The counters since start, as health and the dashboard answer them.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Stats))]
pub struct Snapshot {
    pub sessions: u64,
    pub sessions_refused: u64,
    pub auth_failures: u64,
    pub messages_accepted: u64,
    pub messages_refused: u64,
    pub messages_caught: u64,
}
