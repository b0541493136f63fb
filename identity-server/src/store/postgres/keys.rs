//! The managed signing keys (`KeyManagement Automatic`) in the shared store: every server reads the
//! same keys, and the one that finds a key due makes it inside a transaction holding an advisory lock
//! ([`LOCK_KEY`]), after reading the keys again under it: two servers finding the same key due make it
//! once (the second finds the first's key and makes none).

use std::sync::Arc;

use super::{PgError, PgStore};
use crate::keys::managed::{Decide, KeyStore, KeyStoreError, StoreFuture, StoredKey};
use ids_pki::Algorithm;

/// The advisory lock key creation runs under ("ids_keys" in ASCII).
pub const LOCK_KEY: i64 = 0x6964_735f_6b65_7973;

const SELECT: &str = "SELECT kid, algorithm, created, activates, certificate, sealed
    FROM ids_signing_keys ORDER BY activates, created, kid";

/// The shared key store.
#[derive(Debug)]
pub struct PgKeyStore {
    store: Arc<PgStore>,
}

impl PgKeyStore {
    pub fn new(store: Arc<PgStore>) -> Self {
        PgKeyStore { store }
    }

    fn failed(e: PgError) -> KeyStoreError {
        KeyStoreError::Store(e.to_string())
    }
}

/// The keys, read over a connection of their own (`check`, before the server marked the store up).
pub async fn read_for_check(store: &PgStore) -> Result<Vec<StoredKey>, KeyStoreError> {
    let client = store.connect().await.map_err(PgKeyStore::failed)?;
    let rows = client
        .query(SELECT, &[])
        .await
        .map_err(|e| KeyStoreError::Store(format!("read the signing keys: {e}")))?;
    rows_to_keys(&rows)
}

fn rows_to_keys(rows: &[tokio_postgres::Row]) -> Result<Vec<StoredKey>, KeyStoreError> {
    rows.iter()
        .map(|row| {
            let kid: String = row.get(0);
            let name: String = row.get(1);
            let algorithm = Algorithm::from_name(&name).ok_or_else(|| KeyStoreError::Key {
                kid: kid.clone(),
                reason: format!("unknown algorithm `{name}`"),
            })?;
            Ok(StoredKey {
                kid,
                algorithm,
                created: row.get(2),
                activates: row.get(3),
                certificate: row.get(4),
                sealed: row.get(5),
            })
        })
        .collect()
}

impl KeyStore for PgKeyStore {
    fn load(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(async move {
            let rows = self
                .store
                .bounded("read the signing keys", async {
                    let client = self.store.client().await?;
                    client
                        .query(SELECT, &[])
                        .await
                        .map_err(|e| self.store.failed("read the signing keys", &e))
                })
                .await
                .map_err(Self::failed)?;
            rows_to_keys(&rows)
        })
    }

    fn add_if<'a>(&'a self, decide: Decide<'a>) -> StoreFuture<'a, Vec<StoredKey>> {
        Box::pin(async move {
            let mut client = self.store.client().await.map_err(Self::failed)?;
            let failed = |what: &'static str, e: tokio_postgres::Error| {
                Self::failed(self.store.failed(what, &e))
            };
            let tx = client
                .transaction()
                .await
                .map_err(|e| failed("begin a transaction", e))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
                .await
                .map_err(|e| failed("take the signing-key lock", e))?;
            let rows = tx
                .query(SELECT, &[])
                .await
                .map_err(|e| failed("read the signing keys", e))?;
            let keys = rows_to_keys(&rows)?;
            let Some(key) = decide(&keys)? else {
                return Ok(keys);
            };
            tx.execute(
                "INSERT INTO ids_signing_keys (kid, algorithm, created, activates, certificate, sealed)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &key.kid,
                    &key.algorithm.as_str(),
                    &key.created,
                    &key.activates,
                    &key.certificate,
                    &key.sealed,
                ],
            )
            .await
            .map_err(|e| failed("store a signing key", e))?;
            let rows = tx
                .query(SELECT, &[])
                .await
                .map_err(|e| failed("read the signing keys", e))?;
            tx.commit()
                .await
                .map_err(|e| failed("commit a signing key", e))?;
            rows_to_keys(&rows)
        })
    }

    fn delete<'a>(&'a self, kids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.store.client().await.map_err(Self::failed)?;
            client
                .execute("DELETE FROM ids_signing_keys WHERE kid = ANY($1)", &[&kids])
                .await
                .map_err(|e| Self::failed(self.store.failed("delete signing keys", &e)))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.store.describe())
    }
}
