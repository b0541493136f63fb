//! Revoked access tokens in the shared store: a token revoked through any server is refused by every
//! server's introspection and API until its `exp`.
//!
//! A revocation is acknowledged after its row is committed. A check asks this server's memory first
//! (its own revocations, and those it has seen), then the table: one primary-key lookup per request
//! that presents a token. While the store is down a token cannot be known not to be revoked: the API
//! answers 503 and introspection `active: false` (fail closed).

use std::sync::Arc;

use super::{PgError, PgStore};
use crate::oauth::revocation::{
    MemoryRevocations, REVOCATION_LEEWAY, RevocationError, RevokedTokens, StoreFuture,
    revocation_key,
};

/// The shared revocation list.
#[derive(Debug)]
pub struct PgRevocations {
    store: Arc<PgStore>,
    /// Revocations this server recorded or found: answered without a round trip.
    known: MemoryRevocations,
}

impl PgRevocations {
    pub fn new(store: Arc<PgStore>) -> Self {
        PgRevocations {
            store,
            known: MemoryRevocations::default(),
        }
    }

    fn unavailable(&self, e: PgError) -> RevocationError {
        RevocationError::Unavailable(e.to_string())
    }

    async fn insert(&self, key: [u8; 16], client_id: &str, until: i64) -> Result<(), PgError> {
        let client = self.store.client().await?;
        client
            .execute(
                "INSERT INTO ids_revoked_tokens (key, client_id, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
                &[&key.as_slice(), &client_id, &until],
            )
            .await
            .map_err(|e| self.store.failed("record a revoked token", &e))?;
        Ok(())
    }

    async fn lookup(&self, key: [u8; 16], now: i64) -> Result<Option<i64>, PgError> {
        let client = self.store.client().await?;
        let row = client
            .query_opt(
                "SELECT expires_at FROM ids_revoked_tokens WHERE key = $1 AND expires_at >= $2",
                &[&key.as_slice(), &now],
            )
            .await
            .map_err(|e| self.store.failed("look up a revoked token", &e))?;
        Ok(row.map(|r| r.get::<_, i64>(0)))
    }
}

impl RevokedTokens for PgRevocations {
    fn revoke<'a>(
        &'a self,
        jti: &'a str,
        client_id: &'a str,
        exp: i64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if !self.store.is_up() {
                return Err(RevocationError::Unavailable(self.store.health().reason()));
            }
            let key = revocation_key(jti);
            // This server's share per client bounds the table too (N servers times it).
            if !self.known.has_room(client_id, now) {
                return Err(RevocationError::Full);
            }
            let until = exp.saturating_add(REVOCATION_LEEWAY);
            self.store
                .bounded("record a revoked token", self.insert(key, client_id, until))
                .await
                .map_err(|e| self.unavailable(e))?;
            self.known.insert(key, client_id, until, now);
            Ok(())
        })
    }

    fn is_revoked<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let key = revocation_key(jti);
            if self.known.contains(&key, now) {
                return Ok(true);
            }
            if !self.store.is_up() {
                return Err(RevocationError::Unavailable(self.store.health().reason()));
            }
            match self
                .store
                .bounded("look up a revoked token", self.lookup(key, now))
                .await
            {
                Ok(Some(until)) => {
                    self.known.insert(key, "", until, now);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(self.unavailable(e)),
            }
        })
    }

    fn entries(&self) -> usize {
        self.known.len()
    }
}

/// Deletes the revocations of tokens expired [`super::CLOCK_SKEW_MARGIN`] ago by this server's clock.
pub async fn delete_expired(store: &PgStore, now: i64) -> Result<u64, PgError> {
    let client = store.client().await?;
    client
        .execute(
            "DELETE FROM ids_revoked_tokens WHERE expires_at < $1",
            &[&super::deletable_before(now)],
        )
        .await
        .map_err(|e| store.failed("delete expired revocations", &e))
}
