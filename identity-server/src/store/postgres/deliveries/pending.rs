//! An upload into PostgreSQL: its lease, its chunks written as they come, its commit.
//!
//! The encrypting thread fills a [`CHUNK_SIZE`] buffer and hands each full one to a writer task on the
//! runtime (a queue of [`QUEUE`] chunks; [`IN_FLIGHT`] stored at once), so encryption and the database work
//! at the same time and memory stays at a few chunks per upload. A heartbeat task refreshes the lease while the upload is
//! alive. A chunk is only written while the lease is this upload's: if another upload took it over
//! (this one's expired) or the sweeper removed it, the next chunk and the commit are refused.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{CHUNK_SIZE, Db, Lease, io_error, signed};
use crate::deliveries::DeliveryKey;
use crate::deliveries::store::{PendingContent, Record, StoreError};

/// Full chunks queued between the encrypting thread and the writer task.
const QUEUE: usize = 2;
/// Chunks the writer stores at once.
const IN_FLIGHT: usize = 2;

/// Content being written under a lease; dropped without commit, it removes its lease and chunks.
pub(super) struct PgPending {
    db: Db,
    key: DeliveryKey,
    upload: i64,
    buffer: Vec<u8>,
    chunks: i32,
    written: u64,
    queue: Option<mpsc::Sender<(i32, Vec<u8>)>>,
    writer: Option<JoinHandle<Result<(), StoreError>>>,
    heartbeat: JoinHandle<()>,
    committed: bool,
}

impl std::fmt::Debug for PgPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPending")
            .field("key", &self.key)
            .field("upload", &self.upload)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl PgPending {
    /// Takes the lease of `key` (checking the quota for `expected_bytes` under the usage row's lock)
    /// and starts the writer and the heartbeat.
    pub(super) fn begin(
        db: Db,
        key: DeliveryKey,
        expected_bytes: u64,
        quota: Option<u64>,
        lease: Lease,
        server: &str,
    ) -> Result<PgPending, StoreError> {
        let reserved = signed(expected_bytes, "a delivery")?;
        let expiry = lease.expiry.as_secs_f64();
        let (client, id) = (key.client.as_str().to_string(), key.id.as_str().to_string());
        let server = server.to_string();
        let d = db.clone();
        let upload: i64 = db.run(async move {
            let mut conn = d.conn().await?;
            let tx = conn
                .transaction()
                .await
                .map_err(|e| d.fail("start a delivery", &e))?;
            if let Some(quota) = quota {
                let stored: i64 = tx
                    .query_one(
                        "SELECT stored_bytes FROM ids_delivery_usage FOR UPDATE",
                        &[],
                    )
                    .await
                    .map_err(|e| d.fail("read the delivery storage used", &e))?
                    .get(0);
                let in_progress: i64 = tx
                    .query_one(
                        "SELECT coalesce(sum(reserved_bytes), 0)::bigint FROM ids_delivery_uploads WHERE expires_at > now()",
                        &[],
                    )
                    .await
                    .map_err(|e| d.fail("read the delivery storage reserved", &e))?
                    .get(0);
                let taken = u64::try_from(stored.saturating_add(in_progress)).unwrap_or(0);
                if taken.saturating_add(expected_bytes) > quota {
                    return Err(StoreError::Full(format!(
                        "the delivery storage quota (Deliveries:QuotaMiB, {}) is used up in PostgreSQL {}: {} stored or in progress on every server, this delivery needs {}",
                        mib(quota),
                        d.store.describe(),
                        mib(taken),
                        mib(expected_bytes)
                    )));
                }
            }
            // A live lease of another upload refuses this one; an expired one is taken over.
            let taken = tx
                .query_opt(
                    "INSERT INTO ids_delivery_uploads (client_id, id, upload, reserved_bytes, server, expires_at)
                     VALUES ($1, $2, nextval('ids_delivery_upload_seq'), $3, $4, now() + make_interval(secs => $5))
                     ON CONFLICT (client_id, id) DO UPDATE
                        SET upload = EXCLUDED.upload, reserved_bytes = EXCLUDED.reserved_bytes,
                            server = EXCLUDED.server, started_at = now(), expires_at = EXCLUDED.expires_at
                        WHERE ids_delivery_uploads.expires_at <= now()
                     RETURNING upload",
                    &[&client, &id, &reserved, &server, &expiry],
                )
                .await
                .map_err(|e| d.fail("take the delivery's lease", &e))?;
            let Some(row) = taken else {
                return Err(StoreError::InProgress(id));
            };
            let committed = tx
                .query_opt(
                    "SELECT 1 FROM ids_deliveries WHERE client_id = $1 AND id = $2",
                    &[&client, &id],
                )
                .await
                .map_err(|e| d.fail("read a delivery record", &e))?;
            if committed.is_some() {
                return Err(StoreError::AlreadyCommitted(id));
            }
            tx.commit()
                .await
                .map_err(|e| d.fail("take the delivery's lease", &e))?;
            Ok(row.get(0))
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = db
            .handle
            .spawn(heartbeat(db.clone(), upload, lease, lost.clone()));
        let (queue, chunks) = mpsc::channel(QUEUE);
        let writer = db
            .handle
            .spawn(writer(db.clone(), key.clone(), upload, chunks, lost));
        Ok(PgPending {
            db,
            key,
            upload,
            buffer: Vec::with_capacity(CHUNK_SIZE),
            chunks: 0,
            written: 0,
            queue: Some(queue),
            writer: Some(writer),
            heartbeat,
            committed: false,
        })
    }

    /// Hands the buffer to the writer; when the writer has stopped, its error.
    fn send(&mut self) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_SIZE));
        let seq = self.chunks;
        let sent = match &self.queue {
            Some(queue) => queue.blocking_send((seq, chunk)).is_ok(),
            None => false,
        };
        if sent {
            self.chunks += 1;
            return Ok(());
        }
        self.queue = None;
        self.finish_writer()?;
        Err(StoreError::Unavailable(
            "the delivery's writer stopped".into(),
        ))
    }

    /// Waits for the writer to store what it was given.
    fn finish_writer(&mut self) -> Result<(), StoreError> {
        self.queue = None;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        match self.db.run(writer) {
            Ok(result) => result,
            Err(e) => Err(StoreError::Unavailable(format!(
                "the delivery's writer failed: {e}"
            ))),
        }
    }
}

/// Stores the chunks it receives until the queue closes, up to [`IN_FLIGHT`] at once (each on a
/// connection of its own: the database works on one chunk while the next arrives, and its two
/// processes use both cores); refuses when the lease was lost. Chunk 0 is stored alone before any
/// other is sent, so that an upload with chunks always has its first one (what [`super::sweep`] looks
/// for). After an error it sends nothing more and waits for the chunks still in flight, so that none
/// lands after the upload's clean-up.
async fn writer(
    db: Db,
    key: DeliveryKey,
    upload: i64,
    mut chunks: mpsc::Receiver<(i32, Vec<u8>)>,
    lost: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    let mut failed = None;
    let mut first_stored = false;
    loop {
        let limit = if first_stored { IN_FLIGHT } else { 1 };
        tokio::select! {
            next = chunks.recv(), if open && failed.is_none() && in_flight.len() < limit => {
                match next {
                    Some((seq, data)) => {
                        in_flight.push(store_chunk(db.clone(), key.clone(), upload, seq, data, lost.clone()));
                    }
                    None => open = false,
                }
            }
            Some(stored) = in_flight.next(), if !in_flight.is_empty() => {
                match stored {
                    Ok(_) => first_stored = true,
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            else => break,
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stores one chunk, only while the lease is this upload's: after a takeover (or the sweeper removing
/// an expired lease), nothing more is written under it. The lease row is share-locked until the chunk
/// is committed, so a takeover, a clean-up or the sweeper that removes the lease waits for it and then
/// sees (and removes) the chunk: none is left behind by a race.
async fn store_chunk(
    db: Db,
    key: DeliveryKey,
    upload: i64,
    seq: i32,
    data: Vec<u8>,
    lost: Arc<AtomicBool>,
) -> Result<i32, StoreError> {
    if lost.load(Ordering::Acquire) {
        return Err(StoreError::InProgress(key.id.as_str().to_string()));
    }
    let conn = db.conn().await?;
    let stmt = conn
        .prepare_cached(
            "INSERT INTO ids_delivery_chunks (upload, seq, data)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM ids_delivery_uploads WHERE upload = $1 FOR SHARE)",
        )
        .await
        .map_err(|e| db.fail("store delivery content", &e))?;
    let stored = conn
        .execute(&stmt, &[&upload, &seq, &data])
        .await
        .map_err(|e| db.fail("store delivery content", &e))?;
    if stored == 0 {
        lost.store(true, Ordering::Release);
        return Err(StoreError::InProgress(key.id.as_str().to_string()));
    }
    Ok(seq)
}

/// Refreshes the lease every `lease.heartbeat`; stops (setting `lost`) when it is no longer this
/// upload's. Aborted when the upload ends.
async fn heartbeat(db: Db, upload: i64, lease: Lease, lost: Arc<AtomicBool>) {
    let expiry = lease.expiry.as_secs_f64();
    loop {
        tokio::time::sleep(lease.heartbeat).await;
        let Ok(conn) = db.conn().await else {
            // The store is down: the next beat tries again (the lease lasts three beats).
            continue;
        };
        match conn
            .execute(
                "UPDATE ids_delivery_uploads SET expires_at = now() + make_interval(secs => $2) WHERE upload = $1",
                &[&upload, &expiry],
            )
            .await
        {
            Ok(0) => {
                lost.store(true, Ordering::Release);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = db.fail("refresh a delivery's lease", &e);
            }
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Write for PgPending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(CHUNK_SIZE - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        self.written += n as u64;
        if self.buffer.len() == CHUNK_SIZE {
            self.send().map_err(io_error)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PendingContent for PgPending {
    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn commit(mut self: Box<Self>, record: &Record) -> Result<(), StoreError> {
        self.send()?;
        self.finish_writer()?;
        let db = self.db.clone();
        let (upload, chunks) = (self.upload, self.chunks);
        let size = signed(record.size, "a delivery")?;
        let stored = signed(self.written, "a delivery")?;
        let id = record.id.as_str().to_string();
        let committed = self.db.run(async move {
            let mut conn = db.conn().await?;
            let tx = conn
                .transaction()
                .await
                .map_err(|e| db.fail("commit a delivery", &e))?;
            let released = tx
                .execute("DELETE FROM ids_delivery_uploads WHERE upload = $1", &[&upload])
                .await
                .map_err(|e| db.fail("release the delivery's lease", &e))?;
            if released == 0 {
                // The lease expired and another upload took it over: that one decides.
                return Err(StoreError::InProgress(id));
            }
            let inserted = tx
                .execute(
                    "INSERT INTO ids_deliveries (client_id, id, name, size, sha256, agent, profile, received_at, stored_bytes, encrypted_for, upload, chunks)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (client_id, id) DO NOTHING",
                    &[
                        &record.client_id.as_str(),
                        &id,
                        &record.name,
                        &size,
                        &record.sha256,
                        &record.agent,
                        &record.profile,
                        &record.received_at,
                        &stored,
                        &record.encrypted_for,
                        &upload,
                        &chunks,
                    ],
                )
                .await
                .map_err(|e| db.fail("record a delivery", &e))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyCommitted(id));
            }
            tx.execute(
                "UPDATE ids_delivery_usage SET stored_bytes = stored_bytes + $1",
                &[&stored],
            )
            .await
            .map_err(|e| db.fail("count the delivery storage used", &e))?;
            tx.commit()
                .await
                .map_err(|e| db.fail("commit a delivery", &e))
        });
        if committed.is_ok() {
            self.committed = true;
        }
        committed
    }
}

/// Removes an abandoned upload's lease and chunks in one transaction. The lease goes first: a commit
/// of this upload still in progress holds its row, so the DELETE waits for it and then removes nothing;
/// the chunks are removed only when the lease was, and never those of a record. Any error (a timeout
/// while a commit hangs, the store gone) removes nothing.
async fn abandon(
    conn: &mut deadpool_postgres::Object,
    upload: i64,
) -> Result<(), tokio_postgres::Error> {
    let tx = conn.transaction().await?;
    let released = tx
        .execute(
            "DELETE FROM ids_delivery_uploads WHERE upload = $1",
            &[&upload],
        )
        .await?;
    if released == 0 {
        // Committed (its record names the chunks), taken over, or swept: not ours to remove.
        return tx.rollback().await;
    }
    tx.execute(
        "DELETE FROM ids_delivery_chunks WHERE upload = $1 AND NOT EXISTS (SELECT 1 FROM ids_deliveries WHERE upload = $1)",
        &[&upload],
    )
    .await?;
    tx.commit().await
}

impl Drop for PgPending {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if self.committed {
            return;
        }
        // Possibly on a runtime worker (an upload dropped by its handler): clean up in a task. The
        // writer is finished first, so no chunk lands after the clean-up; chunks of a record (a commit
        // whose answer was lost) are never removed.
        self.queue = None;
        let writer = self.writer.take();
        let (db, upload) = (self.db.clone(), self.upload);
        self.db.handle.spawn(async move {
            if let Some(writer) = writer {
                let _ = writer.await;
            }
            // Whatever fails here, the sweeper removes it once the lease has expired.
            let Ok(mut conn) = db.conn().await else {
                return;
            };
            let _ = abandon(&mut conn, upload).await;
        });
    }
}
