//! The scheduler loop and the connection tasks. The loop scans the queue
//! for due recipients every `poll_interval_ms`, groups them by
//! destination and starts one task per group of up to
//! `max_messages_per_connection` messages; each task waits for a slot in
//! the global and the per-destination semaphore, opens one connection and
//! sends its messages over it with RSET between them, committing each
//! message's outcome right after the next hop's answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, watch};

use super::Stats;
use super::client::{self, Credentials, Error, Session, TlsPolicy};
use super::config::{DeliveryConfig, StartTls};
use super::outcome::{self, Ctx, Logged, Outcome};
use super::route::{Hop, Router};
use crate::clock::Clock;
use crate::settings;
use crate::store::{Committer, QueueEntry, RcptState, Store, queue_id};

/// How long a message whose outcome could not be committed is left alone.
const STORE_FAILURE_HOLD: Duration = Duration::from_secs(300);

/// How long the loop waits after a "message queued" signal before it
/// scans, so that one scan picks up a burst of commits.
const QUEUED_GATHER: Duration = Duration::from_millis(10);

/// What must be read while still root: credentials and CA file.
pub struct Prepared {
    cfg: DeliveryConfig,
    password: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

impl Prepared {
    pub fn load(cfg: &DeliveryConfig) -> Result<Prepared, String> {
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
        Ok(Prepared {
            cfg: cfg.clone(),
            password,
            ca_pem,
        })
    }
}

/// One message's share of a connection: the recipients due for it there.
struct Job {
    id: u64,
    sender: String,
    size: u64,
    recipients: Vec<String>,
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
    slots: Arc<Semaphore>,
    per_destination: Mutex<HashMap<String, Arc<Semaphore>>>,
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
                connector: client::tls_connector(p.cfg.tls_verify, p.ca_pem.as_deref())?,
            }
        } else {
            TlsPolicy {
                required: false,
                connector: client::tls_connector(false, None)?,
            }
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
            per_destination: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs until `stop` turns true. A restart needs no recovery: the
    /// queue in redb is the whole state.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        let queued = self.committer.queued_signal();
        tracing::info!(mode = ?self.cfg.mode(), "delivery started");
        loop {
            if let Err(e) = self.clone().dispatch().await {
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
            let mut by_dest: Vec<(String, Vec<String>)> = Vec::new();
            for r in e.recipients.iter().filter(|r| r.state == RcptState::Queued) {
                if e.due_at(r).is_some_and(|t| t > now) {
                    continue;
                }
                let d = self.router.destination(&r.address);
                match by_dest.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, v)) => v.push(r.address.clone()),
                    None => by_dest.push((d, vec![r.address.clone()])),
                }
            }
            for (d, recipients) in by_dest {
                *busy.entry(e.id).or_default() += 1;
                let job = Job {
                    id: e.id,
                    sender: e.sender.clone(),
                    size: e.size,
                    recipients,
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

    /// One connection's work: resolve, connect, send each job.
    async fn connection(self: Arc<Self>, dest: String, jobs: Vec<Job>) {
        let dest_slots = self.destination_slots(&dest);
        let (Ok(_slot), Ok(_dest_slot)) = (
            self.slots.clone().acquire_owned().await,
            dest_slots.acquire_owned().await,
        ) else {
            return;
        };
        let mut pending: std::collections::VecDeque<Job> = jobs.into();
        let hops = match self.router.resolve(&dest).await {
            Ok(h) => h,
            Err(e) => {
                let text = format!(
                    "{} {}",
                    if e.permanent {
                        "550 5.1.2"
                    } else {
                        "451 4.4.3"
                    },
                    e.text
                );
                while let Some(job) = pending.pop_front() {
                    let outcome = if e.permanent {
                        Outcome::Failed(text.clone())
                    } else {
                        Outcome::Deferred(text.clone())
                    };
                    self.finish(&job, all(&job, outcome), None).await;
                }
                return;
            }
        };
        let (mut session, hop_name) = match self.connect(&hops).await {
            Ok(s) => s,
            Err(text) => {
                while let Some(job) = pending.pop_front() {
                    self.finish(&job, all(&job, Outcome::Deferred(text.clone())), None)
                        .await;
                }
                return;
            }
        };
        Stats::add(&self.stats.connections, 1);
        let mut first = true;
        while let Some(job) = pending.pop_front() {
            if !first && session.rset().await.is_err() {
                // The connection is gone; the rest waits for the next scan.
                self.release(job.id);
                break;
            }
            first = false;
            let body = {
                let store = self.store.clone();
                let id = job.id;
                tokio::task::spawn_blocking(move || store.queue_body(id)).await
            };
            let Ok(Ok(Some(body))) = body else {
                // Deleted by an admin meanwhile, or a store error (logged
                // by the next scan finding it again).
                self.release(job.id);
                continue;
            };
            let (results, broken) = send(&mut session, &job, &body).await;
            self.finish(&job, results, Some(&hop_name)).await;
            if broken {
                break;
            }
        }
        for job in pending {
            self.release(job.id);
        }
        session.quit().await;
        // One fsync for the whole connection's removals (see
        // Store::update_entry_with).
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "queue sync failed"),
            Err(e) => tracing::error!(error = %e, "queue sync task failed"),
        }
    }

    /// Tries every address of every hop in order; returns the first
    /// session that opens, or the last error.
    async fn connect(&self, hops: &[Hop]) -> Result<(Session, String), String> {
        let mut last = String::from("451 4.4.1 no address to connect to");
        for hop in hops {
            for addr in &hop.addrs {
                let open = |try_tls| {
                    Session::open(
                        *addr,
                        &hop.host,
                        &self.hostname,
                        Duration::from_secs(self.cfg.connect_timeout_secs),
                        Duration::from_secs(self.cfg.command_timeout_secs),
                        &self.tls,
                        try_tls,
                        self.auth.as_ref(),
                    )
                };
                let mut result = open(true).await;
                if let Err(Error::Tls(e)) = &result
                    && !self.tls.required
                {
                    // Opportunistic TLS: a broken handshake is no reason
                    // to stop trying; the same host once more in plain text.
                    tracing::info!(host = %hop.host, %addr, error = %e, "TLS failed; retrying without STARTTLS");
                    result = open(false).await;
                }
                match result {
                    Ok(s) => return Ok((s, hop.host.clone())),
                    Err(e) => {
                        tracing::info!(host = %hop.host, %addr, error = %e, "next hop unusable");
                        last = match e {
                            // A 5xx greeting or EHLO still is "this host
                            // cannot take it now": we go on to the next
                            // host and retry later rather than bounce.
                            Error::Reply(r) => format!("451 4.4.0 {} said: {r}", hop.host),
                            Error::Io(text) | Error::Tls(text) => format!("451 4.4.1 {text}"),
                        };
                    }
                }
            }
        }
        Err(last)
    }

    /// Commits a job's results and writes the log lines.
    async fn finish(
        self: &Arc<Self>,
        job: &Job,
        results: Vec<(String, Outcome)>,
        remote: Option<&str>,
    ) {
        let store = self.store.clone();
        let committer = self.committer.clone();
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        let hostname = self.hostname.clone();
        let schedule = self.cfg.schedule();
        let warn = self.cfg.delay_warning_hours;
        let remote_owned = remote.map(str::to_string);
        let user_of = |e: Option<QueueEntry>| e.map(|e| e.user).unwrap_or_default();
        let id = job.id;
        let now = self.clock.now();
        let done = tokio::task::spawn_blocking(move || {
            let user = user_of(store.queue_entry(id).ok().flatten());
            let ctx = Ctx {
                committer: &committer,
                hostname: &hostname,
                schedule,
                max_retry_days: outcome::max_retry_days(&store, &settings, &user),
                delay_warning_hours: warn,
                stats: &stats,
            };
            outcome::record(&store, &ctx, id, now, &results, remote_owned.as_deref())
        })
        .await;
        let hop = remote.unwrap_or("-");
        let error = match done {
            Ok(Ok(Some(lines))) => {
                for l in lines {
                    log_attempt(job.id, hop, &l);
                }
                None
            }
            Ok(Ok(None)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        let Some(e) = error else {
            self.release(job.id);
            return;
        };
        // The outcome is not on disk, so the message still looks due: hold
        // it back a while, or a failing store (disk full) would have it
        // sent again on every scan.
        tracing::error!(id = %queue_id(job.id), error = %e, hold_secs = STORE_FAILURE_HOLD.as_secs(), "cannot record delivery result");
        let me = self.clone();
        let id = job.id;
        tokio::spawn(async move {
            tokio::time::sleep(STORE_FAILURE_HOLD).await;
            me.release(id);
        });
    }
}

fn log_attempt(id: u64, hop: &str, l: &Logged) {
    tracing::info!(
        id = %queue_id(id),
        rcpt = %l.recipient,
        next_hop = hop,
        result = l.result,
        reply = %l.reply,
        next_retry = %l.next_retry.map_or_else(|| "-".to_string(), |t: Timestamp| t.to_string()),
        "delivery attempt"
    );
}

fn all(job: &Job, outcome: Outcome) -> Vec<(String, Outcome)> {
    job.recipients
        .iter()
        .map(|r| (r.clone(), outcome.clone()))
        .collect()
}

fn classify(reply: &client::Reply) -> Outcome {
    let text = reply.to_string();
    if reply.is_positive() {
        Outcome::Delivered(text)
    } else if reply.is_permanent() {
        Outcome::Failed(text)
    } else {
        Outcome::Deferred(text)
    }
}

/// One message over an open session. Returns each recipient's outcome
/// and whether the connection is broken.
async fn send(s: &mut Session, job: &Job, body: &[u8]) -> (Vec<(String, Outcome)>, bool) {
    let broken = |e: Error| Outcome::Deferred(format!("451 4.4.2 {e}"));
    let size = usize::try_from(job.size).unwrap_or(usize::MAX);
    let r = match s.mail_from(&job.sender, size).await {
        Ok(r) => r,
        Err(e) => return (all(job, broken(e)), true),
    };
    if !r.is_positive() {
        let _ = s.rset().await;
        return (all(job, classify(&r)), false);
    }
    let mut results = Vec::new();
    let mut accepted = Vec::new();
    for rcpt in &job.recipients {
        match s.rcpt_to(rcpt).await {
            Ok(r) if r.is_positive() => accepted.push(rcpt.clone()),
            Ok(r) => results.push((rcpt.clone(), classify(&r))),
            Err(e) => {
                let o = broken(e);
                let left: Vec<(String, Outcome)> = job
                    .recipients
                    .iter()
                    .filter(|a| !results.iter().any(|(x, _)| x == *a))
                    .map(|a| (a.clone(), o.clone()))
                    .collect();
                results.extend(left);
                return (results, true);
            }
        }
    }
    if accepted.is_empty() {
        let _ = s.rset().await;
        return (results, false);
    }
    match s.data(body).await {
        Ok(r) => {
            let o = classify(&r);
            results.extend(accepted.into_iter().map(|a| (a, o.clone())));
            (results, false)
        }
        Err(e) => {
            let o = broken(e);
            results.extend(accepted.into_iter().map(|a| (a, o.clone())));
            (results, true)
        }
    }
}
