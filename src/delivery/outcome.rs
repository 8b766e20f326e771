//! Applying delivery results to a queue entry: per-recipient state, the
//! next retry, expiry at the user's maximum days to retry, and the bounce
//! covering every recipient that failed in this round.

use jiff::{SignedDuration, Timestamp};

use super::Stats;
use super::dsn::{self, Action, Report};
use super::schedule::Schedule;
use crate::store::{Committer, NewMessage, QueueEntry, RcptState, Store, StoreError};

/// What the next hop made of one recipient.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered(String),
    /// 5xx, or a destination that cannot exist.
    Failed(String),
    /// 4xx, timeouts, connection trouble.
    Deferred(String),
}

/// One recipient's result, for the log after the commit.
#[derive(Debug)]
pub struct Logged {
    pub recipient: String,
    pub result: &'static str,
    pub reply: String,
    pub next_retry: Option<Timestamp>,
}

/// The maximum days to retry of the entry's user, looked up now; the
/// system default if the user is gone.
pub fn max_retry_days(store: &Store, settings: &crate::settings::Shared, user: &str) -> u32 {
    let u = store.user(user).ok().flatten();
    settings.read(|c| match u {
        Some(u) => u.settings.resolve(&c.settings.defaults).max_retry_days,
        None => c.settings.defaults.max_retry_days,
    })
}

pub struct Ctx<'a> {
    pub committer: &'a Committer,
    pub hostname: &'a str,
    pub schedule: Schedule,
    pub max_retry_days: u32,
    pub delay_warning_hours: u64,
    pub stats: &'a Stats,
}

/// Records `results` (address, outcome, remote host) for entry `id` in one
/// commit. `hop_dsn`: the next hop took the DSN parameters, so success
/// notices are its job. Returns the log lines, or None if the entry is
/// gone (deleted by an admin meanwhile).
pub fn record(
    store: &Store,
    ctx: &Ctx<'_>,
    id: u64,
    now: Timestamp,
    results: &[(String, Outcome)],
    remote: Option<&str>,
    hop_dsn: bool,
) -> Result<Option<Vec<Logged>>, StoreError> {
    let mut logged = Vec::new();
    let mut counts = [0u64; 4]; // delivered, deferred, bounced, dropped
    let mut dsn = false;
    let mut sender_user = String::new();
    // Delivered and removed: no fsync here; the connection's `sync` (or
    // the next accepted message) makes it durable.
    let updated = store.update_entry_with(id, now, true, |entry, body| {
        // Saturating: a huge value (stored by an older version) must not
        // make the deadline the arrival time, expiring the mail at once.
        let days = crate::bounds::MAX_RETRY_DAYS.clamp(ctx.max_retry_days);
        let deadline = crate::bounds::later(entry.received, crate::bounds::days(days));
        let mut failed = Vec::new();
        let mut deferred = Vec::new();
        let mut relayed = Vec::new();
        for (address, outcome) in results {
            let Some(i) = entry
                .recipients
                .iter()
                .position(|r| r.state == RcptState::Queued && r.address == *address)
            else {
                continue;
            };
            let r = &mut entry.recipients[i];
            r.attempts += 1;
            r.remote = remote.map(str::to_string);
            let (result, reply) = match outcome {
                Outcome::Delivered(reply) => {
                    r.state = RcptState::Delivered;
                    r.next_attempt = None;
                    if !hop_dsn && r.dsn.wants_success() {
                        relayed.push(i);
                    }
                    counts[0] += 1;
                    ("delivered", reply)
                }
                Outcome::Failed(reply) => {
                    r.state = RcptState::Failed;
                    failed.push(i);
                    counts[2] += 1;
                    ("failed", reply)
                }
                Outcome::Deferred(reply) if now >= deadline => {
                    r.state = RcptState::Expired;
                    failed.push(i);
                    counts[2] += 1;
                    ("expired", reply)
                }
                Outcome::Deferred(reply) => {
                    // The last try happens at the deadline itself.
                    r.next_attempt =
                        Some(ctx.schedule.next_attempt(entry.received, now).min(deadline));
                    deferred.push(i);
                    counts[1] += 1;
                    ("deferred", reply)
                }
            };
            r.last_reply = Some(reply.clone());
            logged.push(Logged {
                recipient: address.clone(),
                result,
                reply: reply.clone(),
                next_retry: r.next_attempt.filter(|_| r.state == RcptState::Queued),
            });
        }
        if !failed.is_empty() {
            sender_user.clone_from(&entry.user);
        }
        if entry.sender.is_empty() {
            counts[3] += failed.len() as u64;
            return None;
        }
        // What the sender hears of, as each recipient's NOTIFY asks.
        let mut reports: Vec<(usize, Action)> = failed
            .iter()
            .filter(|&&i| entry.recipients[i].dsn.wants_failure())
            .map(|&i| (i, Action::Failed))
            .collect();
        let warn_after =
            SignedDuration::from_hours(ctx.delay_warning_hours.min(24 * 365 * 100) as i64);
        if ctx.delay_warning_hours > 0
            && !entry.delay_warned
            && !deferred.is_empty()
            && now.duration_since(entry.received) >= warn_after
        {
            entry.delay_warned = true;
            reports.extend(
                deferred
                    .iter()
                    .filter(|&&i| entry.recipients[i].dsn.wants_delay())
                    .map(|&i| (i, Action::Delayed)),
            );
        }
        reports.extend(relayed.iter().map(|&i| (i, Action::Relayed)));
        if reports.is_empty() {
            return None;
        }
        dsn = true;
        Some(notice(ctx, entry, body, &reports, now))
    })?;
    if updated.is_none() {
        return Ok(None);
    }
    // Failed recipients feed the sender's behaviour profile.
    if counts[2] > 0 && !sender_user.is_empty() {
        let n = u32::try_from(counts[2]).unwrap_or(u32::MAX);
        if let Err(e) = store.note_failed_recipients(&sender_user, n, now) {
            tracing::warn!(error = %e, "counting failed recipients failed");
        }
    }
    let s = ctx.stats;
    Stats::add(&s.delivered, counts[0]);
    Stats::add(&s.deferred, counts[1]);
    Stats::add(&s.bounced, counts[2]);
    Stats::add(&s.dropped, counts[3]);
    if dsn {
        Stats::add(&s.dsn_queued, 1);
    }
    Ok(Some(logged))
}

/// The DSN to the entry's sender for recipients `which`.
fn notice(
    ctx: &Ctx<'_>,
    entry: &QueueEntry,
    body: &[u8],
    which: &[(usize, Action)],
    now: Timestamp,
) -> NewMessage {
    let reports: Vec<Report<'_>> = which
        .iter()
        .map(|&(i, action)| {
            let r = &entry.recipients[i];
            Report {
                recipient: r,
                action,
                status: dsn::status_of(
                    r.last_reply.as_deref(),
                    r.state == RcptState::Expired,
                    action,
                ),
            }
        })
        .collect();
    let message = dsn::build(entry, body, &reports, ctx.hostname, now);
    NewMessage {
        id: ctx.committer.reserve_id(),
        user: entry.user.clone(),
        sender: String::new(),
        recipients: vec![entry.sender.clone()],
        message,
    }
}

/// `queue retry`: every queued recipient becomes due now.
pub fn admin_retry(
    store: &Store,
    id: u64,
    now: Timestamp,
) -> Result<Option<QueueEntry>, StoreError> {
    store.update_entry(id, now, |e, _| {
        for r in e
            .recipients
            .iter_mut()
            .filter(|r| r.state == RcptState::Queued)
        {
            r.next_attempt = Some(now);
        }
        None
    })
}

/// `queue bounce`: every queued recipient fails now, with one bounce to
/// the sender (none for null-sender mail).
pub fn admin_bounce(
    store: &Store,
    committer: &Committer,
    hostname: &str,
    stats: &Stats,
    id: u64,
    now: Timestamp,
) -> Result<Option<QueueEntry>, StoreError> {
    let ctx = Ctx {
        committer,
        hostname,
        schedule: super::DeliveryConfig::default().schedule(),
        max_retry_days: 0,
        delay_warning_hours: 0,
        stats,
    };
    let entry = store.update_entry(id, now, |e, body| {
        let mut failed = Vec::new();
        for (i, r) in e.recipients.iter_mut().enumerate() {
            if r.state == RcptState::Queued {
                r.state = RcptState::Failed;
                r.last_reply = Some("550 5.0.0 Returned to sender by the administrator".into());
                r.remote = None;
                failed.push(i);
            }
        }
        Stats::add(&stats.bounced, failed.len() as u64);
        // NOTIFY is honoured here too.
        failed.retain(|&i| e.recipients[i].dsn.wants_failure());
        if failed.is_empty() || e.sender.is_empty() {
            return None;
        }
        Stats::add(&stats.dsn_queued, 1);
        let which: Vec<(usize, Action)> = failed.iter().map(|&i| (i, Action::Failed)).collect();
        Some(notice(&ctx, e, body, &which, now))
    })?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::Clock;
    use crate::settings::{Shared, SystemSettings};
    use crate::store::Recipient;

    struct Fixture {
        dir: std::path::PathBuf,
        store: Arc<Store>,
        committer: Committer,
        stats: Stats,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("og-outcome-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(Store::open(&dir.join("q.redb")).unwrap());
        let settings = Shared::new(SystemSettings::default()).unwrap();
        let committer =
            Committer::start(store.clone(), settings, Arc::new(Clock::default())).unwrap();
        Fixture {
            dir,
            store,
            committer,
            stats: Stats::default(),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn queue(f: &Fixture, sender: &str, rcpts: &[&str]) -> u64 {
        let id = f.committer.reserve_id();
        let entry = QueueEntry {
            id,
            user: "alice@example.com".into(),
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|r| Recipient::new(r.to_string()))
                .collect(),
            size: 20,
            received: t("2030-01-01T00:00:00Z"),
            client_ip: String::new(),
            helo: String::new(),
            next_attempt: Some(t("2030-01-01T00:00:00Z")),
            delay_warned: false,
            dsn: Default::default(),
            smtputf8: false,
        };
        f.store
            .enqueue(&entry, b"Subject: x\r\n\r\nbody\r\n")
            .unwrap();
        id
    }

    fn ctx(f: &Fixture) -> Ctx<'_> {
        Ctx {
            committer: &f.committer,
            hostname: "gw.test",
            schedule: crate::delivery::DeliveryConfig::default().schedule(),
            max_retry_days: 1,
            delay_warning_hours: 0,
            stats: &f.stats,
        }
    }

    fn bounces(f: &Fixture) -> Vec<QueueEntry> {
        let all = f.store.queue(&Default::default()).unwrap();
        all.into_iter().filter(|e| e.sender.is_empty()).collect()
    }

    #[test]
    fn huge_max_retry_days_defers_instead_of_expiring() {
        let f = fixture("huge-retry");
        let id = queue(&f, "alice@example.com", &["b@x.test"]);
        let results = vec![(
            "b@x.test".to_string(),
            Outcome::Deferred("451 later".into()),
        )];
        let ctx = Ctx {
            max_retry_days: 3_000_000,
            ..ctx(&f)
        };
        record(
            &f.store,
            &ctx,
            id,
            t("2030-01-01T00:01:00Z"),
            &results,
            None,
            false,
        )
        .unwrap();
        let e = f.store.queue_entry(id).unwrap().unwrap();
        assert_eq!(e.recipients[0].state, RcptState::Queued);
        assert!(bounces(&f).is_empty());
    }

    #[test]
    fn deferral_schedules_and_expiry_bounces_in_the_same_commit() {
        let f = fixture("expiry");
        let id = queue(&f, "alice@example.com", &["a@x.test", "b@x.test"]);
        let now = t("2030-01-01T00:01:00Z");
        let results = vec![
            ("a@x.test".to_string(), Outcome::Delivered("250 ok".into())),
            (
                "b@x.test".to_string(),
                Outcome::Deferred("451 later".into()),
            ),
        ];
        record(
            &f.store,
            &ctx(&f),
            id,
            now,
            &results,
            Some("mx.test"),
            false,
        )
        .unwrap();
        let e = f.store.queue_entry(id).unwrap().unwrap();
        assert_eq!(e.recipients[0].state, RcptState::Delivered);
        assert_eq!(e.recipients[1].state, RcptState::Queued);
        assert_eq!(
            e.recipients[1].next_attempt,
            Some(t("2030-01-01T00:15:00Z"))
        );
        assert_eq!(e.next_attempt, Some(t("2030-01-01T00:15:00Z")));
        assert!(bounces(&f).is_empty());

        // Late in the day the next point would pass the deadline: capped.
        let late = t("2030-01-01T23:00:00Z");
        let results = vec![(
            "b@x.test".to_string(),
            Outcome::Deferred("451 later".into()),
        )];
        record(&f.store, &ctx(&f), id, late, &results, None, false).unwrap();
        let e = f.store.queue_entry(id).unwrap().unwrap();
        assert_eq!(
            e.recipients[1].next_attempt,
            Some(t("2030-01-02T00:00:00Z"))
        );

        // At the deadline: expired, entry gone, one bounce queued.
        let deadline = t("2030-01-02T00:00:00Z");
        record(&f.store, &ctx(&f), id, deadline, &results, None, false).unwrap();
        assert!(f.store.queue_entry(id).unwrap().is_none());
        assert!(f.store.queue_body(id).unwrap().is_none());
        let [dsn] = bounces(&f).try_into().unwrap();
        assert_eq!(dsn.recipients[0].address, "alice@example.com");
        let body = String::from_utf8(f.store.queue_body(dsn.id).unwrap().unwrap()).unwrap();
        assert!(
            body.contains("Final-Recipient: rfc822; b@x.test\r\nAction: failed\r\nStatus: 5.4.7")
        );
        assert!(!body.contains("a@x.test"));
        assert_eq!(
            f.stats.bounced.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn null_sender_failures_are_dropped() {
        let f = fixture("null");
        let id = queue(&f, "", &["a@x.test"]);
        let results = vec![("a@x.test".to_string(), Outcome::Failed("550 no".into()))];
        let now = t("2030-01-01T00:01:00Z");
        record(&f.store, &ctx(&f), id, now, &results, None, false).unwrap();
        assert!(f.store.queue_entry(id).unwrap().is_none());
        assert!(f.store.queue(&Default::default()).unwrap().is_empty());
        assert_eq!(
            f.stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn one_bounce_covers_every_failure_of_the_round() {
        let f = fixture("one");
        let id = queue(
            &f,
            "alice@example.com",
            &["a@x.test", "b@x.test", "c@x.test"],
        );
        let results = vec![
            (
                "a@x.test".to_string(),
                Outcome::Failed("550 5.1.1 a".into()),
            ),
            (
                "b@x.test".to_string(),
                Outcome::Failed("554 5.7.1 b".into()),
            ),
            ("c@x.test".to_string(), Outcome::Deferred("451 c".into())),
        ];
        let now = t("2030-01-01T00:01:00Z");
        record(&f.store, &ctx(&f), id, now, &results, None, false).unwrap();
        let [dsn] = bounces(&f).try_into().unwrap();
        let body = String::from_utf8(f.store.queue_body(dsn.id).unwrap().unwrap()).unwrap();
        assert!(body.contains("rfc822; a@x.test") && body.contains("rfc822; b@x.test"));
        assert!(!body.contains("rfc822; c@x.test"));
        // The deferred recipient keeps the entry queued.
        assert!(f.store.queue_entry(id).unwrap().is_some());
    }

    #[test]
    fn notify_never_and_success_are_honoured() {
        use crate::store::envelope::Notify;
        let f = fixture("notify");
        let id = queue(
            &f,
            "alice@example.com",
            &["a@x.test", "b@x.test", "c@x.test"],
        );
        f.store
            .update_entry(id, t("2030-01-01T00:00:00Z"), |e, _| {
                let never = Notify::default();
                let success = Notify {
                    success: true,
                    ..Notify::default()
                };
                e.recipients[0].dsn.notify = Some(never);
                e.recipients[1].dsn.notify = Some(success);
                e.recipients[2].dsn.notify = Some(success);
                None
            })
            .unwrap();
        let results = vec![
            (
                "a@x.test".to_string(),
                Outcome::Failed("550 5.1.1 a".into()),
            ),
            (
                "b@x.test".to_string(),
                Outcome::Failed("550 5.1.1 b".into()),
            ),
            (
                "c@x.test".to_string(),
                Outcome::Delivered("250 2.0.0 ok".into()),
            ),
        ];
        let now = t("2030-01-01T00:01:00Z");
        record(
            &f.store,
            &ctx(&f),
            id,
            now,
            &results,
            Some("mx.test"),
            false,
        )
        .unwrap();
        // a: NEVER; b: SUCCESS only, so no failure notice; c: relayed.
        let [dsn] = bounces(&f).try_into().unwrap();
        let body = String::from_utf8(f.store.queue_body(dsn.id).unwrap().unwrap()).unwrap();
        assert!(
            body.contains("Final-Recipient: rfc822; c@x.test\r\nAction: relayed\r\nStatus: 2.0.0")
        );
        assert!(!body.contains("a@x.test") && !body.contains("b@x.test"));

        // The next hop took the DSN request: nothing from us.
        let id = queue(&f, "alice@example.com", &["d@x.test"]);
        f.store
            .update_entry(id, now, |e, _| {
                e.recipients[0].dsn.notify = Some(Notify {
                    success: true,
                    ..Notify::default()
                });
                None
            })
            .unwrap();
        let results = vec![("d@x.test".to_string(), Outcome::Delivered("250 ok".into()))];
        record(&f.store, &ctx(&f), id, now, &results, Some("mx.test"), true).unwrap();
        assert_eq!(bounces(&f).len(), 1);
    }

    #[test]
    fn delay_warning_only_for_recipients_that_ask_for_delay() {
        use crate::store::envelope::Notify;
        let f = fixture("delay");
        let id = queue(&f, "alice@example.com", &["a@x.test", "b@x.test"]);
        f.store
            .update_entry(id, t("2030-01-01T00:00:00Z"), |e, _| {
                e.recipients[0].dsn.notify = Some(Notify {
                    failure: true,
                    ..Notify::default()
                });
                None
            })
            .unwrap();
        let ctx = Ctx {
            delay_warning_hours: 1,
            ..ctx(&f)
        };
        let results = vec![
            (
                "a@x.test".to_string(),
                Outcome::Deferred("451 4.4.1 a".into()),
            ),
            (
                "b@x.test".to_string(),
                Outcome::Deferred("451 4.4.1 b".into()),
            ),
        ];
        let later = t("2030-01-01T02:00:00Z");
        record(&f.store, &ctx, id, later, &results, None, false).unwrap();
        let [dsn] = bounces(&f).try_into().unwrap();
        let body = String::from_utf8(f.store.queue_body(dsn.id).unwrap().unwrap()).unwrap();
        assert!(body.contains("Final-Recipient: rfc822; b@x.test\r\nAction: delayed\r\n"));
        assert!(
            !body.contains("a@x.test"),
            "NOTIFY=FAILURE: no delay notice"
        );
    }
}
