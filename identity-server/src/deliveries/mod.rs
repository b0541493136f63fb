//! Deliveries: files agents send to the server, stored encrypted with the server's
//! `EncryptionCertificate` (no HTTP types here; `crate::http::deliveries` calls this).
//!
//! # Layout
//! - here: [`Deliveries`], the rules: who may deliver or read ([`Policy`]), the delivery id
//!   ([`DeliveryId`], the idempotency key), one upload per id at a time, and [`Upload`], which hashes the
//!   plaintext and encrypts it as it arrives, checks size and SHA-256, and only then commits.
//! - [`store`]: the [`DeliveryStore`] trait (keeps encrypted bytes and records).
//! - [`folder`]: the embedded store, a folder on the server's disk.

pub mod folder;
pub mod store;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use ids_crypto::b64::hex;
use ids_crypto::encrypted_file::{DecryptionKey, Decryptor, Encryptor, Recipient};

pub use store::{DeliveryStore, PendingContent, Record, StoreError};

/// Longest delivery id accepted.
pub const MAX_ID_LEN: usize = 128;
/// Longest file name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// A delivery id: 1 to 128 characters from `A-Z a-z 0-9 - _ .`, not starting with `.`. Chosen by the
/// agent; repeating it repeats the delivery (idempotency key). Safe to use in a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryId(String);

impl DeliveryId {
    pub fn parse(text: &str) -> Result<Self, DeliveryError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_ID_LEN
            && !text.starts_with('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(DeliveryId(text.to_string()))
        } else {
            Err(DeliveryError::InvalidRequest(format!(
                "the delivery id must be 1 to {MAX_ID_LEN} characters from A-Z a-z 0-9 - _ . and not start with `.` (got {} characters)",
                text.chars().count()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a file name given by an agent: shown to operators and used as the default export name, so
/// it must be one plain name (no folder, no control character).
pub fn check_name(name: &str) -> Result<(), DeliveryError> {
    let bad = name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if bad {
        return Err(DeliveryError::InvalidRequest(format!(
            "the file name must be 1 to {MAX_NAME_LEN} bytes, without `/`, `\\` or control characters, and not `.` or `..`"
        )));
    }
    Ok(())
}

/// Who is calling: established from a verified bearer token and the access-control XML in force.
#[derive(Clone, Debug)]
pub struct Caller {
    pub client_id: String,
    /// The client's `Profile` in the XML in force (not the one in the token, which may be stale).
    pub profile: Option<String>,
    /// The `Agent-Identifier` the caller sent.
    pub agent: Option<String>,
}

/// What a caller wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver,
    Read,
}

/// Which profiles may do what, and the size limit.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `Deliveries:DeliverProfiles` (`*` = any client with a profile).
    pub deliver_profiles: Vec<String>,
    /// `Deliveries:ReadProfiles` (empty by default: deliveries are read on the server with
    /// `identity-server deliveries export`).
    pub read_profiles: Vec<String>,
    /// `Deliveries:MaxFileSizeMiB`, in bytes.
    pub max_size: u64,
    /// `Deliveries:MaxConcurrentUploads`: each upload holds a blocking thread and a disk reservation.
    pub max_uploads: usize,
}

impl Policy {
    fn allows(&self, action: Action, profile: Option<&str>) -> bool {
        let list = match action {
            Action::Deliver => &self.deliver_profiles,
            Action::Read => &self.read_profiles,
        };
        profile.is_some_and(|p| list.iter().any(|allowed| allowed == "*" || allowed == p))
    }
}

/// Why a delivery request failed. Mapped to HTTP in `crate::http::error`.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the delivery id is unknown")]
    NotFound,
    #[error("Content-Length is required: send the plaintext size")]
    LengthRequired,
    #[error(
        "the file is {size} bytes; this server accepts at most {max} bytes (Deliveries:MaxFileSizeMiB)"
    )]
    TooLarge { size: u64, max: u64 },
    #[error("{0}")]
    Conflict(String),
    #[error("delivery `{0}` is being received on another connection; retry when it is done")]
    InProgress(String),
    #[error("the body's SHA-256 is {actual}, the request announced {expected}; nothing was stored")]
    DigestMismatch { expected: String, actual: String },
    #[error(
        "the body ended after {received} of the {expected} announced bytes; nothing was stored"
    )]
    Incomplete { received: u64, expected: u64 },
    /// The store has no room (the detail is logged, not sent).
    #[error("{0}")]
    StorageFull(String),
    /// Deliveries are off; the reason is safe to show to clients (details are in the server's log).
    #[error("this server stores no deliveries: {0}")]
    Disabled(String),
    /// `Deliveries:MaxConcurrentUploads` uploads are under way.
    #[error("the server is receiving {0} deliveries already; retry shortly")]
    Busy(usize),
    /// Anything else on the server's side (logged, never sent).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DeliveryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full(detail) => DeliveryError::StorageFull(detail),
            StoreError::AlreadyCommitted(id) => DeliveryError::InProgress(id),
            other => DeliveryError::Internal(other.to_string()),
        }
    }
}

/// Why an export failed: reading the stored delivery, or writing the output.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Read(DeliveryError),
    #[error("cannot write the output: {0}")]
    Write(std::io::Error),
}

/// What a delivery request announces.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub id: DeliveryId,
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// How a delivery request starts.
#[derive(Debug)]
pub enum Started {
    /// The same file was already delivered under this id: its record, nothing new is stored.
    Duplicate(Record),
    /// Send the body to this upload.
    Upload(Box<Upload>),
}

/// The deliveries service. Share it behind an `Arc`; its methods block (file I/O, encryption).
#[derive(Debug)]
pub struct Deliveries {
    store: Arc<dyn DeliveryStore>,
    recipient: Recipient,
    /// The server's private key, for reading deliveries back.
    key: DecryptionKey,
    policy: Policy,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Deliveries {
    pub fn new(
        store: Arc<dyn DeliveryStore>,
        recipient: Recipient,
        key: DecryptionKey,
        policy: Policy,
    ) -> Self {
        Deliveries {
            store,
            recipient,
            key,
            policy,
            in_flight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Refuses a caller whose profile may not do `action`, or an agent identifier the XML does not
    /// declare (when it declares any `<Agent>`).
    pub fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        declared_agents: &[&str],
    ) -> Result<(), DeliveryError> {
        if !self.policy.allows(action, caller.profile.as_deref()) {
            let (verb, key, list) = match action {
                Action::Deliver => (
                    "deliver files",
                    "Deliveries:DeliverProfiles",
                    &self.policy.deliver_profiles,
                ),
                Action::Read => (
                    "read deliveries",
                    "Deliveries:ReadProfiles",
                    &self.policy.read_profiles,
                ),
            };
            let profile = caller
                .profile
                .as_deref()
                .map_or("no profile".to_string(), |p| format!("profile `{p}`"));
            let allowed = if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            };
            return Err(DeliveryError::Forbidden(format!(
                "client `{}` has {profile}, which may not {verb} (profiles allowed by the server's {key}: {allowed})",
                caller.client_id
            )));
        }
        if action == Action::Deliver && !declared_agents.is_empty() {
            match caller.agent.as_deref() {
                None => {
                    return Err(DeliveryError::Forbidden(
                        "the server declares its agents (<Agent> in the access-control XML): send Agent-Identifier (the agent's OpenId:AgentIdentifier)".into(),
                    ));
                }
                Some(agent) if !declared_agents.contains(&agent) => {
                    return Err(DeliveryError::Forbidden(format!(
                        "agent `{agent}` is not declared by an <Agent Identifier=\"{agent}\"> element in the server's access-control XML"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The record of delivery `id`: for readers, or for the client that delivered it.
    pub fn find(&self, caller: &Caller, id: &DeliveryId) -> Result<Record, DeliveryError> {
        let record = self.store.get(id)?.ok_or(DeliveryError::NotFound)?;
        if record.client_id == caller.client_id
            || self.policy.allows(Action::Read, caller.profile.as_deref())
        {
            Ok(record)
        } else {
            // Someone else's delivery: as good as absent for this caller.
            Err(DeliveryError::NotFound)
        }
    }

    /// The record of delivery `id`, whoever delivered it (operator commands).
    pub fn find_any(&self, id: &DeliveryId) -> Result<Record, DeliveryError> {
        self.store.get(id)?.ok_or(DeliveryError::NotFound)
    }

    /// Every delivery (the caller must be allowed to read).
    pub fn list(&self) -> Result<Vec<Record>, DeliveryError> {
        Ok(self.store.list()?)
    }

    /// The decrypted content of delivery `id` (the caller must be allowed to read).
    pub fn open(
        &self,
        id: &DeliveryId,
    ) -> Result<(Record, Decryptor<Box<dyn Read + Send>>), DeliveryError> {
        let record = self.store.get(id)?.ok_or(DeliveryError::NotFound)?;
        let stored = self.store.open(id)?;
        let decryptor = Decryptor::new(stored, std::slice::from_ref(&self.key))
            .map_err(|e| DeliveryError::Internal(format!("delivery `{}`: {e}", record.id)))?;
        Ok((record, decryptor))
    }

    /// Decrypts delivery `id` into `out`, checking the size and SHA-256 against its record.
    pub fn export(&self, id: &DeliveryId, out: &mut dyn Write) -> Result<Record, ExportError> {
        let (record, mut decryptor) = self.open(id).map_err(ExportError::Read)?;
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let damaged = |detail: String| {
            ExportError::Read(DeliveryError::Internal(format!(
                "delivery `{}`: the stored file {detail}",
                id.as_str()
            )))
        };
        while let Some(chunk) = decryptor
            .next_chunk()
            .map_err(|e| damaged(format!("cannot be decrypted: {e}")))?
        {
            hasher.update(chunk);
            size += chunk.len() as u64;
            out.write_all(chunk).map_err(ExportError::Write)?;
        }
        let sha256 = hex(hasher.finish().as_ref());
        if size != record.size || sha256 != record.sha256 {
            return Err(damaged(format!(
                "decrypts to {size} bytes with SHA-256 {sha256}; its record says {} bytes, {}",
                record.size, record.sha256
            )));
        }
        out.flush().map_err(ExportError::Write)?;
        Ok(record)
    }

    /// Starts receiving `incoming` from `caller`: the existing record when this id was already
    /// delivered with the same content, an [`Upload`] otherwise.
    pub fn start(&self, caller: &Caller, incoming: Incoming) -> Result<Started, DeliveryError> {
        if incoming.size > self.policy.max_size {
            return Err(DeliveryError::TooLarge {
                size: incoming.size,
                max: self.policy.max_size,
            });
        }
        let guard = InFlight::claim(
            &self.in_flight,
            incoming.id.as_str(),
            self.policy.max_uploads,
        )?;
        if let Some(existing) = self.store.get(&incoming.id)? {
            let same = existing.client_id == caller.client_id
                && existing.size == incoming.size
                && existing.sha256 == hex(&incoming.sha256)
                && existing.name == incoming.name;
            if same {
                return Ok(Started::Duplicate(existing));
            }
            return Err(DeliveryError::Conflict(format!(
                "delivery id `{}` was already used for another file; a delivery id names exactly one file",
                incoming.id.as_str()
            )));
        }
        let pending = self
            .store
            .begin(&incoming.id, encrypted_size(incoming.size))?;
        let encryptor =
            Encryptor::new(pending, std::slice::from_ref(&self.recipient)).map_err(|e| {
                DeliveryError::Internal(format!("cannot start the encrypted file: {e}"))
            })?;
        Ok(Started::Upload(Box::new(Upload {
            _guard: guard,
            encryptor,
            hasher: digest::Context::new(&digest::SHA256),
            received: 0,
            incoming,
            caller: caller.clone(),
            encrypted_for: self.recipient.thumbprint().to_string(),
        })))
    }
}

/// Stored size of `plaintext` bytes, with room for the header and the chunk framing.
fn encrypted_size(plaintext: u64) -> u64 {
    let chunks = plaintext / u64::from(ids_crypto::encrypted_file::DEFAULT_CHUNK_SIZE) + 1;
    plaintext + chunks * 20 + 64 * 1024
}

/// An id being received; released on drop.
#[derive(Debug)]
struct InFlight {
    set: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl InFlight {
    fn claim(
        set: &Arc<Mutex<HashSet<String>>>,
        id: &str,
        max: usize,
    ) -> Result<InFlight, DeliveryError> {
        let mut ids = set
            .lock()
            .map_err(|_| DeliveryError::Internal("delivery registry poisoned".into()))?;
        if ids.contains(id) {
            return Err(DeliveryError::InProgress(id.to_string()));
        }
        if ids.len() >= max {
            return Err(DeliveryError::Busy(ids.len()));
        }
        ids.insert(id.to_string());
        Ok(InFlight {
            set: set.clone(),
            id: id.to_string(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.set.lock() {
            ids.remove(&self.id);
        }
    }
}

/// A delivery being received: plaintext in, encrypted content out. Dropped before
/// [`Upload::finish`], it leaves nothing behind.
pub struct Upload {
    _guard: InFlight,
    encryptor: Encryptor<Box<dyn PendingContent>>,
    hasher: digest::Context,
    received: u64,
    incoming: Incoming,
    caller: Caller,
    encrypted_for: String,
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
    /// The id being received.
    pub fn id(&self) -> &DeliveryId {
        &self.incoming.id
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
        self.hasher.update(data);
        self.encryptor.write_all(data).map_err(write_error)?;
        self.received = received;
        Ok(())
    }

    /// Checks the size and the SHA-256, then commits; `received_at` is the RFC 3339 time recorded.
    pub fn finish(self, received_at: String) -> Result<Record, DeliveryError> {
        let Upload {
            encryptor,
            hasher,
            received,
            incoming,
            caller,
            encrypted_for,
            _guard,
        } = self;
        if received != incoming.size {
            return Err(DeliveryError::Incomplete {
                received,
                expected: incoming.size,
            });
        }
        let actual = hasher.finish();
        if actual.as_ref() != incoming.sha256 {
            return Err(DeliveryError::DigestMismatch {
                expected: hex(&incoming.sha256),
                actual: hex(actual.as_ref()),
            });
        }
        let pending = encryptor.finish().map_err(|e| match e {
            ids_crypto::encrypted_file::FileError::Write { source } => write_error(source),
            other => DeliveryError::Internal(other.to_string()),
        })?;
        let record = Record {
            id: incoming.id.as_str().to_string(),
            name: incoming.name,
            size: incoming.size,
            sha256: hex(&incoming.sha256),
            client_id: caller.client_id,
            agent: caller.agent,
            profile: caller.profile,
            received_at,
            stored_bytes: pending.bytes_written(),
            encrypted_for,
        };
        pending.commit(&record)?;
        Ok(record)
    }
}

fn write_error(e: std::io::Error) -> DeliveryError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        DeliveryError::StorageFull(format!("the disk is full: {e}"))
    } else {
        DeliveryError::Internal(format!("cannot write the delivery: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
