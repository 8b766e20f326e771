//! The sync thread: publishes this box's changes to users and settings,
//! applies the other boxes' changes, and reconnects and reconciles after
//! an outage.
//!
//! A changed record is written whole to the shared store (`og:users`
//! hash, `og:settings`; a deleted user leaves an empty tombstone) and its
//! name appended to the change log (`og:changes`, a capped stream). Every
//! box reads the log every `POLL` and copies the named records into its
//! redb store: the last write of a record wins, fleet-wide.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use redis::{Commands, Connection, RedisResult};

use super::limits::{TTL_DAY, TTL_MONTH, TTL_WEEK};
use super::{Fleet, keys};
use crate::settings::{self, SystemSettings};
use crate::store::{Change, Store, Usage};
use crate::users::User;

/// How often the change log is read.
const POLL: Duration = Duration::from_millis(200);
/// Changes waiting for the sync thread at most (then it resends all).
const QUEUE: usize = 4096;
/// How often an unreachable store is tried again.
const RETRY: Duration = Duration::from_millis(500);

pub(super) fn start(
    fleet: Arc<Fleet>,
    store: Arc<Store>,
    settings: settings::Shared,
) -> Result<(), String> {
    let (tx, rx) = sync_channel(QUEUE);
    store.observe(tx);
    let mut sync = Sync {
        fleet,
        store,
        settings,
        pending: BTreeSet::new(),
        cursor: String::new(),
    };
    // The first connection before any mail is taken (bounded by the
    // timeouts): a box that starts while the store is up never counts
    // on its own.
    let conn = sync.connect();
    std::thread::Builder::new()
        .name("fleet-sync".into())
        .spawn(move || sync.run(conn, &rx))
        .map_err(|e| format!("cannot start fleet sync: {e}"))?;
    Ok(())
}

struct Sync {
    fleet: Arc<Fleet>,
    store: Arc<Store>,
    settings: settings::Shared,
    /// Local changes not yet published (kept across an outage).
    pending: BTreeSet<Change>,
    /// Last change-log id applied.
    cursor: String,
}

impl Sync {
    /// Connects and reconciles; leaves degraded mode on success.
    fn connect(&mut self) -> Option<Connection> {
        let attempt = self.fleet.connect().and_then(|mut c| {
            self.reconcile(&mut c)?;
            Ok(c)
        });
        match attempt {
            Ok(c) => {
                self.fleet.leave_degraded();
                Some(c)
            }
            Err(e) => {
                self.fleet.enter_degraded(&e.to_string());
                None
            }
        }
    }

    fn run(mut self, mut conn: Option<Connection>, rx: &Receiver<Change>) {
        let mut last_try = Instant::now();
        loop {
            match rx.recv_timeout(POLL) {
                Ok(c) => {
                    self.pending.insert(c);
                    while let Ok(c) = rx.try_recv() {
                        self.pending.insert(c);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.store.take_overflow() {
                self.pending.insert(Change::Settings);
                for u in self.store.users().unwrap_or_default() {
                    self.pending.insert(Change::User(u.name));
                }
            }
            if self.fleet.degraded() {
                // The committer may have lost its connection while ours
                // still works: reconnect and reconcile all the same.
                conn = None;
            }
            if conn.is_none() {
                if last_try.elapsed() < RETRY {
                    continue;
                }
                last_try = Instant::now();
                conn = self.connect();
            }
            let Some(c) = conn.as_mut() else { continue };
            if let Err(e) = self.step(c) {
                conn = None;
                self.fleet.enter_degraded(&e.to_string());
            }
        }
    }

    /// One round while connected.
    fn step(&mut self, c: &mut Connection) -> RedisResult<()> {
        // A store that lost its data (restarted without persistence)
        // has lost this box's mark too: count our usage in again.
        let mark: bool = c.exists(keys::box_mark(&self.fleet.box_id))?;
        if !mark {
            tracing::warn!("fleet store lost its data: reconciling");
            self.reconcile(c)?;
        }
        self.publish(c)?;
        self.pay_owed(c)?;
        self.poll(c)
    }

    fn publish(&mut self, c: &mut Connection) -> RedisResult<()> {
        while let Some(change) = self.pending.first().cloned() {
            match &change {
                Change::User(name) => {
                    let json = match self.store.user(name) {
                        Ok(Some(u)) => serde_json::to_string(&u).unwrap_or_default(),
                        Ok(None) => String::new(),
                        Err(e) => {
                            tracing::error!(error = %e, "fleet: reading a changed user failed");
                            self.pending.remove(&change);
                            continue;
                        }
                    };
                    let mut p = redis::pipe();
                    p.atomic();
                    if json.is_empty() {
                        // Deleted: a new user of that name starts afresh,
                        // without the old one's profile or the admin's
                        // marks on it.
                        p.del(keys::profile(name))
                            .ignore()
                            .del(keys::marks(name))
                            .ignore();
                    }
                    p.hset(keys::USERS, name, json)
                        .ignore()
                        .xadd_maxlen(
                            keys::CHANGES,
                            redis::streams::StreamMaxlen::Approx(keys::CHANGES_KEEP),
                            "*",
                            &[("box", self.fleet.box_id.as_str()), ("user", name.as_str())],
                        )
                        .ignore()
                        .query::<()>(c)?;
                }
                Change::Profile(user, delta) => {
                    self.fleet.change_profile(c, user, delta)?;
                }
                Change::Settings => {
                    let s = self.store.settings().unwrap_or_default();
                    redis::pipe()
                        .atomic()
                        .set(
                            keys::SETTINGS,
                            serde_json::to_string(&s).unwrap_or_default(),
                        )
                        .ignore()
                        .xadd_maxlen(
                            keys::CHANGES,
                            redis::streams::StreamMaxlen::Approx(keys::CHANGES_KEEP),
                            "*",
                            &[("box", self.fleet.box_id.as_str()), ("settings", "system")],
                        )
                        .ignore()
                        .query::<()>(c)?;
                }
            }
            self.pending.remove(&change);
            self.fleet
                .stats
                .changes_published
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads the change log past the cursor and applies what other boxes
    /// changed.
    fn poll(&mut self, c: &mut Connection) -> RedisResult<()> {
        let opts = redis::streams::StreamReadOptions::default().count(500);
        let reply: redis::streams::StreamReadReply =
            c.xread_options(&[keys::CHANGES], &[self.cursor.as_str()], &opts)?;
        for key in reply.keys {
            for entry in key.ids {
                self.cursor = entry.id.clone();
                let from: Option<String> = entry.get("box");
                if from.as_deref() == Some(self.fleet.box_id.as_str()) {
                    continue;
                }
                if let Some(name) = entry.get::<String>("user") {
                    self.pull_user(c, &name)?;
                } else if entry.contains_key("settings") {
                    self.pull_settings(c)?;
                }
            }
        }
        Ok(())
    }

    fn pull_user(&mut self, c: &mut Connection, name: &str) -> RedisResult<()> {
        let json: Option<String> = c.hget(keys::USERS, name)?;
        self.apply_user(name, json.as_deref());
        Ok(())
    }

    fn apply_user(&mut self, name: &str, json: Option<&str>) {
        if self.pending.contains(&Change::User(name.to_string())) {
            return; // changed here since: ours is published next
        }
        let user: Option<User> = match json {
            None | Some("") => None,
            Some(j) => match serde_json::from_str(j) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::error!(user = name, error = %e, "fleet: unreadable user record; ignored");
                    return;
                }
            },
        };
        match self.store.apply_remote_user(name, user.as_ref()) {
            Ok(true) => {
                self.fleet
                    .stats
                    .changes_applied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    user = name,
                    deleted = user.is_none(),
                    locked = user
                        .as_ref()
                        .is_some_and(|u| u.lock != crate::users::LockState::Active),
                    "fleet: user changed on another box"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::error!(user = name, error = %e, "fleet: applying a user failed"),
        }
    }

    fn pull_settings(&mut self, c: &mut Connection) -> RedisResult<()> {
        if self.pending.contains(&Change::Settings) {
            return Ok(());
        }
        let json: Option<String> = c.get(keys::SETTINGS)?;
        let Some(json) = json else { return Ok(()) };
        let new: SystemSettings = match serde_json::from_str(&json) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "fleet: unreadable settings; ignored");
                return Ok(());
            }
        };
        if new == self.settings.get() {
            return Ok(());
        }
        if let Err(e) = self.settings.replace(new.clone()) {
            tracing::error!(error = %e, "fleet: settings from another box refused");
            return Ok(());
        }
        if let Err(e) = self.store.write_settings(&new) {
            tracing::error!(error = %e, "fleet: storing settings failed");
        }
        self.fleet
            .stats
            .changes_applied
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!("fleet: settings changed on another box");
        Ok(())
    }

    /// After (re)connecting: our changes made meanwhile win, then every
    /// record of the shared store is copied in and ours it lacks are
    /// added; usage counted while degraded is added to the shared
    /// counters (or all of ours, if the store lost its data).
    fn reconcile(&mut self, c: &mut Connection) -> RedisResult<()> {
        let mark = keys::box_mark(&self.fleet.box_id);
        let known: bool = c.exists(&mark)?;
        if !known {
            // New to this store (or the store lost its data): what this
            // box has counted is not in the shared counters.
            let usage = self.store.all_usage().unwrap_or_default();
            self.fleet
                .owed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            add_usage(c, &usage)?;
            let _: () = c.set(&mark, crate::clock::Clock::default().now().to_string())?;
            tracing::info!(
                users = usage.len(),
                "fleet: this box's usage counted into the shared store"
            );
        }
        let last: redis::streams::StreamRangeReply =
            c.xrevrange_count(keys::CHANGES, "+", "-", 1)?;
        self.cursor = last
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
        self.publish(c)?;
        let shared: HashMap<String, String> = c.hgetall(keys::USERS)?;
        for (name, json) in &shared {
            self.apply_user(name, Some(json));
        }
        for u in self.store.users().unwrap_or_default() {
            if !shared.contains_key(&u.name) {
                self.pending.insert(Change::User(u.name));
            }
        }
        let settings: Option<String> = c.get(keys::SETTINGS)?;
        if settings.is_some() {
            self.pull_settings(c)?;
        } else {
            self.pending.insert(Change::Settings);
        }
        self.publish(c)?;
        self.pay_owed(c)
    }

    fn pay_owed(&mut self, c: &mut Connection) -> RedisResult<()> {
        let owed: Vec<(String, Usage)> = {
            let mut o = self.fleet.owed.lock().unwrap_or_else(|e| e.into_inner());
            if o.is_empty() {
                return Ok(());
            }
            o.drain().collect()
        };
        let n = owed.len();
        if let Err(e) = add_usage(c, &owed) {
            // Put it back: counted again later rather than lost (a part
            // already added is then counted twice: too high, never low).
            let mut o = self.fleet.owed.lock().unwrap_or_else(|e| e.into_inner());
            for (name, u) in owed {
                o.entry(name).or_insert(u);
            }
            return Err(e);
        }
        tracing::info!(
            users = n,
            "fleet: usage counted while degraded added to the shared counters"
        );
        Ok(())
    }
}

/// Adds per-user usage to the shared counters of the same windows.
fn add_usage(c: &mut Connection, usage: &[(String, Usage)]) -> RedisResult<()> {
    for chunk in usage.chunks(200) {
        let mut p = redis::pipe();
        for (name, u) in chunk {
            let mut add = |what: &str, window: &str, n: u32, ttl: u64| {
                if !window.is_empty() && n > 0 {
                    let k = keys::usage(name, what, window);
                    p.incr(&k, n).ignore().expire(&k, ttl as i64).ignore();
                }
            };
            add("d", &u.day, u.day_messages, TTL_DAY);
            add("r", &u.day, u.day_recipients, TTL_DAY);
            add("w", &u.week, u.week_messages, TTL_WEEK);
            add("m", &u.month, u.month_messages, TTL_MONTH);
        }
        p.query::<()>(c)?;
    }
    Ok(())
}
