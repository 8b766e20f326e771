//! One connection to a destination: its messages sent one after the
//! other over one SMTP session, each outcome recorded (or the lot
//! deferred when the connection fails).

use std::sync::Arc;

use jiff::Timestamp;

use super::{Delivery, Job};
use crate::delivery::Stats;
use crate::delivery::client::{self, Error, Session};
use crate::delivery::outcome::{self, Ctx, Logged, Outcome};
use crate::delivery::route::Router;
use crate::delivery::seven_bit;
use crate::store::{QueueEntry, queue_id};

impl Delivery {
    /// One connection's work: resolve, connect, send each job.
    pub(super) async fn connection(self: Arc<Self>, dest: String, jobs: Vec<Job>) {
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
                        crate::dkim::sign_for_delivery(
                            |d| store.dkim_keys(d),
                            id,
                            &sender,
                            &hostname,
                            b,
                        )
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
    pub(super) async fn capture(self: &Arc<Self>, job: Job) {
        let (store, dir) = (self.store.clone(), self.capture_dir.clone());
        let (id, sender, rcpts) = (job.id, job.sender.clone(), job.recipients.clone());
        let written = tokio::task::spawn_blocking(move || match store.queue_body(id) {
            Ok(Some(body)) => crate::delivery::capture::write(&dir, id, &sender, &rcpts, &body)
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
    pub(super) async fn defer_all(
        self: &Arc<Self>,
        mut pending: std::collections::VecDeque<Job>,
        text: &str,
    ) {
        while let Some(job) = pending.pop_front() {
            let outcome = Outcome::Deferred(text.to_string());
            self.finish(&job, all(&job, outcome), None, false).await;
        }
    }

    /// Commits a job's results and writes the log lines.
    pub(super) async fn finish(
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

pub(super) fn log_attempt(id: u64, hop: &str, l: &Logged) {
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

pub(super) fn all(job: &Job, outcome: Outcome) -> Vec<(String, Outcome)> {
    job.recipients
        .iter()
        .map(|r| (r.clone(), outcome.clone()))
        .collect()
}

pub(super) fn classify(reply: &client::Reply) -> Outcome {
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
pub(super) fn smtputf8_needed(
    s: &Session,
    job: &Job,
    body: &[u8],
) -> std::result::Result<bool, Outcome> {
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
pub(super) async fn send(
    s: &mut Session,
    job: &Job,
    body: &[u8],
) -> (Vec<(String, Outcome)>, bool) {
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
