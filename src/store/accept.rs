//! Accepting a message: one write transaction re-checks the user's lock
//! and limits, stores the message and counts it. A single committer thread
//! runs these transactions and takes every submission waiting at that
//! moment into the same commit (group commit), so N sessions finishing
//! DATA together cost one fsync, and no race can pass a limit: the checks
//! and the counting happen in the same serialised transaction.
//!
//! The same transaction updates the sender's behaviour profile and decides
//! the message's fate with the rule the caller hands in
//! (`submission::fate::decide`, see `Decide`): queued, held in the quarantine,
//! or held with the user locked. So a crash never leaves a profile that
//! counted a message the store does not have, or the reverse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::{Notify, mpsc, oneshot};

use super::envelope::{MessageDsn, RcptDsn};
use super::fleet::{Counted, Fleet, Pending, Reservation};
use super::quarantine::QuarantineEntry;
use super::queue::{QueueEntry, Recipient};
use super::usage::Usage;
use super::{
    META, QBODIES, QUARANTINE, Result, Store, StoreError, USAGE, USERS, from_json, to_json,
};
use crate::behaviour::replay::{Change, Seen};
use crate::behaviour::{Assessment, Observation, RecentHolds, assess};
use crate::clock::Clock;
use crate::policy::response::{self, Decision, Fate, Held, Policy};
use crate::policy::{self, Ask, locking};
use crate::scan::{Class, Verdict};
use crate::settings;
use crate::users::User;

pub(super) const QUEUE_SEQ: &str = "queue_id";
/// Submissions taken into one commit at most.
const MAX_BATCH: usize = 128;

/// The fate rule: from the content verdict, the behaviour assessment, the
/// user's holds in the window (this message not included), the response
/// settings and whether automatic lock is on. The committer applies it
/// inside its transaction, where the profile and the holds are exact; the
/// rule itself belongs to `submission` (above `store` in the import
/// order), which passes it to `Committer::accept`.
pub type Decide = fn(&Verdict, &Assessment, RecentHolds, &Policy, bool) -> Decision;

/// A message at the end of DATA, ready to be queued.
#[derive(Debug)]
pub struct Submission {
    pub id: u64,
    pub user: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub message: Vec<u8>,
    pub client_ip: String,
    pub helo: String,
    /// RET and ENVID given with MAIL FROM.
    pub dsn: MessageDsn,
    /// NOTIFY and ORCPT of each recipient, in the order of `recipients`.
    pub recipient_dsn: Vec<RcptDsn>,
    /// Taken with SMTPUTF8 (RFC 6531): delivery must pass it on.
    pub smtputf8: bool,
    /// The content scanner's verdict (clean, or spam/malware caught).
    pub content: Verdict,
}

/// What became of an accepted submission.
#[derive(Debug)]
pub enum Accepted {
    /// Queued for delivery under this id.
    Queued(u64),
    /// Held in the quarantine (or, for content caught with the quarantine
    /// off, dropped), and perhaps the user locked.
    Held(Held),
}

#[derive(Debug)]
pub enum AcceptError {
    /// The user was deleted during the session.
    NoUser,
    /// Locked, or over a limit (`policy::admit`).
    Policy(policy::Refusal),
    /// No room under the disk reserve, or the store has failed.
    Refused(super::Refusal),
    Store(StoreError),
}

struct Job {
    submission: Submission,
    decide: Decide,
    done: oneshot::Sender<std::result::Result<Accepted, AcceptError>>,
}

pub struct Committer {
    jobs: mpsc::Sender<Job>,
    next_id: AtomicU64,
    /// Signalled after each commit that queued a message.
    queued: Arc<Notify>,
}

impl Committer {
    pub fn start(
        store: Arc<Store>,
        settings: settings::Shared,
        clock: Arc<Clock>,
    ) -> Result<Committer> {
        Self::start_with(store, settings, clock, None)
    }

    /// `start`, with limits counted fleet-wide when `fleet` is given.
    pub fn start_with(
        store: Arc<Store>,
        settings: settings::Shared,
        clock: Arc<Clock>,
        fleet: Option<Arc<Fleet>>,
    ) -> Result<Committer> {
        let next_id = AtomicU64::new(store.next_queue_id()?);
        let (jobs, rx) = mpsc::channel(1024);
        let queued = Arc::new(Notify::new());
        let signal = queued.clone();
        std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(&store, &settings, &clock, fleet.as_deref(), rx, &signal))
            .map_err(|e| StoreError(format!("cannot start committer: {e}")))?;
        Ok(Committer {
            jobs,
            next_id,
            queued,
        })
    }

    /// Notified whenever a commit has queued messages (the delivery loop
    /// waits on it instead of only polling).
    pub fn queued_signal(&self) -> Arc<Notify> {
        self.queued.clone()
    }

    /// A fresh queue id, for the Received header written before the commit.
    pub fn reserve_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues the message durably, its fate decided by `decide`; returns
    /// once it is on disk.
    pub async fn accept(
        &self,
        submission: Submission,
        decide: Decide,
    ) -> std::result::Result<Accepted, AcceptError> {
        let (done, wait) = oneshot::channel();
        let gone = || AcceptError::Store(StoreError("committer stopped".into()));
        self.jobs
            .send(Job {
                submission,
                decide,
                done,
            })
            .await
            .map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

fn run(
    store: &Store,
    settings: &settings::Shared,
    clock: &Clock,
    fleet: Option<&Fleet>,
    mut rx: mpsc::Receiver<Job>,
    queued: &Notify,
) {
    // Behaviour profiles changed by earlier commits, not yet written to
    // the fleet's store: they ride along with the next batch's round trip,
    // or are written on their own once the committer is idle.
    let mut backlog: Vec<Pending> = Vec::new();
    loop {
        let first = match rx.try_recv() {
            Ok(job) => job,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if let Some(f) = fleet {
                    share_while_idle(f, &mut backlog, &rx);
                }
                match rx.blocking_recv() {
                    Some(job) => job,
                    None => break,
                }
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(store, settings, clock, fleet, &batch, &mut backlog);
        if results.iter().any(|r| matches!(r, Ok(Accepted::Queued(_)))) {
            queued.notify_one();
        }
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// Write-backs another box keeps beating: tried this many times while no
/// mail waits (the second at once, then backing off from 20 to 80 ms,
/// about 0.4 s in all); what is left then goes with the next commit.
const IDLE_TRIES: u32 = 8;

/// Writes back what earlier commits changed, so that an idle box's
/// changes are not left unshared until its next commit.
fn share_while_idle(f: &Fleet, backlog: &mut Vec<Pending>, rx: &mpsc::Receiver<Job>) {
    for attempt in 0..IDLE_TRIES {
        if attempt > 1 {
            std::thread::sleep(std::time::Duration::from_millis(5 << attempt.min(4)));
        }
        f.put_profiles(backlog);
        if backlog.is_empty() || !rx.is_empty() {
            return;
        }
    }
}

/// Decides and stores every submission of the batch in one transaction.
/// If the commit itself fails, every submission fails with it.
fn commit_batch(
    store: &Store,
    settings: &settings::Shared,
    clock: &Clock,
    fleet: Option<&Fleet>,
    batch: &[Job],
    backlog: &mut Vec<Pending>,
) -> Vec<std::result::Result<Accepted, AcceptError>> {
    let mut unused = Vec::new();
    // Users whose record a queued message changed (its history).
    let mut noted = Vec::new();
    // What the batch did to profiles, and the shared copies it started
    // from (none while the fleet is degraded), for the write-back.
    let mut changes = Vec::new();
    let mut bases = Vec::new();
    let mut attempt = || -> Result<Vec<std::result::Result<Accepted, AcceptError>>> {
        let txn = store.write()?;
        // The fleet counts the whole batch in one round trip first.
        let (asks, mut granted) = match fleet {
            Some(f) => {
                let asks = fleet_asks(&txn, settings, clock, batch)?;
                // Counted, and the fleet's view of these users' behaviour
                // read, in one round trip.
                let mut users: Vec<&str> = asks.iter().flatten().map(|a| a.user.as_str()).collect();
                users.sort_unstable();
                users.dedup();
                let wanted: Vec<Reservation> = asks.iter().flatten().cloned().collect();
                let (outcomes, reads) = f.reserve(&wanted, &users, backlog);
                for (user, read) in users.iter().zip(reads.into_iter().flatten()) {
                    if let Some(p) = &read.profile {
                        super::behaviour::save(&txn, user, p)?;
                    }
                    bases.push((user.to_string(), read.base));
                }
                let mut outcomes = outcomes.into_iter();
                let granted: Vec<_> = asks
                    .iter()
                    .map(|a| a.as_ref().and_then(|_| outcomes.next()))
                    .collect();
                (asks, granted)
            }
            None => (Vec::new(), batch.iter().map(|_| None).collect()),
        };
        let mut results = Vec::with_capacity(batch.len());
        // What this commit adds counts against the disk reserve.
        let mut adding = 0u64;
        for (job, grant) in batch.iter().zip(granted.iter_mut()) {
            let size = job.submission.message.len() as u64;
            if let Err(r) = store.admit(adding + size) {
                results.push(Err(AcceptError::Refused(r)));
                continue;
            }
            adding += size;
            results.push(accept_one(
                &txn,
                settings,
                clock,
                grant,
                job,
                &mut noted,
                fleet.is_some().then_some(&mut changes),
            )?);
        }
        txn.commit()?;
        // Counted ahead but not queued: given back below.
        for (ask, grant) in asks.into_iter().zip(granted) {
            if let (Some(ask), Some(Ok(counted))) = (ask, grant) {
                unused.push((ask, counted));
            }
        }
        Ok(results)
    };
    let outcome = attempt();
    if let Some(f) = fleet
        && !unused.is_empty()
    {
        f.release(&unused);
    }
    match outcome {
        Ok(results) => {
            // Held mail changed the user (history, perhaps a lock).
            for (job, r) in batch.iter().zip(&results) {
                if matches!(r, Ok(Accepted::Held(_))) {
                    store.changed(super::Change::User(job.submission.user.clone()));
                }
            }
            for user in noted {
                store.changed(super::Change::User(user));
            }
            if fleet.is_some() {
                share_profiles(store, changes, bases, backlog);
            }
            results
        }
        Err(e) => {
            tracing::error!(error = %e, "queue commit failed");
            batch
                .iter()
                .map(|_| Err(AcceptError::Store(StoreError(e.0.clone()))))
                .collect()
        }
    }
}

/// Adds the behaviour profiles this commit changed to those to write
/// back, with what it did to them (a user's later commit adds to its
/// earlier one's, not yet written).
fn share_profiles(
    store: &Store,
    changes: Vec<(String, Change)>,
    mut bases: Vec<(String, Option<Vec<u8>>)>,
    backlog: &mut Vec<Pending>,
) {
    let mut by_user: Vec<(String, Vec<Change>)> = Vec::new();
    for (user, c) in changes {
        match by_user.iter_mut().find(|(u, _)| *u == user) {
            Some((_, cs)) => cs.push(c),
            None => by_user.push((user, vec![c])),
        }
    }
    for (user, cs) in by_user {
        let Some(profile) = store.behaviour_profile(&user).ok().flatten() else {
            continue;
        };
        if let Some(p) = backlog.iter_mut().find(|p| p.user == user) {
            p.extend(cs, profile);
        } else if let Some(i) = bases.iter().position(|(u, _)| *u == user) {
            // Read from the shared store by this commit (not while degraded).
            let (_, base) = bases.swap_remove(i);
            backlog.push(Pending {
                user,
                base,
                changes: cs,
                overflowed: false,
                profile,
            });
        }
    }
}

/// What the fleet is asked to count for each submission: nothing for a
/// user that is gone or locked (refused below anyway).
fn fleet_asks(
    txn: &WriteTransaction,
    settings: &settings::Shared,
    clock: &Clock,
    batch: &[Job],
) -> Result<Vec<Option<Reservation>>> {
    let now = clock.now();
    let users = txn.open_table(USERS)?;
    let usage = txn.open_table(USAGE)?;
    let (defaults, tz) = settings.read(|c| (c.settings.defaults.clone(), c.tz.clone()));
    let mut out = Vec::with_capacity(batch.len());
    for job in batch {
        let s = &job.submission;
        let user: Option<User> = users
            .get(s.user.as_str())?
            .map(|v| from_json(v.value()))
            .transpose()?;
        let Some(user) = user else {
            out.push(None);
            continue;
        };
        let counters: Usage = usage
            .get(s.user.as_str())?
            .map(|v| from_json(v.value()))
            .transpose()?
            .unwrap_or_default();
        let st = policy::standing(&user, &counters, &defaults, &tz, now);
        if st.lock.is_some() {
            out.push(None);
            continue;
        }
        out.push(Some(Reservation {
            user: s.user.clone(),
            windows: st.windows,
            settings: st.settings,
            recipients: u32::try_from(s.recipients.len()).unwrap_or(u32::MAX),
            // Caught mail may still be sent (a released text's copies,
            // one to the user's contacts): the limits apply to it too. A
            // refusal matters only if it is let through (`accept_one`);
            // held, nothing was counted.
            check: true,
            now,
            tz: st.tz,
        }));
    }
    Ok(out)
}

fn accept_one(
    txn: &WriteTransaction,
    settings: &settings::Shared,
    clock: &Clock,
    fleet_grant: &mut Option<std::result::Result<Counted, AcceptError>>,
    job: &Job,
    noted: &mut Vec<String>,
    mut changes: Option<&mut Vec<(String, Change)>>,
) -> Result<std::result::Result<Accepted, AcceptError>> {
    let s = &job.submission;
    let now = clock.now();
    let user: Option<User> = txn
        .open_table(USERS)?
        .get(s.user.as_str())?
        .map(|v| from_json(v.value()))
        .transpose()?;
    let Some(mut user) = user else {
        return Ok(Err(AcceptError::NoUser));
    };
    let was_locked = super::users::locked(&user);
    let was_until = super::counts::expiry(&user);
    let (defaults, tz, rules, quarantine) = settings.read(|c| {
        (
            c.settings.defaults.clone(),
            c.tz.clone(),
            c.settings.response.clone(),
            c.settings.quarantine,
        )
    });
    let mut usage_table = txn.open_table(USAGE)?;
    let mut usage: Usage = usage_table
        .get(s.user.as_str())?
        .map(|v| from_json(v.value()))
        .transpose()?
        .unwrap_or_default();
    let st = policy::standing(&user, &usage, &defaults, &tz, now);
    let mut profile = super::behaviour::load(txn, &s.user)?;
    // The user's hold of this text in the window, if any.
    let prior = profile.held_before(s.content.fingerprint, now, rules.hold_window_minutes);
    // A text the admin released from the quarantine is vouched for within
    // the window: its further copies go out (a mail merge still running
    // when its first copy was released), as long as nothing beyond the
    // spam verdict speaks against them (never malware, never a score
    // that locks on content).
    let vouched = s.content.class == Class::Spam
        && s.content.lock_score < rules.content_lock_score
        && prior.is_some_and(|h| h.released);
    // Caught mail is neither limited nor counted (it is not sent).
    let caught = s.content.class != Class::Clean && !vouched;
    let rcpts = u32::try_from(s.recipients.len()).unwrap_or(u32::MAX);
    let ask = Ask::Message {
        recipients: rcpts,
        counted: !caught,
    };
    if let Err(r) = policy::admit(&st, ask) {
        return Ok(Err(AcceptError::Policy(r)));
    }
    let (eff, w) = (&st.settings, &st.windows);

    let obs = Observation {
        recipients: &s.recipients,
        client: s
            .client_ip
            .parse()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        fixed_address: user.is_network(),
        now,
    };
    // What this message does to the profile, for the fleet (`replay`).
    let record = changes.is_some();
    let mut did = Vec::new();
    let assessment = if rules.behaviour {
        if record {
            did.push(Change::Observe(Seen::of(&obs)));
        }
        assess::observe(&mut profile, &obs)
    } else {
        Assessment::default()
    };
    // Content holds are matched by their text (a held mail merge is one
    // piece of evidence); a hold for behaviour alone never is.
    let text = if caught { s.content.fingerprint } else { 0 };
    let passed = profile
        .passed_within(s.content.fingerprint, now, rules.hold_window_minutes)
        .filter(|_| caught);
    let recent = RecentHolds {
        count: profile.recent_holds(now, rules.hold_window_minutes),
        same_text_at: prior.filter(|h| caught && !h.released).map(|h| h.minute),
        same_text_passed_at: passed.filter(|p| p.1).map(|p| p.0),
        other_text_passed_at: passed.filter(|p| !p.1).map(|p| p.0),
    };
    let decision = if vouched {
        tracing::info!(user = %s.user, score = s.content.score, "spam verdict on a text the admin released: let through");
        let content = Verdict {
            class: Class::Clean,
            ..s.content.clone()
        };
        (job.decide)(&content, &assessment, recent, &rules, eff.auto_lock)
    } else {
        (job.decide)(&s.content, &assessment, recent, &rules, eff.auto_lock)
    };
    if decision.fate == Fate::Allow {
        if caught {
            // Caught, yet let through to the user's contacts
            // (`fate::decide`): it is sent, so it is counted and limited
            // like any message.
            let sent = Ask::Message {
                recipients: rcpts,
                counted: true,
            };
            if let Err(r) = policy::admit(&st, sent) {
                return Ok(Err(AcceptError::Policy(r)));
            }
            let summary = response::summary(&decision.reasons);
            tracing::info!(user = %s.user, reasons = %summary, "spam verdict of the classifier alone on mail to the user's contacts: let through");
            // The admin sees it in the user's history, once per text (a
            // mailing's copies are not news).
            if recent.same_text_passed_at.is_none() {
                user.record(
                    now,
                    format!("message {} let through: {summary}", super::queue_id(s.id)),
                );
                txn.open_table(USERS)?
                    .insert(s.user.as_str(), to_json(&user)?.as_slice())?;
                noted.push(s.user.clone());
            }
            profile.note_pass(now, s.content.fingerprint);
            did.push(Change::Pass(now, s.content.fingerprint));
        }
        // Counted fleet-wide ahead (`fleet_asks`); taking the grant
        // marks it used.
        if let Some(Err(e)) = fleet_grant.take_if(|g| g.is_err()) {
            return Ok(Err(e));
        }
        fleet_grant.take();
        if rules.behaviour {
            assess::remember(&mut profile, &obs);
            if record {
                did.push(Change::Remember(Seen::of(&obs)));
            }
            super::behaviour::save(txn, &s.user, &profile)?;
            if let Some(c) = changes.as_deref_mut() {
                c.extend(did.into_iter().map(|d| (s.user.clone(), d)));
            }
        }
        usage.add(w, 1, rcpts);
        usage_table.insert(s.user.as_str(), to_json(&usage)?.as_slice())?;
        super::counts::add_day(txn, &w.day, 1, u64::from(rcpts), true)?;
        let entry = QueueEntry {
            id: s.id,
            user: s.user.clone(),
            sender: s.sender.clone(),
            recipients: s
                .recipients
                .iter()
                .enumerate()
                .map(|(i, a)| Recipient {
                    dsn: s.recipient_dsn.get(i).cloned().unwrap_or_default(),
                    ..Recipient::new(a.clone())
                })
                .collect(),
            size: s.message.len() as u64,
            received: now,
            client_ip: s.client_ip.clone(),
            helo: s.helo.clone(),
            next_attempt: Some(now),
            delay_warned: false,
            dsn: s.dsn.clone(),
            smtputf8: s.smtputf8,
        };
        super::queue::insert_new(txn, &entry, &s.message)?;
        bump_seq(txn, s.id)?;
        return Ok(Ok(Accepted::Queued(s.id)));
    }

    // Held, perhaps with a lock. Mail held for behaviour alone is always
    // kept (it may well be legitimate); caught content follows the
    // quarantine setting as it always has.
    profile.note_hold(now, text);
    did.push(Change::Hold(now, text));
    super::behaviour::save(txn, &s.user, &profile)?;
    if let Some(c) = changes {
        c.extend(did.into_iter().map(|d| (s.user.clone(), d)));
    }
    let keep = quarantine || !caught;
    if keep {
        let q = QuarantineEntry {
            id: s.id,
            user: s.user.clone(),
            sender: s.sender.clone(),
            recipients: s.recipients.clone(),
            size: s.message.len() as u64,
            received: now,
            client_ip: s.client_ip.clone(),
            helo: s.helo.clone(),
            class: s.content.class.to_string(),
            score: s.content.score,
            reasons: decision.reasons.clone(),
            fate: decision.fate.to_string(),
            smtputf8: s.smtputf8,
            text: s.content.fingerprint,
        };
        txn.open_table(QUARANTINE)?
            .insert(q.id, to_json(&q)?.as_slice())?;
        txn.open_table(QBODIES)?
            .insert(q.id, s.message.as_slice())?;
    }
    bump_seq(txn, s.id)?;
    let summary = response::summary(&decision.reasons);
    let lock = match decision.fate {
        Fate::Lock => locking::auto_lock(&mut user, eff, now, &summary),
        _ => {
            user.record(
                now,
                format!("message {} held: {summary}", super::queue_id(s.id)),
            );
            None
        }
    };
    txn.open_table(USERS)?
        .insert(s.user.as_str(), to_json(&user)?.as_slice())?;
    super::users::count_lock(txn, was_locked, super::users::locked(&user))?;
    let until = super::counts::expiry(&user);
    super::counts::index_lock(txn, &s.user, was_until, until)?;
    Ok(Ok(Accepted::Held(Held {
        fate: decision.fate,
        reasons: decision.reasons,
        kept: keep.then_some(s.id),
        repeat: decision.fate == Fate::Hold && recent.same_text_at.is_some(),
        lock,
    })))
}

/// Records that `id` is used, so a restart never hands it out again.
pub(super) fn bump_seq(txn: &WriteTransaction, id: u64) -> Result<()> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get(QUEUE_SEQ)?.map(|v| v.value()).unwrap_or(1);
    if id >= seq {
        meta.insert(QUEUE_SEQ, id + 1)?;
    }
    Ok(())
}
