//! The scheduler loop and the connection tasks. The loop scans the queue
//! for due recipients every `poll_interval_ms`, groups them by
//! destination and starts one task per group of up to
//! `max_messages_per_connection` messages; each task waits for a slot in
//! the global and the per-destination semaphore, opens one connection and
//! sends its messages over it with RSET between them, committing each
//! message's outcome right after the next hop's answer.

mod connection;
mod hops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::clock::Clock;
use crate::delivery::Stats;
use crate::delivery::client::{self, Credentials, TlsPolicy};
use crate::delivery::config::{DeliveryConfig, StartTls};
use crate::delivery::route::Router;
use crate::settings;
use crate::store::envelope::{MessageDsn, RcptDsn};
use crate::store::{Committer, RcptState, Recipient, Store};

/// How long the loop waits after a "message queued" signal before it
/// scans, so that one scan picks up a burst of commits.
const QUEUED_GATHER: Duration = Duration::from_millis(10);

/// What must be read while still root: credentials and CA file.
pub struct Prepared {
    cfg: DeliveryConfig,
    password: Option<String>,
    ca_pem: Option<Vec<u8>>,
    pins: Vec<crate::delivery::pin::Pin>,
    capture_dir: PathBuf,
    trust_anchor: Option<String>,
}

impl Prepared {
    /// `data_dir` holds `capture/` in capture mode.
    pub fn load(
        _root: &crate::privilege::Privileged,
        cfg: &DeliveryConfig,
        data_dir: &Path,
    ) -> Result<Prepared, String> {
        cfg.validate()?;
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let password = match &cfg.auth_password_file {
            Some(p) => {
                let text = String::from_utf8(read(p)?)
                    .map_err(|_| format!("{}: not UTF-8", p.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            None => None,
        };
        let ca_pem = cfg.ca_file.as_deref().map(read).transpose()?;
        let trust_anchor = match &cfg.dnssec_trust_anchor {
            Some(p) => {
                let text = String::from_utf8(read(p)?)
                    .map_err(|_| format!("{}: not UTF-8", p.display()))?;
                crate::delivery::dane::parse_anchors(&text)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                Some(text)
            }
            None => None,
        };
        Ok(Prepared {
            cfg: cfg.clone(),
            password,
            ca_pem,
            pins: cfg
                .tls_pin
                .iter()
                .map(|p| crate::delivery::pin::Pin::parse(p))
                .collect::<Result<_, _>>()?,
            capture_dir: data_dir.join("capture"),
            trust_anchor,
        })
    }
}

/// One message's share of a connection: the recipients due for it there.
struct Job {
    id: u64,
    sender: String,
    size: u64,
    recipients: Vec<String>,
    /// RFC 3461 parameters to pass on: the message's, and each
    /// recipient's (in the order of `recipients`).
    dsn: MessageDsn,
    recipient_dsn: Vec<RcptDsn>,
    /// Taken with SMTPUTF8.
    smtputf8: bool,
}

pub struct Delivery {
    cfg: DeliveryConfig,
    router: Router,
    tls: TlsPolicy,
    auth: Option<Credentials>,
    hostname: String,
    store: Arc<Store>,
    committer: Arc<Committer>,
    settings: settings::Shared,
    clock: Arc<Clock>,
    pub stats: Arc<Stats>,
    /// Queue ids in hand, with the number of tasks holding each.
    busy: Mutex<HashMap<u64, usize>>,
    /// Delivery waits for disk space (see `has_room`).
    paused: AtomicBool,
    slots: Arc<Semaphore>,
    per_destination: Mutex<HashMap<String, Arc<Semaphore>>>,
    capture_dir: PathBuf,
    /// MX mode: trust roots for MTA-STS, and the policy cache.
    roots: Option<Arc<rustls::RootCertStore>>,
    mta_sts: Option<crate::delivery::mta_sts::MtaSts>,
    dane: Option<crate::delivery::dane::Dane>,
}

impl Delivery {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: Prepared,
        hostname: String,
        store: Arc<Store>,
        committer: Arc<Committer>,
        settings: settings::Shared,
        clock: Arc<Clock>,
        stats: Arc<Stats>,
    ) -> Result<Arc<Delivery>, String> {
        let router = Router::new(&p.cfg)?;
        let tls = if router.is_smarthost() {
            TlsPolicy {
                required: p.cfg.starttls == StartTls::Required,
                connector: client::tls_connector(p.cfg.tls_verify, p.ca_pem.as_deref(), &p.pins)?,
            }
        } else {
            TlsPolicy {
                required: false,
                connector: client::tls_connector(false, None, &[])?,
            }
        };
        let roots = match router.resolver() {
            Some(_) => Some(crate::delivery::mx_tls::roots(p.ca_pem.as_deref())?),
            None => None,
        };
        let mta_sts = match &roots {
            Some(r) if p.cfg.mta_sts => Some(crate::delivery::mta_sts::MtaSts::new(
                p.cfg.mta_sts_port,
                crate::delivery::mx_tls::webpki_connector(r.clone())?,
                Duration::from_secs(p.cfg.connect_timeout_secs.max(1) * 2),
            )),
            _ => None,
        };
        let dane = match &roots {
            Some(_) if p.cfg.dane => Some(crate::delivery::dane::Dane::new(
                &p.cfg,
                p.trust_anchor.as_deref(),
            )?),
            _ => None,
        };
        let auth = match (&p.cfg.auth_user, p.password) {
            (Some(user), Some(password)) if router.is_smarthost() => Some(Credentials {
                user: user.clone(),
                password,
            }),
            _ => None,
        };
        Ok(Arc::new(Delivery {
            slots: Arc::new(Semaphore::new(p.cfg.max_connections)),
            cfg: p.cfg,
            router,
            tls,
            auth,
            hostname,
            store,
            committer,
            settings,
            clock,
            stats,
            busy: Mutex::new(HashMap::new()),
            paused: AtomicBool::new(false),
            per_destination: Mutex::new(HashMap::new()),
            capture_dir: p.capture_dir,
            roots,
            mta_sts,
            dane,
        }))
    }

    /// Runs until `stop` turns true. A restart needs no recovery: the
    /// queue in redb is the whole state.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        let queued = self.committer.queued_signal();
        tracing::info!(mode = ?self.cfg.mode(), "delivery started");
        loop {
            if self.store.health().failure().is_some() {
                // Outcomes can no longer be recorded: sending now could
                // only send twice. The daemon is stopping.
                tracing::error!("delivery stopped: the store cannot record results");
                return;
            }
            if self.has_room()
                && let Err(e) = self.clone().dispatch().await
            {
                tracing::error!(error = %e, "delivery scheduler");
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = queued.notified() => {
                    // New mail: go now rather than at the next poll, after
                    // a moment that lets a burst's commits gather.
                    tokio::time::sleep(QUEUED_GATHER).await;
                }
                _ = stop.changed() => return,
            }
        }
    }

    async fn dispatch(self: Arc<Self>) -> Result<(), String> {
        let now = self.clock.now();
        let limit = self.cfg.max_connections * self.cfg.max_messages_per_connection;
        let me = self.clone();
        let entries = tokio::task::spawn_blocking(move || {
            let busy = me.busy.lock().expect("busy lock").clone();
            me.store.due(now, limit, |id| busy.contains_key(&id))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if entries.is_empty() {
            return Ok(());
        }
        // destination -> jobs, in due order.
        let mut groups: Vec<(String, Vec<Job>)> = Vec::new();
        let mut busy = self.busy.lock().expect("busy lock");
        for e in &entries {
            if self.store.delivery_room(e.size).is_err() {
                continue;
            }
            let mut by_dest: Vec<(String, Vec<&Recipient>)> = Vec::new();
            for r in e.recipients.iter().filter(|r| r.state == RcptState::Queued) {
                if e.due_at(r).is_some_and(|t| t > now) {
                    continue;
                }
                let d = self.router.destination(&r.address);
                match by_dest.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, v)) => v.push(r),
                    None => by_dest.push((d, vec![r])),
                }
            }
            for (d, recipients) in by_dest {
                *busy.entry(e.id).or_default() += 1;
                let job = Job {
                    id: e.id,
                    sender: e.sender.clone(),
                    size: e.size,
                    recipients: recipients.iter().map(|r| r.address.clone()).collect(),
                    dsn: e.dsn.clone(),
                    recipient_dsn: recipients.iter().map(|r| r.dsn.clone()).collect(),
                    smtputf8: e.smtputf8,
                };
                match groups.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, v)) => v.push(job),
                    None => groups.push((d, vec![job])),
                }
            }
        }
        drop(busy);
        for (dest, jobs) in groups {
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let chunk: Vec<Job> = jobs
                    .by_ref()
                    .take(self.cfg.max_messages_per_connection.max(1))
                    .collect();
                let me = self.clone();
                let dest = dest.clone();
                tokio::spawn(async move { me.connection(dest, chunk).await });
            }
        }
        Ok(())
    }

    /// Whether the store can record delivery results (see
    /// `Store::delivery_room`); says so when that changes.
    fn has_room(&self) -> bool {
        let room = self.store.delivery_room(0);
        let was_paused = self.paused.swap(room.is_err(), Ordering::Relaxed);
        match (&room, was_paused) {
            (Err(crate::store::Refusal::Full { free, needed, .. }), false) => {
                tracing::warn!(
                    free,
                    needed,
                    "delivery paused: too little disk space to record results"
                );
            }
            (Ok(()), true) => tracing::info!("delivery resumed"),
            _ => {}
        }
        room.is_ok()
    }

    fn release(&self, id: u64) {
        let mut busy = self.busy.lock().expect("busy lock");
        if let Some(n) = busy.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&id);
            }
        }
    }

    fn destination_slots(&self, dest: &str) -> Arc<Semaphore> {
        let mut map = self.per_destination.lock().expect("destination lock");
        map.entry(dest.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.max_per_destination)))
            .clone()
    }
}
