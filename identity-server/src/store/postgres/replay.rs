//! The `private_key_jwt` replay cache in the shared store: a `jti` accepted by any server is refused by
//! every server until its assertion's `exp` + [`LEEWAY`].
//!
//! `INSERT ... ON CONFLICT`: inserted (or replacing an expired row not yet deleted) means first use; a
//! live row means a replay. The primary key makes two servers receiving the same assertion at once accept
//! it once. While the store is down the assertion is refused (fail closed: 503, never a token without
//! the check).
//!
//! Group commit: the assertions of concurrent requests are recorded by one writer task, in one
//! multi-row statement per batch (`unnest` of arrays, `RETURNING` the keys that were new), so that
//! under load a commit (and its WAL flush) is shared by every request waiting meanwhile instead of one
//! per token; a request alone waits for one statement as before. Each request still gets its answer
//! only after the commit: nothing is acknowledged before it is durable.
//!
//! Bounds: the in-memory [`MemoryReplayCache`] of this server is checked first and keeps its share per
//! client (100,000 live assertions of one client, 1,000,000 in all, per server), so a client flooding
//! assertions gets `temporarily_unavailable` from each server once its share is used, and the table holds
//! at most N servers times those numbers of live rows (each ~70 bytes plus index); expired rows are
//! deleted by [`delete_expired`] every 30 s. A count per client in the INSERT itself would read every
//! live row of that client on each assertion (or serialise them on one counter row), the hot path of
//! `private_key_jwt`; the per-server share bounds the table without that cost. The local check also
//! answers a replay to the same server without a round trip.

use std::sync::Arc;

use super::{PgError, PgStore};
use crate::oauth::client_keys::{
    KeyRejection, LEEWAY, MemoryReplayCache, ReplayCache, ReplayFuture, replay_key,
};

/// Records a batch; returns the keys that were not live rows already (first uses).
const RECORD: &str = "INSERT INTO ids_replay AS r (key, client_id, refuse_until)
    SELECT * FROM unnest($1::bytea[], $2::text[], $3::int8[])
    ON CONFLICT (key) DO UPDATE SET client_id = EXCLUDED.client_id, refuse_until = EXCLUDED.refuse_until
        WHERE r.refuse_until < $4
    RETURNING key";

/// At most this many assertions in one statement.
const MAX_BATCH: usize = 256;

/// Writer tasks (each with its own connection while it writes): while one batch waits for its commit,
/// the next one is already on its way, and PostgreSQL flushes their commits together.
const WRITERS: usize = 3;

/// An assertion waiting for the writer.
struct Pending {
    key: [u8; 16],
    client_id: String,
    refuse_until: i64,
    now: i64,
    /// First use, or why it could not be recorded.
    reply: tokio::sync::oneshot::Sender<Result<bool, String>>,
}

/// The shared replay cache (see the module doc).
#[derive(Debug)]
pub struct PgReplayCache {
    store: Arc<PgStore>,
    local: MemoryReplayCache,
    /// To the writer tasks, started by the first assertion recorded (the cache is made while the
    /// server loads, before its runtime exists).
    writer: std::sync::OnceLock<tokio::sync::mpsc::Sender<Pending>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl PgReplayCache {
    /// `local` holds this server's shares (and answers replays to this server at once). The writer
    /// tasks start with the first assertion recorded and end when the cache is dropped.
    pub fn new(store: Arc<PgStore>, local: MemoryReplayCache) -> Self {
        PgReplayCache {
            store,
            local,
            writer: std::sync::OnceLock::new(),
        }
    }

    /// The writers' queue, their tasks started on this runtime the first time; `None` outside a tokio
    /// runtime (each request then writes its own row).
    fn writer(&self) -> Option<&tokio::sync::mpsc::Sender<Pending>> {
        if let Some(writer) = self.writer.get() {
            return Some(writer);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.writer.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * MAX_BATCH);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..WRITERS {
                runtime.spawn(write_batches(self.store.clone(), rx.clone()));
            }
            tx
        }))
    }

    async fn record(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        // While the store is down nothing is recorded anywhere (not even this server's share).
        if !self.store.is_up() {
            return Err(KeyRejection::ReplayCacheUnavailable(
                PgError::Unavailable(self.store.health().reason()).to_string(),
            ));
        }
        let key = replay_key(client_id, jti);
        if !self.local.insert(key, client_id, expires_at, now)? {
            return Ok(false);
        }
        let refuse_until = expires_at.saturating_add(LEEWAY);
        let Some(writer) = self.writer() else {
            let batch = [(key, client_id, refuse_until)];
            return self
                .store
                .bounded(
                    "record an assertion's jti",
                    insert(&self.store, &batch, now),
                )
                .await
                .map(|recorded| recorded.contains(&key))
                .map_err(|e| KeyRejection::ReplayCacheUnavailable(e.to_string()));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            key,
            client_id: client_id.to_string(),
            refuse_until,
            now,
            reply,
        };
        let gone = || KeyRejection::ReplayCacheUnavailable("the replay writer stopped".into());
        writer.send(pending).await.map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(KeyRejection::ReplayCacheUnavailable)
    }
}

impl ReplayCache for PgReplayCache {
    fn entries(&self) -> usize {
        self.local.len()
    }

    fn first_use<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> ReplayFuture<'a> {
        Box::pin(self.record(client_id, jti, expires_at, now))
    }
}

/// A writer task: whatever is waiting (up to [`MAX_BATCH`]) when it is free goes in one statement.
async fn write_batches(
    store: Arc<PgStore>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Pending>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = rx.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        // A row is live for a batch when it is for the earliest request in it (the stricter view).
        let now = batch.iter().map(|p| p.now).min().unwrap_or(0);
        let rows: Vec<([u8; 16], &str, i64)> = batch
            .iter()
            .map(|p| (p.key, p.client_id.as_str(), p.refuse_until))
            .collect();
        let result = store
            .bounded("record assertions' jti", insert(&store, &rows, now))
            .await
            .map_err(|e| e.to_string());
        for p in batch.drain(..) {
            let answer = match &result {
                Ok(recorded) => Ok(recorded.contains(&p.key)),
                Err(e) => Err(e.clone()),
            };
            let _ = p.reply.send(answer);
        }
    }
}

/// Inserts `rows` (keys unique: this server's memory cache let each through once); the keys recorded.
async fn insert(
    store: &PgStore,
    rows: &[([u8; 16], &str, i64)],
    now: i64,
) -> Result<std::collections::HashSet<[u8; 16]>, PgError> {
    let client = store.client().await?;
    let statement = client
        .prepare_cached(RECORD)
        .await
        .map_err(|e| store.failed("prepare the replay statement", &e))?;
    let keys: Vec<&[u8]> = rows.iter().map(|r| r.0.as_slice()).collect();
    let clients: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let until: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let recorded = client
        .query(&statement, &[&keys, &clients, &until, &now])
        .await
        .map_err(|e| store.failed("record assertions' jti", &e))?;
    Ok(recorded
        .iter()
        .filter_map(|row| <[u8; 16]>::try_from(row.get::<_, &[u8]>(0)).ok())
        .collect())
}

/// Deletes the rows no longer needed to refuse a replay (one scan; row locks only, inserts go on),
/// [`super::CLOCK_SKEW_MARGIN`] after their time by this server's clock.
pub async fn delete_expired(store: &PgStore, now: i64) -> Result<u64, PgError> {
    let client = store.client().await?;
    client
        .execute(
            "DELETE FROM ids_replay WHERE refuse_until < $1",
            &[&super::deletable_before(now)],
        )
        .await
        .map_err(|e| store.failed("delete expired replay entries", &e))
}
