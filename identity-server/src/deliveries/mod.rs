//! Deliveries: files agents send to the server, stored encrypted with the server's
//! `EncryptionCertificate` (no HTTP types here; `crate::http::deliveries` calls this).
//!
//! # Layout
//! - here: [`Deliveries`], the rules: who may deliver or read ([`Policy`]), the delivery id
//!   ([`DeliveryId`], the idempotency key, in a namespace of its own for each client: [`DeliveryKey`]),
//!   one upload per key at a time and a share of the upload slots per client, the minimum pace of an
//!   upload ([`UploadPace`]).
//! - [`upload`]: [`Upload`], which hashes the plaintext and encrypts it as it arrives, checks size and
//!   SHA-256 (announced before the body, or after it as a trailer), and only then commits.
//! - [`names`]: which file names are accepted, and safe names for records stored before.
//! - [`store`]: the [`DeliveryStore`] trait (keeps encrypted bytes and records).
//! - [`folder`]: the embedded store, a folder on the server's disk.

pub mod folder;
pub mod names;
pub mod store;
mod upload;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use ids_pki::b64::hex;
use ids_seal::encrypted_file::{DecryptionKey, Decryptor, Encryptor, Recipient};

pub use ids_proto::ids::InvalidDeliveryId;
/// A delivery id: 1 to 128 characters from `A-Z a-z 0-9 - _ .`, not starting with `.`. Chosen by the
/// agent; repeating it repeats the delivery (idempotency key). Safe to use in a file name. The wire
/// contract's type, made by [`DeliveryId::parse`].
pub use ids_proto::{ClientId, DeliveryId};
pub use names::{check_name, export_name};
pub use store::{DeliveryStore, PendingContent, Record, StoreError};
pub use upload::{Digests, Finished, Upload};

/// Longest delivery id accepted.
pub const MAX_ID_LEN: usize = ids_proto::ids::MAX_DELIVERY_ID_LEN;
/// Longest file name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// What names a delivery in the store: the client that delivered it and the id it chose. Ids belong
/// to the client: the same id from two clients is two deliveries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliveryKey {
    /// The authenticated client (token `sub`).
    pub client: ClientId,
    pub id: DeliveryId,
}

impl DeliveryKey {
    pub fn new(client: &ClientId, id: &DeliveryId) -> Self {
        DeliveryKey {
            client: client.clone(),
            id: id.clone(),
        }
    }
}

/// The slowest body accepted: at least `bytes_per_second` x `window` bytes in every `window` of time
/// spent waiting for the client (`Deliveries:MinUploadBytesPerSecond`, `MinUploadRateWindowSeconds`).
/// Zero bytes per second: no minimum (an upload that sends nothing for 60 s is still abandoned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinUploadRate {
    pub bytes_per_second: u64,
    pub window: Duration,
}

/// Measures an upload's pace against [`MinUploadRate`], window after window. Only the time spent
/// waiting for the client counts: while the server's own writing holds the body back, the clock stops.
#[derive(Debug)]
pub struct UploadPace {
    min: MinUploadRate,
    waited: Duration,
    bytes: u64,
}

impl UploadPace {
    pub fn new(min: MinUploadRate) -> Self {
        UploadPace {
            min,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// How long the next wait for the body may last before the current window closes (`None`: no
    /// minimum).
    pub fn wait_limit(&self) -> Option<Duration> {
        (self.min.bytes_per_second > 0).then(|| self.min.window.saturating_sub(self.waited))
    }

    /// Counts `waited` spent waiting for the body and the `bytes` it brought; refuses the upload when a
    /// window closed with fewer bytes than the minimum.
    pub fn record(&mut self, waited: Duration, bytes: u64) -> Result<(), DeliveryError> {
        if self.min.bytes_per_second == 0 {
            return Ok(());
        }
        self.waited += waited;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.waited < self.min.window {
            return Ok(());
        }
        let seconds = self.min.window.as_secs().max(1);
        let needed = self.min.bytes_per_second.saturating_mul(seconds);
        if self.bytes < needed {
            return Err(DeliveryError::TooSlow {
                received: self.bytes,
                seconds,
                min: self.min.bytes_per_second,
            });
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        Ok(())
    }
}

/// Who is calling: established from a verified bearer token and the access-control XML in force.
#[derive(Clone, Debug)]
pub struct Caller {
    pub client_id: ClientId,
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
    /// `Deliveries:MaxConcurrentUploadsPerClient` (at most `max_uploads`): so that one client cannot
    /// take every slot.
    pub max_uploads_per_client: usize,
    /// `Deliveries:MinUploadBytesPerSecond` over `Deliveries:MinUploadRateWindowSeconds`.
    pub min_upload_rate: MinUploadRate,
    /// `Deliveries:DigestTrailers`: agents are told they may send the SHA-256 after the body.
    pub digest_trailers: bool,
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

/// A delivery id that breaks the rules is a bad request, in the words of [`InvalidDeliveryId`].
impl From<InvalidDeliveryId> for DeliveryError {
    fn from(e: InvalidDeliveryId) -> Self {
        DeliveryError::InvalidRequest(e.to_string())
    }
}

/// Why a server stores no deliveries. The text completes "this server stores no deliveries: " and
/// is fit for clients; the details are in the server's log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveriesOff {
    #[error("it has no EncryptionCertificate (File, Password) to encrypt them for")]
    NoEncryptionCertificate,
    #[error("its EncryptionCertificate is expired or not yet valid")]
    EncryptionCertificateNotValid,
    #[error("it cannot use its delivery folder (see the server log)")]
    FolderUnusable,
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
    /// A bare id that several clients used, where one delivery is wanted.
    #[error(
        "delivery id `{id}` is used by several clients ({}): say which (`?client=CLIENT` over HTTPS, `--client CLIENT` with `identity-server deliveries export`)",
        clients.join(", ")
    )]
    Ambiguous { id: String, clients: Vec<String> },
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
    /// The shared store (PostgreSQL) is unreachable now; nothing was stored (the detail is logged).
    #[error("{0}")]
    Unavailable(String),
    /// Deliveries are off; the reason is safe to show to clients (details are in the server's log).
    #[error("this server stores no deliveries: {0}")]
    Disabled(DeliveriesOff),
    /// `Deliveries:MaxConcurrentUploads` uploads are under way.
    #[error("the server is receiving {0} deliveries already; retry shortly")]
    Busy(usize),
    /// The client has `Deliveries:MaxConcurrentUploadsPerClient` uploads under way.
    #[error(
        "client `{client}` is sending {max} deliveries already, as many as one client may at once (Deliveries:MaxConcurrentUploadsPerClient); retry when one is done"
    )]
    ClientBusy { client: ClientId, max: usize },
    /// The body came slower than `Deliveries:MinUploadBytesPerSecond`: the upload was cut.
    #[error(
        "the body came too slowly: {received} bytes in {seconds} s, below the server's minimum of {min} bytes per second over {seconds} s (Deliveries:MinUploadBytesPerSecond); nothing was stored"
    )]
    TooSlow {
        received: u64,
        seconds: u64,
        min: u64,
    },
    /// Anything else on the server's side (logged, never sent).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DeliveryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full(detail) => DeliveryError::StorageFull(detail),
            StoreError::AlreadyCommitted(id) | StoreError::InProgress(id) => {
                DeliveryError::InProgress(id)
            }
            StoreError::Unavailable(detail) => DeliveryError::Unavailable(detail),
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
    /// The SHA-256 announced before the body (`Repr-Digest` header); `None` when it comes after the
    /// body (a request trailer), given to [`Upload::finish_with`].
    pub sha256: Option<[u8; 32]>,
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
    /// The `EncryptionCertificate` in force (replaced when it is reloaded), and the ones before it.
    encryption: std::sync::RwLock<Arc<Encryption>>,
    policy: Policy,
    in_flight: Arc<Mutex<InFlightSet>>,
}

/// An encryption certificate and its key: new deliveries are encrypted for the newest; deliveries
/// stored before a reload are read with the key they were encrypted for.
#[derive(Debug)]
struct Encryption {
    recipient: Recipient,
    /// The server's private key, for reading deliveries back.
    key: DecryptionKey,
    /// The certificate in force before this one (this process's lifetime).
    previous: Option<Arc<Encryption>>,
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
            encryption: std::sync::RwLock::new(Arc::new(Encryption {
                recipient,
                key,
                previous: None,
            })),
            policy,
            in_flight: Arc::new(Mutex::new(InFlightSet::default())),
        }
    }

    fn encryption(&self) -> Arc<Encryption> {
        match self.encryption.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Encrypts new deliveries for `recipient` from now on; deliveries stored before are still read
    /// with the key they were encrypted for (kept for this process's lifetime).
    pub fn replace_encryption(&self, recipient: Recipient, key: DecryptionKey) {
        let mut current = match self.encryption.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = current.clone();
        *current = Arc::new(Encryption {
            recipient,
            key,
            previous: Some(previous),
        });
    }

    /// The slowest upload accepted.
    pub fn min_upload_rate(&self) -> MinUploadRate {
        self.policy.min_upload_rate
    }

    /// Whether agents are told to send the SHA-256 after the body (`Deliveries:DigestTrailers`). A
    /// digest that comes after the body is accepted either way.
    pub fn digest_trailers(&self) -> bool {
        self.policy.digest_trailers
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

    /// The record of delivery `id` of `client` (the caller's own by default): a client sees its own
    /// deliveries; readers see everyone's, and a bare id that is not their own names the only
    /// delivery under it (several: [`DeliveryError::Ambiguous`]).
    pub fn find(
        &self,
        caller: &Caller,
        id: &DeliveryId,
        client: Option<&str>,
    ) -> Result<Record, DeliveryError> {
        let reader = self.policy.allows(Action::Read, caller.profile.as_deref());
        match client {
            Some(client) if caller.client_id == client || reader => self.find_any(id, Some(client)),
            // Someone else's delivery: as good as absent for this caller.
            Some(_) => Err(DeliveryError::NotFound),
            None => match self.store.get(&DeliveryKey::new(&caller.client_id, id))? {
                Some(own) => Ok(own),
                None if reader => self.find_any(id, None),
                None => Err(DeliveryError::NotFound),
            },
        }
    }

    /// The record of delivery `id` of `client`, or when no client is named, the only delivery under
    /// `id` whoever made it (operator commands, readers).
    pub fn find_any(&self, id: &DeliveryId, client: Option<&str>) -> Result<Record, DeliveryError> {
        if let Some(client) = client {
            return self
                .store
                .get(&DeliveryKey::new(&ClientId::from(client), id))?
                .ok_or(DeliveryError::NotFound);
        }
        let mut found = self.store.with_id(id)?;
        match found.len() {
            0 => Err(DeliveryError::NotFound),
            1 => Ok(found.remove(0)),
            _ => Err(DeliveryError::Ambiguous {
                id: id.as_str().to_string(),
                clients: found
                    .into_iter()
                    .map(|r| r.client_id.into_string())
                    .collect(),
            }),
        }
    }

    /// Every delivery (the caller must be allowed to read).
    /// Whether a delivery could be stored now (`/health/ready`).
    pub fn check_ready(&self) -> Result<String, String> {
        self.store.check_ready()
    }

    pub fn list(&self) -> Result<Vec<Record>, DeliveryError> {
        Ok(self.store.list()?)
    }

    /// The decrypted content of delivery `key` (the caller must be allowed to read).
    pub fn open(
        &self,
        key: &DeliveryKey,
    ) -> Result<(Record, Decryptor<Box<dyn Read + Send>>), DeliveryError> {
        let record = self.store.get(key)?.ok_or(DeliveryError::NotFound)?;
        // The key in force first, then those before it (a delivery stored before a reload).
        let mut encryption = Some(self.encryption());
        let mut failure = None;
        while let Some(e) = encryption {
            let stored = self.store.open(key)?;
            match Decryptor::new(stored, std::slice::from_ref(&e.key)) {
                Ok(decryptor) => return Ok((record, decryptor)),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
            encryption = e.previous.clone();
        }
        let error = failure.map(|e| e.to_string()).unwrap_or_default();
        Err(DeliveryError::Internal(format!(
            "delivery `{}`: {error}",
            record.id
        )))
    }

    /// Decrypts delivery `key` into `out`, checking the size and SHA-256 against its record.
    pub fn export(&self, key: &DeliveryKey, out: &mut dyn Write) -> Result<Record, ExportError> {
        let (record, mut decryptor) = self.open(key).map_err(ExportError::Read)?;
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let damaged = |detail: String| {
            ExportError::Read(DeliveryError::Internal(format!(
                "delivery `{}` of client `{}`: the stored file {detail}",
                key.id.as_str(),
                key.client
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
        let key = DeliveryKey::new(&caller.client_id, &incoming.id);
        let guard = InFlight::claim(&self.in_flight, &key, &self.policy)?;
        if let Some(existing) = self.store.get(&key)? {
            let same_file = existing.size == incoming.size && existing.name == incoming.name;
            match incoming.sha256 {
                Some(sha256) if same_file && existing.sha256 == hex(&sha256) => {
                    return Ok(Started::Duplicate(existing));
                }
                // The digest comes after the body: read it to tell a repeat from another file.
                None if same_file => {
                    return Ok(Started::Upload(Box::new(Upload::verify(
                        guard, existing, incoming,
                    ))));
                }
                _ => {
                    return Err(DeliveryError::Conflict(format!(
                        "delivery id `{}` was already used for another file; a delivery id names exactly one file",
                        incoming.id.as_str()
                    )));
                }
            }
        }
        let pending = self.store.begin(&key, encrypted_size(incoming.size))?;
        let encryption = self.encryption();
        let encryptor = Encryptor::new(pending, std::slice::from_ref(&encryption.recipient))
            .map_err(|e| {
                DeliveryError::Internal(format!("cannot start the encrypted file: {e}"))
            })?;
        Ok(Started::Upload(Box::new(Upload::store(
            guard,
            encryptor,
            incoming,
            caller.clone(),
            encryption.recipient.thumbprint().to_string(),
        ))))
    }
}

/// Stored size of `plaintext` bytes, with room for the header and the chunk framing.
fn encrypted_size(plaintext: u64) -> u64 {
    let chunks = plaintext / u64::from(ids_seal::encrypted_file::DEFAULT_CHUNK_SIZE) + 1;
    plaintext + chunks * 20 + 64 * 1024
}

/// The deliveries being received (at most `Deliveries:MaxConcurrentUploads`).
type InFlightSet = HashSet<DeliveryKey>;

/// A delivery being received: its slot, released on drop.
#[derive(Debug)]
pub(crate) struct InFlight {
    set: Arc<Mutex<InFlightSet>>,
    key: DeliveryKey,
}

impl InFlight {
    /// Takes a slot for `key`: refused when the same key is being received, when its client has its
    /// share of the slots, or when every slot is taken.
    fn claim(
        set: &Arc<Mutex<InFlightSet>>,
        key: &DeliveryKey,
        policy: &Policy,
    ) -> Result<InFlight, DeliveryError> {
        let mut uploads = set
            .lock()
            .map_err(|_| DeliveryError::Internal("delivery registry poisoned".into()))?;
        if uploads.contains(key) {
            return Err(DeliveryError::InProgress(key.id.as_str().to_string()));
        }
        let of_client = uploads.iter().filter(|k| k.client == key.client);
        if of_client.count() >= policy.max_uploads_per_client {
            return Err(DeliveryError::ClientBusy {
                client: key.client.clone(),
                max: policy.max_uploads_per_client,
            });
        }
        if uploads.len() >= policy.max_uploads {
            return Err(DeliveryError::Busy(uploads.len()));
        }
        uploads.insert(key.clone());
        Ok(InFlight {
            set: set.clone(),
            key: key.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut uploads) = self.set.lock() {
            uploads.remove(&self.key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
