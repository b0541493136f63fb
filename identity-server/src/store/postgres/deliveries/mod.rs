//! Deliveries in PostgreSQL ([`PgDeliveryStore`]): the same [`DeliveryStore`] as the folder, shared by
//! every server behind a load balancer, so that a delivery received by one server is found, listed and
//! exported by all, and an upload cut off by a server's death is retried through another.
//!
//! # What is stored
//! Exactly what the folder store keeps: the content arrives here already encrypted (IDSENC for the
//! `EncryptionCertificate`, by `crate::deliveries::Upload`), and is written as it comes, in chunks of
//! [`CHUNK_SIZE`] bytes (`ids_delivery_chunks`, one row each, numbered under the upload's own number);
//! reading fetches one chunk at a time. Memory stays flat both ways, whatever the file size.
//!
//! # Commit, leases and leftovers
//! - `begin` takes a **lease** on the client's id (`ids_delivery_uploads`): a live lease held by
//!   another upload, on this server or another, refuses the second one (409 `delivery_in_progress`).
//!   The lease is refreshed every [`LEASE_HEARTBEAT`] while the upload runs and expires
//!   [`LEASE_EXPIRY`] after the last refresh, so an upload whose server died can be retried through
//!   another server about a minute and a half later (the agent's retries wait that long anyway), while a
//!   server that misses one or two refreshes (a pause, a slow database) keeps its upload.
//! - `commit` is one transaction: it releases the lease (refused if another upload took it over),
//!   inserts the record naming the upload's chunks (`ON CONFLICT DO NOTHING`: the first commit of a
//!   key wins, whatever the leases did), and adds the stored bytes to the shared usage counter. The
//!   record appears with its content or not at all.
//! - An abandoned upload removes its lease and chunks at once; what a dead server left (expired
//!   leases, chunks of no record and no lease) is removed by [`sweep`], which every server runs.
//!
//! # Quota and free space
//! `Deliveries:QuotaMiB` counts the stored bytes of every record (`ids_delivery_usage`) plus the
//! reservations of the live leases, checked in `begin` under the usage row's lock, so two servers
//! cannot both take the last room. `Deliveries:MinFreeSpaceMiB` measures the server's own disk and
//! does not apply here: the database's disk is PostgreSQL's; when it is full (SQLSTATE 53100
//! `disk_full`), the upload is refused with 507 and nothing is stored.
//!
//! The calls of [`DeliveryStore`] are synchronous (they run on blocking threads): each one runs its
//! statements with `Handle::block_on` on the runtime the store was made with, never on a runtime worker.

mod import;
mod pending;
mod sweep;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ids_proto::ClientId;
use tokio::runtime::{Handle, Runtime};

use super::{PgError, PgStore};
use crate::deliveries::store::{DeliveryStore, PendingContent, Record, StoreError};
use crate::deliveries::{DeliveryId, DeliveryKey};
pub use import::{ImportReport, Imported, import};
pub use sweep::{Swept, sweep, sweep_logged};

/// Size of a content row.
pub const CHUNK_SIZE: usize = 1024 * 1024;
/// How often a running upload refreshes its lease.
pub const LEASE_HEARTBEAT: Duration = Duration::from_secs(30);
/// How long a lease lives after its last refresh: three heartbeats.
pub const LEASE_EXPIRY: Duration = Duration::from_secs(90);

/// How an upload's lease is kept: refreshed every `heartbeat`, expiring `expiry` after the last
/// refresh. [`Lease::default`] is [`LEASE_HEARTBEAT`] and [`LEASE_EXPIRY`]; tests shorten both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub heartbeat: Duration,
    pub expiry: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            heartbeat: LEASE_HEARTBEAT,
            expiry: LEASE_EXPIRY,
        }
    }
}

/// SQLSTATE `disk_full`.
const DISK_FULL: &str = "53100";

const RECORD_COLUMNS: &str =
    "client_id, id, name, size, sha256, agent, profile, received_at, stored_bytes, encrypted_for";

/// Deliveries in the shared PostgreSQL store.
#[derive(Debug)]
pub struct PgDeliveryStore {
    db: Db,
    /// `Deliveries:QuotaMiB`, in bytes.
    quota: Option<u64>,
    lease: Lease,
    /// Who holds a lease (shown to operators looking at `ids_delivery_uploads`).
    server: String,
}

/// The store, the runtime its statements run on, and how a connection is obtained.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    store: Arc<PgStore>,
    handle: Handle,
    /// Operator commands wait for a connection and say precisely why there is none; the server fails
    /// fast while the store is down (503).
    operator: bool,
    /// The runtime of an operator command, kept alive as long as the store.
    _runtime: Option<Arc<Runtime>>,
}

impl PgDeliveryStore {
    /// The store of a running server: statements run on `handle` (the server's runtime); while the
    /// store is down every call fails at once with [`StoreError::Unavailable`].
    pub fn for_server(store: Arc<PgStore>, handle: Handle, quota: Option<u64>) -> Self {
        PgDeliveryStore {
            db: Db {
                store,
                handle,
                operator: false,
                _runtime: None,
            },
            quota,
            lease: Lease::default(),
            server: server_name(),
        }
    }

    /// The same store with other lease durations (tests: a lease that outlives its expiry only by
    /// being refreshed).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    /// The store of an operator command (`deliveries list|export`, `store import`): owns `runtime`,
    /// waits for connections. No quota: an operator's import is not refused for room.
    pub fn for_operator(store: Arc<PgStore>, runtime: Arc<Runtime>) -> Self {
        PgDeliveryStore {
            db: Db {
                store,
                handle: runtime.handle().clone(),
                operator: true,
                _runtime: Some(runtime),
            },
            quota: None,
            lease: Lease::default(),
            server: format!("{} (operator command)", server_name()),
        }
    }

    fn records(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Record>, StoreError> {
        let db = self.db.clone();
        self.db.run(async move {
            let client = db.conn().await?;
            let rows = client
                .query(sql, params)
                .await
                .map_err(|e| db.fail(what, &e))?;
            rows.iter().map(|row| db.record(row)).collect()
        })
    }
}

/// `host pid N`: the lease holder's name.
fn server_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    format!("{host} pid {}", std::process::id())
}

impl Db {
    /// Runs `work` on the store's runtime, from a blocking thread (never a runtime worker).
    pub(crate) fn run<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.handle.block_on(work)
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let got = if self.operator {
            self.store.connect().await
        } else {
            self.store.client().await
        };
        got.map_err(|e| self.pg_error(e))
    }

    /// A failed statement as a [`StoreError`]: a full disk, the store gone (marked down), or refused.
    pub(crate) fn fail(&self, what: &'static str, e: &tokio_postgres::Error) -> StoreError {
        if let Some(db) = e.as_db_error()
            && db.code().code() == DISK_FULL
        {
            return StoreError::Full(format!(
                "PostgreSQL {}: the database's disk is full ({}) while trying to {what}",
                self.store.describe(),
                super::describe(e)
            ));
        }
        self.pg_error(self.store.failed(what, e))
    }

    fn pg_error(&self, e: PgError) -> StoreError {
        if e.is_unavailable() {
            return StoreError::Unavailable(e.to_string());
        }
        match e {
            PgError::Query { what, detail } => StoreError::Database {
                target: format!("PostgreSQL {}", self.store.describe()),
                what,
                detail,
            },
            other => StoreError::Database {
                target: format!("PostgreSQL {}", self.store.describe()),
                what: "use the store",
                detail: other.to_string(),
            },
        }
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: format!("PostgreSQL {} ids_deliveries", self.store.describe()),
            detail,
        }
    }

    /// A row of [`RECORD_COLUMNS`] as a record.
    fn record(&self, row: &tokio_postgres::Row) -> Result<Record, StoreError> {
        let id: String = row.get(1);
        let client: String = row.get(0);
        let unsigned = |column: usize| {
            let v: i64 = row.get(column);
            u64::try_from(v).map_err(|_| {
                self.corrupt(format!(
                    "delivery `{id}` of client `{client}` has a negative size ({v})"
                ))
            })
        };
        Ok(Record {
            id: DeliveryId::parse(&id).map_err(|e| {
                self.corrupt(format!("delivery id `{id}` of client `{client}`: {e}"))
            })?,
            name: row.get(2),
            size: unsigned(3)?,
            sha256: row.get(4),
            client_id: ClientId::from(client.clone()),
            agent: row.get(5),
            profile: row.get(6),
            received_at: row.get(7),
            stored_bytes: unsigned(8)?,
            encrypted_for: row.get(9),
        })
    }
}

/// A size as PostgreSQL's `bigint`.
pub(crate) fn signed(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Full(format!("{what} of {v} bytes is too large")))
}

impl DeliveryStore for PgDeliveryStore {
    fn get(&self, key: &DeliveryKey) -> Result<Option<Record>, StoreError> {
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM ids_deliveries WHERE client_id = $1 AND id = $2");
        let mut found = self.records(
            "read a delivery record",
            &sql,
            &[&key.client.as_str(), &key.id.as_str()],
        )?;
        Ok(found.pop())
    }

    fn with_id(&self, id: &DeliveryId) -> Result<Vec<Record>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM ids_deliveries WHERE id = $1");
        let mut found = self.records("read delivery records", &sql, &[&id.as_str()])?;
        found.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(found)
    }

    fn list(&self) -> Result<Vec<Record>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM ids_deliveries");
        let mut records = self.records("list the deliveries", &sql, &[])?;
        Record::sort_for_listing(&mut records);
        Ok(records)
    }

    fn begin(
        &self,
        key: &DeliveryKey,
        expected_bytes: u64,
    ) -> Result<Box<dyn PendingContent>, StoreError> {
        let pending = pending::PgPending::begin(
            self.db.clone(),
            key.clone(),
            expected_bytes,
            self.quota,
            self.lease,
            &self.server,
        )?;
        Ok(Box::new(pending))
    }

    fn open(&self, key: &DeliveryKey) -> Result<Box<dyn Read + Send>, StoreError> {
        let db = self.db.clone();
        let (client, id) = (key.client.as_str().to_string(), key.id.as_str().to_string());
        let located = self.db.run(async move {
            let conn = db.conn().await?;
            conn.query_opt(
                "SELECT upload, chunks FROM ids_deliveries WHERE client_id = $1 AND id = $2",
                &[&client, &id],
            )
            .await
            .map_err(|e| db.fail("read a delivery record", &e))
        })?;
        let Some(row) = located else {
            return Err(self.db.corrupt(format!(
                "no delivery `{}` of client `{}`",
                key.id.as_str(),
                key.client
            )));
        };
        Ok(Box::new(Content {
            db: self.db.clone(),
            upload: row.get(0),
            chunks: row.get(1),
            next: 0,
            current: Vec::new(),
            pos: 0,
        }))
    }
}

/// The stored content of a delivery, read one chunk at a time.
#[derive(Debug)]
struct Content {
    db: Db,
    upload: i64,
    chunks: i32,
    next: i32,
    current: Vec<u8>,
    pos: usize,
}

impl Content {
    fn fetch(&mut self) -> Result<(), StoreError> {
        let db = self.db.clone();
        let (upload, seq) = (self.upload, self.next);
        let row = self.db.run(async move {
            let conn = db.conn().await?;
            let stmt = conn
                .prepare_cached(
                    "SELECT data FROM ids_delivery_chunks WHERE upload = $1 AND seq = $2",
                )
                .await
                .map_err(|e| db.fail("read delivery content", &e))?;
            conn.query_opt(&stmt, &[&upload, &seq])
                .await
                .map_err(|e| db.fail("read delivery content", &e))
        })?;
        let Some(row) = row else {
            return Err(self.db.corrupt(format!(
                "upload {upload}: chunk {seq} of {} is missing",
                self.chunks
            )));
        };
        self.current = row.get(0);
        self.pos = 0;
        self.next += 1;
        Ok(())
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            if self.next >= self.chunks {
                return Ok(0);
            }
            self.fetch().map_err(io_error)?;
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A store error carried through `std::io` (the encryptor's writer, a reader): its kind says a full
/// store, and `crate::deliveries` finds the [`StoreError`] inside.
pub(crate) fn io_error(e: StoreError) -> std::io::Error {
    let kind = match e {
        StoreError::Full(_) => std::io::ErrorKind::StorageFull,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}
