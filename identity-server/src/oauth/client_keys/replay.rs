//! The `jti` replay cache (RFC 7523 section 3, item 7): each assertion is accepted once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::{KeyRejection, LEEWAY};

/// What [`ReplayCache::first_use`] answers: boxed so that the trait stays object-safe while a shared
/// implementation awaits its database (a request never blocks a runtime worker on it).
pub type ReplayFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, KeyRejection>> + Send + 'a>>;

/// The `jti`s of accepted assertions, each refused as a replay until it expires (RFC 7523
/// section 3, item 7). In memory by default; a shared implementation
/// (`crate::store::postgres::PgReplayCache`) lets several servers refuse a replay across them.
pub trait ReplayCache: Send + Sync + std::fmt::Debug {
    /// Records `(client_id, jti)` until `expires_at` (Unix seconds). `Ok(false)` when it was already
    /// recorded (a replay). An error refuses the assertion (fail closed).
    fn first_use<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> ReplayFuture<'a>;

    /// Called once when the server stops gracefully: writes out what is not durable yet. Nothing
    /// to do for a cache that keeps nothing beyond the process.
    fn shutdown(&self) {}

    /// `jti`s remembered by this server now (the `ids_replay_cache_entries` metric).
    fn entries(&self) -> usize {
        0
    }
}

/// A bounded in-memory [`ReplayCache`]. Entries are only added after a signature verified, so only
/// registered clients can fill it, and each client only its own share (`per_client`): a client that
/// sends more assertions than its share within their lifetime gets `temporarily_unavailable`, the
/// others are not affected. Expired entries are purged when a limit is reached.
#[derive(Debug)]
pub struct MemoryReplayCache {
    capacity: usize,
    per_client: usize,
    state: Mutex<ReplayState>,
}

/// Entries are keyed by SHA-256(client id, jti) truncated to 128 bits: 40 bytes each whatever the sizes
/// of the strings (41 with the map's control byte); a million live assertions fill 2^21 buckets, ~86 MiB
/// (docs/performance.md, "Replay cache").
#[derive(Debug, Default)]
struct ReplayState {
    seen: HashMap<[u8; 16], (i64, Arc<str>)>,
    per_client: HashMap<Arc<str>, usize>,
    /// When expired entries were last purged: a purge walks the whole map under the lock, so it runs
    /// at most once a second (a client at the end of its share is refused meanwhile, never let through).
    last_purge: Option<i64>,
}

impl ReplayState {
    fn purge(&mut self, now: i64) {
        self.seen.retain(|_, (exp, _)| *exp + LEEWAY >= now);
        self.per_client.clear();
        for (_, client) in self.seen.values() {
            *self.per_client.entry(client.clone()).or_default() += 1;
        }
    }
}

/// The key an assertion is remembered by: SHA-256 of (client id, jti), truncated to 128 bits.
pub(crate) fn replay_key(client_id: &str, jti: &str) -> [u8; 16] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&(client_id.len() as u64).to_be_bytes());
    ctx.update(client_id.as_bytes());
    ctx.update(jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&ctx.finish().as_ref()[..16]);
    key
}

impl MemoryReplayCache {
    /// At most `capacity` live entries in all, `per_client` for one client.
    pub fn new(capacity: usize, per_client: usize) -> Self {
        MemoryReplayCache {
            capacity: capacity.max(1),
            per_client: per_client.clamp(1, capacity.max(1)),
            state: Mutex::new(ReplayState::default()),
        }
    }
}

impl ReplayCache for MemoryReplayCache {
    fn entries(&self) -> usize {
        self.len()
    }

    fn first_use<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> ReplayFuture<'a> {
        Box::pin(std::future::ready(
            self.first_use_now(client_id, jti, expires_at, now),
        ))
    }
}

impl MemoryReplayCache {
    /// [`ReplayCache::first_use`], answered at once (nothing to wait for in memory).
    pub fn first_use_now(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        self.insert(replay_key(client_id, jti), client_id, expires_at, now)
    }

    /// [`ReplayCache::first_use`] by key.
    pub(crate) fn insert(
        &self,
        key: [u8; 16],
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        let Ok(mut state) = self.state.lock() else {
            return Err(KeyRejection::ReplayCacheFull);
        };
        if state
            .seen
            .get(&key)
            .is_some_and(|(exp, _)| *exp + LEEWAY >= now)
        {
            return Ok(false);
        }
        let full = |s: &ReplayState| {
            s.seen.len() >= self.capacity
                || s.per_client.get(client_id).copied().unwrap_or(0) >= self.per_client
        };
        if full(&state) {
            if state.last_purge.is_some_and(|t| t >= now) {
                return Err(KeyRejection::ReplayCacheFull);
            }
            state.purge(now);
            state.last_purge = Some(now);
            if full(&state) {
                return Err(KeyRejection::ReplayCacheFull);
            }
        }
        let client: Arc<str> = match state.per_client.get_key_value(client_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(client_id),
        };
        if state
            .seen
            .insert(key, (expires_at, client.clone()))
            .is_none()
        {
            *state.per_client.entry(client).or_default() += 1;
        }
        Ok(true)
    }

    /// Puts back an entry remembered before a restart, when it is still live at `now` and there is
    /// room (the shares were respected when it was first recorded). Whether it was put back.
    pub(crate) fn restore(
        &self,
        key: [u8; 16],
        client_id: &str,
        expires_at: i64,
        now: i64,
    ) -> bool {
        if expires_at.saturating_add(LEEWAY) < now {
            return false;
        }
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.seen.contains_key(&key) || state.seen.len() >= self.capacity {
            return false;
        }
        let client: Arc<str> = match state.per_client.get_key_value(client_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(client_id),
        };
        state.seen.insert(key, (expires_at, client.clone()));
        *state.per_client.entry(client).or_default() += 1;
        true
    }

    /// Number of entries held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.seen.len()).unwrap_or(0)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
