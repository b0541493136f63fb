//! A fixed pool of threads for argon2 verifications (`IdentityServer:HashConcurrency` of them), each
//! keeping its own argon2 memory from one verification to the next.
//!
//! Why not tokio's blocking pool: `spawn_blocking` runs each verification on whichever blocking thread
//! is free, starting new ones as needed, and argon2 allocates and frees its m KiB (19 MiB at the
//! production parameters) every time. With glibc, blocks that size freed by many threads stay resident
//! in per-thread arenas: a flood of failed authentications drove the server to 438 MB resident with
//! two verifications at a time (issue 14). Here the number of threads, and so the argon2 memory, is
//! fixed: `threads` x m KiB, allocated once per thread on its first verification.
//!
//! The pool does not queue: the caller holds one of `threads` permits (a semaphore) while its job
//! runs, so a job always finds a free thread, and waiting for a permit is where requests wait (at most
//! `hash_wait`, then `temporarily_unavailable`).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use ids_secret::Argon2Memory;

type Job = Box<dyn FnOnce(&mut Argon2Memory) + Send>;

/// The threads and the queue that feeds them.
#[derive(Debug)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    threads: usize,
}

/// The pool's threads are gone (they only end when the pool is dropped) or its queue is full (more
/// jobs than threads: the caller did not hold a permit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the argon2 thread pool cannot take this verification")]
pub struct PoolUnavailable;

impl HashPool {
    /// Starts `threads` threads (at least one), named `argon2-N`.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(HashPool { jobs, threads })
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job` on one of the threads, with that thread's argon2 memory, and returns its result.
    /// The caller must hold one of `threads` permits until this returns (or move it into `job`).
    pub async fn run<R, F>(&self, job: F) -> Result<R, PoolUnavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Argon2Memory) -> R + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(job(memory));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                return Err(PoolUnavailable);
            }
        }
        result.await.map_err(|_| PoolUnavailable)
    }
}

/// A thread's loop: one job at a time, in the thread's own memory, until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory = Argon2Memory::new();
    loop {
        let job = {
            let Ok(queue) = queue.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A panicking job must not take the thread (and its share of the pool) with it.
        let run = std::panic::AssertUnwindSafe(|| job(&mut memory));
        if std::panic::catch_unwind(run).is_err() {
            tracing::error!("an argon2 verification panicked; its request got a server error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::oauth::client_auth::{AuthConfig, Authenticator};

    /// Issue 14 point 9: however many requests verify at once, at most `HashConcurrency` argon2
    /// verifications run at a time, always on the same `HashConcurrency` threads, each reusing its
    /// memory (allocated once).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_hash_concurrency_verifications_at_once_on_the_same_threads() {
        let concurrency = 2;
        let authenticator = Arc::new(
            Authenticator::new(AuthConfig {
                cache_ttl: Duration::from_secs(60),
                cache_size: 100,
                hash_concurrency: concurrency,
                hash_wait: Duration::from_secs(30),
                failures_per_minute: 1_000_000,
            })
            .expect("authenticator"),
        );
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let reused = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..24 {
            let (authenticator, running, most, seen, reused) = (
                authenticator.clone(),
                running.clone(),
                most.clone(),
                seen.clone(),
                reused.clone(),
            );
            tasks.spawn(async move {
                authenticator
                    .run_hashing(move |memory| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        if memory.bytes() > 0 {
                            reused.fetch_add(1, Ordering::SeqCst);
                        }
                        // What a verification does with its memory: grow it once, then reuse it.
                        let secret = ids_proto::ClientSecret::new("x");
                        let hash =
                            ids_secret::SecretHash::danger_weak_argon2id(&secret).expect("hash");
                        assert!(hash.verify_in(&secret, memory));
                        std::thread::sleep(Duration::from_millis(20));
                        seen.lock()
                            .expect("lock")
                            .insert((std::thread::current().id(), memory.bytes()));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .expect("verification ran");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task");
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            concurrency,
            "at most (and, under this load, exactly) HashConcurrency at once"
        );
        let seen = seen.lock().expect("lock");
        let threads: HashSet<_> = seen.iter().map(|(t, _)| *t).collect();
        assert!(
            threads.len() <= concurrency,
            "{} threads ran argon2",
            threads.len()
        );
        // Each thread's memory was the 64 KiB of the weak parameters, allocated by its first
        // verification and reused by all the others.
        assert!(
            seen.iter().all(|(_, bytes)| *bytes == 64 * 1024),
            "{seen:?}"
        );
        assert_eq!(reused.load(Ordering::SeqCst), 24 - threads.len());
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_pool_working() {
        let pool = HashPool::new(1).expect("pool");
        assert_eq!(pool.run(|_| panic!("boom")).await, Err(PoolUnavailable));
        assert_eq!(pool.run(|_| 7).await, Ok(7));
    }
}
