//! Where deliveries are kept: the [`DeliveryStore`] trait and its record type.
//!
//! The store only keeps bytes it is given (already encrypted) and records; it knows nothing about
//! tokens, profiles or plaintext. The embedded implementation is [`super::folder::FolderStore`]; a
//! shared store for several servers behind a load balancer would implement the same trait (see
//! `docs/deliveries.md`).

use std::io::{Read, Write};

use ids_proto::ClientId;
use ids_proto::deliveries::Receipt;
use serde::{Deserialize, Serialize};

use super::{DeliveryId, DeliveryKey};

/// What is recorded about a completed delivery. Written once, when the delivery is committed.
///
/// The stored form: every field is required when read back (a record missing one is corrupt), where
/// the wire contract's [`Receipt`], which the API answers with, lets a reader default the newer
/// ones. Both write the same JSON (same fields, same order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The id the agent chose (idempotency key, in the namespace of `client_id`).
    pub id: DeliveryId,
    /// The file name the agent gave (never used as a path on the server).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
    /// The OAuth client (token `sub`) that delivered it.
    pub client_id: ClientId,
    /// The agent identifier the agent sent (`OpenId:AgentIdentifier`), if any.
    pub agent: Option<String>,
    /// The client's profile from the access-control XML at the time of delivery.
    pub profile: Option<String>,
    /// When the server committed it (RFC 3339, UTC).
    pub received_at: String,
    /// Size of the stored encrypted file.
    pub stored_bytes: u64,
    /// SHA-256 thumbprint (x5t#S256, hex) of the certificate the content is encrypted for.
    pub encrypted_for: String,
}

impl Record {
    /// The order every store lists in: by receipt time, then id, then client (bytes, not a
    /// database's collation), so that the folder and PostgreSQL list alike.
    pub fn sort_for_listing(records: &mut [Record]) {
        records.sort_by(|a, b| {
            a.received_at
                .cmp(&b.received_at)
                .then_with(|| a.id.cmp(&b.id))
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
    }
}

impl From<Record> for Receipt {
    fn from(r: Record) -> Receipt {
        Receipt {
            id: r.id,
            name: r.name,
            size: r.size,
            sha256: r.sha256,
            client_id: r.client_id,
            agent: r.agent,
            profile: r.profile,
            received_at: r.received_at,
            stored_bytes: r.stored_bytes,
            encrypted_for: r.encrypted_for,
        }
    }
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No room: the disk is (nearly) full or the configured quota is used up.
    #[error("{0}")]
    Full(String),
    /// A delivery with this key was committed meanwhile (by another request).
    #[error("delivery `{0}` was committed by another request")]
    AlreadyCommitted(String),
    /// Another upload of this key holds it (a lease in a shared store): retry when it is done.
    #[error("delivery `{0}` is being received by another upload")]
    InProgress(String),
    /// The shared store cannot be reached now (it is retried): nothing was stored.
    #[error("{0}")]
    Unavailable(String),
    /// The shared store refused a statement (`what` it was doing, the database's words).
    #[error("{target}: cannot {what}: {detail}")]
    Database {
        target: String,
        what: &'static str,
        detail: String,
    },
    /// A stored record cannot be read back.
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: String,
        action: &'static str,
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            return StoreError::Full(format!(
                "{}: the disk is full ({source})",
                path.parent().unwrap_or(path).display()
            ));
        }
        StoreError::Io {
            path: path.display().to_string(),
            action,
            source,
        }
    }
}

/// Keeps deliveries, each under its [`DeliveryKey`] (client + id). Calls block (file I/O): use them
/// from blocking threads.
pub trait DeliveryStore: Send + Sync + std::fmt::Debug {
    /// The committed delivery `key`, if there is one.
    fn get(&self, key: &DeliveryKey) -> Result<Option<Record>, StoreError>;

    /// Every committed delivery under `id`, whichever client made it, sorted by client.
    fn with_id(&self, id: &DeliveryId) -> Result<Vec<Record>, StoreError>;

    /// Every committed delivery, oldest first.
    fn list(&self) -> Result<Vec<Record>, StoreError>;

    /// Starts storing the content of delivery `key`, about `expected_bytes` long once encrypted.
    /// Refuses with [`StoreError::Full`] when that would not fit.
    fn begin(
        &self,
        key: &DeliveryKey,
        expected_bytes: u64,
    ) -> Result<Box<dyn PendingContent>, StoreError>;

    /// The stored (encrypted) content of a committed delivery.
    fn open(&self, key: &DeliveryKey) -> Result<Box<dyn Read + Send>, StoreError>;

    /// The readiness check (`/health/ready`): whether a delivery could be stored now, and what was
    /// found (`Ok` detail or `Err` reason). A store whose health is watched elsewhere (PostgreSQL)
    /// says so.
    fn check_ready(&self) -> Result<String, String> {
        Ok("kept in the shared store".into())
    }
}

/// Content being written. Nothing of it is visible until [`PendingContent::commit`]; dropping it
/// without committing removes what was written.
pub trait PendingContent: Write + Send + std::fmt::Debug {
    /// Bytes written so far.
    fn bytes_written(&self) -> u64;

    /// Makes the content and its record visible together (or neither, on error).
    fn commit(self: Box<Self>, record: &Record) -> Result<(), StoreError>;
}
