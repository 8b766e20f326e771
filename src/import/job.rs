//! A bulk import of validated CSV lines, in batches.
//!
//! The whole file is validated before anything is written (`import::parse`).
//! Passwords are then hashed on as many threads as `[auth]
//! max_parallel_hashes`, each taking a slot of the login verifier first, so
//! an import and the logins it competes with stay within one memory bound
//! (argon2 holds 7 MiB per run). Users are committed [`BATCH`] at a time:
//! each batch is one write transaction and lands whole or not at all. A
//! committed batch stays if a later one fails or the daemon stops, and
//! running the same import again resumes it: users already present are
//! counted as existing, kept as they are and not hashed again.
//!
//! Plaintext passwords are hashed at the daemon's full argon2id cost, or,
//! when the import asks for it (`fast_hash`), at the lighter
//! `auth::password::IMPORT` cost, which each user's first successful login
//! replaces with a full-cost hash (`import::upgrade`).
//!
//! Large imports run as a background job (`POST
//! /v1/users/import?background=true`), one at a time, whose progress is read
//! with `GET /v1/users/import/{id}`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde::Serialize;

use super::ImportLine;
use crate::auth::password::{self, Cost, Verifier};
use crate::store::{ImportOutcome, Store};
use crate::users::User;

/// Users per write transaction.
pub const BATCH: usize = 1_000;
/// Jobs remembered for their progress, newest last.
const KEPT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = ImportState))]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
}

/// A user import's progress (`GET /v1/users/import/{id}`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = ImportProgress))]
pub struct Progress {
    #[cfg_attr(test, schema(minimum = 1))]
    pub id: u64,
    pub state: State,
    /// Valid lines to import.
    pub total: usize,
    /// Lines dealt with so far: `added + existing`.
    pub done: usize,
    pub added: usize,
    pub existing: usize,
    /// Invalid lines passed over (`skip_invalid`).
    pub skipped: usize,
    /// Batches of up to 1,000 users committed.
    pub batches: usize,
    /// Plaintext passwords hashed at the lighter import cost.
    pub fast_hash: bool,
    /// Why the job stopped, when it failed; the batches before it stay.
    pub error: Option<String>,
}

/// Everything an import needs from the daemon.
#[derive(Clone)]
pub struct Importer {
    pub store: Arc<Store>,
    pub verifier: Arc<Verifier>,
    /// The daemon's runtime, whose login slots the hashing threads share.
    pub runtime: Option<tokio::runtime::Handle>,
    /// Users per write transaction ([`BATCH`]; smaller in tests).
    pub batch: usize,
    /// The cost of plaintext passwords: `password::FULL`, or
    /// `password::IMPORT` when the import asks for fast hashing.
    pub cost: Cost,
}

impl Importer {
    /// Imports `lines` batch by batch, calling `step` after each commit
    /// with that batch's outcome.
    pub fn run(
        &self,
        lines: &[ImportLine],
        now: Timestamp,
        mut step: impl FnMut(&ImportOutcome),
    ) -> Result<(), String> {
        // argon2 memory reused between hashes (within the slots' bound).
        let _keep = self.verifier.importing();
        for chunk in lines.chunks(self.batch.max(1)) {
            let names: Vec<String> = chunk.iter().map(|l| l.name.to_string()).collect();
            let present = self.store.present(&names).map_err(|e| e.to_string())?;
            let fresh: Vec<&ImportLine> = chunk
                .iter()
                .zip(&present)
                .filter(|(_, p)| !**p)
                .map(|(l, _)| l)
                .collect();
            let hashes = self.hash_all(&fresh);
            let users: Vec<User> = fresh
                .iter()
                .zip(hashes)
                .map(|(l, hash)| {
                    let mut u = User::new(&l.name, l.domain.clone(), now);
                    let light = hash.as_deref().is_some_and(password::needs_rehash);
                    u.password_hash = hash;
                    u.record(
                        now,
                        match light {
                            true => "imported from CSV (password at the lighter import cost until the first login)",
                            false => "imported from CSV",
                        },
                    );
                    u
                })
                .collect();
            let mut outcome = self.store.import_users(&users).map_err(|e| e.to_string())?;
            outcome.existing.extend(
                names
                    .into_iter()
                    .zip(&present)
                    .filter(|(_, p)| **p)
                    .map(|(n, _)| n),
            );
            step(&outcome);
        }
        Ok(())
    }

    /// The password hashes of `lines`, in order (`None` for IP users).
    fn hash_all(&self, lines: &[&ImportLine]) -> Vec<Option<String>> {
        let next = AtomicUsize::new(0);
        let mut out: Vec<Option<String>> = vec![None; lines.len()];
        let threads = self.verifier.parallel().min(lines.len()).max(1);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(line) = lines.get(i) else { break };
                            match &line.password {
                                Some(pw) if super::is_pre_hashed(pw) => mine.push((i, pw.clone())),
                                Some(pw) => mine.push((
                                    i,
                                    self.verifier.hash_blocking(
                                        self.runtime.as_ref(),
                                        pw,
                                        self.cost,
                                    ),
                                )),
                                None => {}
                            }
                        }
                        mine
                    })
                })
                .collect();
            for w in workers {
                for (i, h) in w.join().expect("a hashing thread panicked") {
                    out[i] = Some(h);
                }
            }
        });
        out
    }
}

/// The import jobs of this daemon; at most one runs at a time.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<VecDeque<Arc<Mutex<Progress>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Jobs {
    /// Starts importing `lines` on a thread of its own and returns the new
    /// job's progress, or the id of the job already running.
    pub fn start(
        &self,
        importer: Importer,
        lines: Vec<ImportLine>,
        skipped: usize,
        now: Timestamp,
    ) -> Result<Progress, u64> {
        let mut jobs = lock(&self.jobs);
        if let Some(running) = jobs
            .iter()
            .map(|j| lock(j).clone())
            .find(|p| p.state == State::Running)
        {
            return Err(running.id);
        }
        let progress = Progress {
            id: self.next.fetch_add(1, Ordering::Relaxed) + 1,
            state: State::Running,
            total: lines.len(),
            done: 0,
            added: 0,
            existing: 0,
            skipped,
            batches: 0,
            fast_hash: importer.cost != password::FULL,
            error: None,
        };
        let shared = Arc::new(Mutex::new(progress.clone()));
        jobs.push_back(shared.clone());
        while jobs.len() > KEPT {
            jobs.pop_front();
        }
        drop(jobs);
        let job = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("user-import".into())
            .spawn(move || {
                let result = importer.run(&lines, now, |batch| {
                    let mut p = lock(&job);
                    p.added += batch.added.len();
                    p.existing += batch.existing.len();
                    p.done = p.added + p.existing;
                    p.batches += 1;
                });
                let mut p = lock(&job);
                match result {
                    Ok(()) => p.state = State::Done,
                    Err(e) => {
                        p.state = State::Failed;
                        p.error = Some(e);
                    }
                }
                tracing::info!(
                    job = p.id,
                    added = p.added,
                    existing = p.existing,
                    skipped = p.skipped,
                    state = ?p.state,
                    "user import finished"
                );
            });
        if let Err(e) = spawned {
            let mut p = lock(&shared);
            p.state = State::Failed;
            p.error = Some(format!("cannot start the import: {e}"));
            return Ok(p.clone());
        }
        Ok(progress)
    }

    /// The progress of job `id`, if it is still remembered.
    pub fn get(&self, id: u64) -> Option<Progress> {
        lock(&self.jobs)
            .iter()
            .map(|j| lock(j).clone())
            .find(|p| p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn importer(dir: &std::path::Path, runtime: &tokio::runtime::Runtime) -> Importer {
        Importer {
            store: Arc::new(Store::open(&dir.join("s.redb")).unwrap()),
            verifier: Verifier::new(2, Duration::from_secs(60)),
            runtime: Some(runtime.handle().clone()),
            batch: 4,
            cost: password::FULL,
        }
    }

    fn csv(n: usize, from: usize) -> Vec<ImportLine> {
        let text: String = (from..from + n)
            .map(|i| format!("u{i},example.com,password-{i}\n"))
            .collect();
        let (lines, errors) = super::super::parse(text.as_bytes());
        assert!(errors.is_empty());
        lines
    }

    #[test]
    fn batches_commit_in_order_and_a_rerun_resumes() {
        let dir = tempfile_dir();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let imp = importer(&dir, &rt);
        // A first run that stopped after its first batch...
        let first = csv(4, 0);
        imp.run(&first, Timestamp::UNIX_EPOCH, |_| {}).unwrap();
        // ... then the whole file again: the first batch is existing, the
        // rest is added, and every password verifies.
        let all = csv(4 + 3, 0);
        let mut steps = Vec::new();
        imp.run(&all, Timestamp::UNIX_EPOCH, |o| {
            steps.push((o.added.len(), o.existing.len()))
        })
        .unwrap();
        assert_eq!(steps, [(0, 4), (3, 0)]);
        let u = imp.store.user("u6@example.com").unwrap().unwrap();
        assert!(crate::auth::password::verify(
            "password-6",
            u.password_hash.as_deref().unwrap()
        ));
        assert_eq!(imp.store.users().unwrap().len(), 7);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn one_job_at_a_time_and_its_progress_is_kept() {
        let dir = tempfile_dir();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let jobs = Jobs::default();
        let imp = importer(&dir, &rt);
        let started = jobs
            .start(imp.clone(), csv(10, 0), 1, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            (started.state, started.total, started.skipped),
            (State::Running, 10, 1)
        );
        assert_eq!(
            jobs.start(imp, csv(1, 100), 0, Timestamp::UNIX_EPOCH).err(),
            Some(started.id)
        );
        let mut p = jobs.get(started.id).unwrap();
        for _ in 0..600 {
            if p.state != State::Running {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            p = jobs.get(started.id).unwrap();
        }
        assert_eq!(
            (p.state, p.added, p.done, p.batches),
            (State::Done, 10, 10, 3)
        );
        assert!(jobs.get(started.id + 1).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "outguard-import-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
