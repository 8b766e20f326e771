//! The scheduler loop and the connection tasks. The loop scans the queue
//! for due recipients every `poll_interval_ms`, groups them by
//! destination and starts one task per group of up to
//! `max_messages_per_connection` messages; each task waits for a slot in
//! the global and the per-destination semaphore, opens one connection and
//! sends its messages over it with RSET between them, committing each
//! message's outcome right after the next hop's answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Semaphore, watch};

use super::Stats;
use super::client::{self, Credentials, Error, Session, TlsPolicy};
use super::config::{DeliveryConfig, StartTls};
use super::mx_tls::{Guard, PolicyType};
use super::outcome::{self, Ctx, Logged, Outcome};
use super::route::{Hop, Router};
use super::seven_bit;
use crate::clock::Clock;
use crate::settings;
use crate::store::envelope::{MessageDsn, RcptDsn};
use crate::store::{Committer, QueueEntry, RcptState, Recipient, Store, queue_id};

/// How long the loop waits after a "message queued" signal before it
/// scans, so that one scan picks up a burst of commits.
const QUEUED_GATHER: Duration = Duration::from_millis(10);

/// What must be read while still root: credentials and CA file.
pub struct Prepared {
    cfg: DeliveryConfig,
    password: Option<String>,
    ca_pem: Option<Vec<u8>>,
    pins: Vec<super::pin::Pin>,
    capture_dir: PathBuf,
    trust_anchor: Option<String>,
}

impl Prepared {
    /// `data_dir` holds `capture/` in capture mode.
    pub fn load(cfg: &DeliveryConfig, data_dir: &Path) -> Result<Prepared, String> {
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
                super::dane::parse_anchors(&text).map_err(|e| format!("{}: {e}", p.display()))?;
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
                .map(|p| super::pin::Pin::parse(p))
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
    mta_sts: Option<super::mta_sts::MtaSts>,
    dane: Option<super::dane::Dane>,
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
            Some(_) => Some(super::mx_tls::roots(p.ca_pem.as_deref())?),
            None => None,
        };
        let mta_sts = match &roots {
            Some(r) if p.cfg.mta_sts => Some(super::mta_sts::MtaSts::new(
                p.cfg.mta_sts_port,
                super::mx_tls::webpki_connector(r.clone())?,
                Duration::from_secs(p.cfg.connect_timeout_secs.max(1) * 2),
            )),
            _ => None,
        };
        let dane = match &roots {
            Some(_) if p.cfg.dane => {
                Some(super::dane::Dane::new(&p.cfg, p.trust_anchor.as_deref())?)
            }
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

    /// One connection's work: resolve, connect, send each job.
    async fn connection(self: Arc<Self>, dest: String, jobs: Vec<Job>) {
        let dest_slots = self.destination_slots(&dest);
        let (Ok(_slot), Ok(_dest_slot)) = (
            self.slots.clone().acquire_owned().await,
            dest_slots.acquire_owned().await,
        ) else {
            return;
        };
        if matches!(self.router, Router::Capture) {
            for job in jobs {
                self.capture(job).await;
            }
            return;
        }
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
                    self.finish(&job, all(&job, outcome), None, false).await;
                }
                return;
            }
        };
        let plans = match self.plans(&dest, &hops).await {
            Ok(g) => g,
            Err(text) => return self.defer_all(pending, &text).await,
        };
        let (mut session, hop_name) = match self.connect(&hops, &plans).await {
            Ok(s) => s,
            Err(text) => return self.defer_all(pending, &text).await,
        };
        Stats::add(&self.stats.connections, 1);
        let mut first = true;
        while let Some(job) = pending.pop_front() {
            if self.store.delivery_room(job.size).is_err() {
                self.release(job.id);
                break;
            }
            if !first && session.rset().await.is_err() {
                // The connection is gone; the rest waits for the next scan.
                self.release(job.id);
                break;
            }
            first = false;
            // Read, made 7-bit for a next hop without 8BITMIME (RFC 6152 3:
            // up to the message size of work, so on a blocking thread), then
            // DKIM-signed last, so the signature covers the bytes sent
            // (docs/DKIM.md).
            let prepared = {
                let (store, id) = (self.store.clone(), job.id);
                let (sender, hostname) = (job.sender.clone(), self.hostname.clone());
                let seven_bit_only = !session.supports("8BITMIME");
                tokio::task::spawn_blocking(move || {
                    let Some(body) = store.queue_body(id)? else {
                        return Ok(None);
                    };
                    let body = if seven_bit_only && seven_bit::is_eight_bit(&body) {
                        seven_bit::convert(&body)
                    } else {
                        Ok(body)
                    };
                    crate::store::Result::Ok(Some(body.map(|b| {
                        crate::dkim::sign_for_delivery(&store, id, &sender, &hostname, b)
                    })))
                })
                .await
            };
            let Ok(Ok(Some(body))) = prepared else {
                // Deleted by an admin meanwhile, or a store error (logged
                // by the next scan finding it again).
                self.release(job.id);
                continue;
            };
            let (results, broken) = match body {
                Ok(body) => send(&mut session, &job, &body).await,
                Err(e) => {
                    let text = format!(
                        "554 5.6.3 {} does not accept 8-bit mail (no 8BITMIME) and conversion to 7 bit is not possible: {e}",
                        session.host
                    );
                    (all(&job, Outcome::Failed(text)), false)
                }
            };
            let hop_dsn = session.supports("DSN");
            self.finish(&job, results, Some(&hop_name), hop_dsn).await;
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

    /// Capture mode: the message goes to a file, not to a next hop.
    async fn capture(self: &Arc<Self>, job: Job) {
        let (store, dir) = (self.store.clone(), self.capture_dir.clone());
        let (id, sender, rcpts) = (job.id, job.sender.clone(), job.recipients.clone());
        let written = tokio::task::spawn_blocking(move || match store.queue_body(id) {
            Ok(Some(body)) => super::capture::write(&dir, id, &sender, &rcpts, &body)
                .map(Some)
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let outcome = match written {
            Ok(Some(path)) => {
                tracing::info!(id = %queue_id(id), path = %path.display(), "captured (delivery mode \"capture\": nothing is sent)");
                Outcome::Delivered(format!("250 2.0.0 captured in {}", path.display()))
            }
            // Deleted by an admin meanwhile.
            Ok(None) => return self.release(id),
            Err(e) => Outcome::Deferred(format!("451 4.3.0 cannot write the capture file: {e}")),
        };
        // No success notices for captured mail (nothing was relayed).
        self.finish(&job, all(&job, outcome), Some("capture"), true)
            .await;
    }

    /// Defers every job still waiting for this destination with `text`.
    async fn defer_all(self: &Arc<Self>, mut pending: std::collections::VecDeque<Job>, text: &str) {
        while let Some(job) = pending.pop_front() {
            let outcome = Outcome::Deferred(text.to_string());
            self.finish(&job, all(&job, outcome), None, false).await;
        }
    }

    /// Whether a failed STARTTLS handshake may be followed by plain text.
    /// Not when TLS is required, and not towards a smarthost whose
    /// certificate is checked: an attacker in the path could otherwise
    /// turn any certificate failure into a plaintext session, making
    /// `tls_verify` meaningless. A host that offers no STARTTLS at all
    /// still gets plain text in opportunistic mode (`client::Session::open`).
    fn plain_after_tls_failure(&self) -> bool {
        let checked = self.cfg.tls_verify || !self.cfg.tls_pin.is_empty();
        let verified = self.router.is_smarthost() && checked;
        !self.tls.required && !verified
    }

    /// The TLS policy for each hop: DANE where the host has secure TLSA
    /// records (it takes precedence, RFC 8461 2), else the domain's
    /// MTA-STS policy. Err: no hop may be used.
    async fn plans(&self, dest: &str, hops: &[Hop]) -> Result<Vec<Plan>, String> {
        let mut plans = vec![Plan::Plain; hops.len()];
        let Some(resolver) = self.router.resolver() else {
            return Ok(plans);
        };
        if dest.starts_with('[') {
            return Ok(plans);
        }
        if let Some(dane) = &self.dane {
            for (plan, hop) in plans.iter_mut().zip(hops) {
                match dane.lookup(&hop.host).await {
                    super::dane::Found::None => {}
                    super::dane::Found::Records(tlsa) => {
                        *plan = Plan::Guarded(Guard {
                            kind: PolicyType::Dane,
                            enforce: true,
                            tlsa,
                        })
                    }
                    super::dane::Found::Bogus => {
                        self.stats
                            .tls_report
                            .count(PolicyType::Dane, "dnssec-invalid");
                        *plan = Plan::Skip(
                            "DANE: TLSA records fail DNSSEC validation (dnssec-invalid)",
                        );
                    }
                }
            }
        }
        let found = match &self.mta_sts {
            Some(sts) => sts.lookup(resolver, dest).await,
            None => super::mta_sts::Found {
                policy: None,
                error: None,
            },
        };
        if let Some(e) = found.error {
            self.stats.tls_report.count(PolicyType::Sts, e);
        }
        if let Some(policy) = found.policy {
            let enforce = policy.mode == super::mta_sts::Mode::Enforce;
            for (plan, hop) in plans.iter_mut().zip(hops) {
                if !matches!(plan, Plan::Plain) {
                    continue;
                }
                let listed = policy.matches(&hop.host);
                if !listed {
                    self.stats.tls_report.count(PolicyType::Sts, "mx-mismatch");
                }
                *plan = if listed || !enforce {
                    Plan::Guarded(Guard {
                        kind: PolicyType::Sts,
                        enforce,
                        tlsa: Vec::new(),
                    })
                } else {
                    Plan::Skip("MTA-STS: not listed in the policy (mx-mismatch)")
                };
            }
        }
        if plans.iter().all(|p| matches!(p, Plan::Skip(_))) {
            let why = plans.iter().find_map(|p| match p {
                Plan::Skip(w) => Some(*w),
                _ => None,
            });
            return Err(format!(
                "451 4.7.5 no usable MX host for {dest}: {}",
                why.unwrap_or("-")
            ));
        }
        Ok(plans)
    }

    /// Tries every address of every hop in order; returns the first
    /// session that opens, or the last error.
    async fn connect(&self, hops: &[Hop], plans: &[Plan]) -> Result<(Session, String), String> {
        let mut last = String::from("451 4.4.1 no address to connect to");
        for (i, hop) in hops.iter().enumerate() {
            let guard = match plans.get(i) {
                Some(Plan::Guarded(g)) => Some(g),
                Some(Plan::Skip(_)) => continue,
                _ => None,
            };
            for addr in &hop.addrs {
                let guarded = match (guard, &self.roots) {
                    (Some(g), Some(roots)) => {
                        let (connector, verdict) =
                            super::mx_tls::guarded_connector(roots.clone(), g)?;
                        Some((
                            TlsPolicy {
                                required: false,
                                connector,
                            },
                            verdict,
                            g,
                        ))
                    }
                    _ => None,
                };
                let tls = guarded.as_ref().map_or(&self.tls, |(t, _, _)| t);
                let strict = guard.is_some_and(|g| g.enforce);
                let open = |try_tls| {
                    Session::open(
                        *addr,
                        &hop.host,
                        &self.hostname,
                        Duration::from_secs(self.cfg.connect_timeout_secs),
                        Duration::from_secs(self.cfg.command_timeout_secs),
                        tls,
                        try_tls,
                        self.auth.as_ref(),
                    )
                };
                let mut result = open(true).await;
                if let Err(Error::Tls(e)) = &result
                    && self.plain_after_tls_failure()
                    && !strict
                {
                    // Opportunistic TLS without certificate checks: a
                    // broken handshake is no reason to stop trying; the
                    // same host once more in plain text.
                    tracing::info!(host = %hop.host, %addr, error = %e, "TLS failed; retrying without STARTTLS");
                    result = open(false).await;
                }
                if let Some((_, verdict, g)) = &guarded {
                    let seen = *verdict.lock().expect("tls result");
                    let outcome = match &result {
                        Ok(s) => Some(match seen {
                            Some(Err(r)) => r,
                            _ if !s.tls => "starttls-not-supported",
                            _ => "success",
                        }),
                        Err(Error::Tls(_)) => {
                            Some(seen.and_then(Result::err).unwrap_or("validation-failure"))
                        }
                        // Never got as far as TLS: not a policy result.
                        Err(_) => None,
                    };
                    if let Some(o) = outcome {
                        self.stats.tls_report.count(g.kind, o);
                        if strict && o != "success" {
                            tracing::info!(host = %hop.host, %addr, policy = g.kind.name(), failure = o, "TLS policy not met");
                            if let Ok(s) = result {
                                s.quit().await;
                            }
                            last = format!(
                                "451 4.7.5 {} policy not met by {}: {o}",
                                match g.kind {
                                    PolicyType::Sts => "MTA-STS",
                                    PolicyType::Dane => "DANE",
                                },
                                hop.host
                            );
                            continue;
                        }
                    }
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
        hop_dsn: bool,
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
            outcome::record(
                &store,
                &ctx,
                id,
                now,
                &results,
                remote_owned.as_deref(),
                hop_dsn,
            )
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
        // The outcome is not on disk, so the message still looks due. It
        // stays in hand until the process ends: sending it again could
        // only deliver it twice. A store that cannot write (disk full, I/O
        // error) stops the daemon; the next start retries what it had not
        // recorded, the same window as a crash after the next hop's 250.
        tracing::error!(id = %queue_id(job.id), error = %e, "cannot record delivery result; not retried before a restart");
    }
}

/// How to use one MX host.
#[derive(Debug, Clone)]
enum Plan {
    /// No policy: opportunistic TLS.
    Plain,
    Guarded(Guard),
    /// A policy rules the host out (why, for the deferral text).
    Skip(&'static str),
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

/// Whether MAIL must say SMTPUTF8: the message was taken with it and
/// something in it is not ASCII. A next hop without the extension fails
/// the recipients (RFC 6531 3.2: no downgrade). That holds for UTF-8
/// header fields under ASCII addresses too: rewriting them (RFC 6857) is
/// lossy and would change what DKIM signed, so it is not attempted.
fn smtputf8_needed(s: &Session, job: &Job, body: &[u8]) -> std::result::Result<bool, Outcome> {
    use crate::intl::{Needs, needs};
    if !job.smtputf8 {
        return Ok(false);
    }
    let needs = needs(&job.sender, job.recipients.iter().map(String::as_str), body);
    let offered = s.supports("SMTPUTF8");
    let host = &s.host;
    match needs {
        Needs::Nothing => Ok(false),
        _ if offered => Ok(true),
        Needs::Addresses => Err(Outcome::Failed(format!(
            "553 5.6.7 {host} does not offer SMTPUTF8, which the non-ASCII addresses of this message need"
        ))),
        Needs::Headers => Err(Outcome::Failed(format!(
            "554 5.6.9 {host} does not offer SMTPUTF8, which the UTF-8 header fields of this message need"
        ))),
    }
}

/// One message over an open session. Returns each recipient's outcome
/// and whether the connection is broken.
async fn send(s: &mut Session, job: &Job, body: &[u8]) -> (Vec<(String, Outcome)>, bool) {
    let broken = |e: Error| Outcome::Deferred(format!("451 4.4.2 {e}"));
    let utf8 = match smtputf8_needed(s, job, body) {
        Ok(utf8) => utf8,
        Err(refused) => return (all(job, refused), false),
    };
    // The body's own length: a converted one is longer than `job.size`.
    let r = match s.mail_from(&job.sender, body.len(), &job.dsn, utf8).await {
        Ok(r) => r,
        Err(e) => return (all(job, broken(e)), true),
    };
    if !r.is_positive() {
        let _ = s.rset().await;
        return (all(job, classify(&r)), false);
    }
    let mut results = Vec::new();
    let mut accepted = Vec::new();
    for (i, rcpt) in job.recipients.iter().enumerate() {
        let dsn = job.recipient_dsn.get(i).cloned().unwrap_or_default();
        match s.rcpt_to(rcpt, &dsn).await {
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
