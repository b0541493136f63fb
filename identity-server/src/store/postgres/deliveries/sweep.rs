//! What dead uploads left: expired leases, and chunks that belong to no record and no lease.
//!
//! A live upload always holds its lease (taken before its first chunk, released in the transaction
//! that inserts its record), so a chunk whose upload number is in neither table belongs to an upload
//! that is over: its server died, it was taken over after its lease expired, or its clean-up could not
//! reach the database. Any server may run this at any time, several at once: each statement only
//! deletes what is dead in the snapshot it runs in.

use super::super::{PgError, PgStore};

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub leases: u64,
    pub chunks: u64,
}

/// Removes expired leases, then chunks of no record and no lease.
pub async fn sweep(store: &PgStore) -> Result<Swept, PgError> {
    let conn = store.client().await?;
    let leases = conn
        .execute(
            "DELETE FROM ids_delivery_uploads WHERE expires_at <= now()",
            &[],
        )
        .await
        .map_err(|e| store.failed("remove expired delivery leases", &e))?;
    let chunks = conn
        .execute(
            // An upload's chunks are written in order and removed together, so an upload with
            // chunks has its first one: the partial index on it lists the uploads to look at.
            "DELETE FROM ids_delivery_chunks WHERE upload IN (
                SELECT c.upload FROM ids_delivery_chunks c
                WHERE c.seq = 0
                  AND NOT EXISTS (SELECT 1 FROM ids_delivery_uploads u WHERE u.upload = c.upload)
                  AND NOT EXISTS (SELECT 1 FROM ids_deliveries d WHERE d.upload = c.upload))",
            &[],
        )
        .await
        .map_err(|e| store.failed("remove the content of abandoned deliveries", &e))?;
    Ok(Swept { leases, chunks })
}

/// [`sweep`], logging what it removed (nothing when there was nothing) or why it could not.
pub async fn sweep_logged(store: &PgStore) {
    match sweep(store).await {
        Ok(Swept {
            leases: 0,
            chunks: 0,
        }) => {}
        Ok(swept) => tracing::info!(
            expired_leases = swept.leases,
            chunks = swept.chunks,
            "store: removed what abandoned deliveries left"
        ),
        // Down: the monitor logs the transition once.
        Err(e) if e.is_unavailable() => {}
        Err(e) => tracing::warn!("store: cannot remove what abandoned deliveries left: {e}"),
    }
}
