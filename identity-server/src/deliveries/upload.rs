//! One delivery being received: plaintext in, encrypted content out, committed only once the size and
//! the SHA-256 match what was announced.
//!
//! The SHA-256 is announced either before the body (`Repr-Digest` header: [`Incoming::sha256`]) or
//! after it (a `Repr-Digest` request trailer, given to [`Upload::finish_with`]), so that an agent can
//! send its file in one pass. The body may be hashed here, or by the caller on another thread
//! ([`Upload::detach_hasher`]) so that hashing and encrypting-and-writing run on two cores.
//!
//! A repeat of an id whose digest comes after the body cannot be told from another file before the
//! body has been read: such an upload only hashes ([`Upload::verify`]) and ends as the first record
//! ([`Finished::Duplicate`]) or a conflict; nothing is written.

use std::io::Write;

use aws_lc_rs::digest;
use ids_pki::b64::hex;
use ids_seal::encrypted_file::Encryptor;

use super::{
    Caller, DeliveryError, DeliveryId, InFlight, Incoming, PendingContent, Record, StoreError,
};

/// Where the body goes.
enum Sink {
    /// Encrypted into the store.
    Store {
        encryptor: Encryptor<Box<dyn PendingContent>>,
        encrypted_for: String,
    },
    /// Only hashed: the id is delivered already, with this record.
    Verify(Record),
}

/// A delivery being received. Dropped before [`Upload::finish`], it leaves nothing behind.
pub struct Upload {
    _guard: InFlight,
    sink: Sink,
    /// `None` once [`Upload::detach_hasher`] gave the hashing to the caller.
    hasher: Option<digest::Context>,
    received: u64,
    incoming: Incoming,
    caller: Caller,
}

/// How an upload ended.
#[derive(Debug)]
pub enum Finished {
    /// Stored: the new record.
    Stored(Record),
    /// The same file was delivered under this id before: its record; nothing new was stored.
    Duplicate(Record),
}

/// The digests [`Upload::finish_with`] checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Digests {
    /// The body's SHA-256, computed by the caller after [`Upload::detach_hasher`] (`None`: by the upload).
    pub actual: Option<[u8; 32]>,
    /// The SHA-256 announced after the body (a `Repr-Digest` request trailer).
    pub trailer: Option<[u8; 32]>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("id", &self.incoming.id)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// An upload into the store.
    pub(crate) fn store(
        guard: InFlight,
        encryptor: Encryptor<Box<dyn PendingContent>>,
        incoming: Incoming,
        caller: Caller,
        encrypted_for: String,
    ) -> Upload {
        Upload {
            _guard: guard,
            sink: Sink::Store {
                encryptor,
                encrypted_for,
            },
            hasher: Some(digest::Context::new(&digest::SHA256)),
            received: 0,
            incoming,
            caller,
        }
    }

    /// A body that is only hashed, to compare with `existing` (same id, size and name).
    pub(crate) fn verify(guard: InFlight, existing: Record, incoming: Incoming) -> Upload {
        let caller = Caller {
            client_id: existing.client_id.clone(),
            profile: existing.profile.clone(),
            agent: existing.agent.clone(),
        };
        Upload {
            _guard: guard,
            sink: Sink::Verify(existing),
            hasher: Some(digest::Context::new(&digest::SHA256)),
            received: 0,
            incoming,
            caller,
        }
    }

    /// The id being received.
    pub fn id(&self) -> &DeliveryId {
        &self.incoming.id
    }

    /// The announced size.
    pub fn size(&self) -> u64 {
        self.incoming.size
    }

    /// Whether the SHA-256 must come after the body.
    pub fn digest_follows(&self) -> bool {
        self.incoming.sha256.is_none()
    }

    /// Hands the hashing to the caller, who feeds it every piece given to [`Upload::write`] and passes
    /// the result to [`Upload::finish_with`] (`Digests::actual`).
    pub fn detach_hasher(&mut self) -> Option<digest::Context> {
        self.hasher.take()
    }

    /// Takes the next piece of the body.
    pub fn write(&mut self, data: &[u8]) -> Result<(), DeliveryError> {
        let received = self.received + data.len() as u64;
        if received > self.incoming.size {
            return Err(DeliveryError::InvalidRequest(format!(
                "the body is longer than the announced {} bytes; nothing was stored",
                self.incoming.size
            )));
        }
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(data);
        }
        if let Sink::Store { encryptor, .. } = &mut self.sink {
            encryptor.write_all(data).map_err(write_error)?;
        }
        self.received = received;
        Ok(())
    }

    /// [`Upload::finish_with`] for a digest announced before the body and hashed here; a repeat gives
    /// the first record.
    pub fn finish(self, received_at: String) -> Result<Record, DeliveryError> {
        match self.finish_with(Digests::default(), received_at)? {
            Finished::Stored(record) | Finished::Duplicate(record) => Ok(record),
        }
    }

    /// Checks the size and the SHA-256 (announced before the body, or as `digests.trailer` after it;
    /// exactly one of them), then commits; `received_at` is the RFC 3339 time recorded.
    pub fn finish_with(
        self,
        digests: Digests,
        received_at: String,
    ) -> Result<Finished, DeliveryError> {
        let Upload {
            sink,
            hasher,
            received,
            incoming,
            caller,
            _guard,
        } = self;
        if received != incoming.size {
            return Err(DeliveryError::Incomplete {
                received,
                expected: incoming.size,
            });
        }
        let announced = match (incoming.sha256, digests.trailer) {
            (Some(header), None) => header,
            (None, Some(trailer)) => trailer,
            (Some(_), Some(_)) => {
                return Err(DeliveryError::InvalidRequest(
                    "Repr-Digest came both as a header and as a trailer, which is ambiguous: send exactly one; nothing was stored".into(),
                ));
            }
            (None, None) => {
                return Err(DeliveryError::InvalidRequest(
                    "the Repr-Digest trailer (sha-256) announced by `Trailer: Repr-Digest` did not come after the body; nothing was stored".into(),
                ));
            }
        };
        let actual = match (digests.actual, hasher) {
            (Some(actual), _) => actual,
            (None, Some(hasher)) => {
                let mut actual = [0u8; 32];
                actual.copy_from_slice(hasher.finish().as_ref());
                actual
            }
            (None, None) => {
                return Err(DeliveryError::Internal(
                    "the upload's hasher was detached but no digest was given".into(),
                ));
            }
        };
        if actual != announced {
            return Err(DeliveryError::DigestMismatch {
                expected: hex(&announced),
                actual: hex(&actual),
            });
        }
        let (encryptor, encrypted_for) = match sink {
            Sink::Verify(existing) if existing.sha256 == hex(&actual) => {
                return Ok(Finished::Duplicate(existing));
            }
            Sink::Verify(_) => {
                return Err(DeliveryError::Conflict(format!(
                    "delivery id `{}` was already used for another file; a delivery id names exactly one file",
                    incoming.id.as_str()
                )));
            }
            Sink::Store {
                encryptor,
                encrypted_for,
            } => (encryptor, encrypted_for),
        };
        let pending = encryptor.finish().map_err(|e| match e {
            ids_seal::encrypted_file::FileError::Write { source } => write_error(source),
            other => DeliveryError::Internal(other.to_string()),
        })?;
        let record = Record {
            id: incoming.id,
            name: incoming.name,
            size: incoming.size,
            sha256: hex(&actual),
            client_id: caller.client_id,
            agent: caller.agent,
            profile: caller.profile,
            received_at,
            stored_bytes: pending.bytes_written(),
            encrypted_for,
        };
        pending.commit(&record)?;
        Ok(Finished::Stored(record))
    }
}

fn write_error(e: std::io::Error) -> DeliveryError {
    // A store that is not a folder says why in the error it wraps (e.g. PostgreSQL unreachable).
    if let Some(store) = e.get_ref().and_then(|s| s.downcast_ref::<StoreError>()) {
        match store {
            StoreError::Full(detail) => return DeliveryError::StorageFull(detail.clone()),
            StoreError::Unavailable(detail) => return DeliveryError::Unavailable(detail.clone()),
            StoreError::InProgress(id) => return DeliveryError::InProgress(id.clone()),
            _ => {}
        }
    }
    if e.kind() == std::io::ErrorKind::StorageFull {
        DeliveryError::StorageFull(format!("the disk is full: {e}"))
    } else {
        DeliveryError::Internal(format!("cannot write the delivery: {e}"))
    }
}
