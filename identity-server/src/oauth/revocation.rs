//! Revoked access tokens (RFC 7009): the `jti`s a client revoked, each refused until its token's
//! `exp` by introspection and by the server's own API.
//!
//! Two implementations behind [`RevokedTokens`]:
//! - [`FileRevocations`] (embedded store): in memory, and appended to
//!   `<Deliveries:DataFolder>/revoked/tokens` with an fsync before the revocation is acknowledged (a
//!   revocation is rare and must survive a restart); expired entries are dropped when the file is
//!   read at start-up, which rewrites it with the live ones. When the folder cannot be used, a
//!   revocation is refused (500, logged), never acknowledged without being durable.
//! - `crate::store::postgres::PgRevocations` (PostgreSQL): one table shared by every server.
//!
//! Services that verify tokens offline (with the JWKS, as the agent's verifier does) do not see a
//! revocation: only a short `AccessTokenLifetime` bounds how long a revoked token still works there
//! (docs/oauth.md).
//!
//! A revocation is kept until the token's `exp` plus [`REVOCATION_LEEWAY`] (verifiers accept a token
//! that long after its `exp`), and a client has at most [`MAX_REVOKED_PER_CLIENT`] live revocations
//! on one server (a client can mint and revoke tokens without end).
//!
//! # Format
//! UTF-8 text, one entry per line: `<key> <until> <client>`, where `key` is the hex of SHA-256 of the
//! `jti` truncated to 128 bits (the `jti` itself is not kept), `until` the token's `exp` plus the
//! leeway (Unix seconds) and `client` the client id in base64url. Lines starting with `#` are
//! comments. Folder 0700, file 0600.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Mutex;

/// What a revocation store answers: boxed so the trait stays object-safe while the shared one awaits
/// its database.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RevocationError>> + Send + 'a>>;

/// Most revocations kept at once (each a few dozen bytes).
pub const MAX_REVOKED: usize = 1_000_000;
/// Most live revocations of one client on one server: beyond, its revocations are refused (503)
/// until some of its revoked tokens expire.
pub const MAX_REVOKED_PER_CLIENT: usize = 100_000;
/// How long after a token's `exp` its revocation is kept: the longest leeway a verifier gives
/// ([`ids_jose::MAX_LEEWAY_SECS`]).
pub const REVOCATION_LEEWAY: i64 = ids_jose::MAX_LEEWAY_SECS as i64;

/// Why a revocation could not be recorded or checked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RevocationError {
    /// The shared store is down: a token cannot be known not to be revoked (fail closed).
    #[error("the shared store is unavailable: {0}")]
    Unavailable(String),
    #[error("{}: cannot record the revocation: {reason}", .path.display())]
    Write { path: PathBuf, reason: String },
    #[error(
        "too many revoked tokens are waiting for their expiry (at most {MAX_REVOKED} in all, {MAX_REVOKED_PER_CLIENT} per client)"
    )]
    Full,
}

/// The revoked `jti`s, each until its token's `exp`.
pub trait RevokedTokens: Send + Sync + std::fmt::Debug {
    /// Records the revocation of the token `jti` of `client_id`, which expires at `exp`.
    fn revoke<'a>(
        &'a self,
        jti: &'a str,
        client_id: &'a str,
        exp: i64,
        now: i64,
    ) -> StoreFuture<'a, ()>;

    /// Whether `jti` was revoked (and has not expired yet at `now`).
    fn is_revoked<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, bool>;

    /// Revocations held by this server (a metric).
    fn entries(&self) -> usize;
}

/// The key a revoked `jti` is kept by: SHA-256 truncated to 128 bits.
pub fn revocation_key(jti: &str) -> [u8; 16] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, jti.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    key
}

/// Revocations in memory; the entries of this server when the store is shared, all of them when
/// embedded. Bounded in all and per client.
#[derive(Debug, Default)]
pub struct MemoryRevocations {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    /// Key -> (until, client).
    revoked: HashMap<[u8; 16], (i64, std::sync::Arc<str>)>,
    per_client: HashMap<std::sync::Arc<str>, usize>,
}

impl MemoryState {
    /// Room for one more revocation of `client` (a purge of expired entries first when full).
    fn has_room(&mut self, client: &str, now: i64) -> bool {
        let full = |s: &MemoryState| {
            s.revoked.len() >= MAX_REVOKED
                || s.per_client.get(client).copied().unwrap_or(0) >= MAX_REVOKED_PER_CLIENT
        };
        if full(self) {
            self.purge(now);
        }
        !full(self)
    }

    fn purge(&mut self, now: i64) {
        self.revoked.retain(|_, (until, _)| *until >= now);
        self.per_client.clear();
        for (_, client) in self.revoked.values() {
            *self.per_client.entry(client.clone()).or_default() += 1;
        }
    }
}

impl MemoryRevocations {
    /// Whether `key` is revoked at `now`. A poisoned lock counts as revoked (fail closed).
    pub fn contains(&self, key: &[u8; 16], now: i64) -> bool {
        self.state
            .lock()
            .map(|m| m.revoked.get(key).is_some_and(|(until, _)| *until >= now))
            .unwrap_or(true)
    }

    /// Whether `client` may revoke one more token now (expired entries are dropped first when a
    /// bound is reached).
    pub fn has_room(&self, client: &str, now: i64) -> bool {
        self.state
            .lock()
            .is_ok_and(|mut state| state.has_room(client, now))
    }

    /// Adds `key` of `client` until `until`; false when full.
    pub fn insert(&self, key: [u8; 16], client: &str, until: i64, now: i64) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if !state.has_room(client, now) {
            return false;
        }
        let client: std::sync::Arc<str> = match state.per_client.get_key_value(client) {
            Some((k, _)) => k.clone(),
            None => std::sync::Arc::from(client),
        };
        if state.revoked.insert(key, (until, client.clone())).is_none() {
            *state.per_client.entry(client).or_default() += 1;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.state.lock().map(|m| m.revoked.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The embedded store's revocations: memory plus an fsynced append-only file.
#[derive(Debug)]
pub struct FileRevocations {
    memory: MemoryRevocations,
    /// `None`: the folder could not be used (logged at start-up): revocations are refused.
    file: Option<Mutex<std::fs::File>>,
    path: PathBuf,
}

/// The file's name in its folder.
pub const FILE: &str = "tokens";

impl FileRevocations {
    /// Opens `<folder>/tokens`, keeps its live entries at `now` and rewrites it with them. A folder
    /// that cannot be used gives a store that refuses revocations, and the reason, for the start-up
    /// log.
    pub fn open(folder: &Path, now: i64) -> (FileRevocations, Option<String>) {
        let path = folder.join(FILE);
        let memory = MemoryRevocations::default();
        match Self::load_and_compact(folder, &path, &memory, now) {
            Ok(file) => (
                FileRevocations {
                    memory,
                    file: Some(Mutex::new(file)),
                    path,
                },
                None,
            ),
            Err(e) => {
                let reason = format!(
                    "{}: {e}; revocations are refused until the folder can be used (restart)",
                    path.display()
                );
                (
                    FileRevocations {
                        memory,
                        file: None,
                        path,
                    },
                    Some(reason),
                )
            }
        }
    }

    fn load_and_compact(
        folder: &Path,
        path: &Path,
        memory: &MemoryRevocations,
        now: i64,
    ) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)?;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut live = String::from(
            "# revoked access tokens: <sha-256 of jti, 128 bits, hex> <exp + leeway> <client, base64url>\n",
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split(' ');
            let (Some(key), Some(until)) = (fields.next(), fields.next()) else {
                continue;
            };
            let (Some(key), Ok(until)) = (parse_key(key), until.parse::<i64>()) else {
                continue;
            };
            let client = fields
                .next()
                .and_then(ids_pki::b64::url_decode)
                .and_then(|c| String::from_utf8(c).ok())
                .unwrap_or_default();
            if until >= now && memory.insert(key, &client, until, now) {
                live.push_str(line);
                live.push('\n');
            }
        }
        let temporary = path.with_extension("new");
        {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(live.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(folder)?.sync_all()?;
        std::fs::OpenOptions::new()
            .append(true)
            .mode(0o600)
            .open(path)
    }
}

fn parse_key(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

impl FileRevocations {
    /// Appends and fsyncs one line; a line cut by a failed write is taken back (the file is cut to
    /// its length before), so the next line starts clean.
    fn append(&self, line: &str) -> Result<(), RevocationError> {
        let failed = |e: std::io::Error| RevocationError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let Some(file) = &self.file else {
            return Err(RevocationError::Write {
                path: self.path.clone(),
                reason: "the folder could not be used when the server started".into(),
            });
        };
        let mut file = file.lock().map_err(|_| RevocationError::Write {
            path: self.path.clone(),
            reason: "a previous write failed".into(),
        })?;
        let before = file.metadata().map_err(failed)?.len();
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            let _ = file.set_len(before);
            return Err(failed(e));
        }
        Ok(())
    }
}

impl RevokedTokens for FileRevocations {
    fn revoke<'a>(
        &'a self,
        jti: &'a str,
        client_id: &'a str,
        exp: i64,
        now: i64,
    ) -> StoreFuture<'a, ()> {
        let key = revocation_key(jti);
        let until = exp.saturating_add(REVOCATION_LEEWAY);
        let result = (|| {
            if self.memory.contains(&key, now) {
                return Ok(());
            }
            if !self.memory.has_room(client_id, now) {
                return Err(RevocationError::Full);
            }
            let line = format!(
                "{} {until} {}\n",
                key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                ids_pki::b64::url(client_id.as_bytes())
            );
            self.append(&line)?;
            if self.memory.insert(key, client_id, until, now) {
                Ok(())
            } else {
                Err(RevocationError::Full)
            }
        })();
        Box::pin(std::future::ready(result))
    }

    fn is_revoked<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self
            .memory
            .contains(&revocation_key(jti), now))))
    }

    fn entries(&self) -> usize {
        self.memory.len()
    }
}

impl super::TokenService {
    /// Handles a revocation request (RFC 7009 section 2.1): the client revokes one of its own access
    /// tokens. A token that is not good now (malformed, another server's, expired, already revoked)
    /// needs nothing done and is answered as success (section 2.2); another client's token is refused.
    pub async fn revoke(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        certificate: Option<&super::client_keys::PresentedCertificate>,
        peer: std::net::IpAddr,
        now: i64,
    ) -> Result<(), super::OAuthError> {
        use super::OAuthError;
        let (token, credentials) =
            super::introspection::parse_token_form(body, authorization, &self.authorities)?;
        let clients = self.clients.current();
        let caller = self
            .authenticate(&credentials, &clients.by_id, certificate, peer, now)
            .await?;
        // A revocation list that cannot be asked: refused (503), never "nothing to do".
        let claims = match self.good_claims(&token, now).await {
            Ok(Some(claims)) => claims,
            Ok(None) => return Ok(()),
            Err(e) => {
                // The outage is logged once by the store's health transitions, not per request.
                tracing::debug!(client_id = %caller.identifier, %peer, "revocation refused: {e}");
                return Err(OAuthError::StoreUnavailable);
            }
        };
        let owner = claims.get("client_id").and_then(serde_json::Value::as_str);
        if owner != Some(caller.identifier.as_str()) {
            tracing::warn!(client_id = %caller.identifier, %peer, "revocation of another client's token refused");
            return Err(OAuthError::UnauthorizedClient(
                "this token was issued to another client; a client revokes its own tokens".into(),
            ));
        }
        let (Some(jti), Some(exp)) = (
            claims.get("jti").and_then(serde_json::Value::as_str),
            claims.get("exp").and_then(serde_json::Value::as_i64),
        ) else {
            return Ok(());
        };
        self.revoked
            .revoke(jti, caller.identifier.as_str(), exp, now)
            .await
            .map_err(|e| match e {
                RevocationError::Unavailable(_) => OAuthError::StoreUnavailable,
                RevocationError::Full => {
                    tracing::warn!(client_id = %caller.identifier, %peer, "revocation refused: {e}");
                    OAuthError::TemporarilyUnavailable
                }
                other => {
                    tracing::error!("revocation not recorded: {other}");
                    OAuthError::ServerError
                }
            })?;
        tracing::info!(client_id = %caller.identifier, %peer, jti, "access token revoked");
        self.telemetry
            .token_revoked(caller.identifier.as_str(), jti, exp, peer, now);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn block<T>(f: StoreFuture<'_, T>) -> Result<T, RevocationError> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn revocations_survive_a_restart_until_the_token_expires() {
        let dir = tempfile::tempdir().unwrap();
        let (store, problem) = FileRevocations::open(dir.path(), 1000);
        assert!(problem.is_none());
        block(store.revoke("jti-1", "Job", 2000, 1000)).unwrap();
        block(store.revoke("jti-2", "Job", 1500, 1000)).unwrap();
        assert!(block(store.is_revoked("jti-1", 1000)).unwrap());
        assert!(!block(store.is_revoked("jti-3", 1000)).unwrap());
        // Kept past exp by the verifiers' leeway.
        assert!(block(store.is_revoked("jti-2", 1500 + REVOCATION_LEEWAY)).unwrap());
        drop(store);
        // Restarted after jti-2 expired: jti-1 still refused, jti-2 forgotten and not rewritten.
        let (store, _) = FileRevocations::open(dir.path(), 1600 + REVOCATION_LEEWAY);
        assert!(block(store.is_revoked("jti-1", 1600)).unwrap());
        assert!(!block(store.is_revoked("jti-2", 1600 + REVOCATION_LEEWAY)).unwrap());
        assert_eq!(store.entries(), 1);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !text.contains("jti-1"),
            "the jti itself is not kept: {text}"
        );
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A torn line is skipped.
        std::fs::write(dir.path().join(FILE), "0011\nnot a line\n").unwrap();
        let (store, problem) = FileRevocations::open(dir.path(), 1600);
        assert!(problem.is_none());
        assert_eq!(store.entries(), 0);
    }

    #[test]
    fn an_unusable_folder_refuses_revocations_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let (store, problem) = FileRevocations::open(&blocker.join("revoked"), 1000);
        assert!(problem.unwrap().contains("revocations are refused"));
        let err = block(store.revoke("j", "Job", 2000, 1000)).unwrap_err();
        assert!(matches!(err, RevocationError::Write { .. }), "{err}");
        assert!(!block(store.is_revoked("j", 1000)).unwrap());
    }

    #[test]
    fn one_client_cannot_fill_the_list_for_the_others() {
        let memory = MemoryRevocations::default();
        for i in 0..MAX_REVOKED_PER_CLIENT as u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_be_bytes());
            assert!(memory.insert(key, "Greedy", 5000, 1000));
        }
        assert!(!memory.has_room("Greedy", 1000));
        assert!(memory.has_room("Other", 1000));
        // Once they expire, room again.
        assert!(memory.has_room("Greedy", 5001));
    }
}
