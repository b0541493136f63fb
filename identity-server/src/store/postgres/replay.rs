//! The `private_key_jwt` replay cache in the shared store: a `jti` accepted by any server is refused by
//! every server until its assertion's `exp` + [`LEEWAY`].
//!
//! One `INSERT ... ON CONFLICT` per accepted assertion: inserted (or replacing an expired row not yet
//! deleted) means first use; a live row means a replay. The primary key makes two servers receiving the
//! same assertion at once accept it once. While the store is down the assertion is refused (fail
//! closed: 503, never a token without the check).
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

use super::PgStore;
use crate::oauth::client_keys::{
    KeyRejection, LEEWAY, MemoryReplayCache, ReplayCache, ReplayFuture, replay_key,
};

const RECORD: &str = "INSERT INTO ids_replay AS r (key, client_id, refuse_until) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET client_id = EXCLUDED.client_id, refuse_until = EXCLUDED.refuse_until
        WHERE r.refuse_until < $4";

/// The shared replay cache (see the module doc).
#[derive(Debug)]
pub struct PgReplayCache {
    store: Arc<PgStore>,
    local: MemoryReplayCache,
}

impl PgReplayCache {
    /// `local` holds this server's shares (and answers replays to this server at once).
    pub fn new(store: Arc<PgStore>, local: MemoryReplayCache) -> Self {
        PgReplayCache { store, local }
    }

    async fn record(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        let unavailable = |e: super::PgError| KeyRejection::ReplayCacheUnavailable(e.to_string());
        // First the connection: while the store is down nothing is recorded anywhere.
        let client = self.store.client().await.map_err(unavailable)?;
        let key = replay_key(client_id, jti);
        if !self.local.insert(key, client_id, expires_at, now)? {
            return Ok(false);
        }
        let statement = client
            .prepare_cached(RECORD)
            .await
            .map_err(|e| unavailable(self.store.failed("prepare the replay statement", &e)))?;
        let refuse_until = expires_at.saturating_add(LEEWAY);
        let recorded = client
            .execute(
                &statement,
                &[&key.as_slice(), &client_id, &refuse_until, &now],
            )
            .await
            .map_err(|e| unavailable(self.store.failed("record an assertion's jti", &e)))?;
        Ok(recorded == 1)
    }
}

impl ReplayCache for PgReplayCache {
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

/// Deletes the rows no longer needed to refuse a replay, in batches (a short lock each).
pub async fn delete_expired(store: &PgStore, now: i64) -> Result<u64, super::PgError> {
    let client = store.client().await?;
    let mut total = 0;
    loop {
        let n = client
            .execute(
                "DELETE FROM ids_replay WHERE key IN (SELECT key FROM ids_replay WHERE refuse_until < $1 LIMIT 10000)",
                &[&now],
            )
            .await
            .map_err(|e| store.failed("delete expired replay entries", &e))?;
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}
