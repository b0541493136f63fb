//! Automatic key management (`IdentityServer:KeyManagement Automatic`): the server makes its own
//! token-signing keys, keeps them encrypted for its `EncryptionCertificate` in the store (the data
//! folder, or PostgreSQL shared by every server), publishes each new key `PropagationDays` before
//! it signs, signs with it `RotationDays`, and keeps it published `RetentionDays` after
//! ([`schedule`]).
//!
//! Several servers on one PostgreSQL database draw the same plan from the same keys; the one that
//! finds a key due makes it under an advisory lock, after reading the keys again, so exactly one key
//! is made per period and every server signs with it once it activates.
//!
//! Each key is stored with a self-signed certificate (`CN=identity-server signing key <kid>`), so it
//! is published as a PFX key is (`x5c`, `x5t`): verifiers that read the JWKS need nothing new. They
//! must read the JWKS, though: a pinned certificate stops working at the first rotation (`agent
//! check` says so).
//!
//! # Layout
//! - [`schedule`]: the plan, a pure function of the keys' times and the clock.
//! - [`folder`]: the embedded store (`<Deliveries:DataFolder>/signing-keys/`).
//! - here: [`KeyManager`] (making, sealing, opening keys; refreshing what is in force) and the
//!   [`KeyStore`] trait the PostgreSQL store (`crate::store::postgres::keys`) implements too.

pub mod folder;
pub mod schedule;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ids_jose::TokenSigner;
use ids_pki::{Algorithm, Certificate, SigningKey, jwk};
use ids_runtime::Clock;
use ids_seal::encrypted_file::{DecryptionKey, Decryptor, Encryptor, Recipient};

use super::in_force::{InForce, PublishContext, Signing};
use crate::oauth::dpop::NonceKey;
use crate::settings::oauth::ManagedKeys;
use schedule::{KeyTimes, Plan, Policy, plan};

/// How long after a key left the JWKS it is deleted from the store.
const DELETE_MARGIN_SECS: i64 = 86_400;

/// How long the certificate of a managed key is valid beyond its planned retirement: it may sign
/// longer when no server made its successor on time.
const CERTIFICATE_MARGIN_SECS: i64 = 365 * 86_400;

/// A managed key as stored: public certificate, sealed private key.
#[derive(Clone)]
pub struct StoredKey {
    /// The RFC 7638 thumbprint of the public key (the tokens' `kid`).
    pub kid: String,
    pub algorithm: Algorithm,
    pub created: i64,
    pub activates: i64,
    /// DER of the self-signed certificate.
    pub certificate: Vec<u8>,
    /// The PKCS#8 private key, encrypted for the `EncryptionCertificate` (IDSENC).
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .field("activates", &self.activates)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    fn times(&self) -> KeyTimes {
        KeyTimes {
            created: self.created,
            activates: self.activates,
        }
    }
}

/// Why the managed keys could not be read or changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{0}")]
    Store(String),
    #[error("managed signing key {kid}: {reason}")]
    Key { kid: String, reason: String },
}

/// What a key store answers: boxed so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KeyStoreError>> + Send + 'a>>;

/// Decides, from the keys as they are under the store's lock, whether to add one (and which).
pub type Decide<'a> =
    Box<dyn FnOnce(&[StoredKey]) -> Result<Option<StoredKey>, KeyStoreError> + Send + 'a>;

/// Where managed keys are kept.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// Every key.
    fn load(&self) -> StoreFuture<'_, Vec<StoredKey>>;
    /// Under a lock every server sharing the store takes: reads the keys, lets `decide` make one,
    /// stores it, and returns the keys as they are then.
    fn add_if<'a>(&'a self, decide: Decide<'a>) -> StoreFuture<'a, Vec<StoredKey>>;
    /// Deletes the keys `kids` (past their retention).
    fn delete<'a>(&'a self, kids: &'a [String]) -> StoreFuture<'a, ()>;
    /// Where the keys are, for messages.
    fn describe(&self) -> String;
}

/// One key's place in the schedule, for `check`, the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub kid: String,
    pub algorithm: Algorithm,
    pub created: i64,
    pub activates: i64,
    /// When it stops signing (as planned now).
    pub retires: i64,
    /// When it leaves the JWKS.
    pub unpublished_at: i64,
    pub state: KeyState,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    Signing,
    /// Published, no longer signing.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Signing => "signing",
            KeyState::Retired => "retired",
        }
    }
}

/// The key schedule as it stands: what `check` prints and the metrics show.
pub fn statuses(keys: &[StoredKey], plan: &Plan) -> Vec<KeyStatus> {
    plan.published
        .iter()
        .map(|&i| {
            let k = &keys[i];
            let state = if Some(i) == plan.signing {
                KeyState::Signing
            } else if plan
                .signing
                .is_some_and(|s| keys[s].activates < k.activates)
            {
                KeyState::Pending
            } else {
                KeyState::Retired
            };
            KeyStatus {
                kid: k.kid.clone(),
                algorithm: k.algorithm,
                created: k.created,
                activates: k.activates,
                retires: plan.retires[i],
                unpublished_at: plan.unpublished_at[i],
                state,
            }
        })
        .collect()
}

/// What is in force after a refresh.
#[derive(Debug)]
pub struct Refreshed {
    pub signing: Arc<Signing>,
    /// The signing key changed (it was made, or a new one activated).
    pub changed: bool,
    /// The other published keys' certificates, with the algorithm each signs with.
    pub others: Vec<(Certificate, Algorithm)>,
    pub schedule: Vec<KeyStatus>,
    /// When to look again at the latest.
    pub next_change: Option<i64>,
}

/// Makes, stores, opens and schedules the managed keys.
#[derive(Debug)]
pub struct KeyManager {
    store: Arc<dyn KeyStore>,
    settings: ManagedKeys,
    /// The `EncryptionCertificate`: new keys are sealed for it.
    recipient: Recipient,
    /// Its private key: opens the keys.
    decryption: DecryptionKey,
    /// The signing key opened last (opening means decrypting: once per key).
    current: Mutex<Option<Arc<Signing>>>,
    /// Read again under the store's lock (the wait for it may be long).
    clock: Arc<dyn Clock>,
}

impl KeyManager {
    pub fn new(
        store: Arc<dyn KeyStore>,
        settings: ManagedKeys,
        recipient: Recipient,
        decryption: DecryptionKey,
        clock: Arc<dyn Clock>,
    ) -> KeyManager {
        KeyManager {
            store,
            settings,
            recipient,
            decryption,
            current: Mutex::new(None),
            clock,
        }
    }

    pub fn policy(&self) -> Policy {
        Policy {
            propagation: self.settings.propagation_secs,
            rotation: self.settings.rotation_secs,
            retention: self.settings.retention_secs,
        }
    }

    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    /// Reads the keys, makes the one the plan wants (under the store's lock), deletes expired ones,
    /// and opens the signing key.
    pub async fn refresh(&self, now: i64) -> Result<Refreshed, KeyStoreError> {
        let policy = self.policy();
        let mut keys = self.store.load().await?;
        let mut plan = plan(&times(&keys), policy, now);
        if plan.create.is_some() {
            let decide: Decide<'_> = Box::new(move |keys: &[StoredKey]| {
                // Read again under the lock, at the time it was got: another server may have made
                // the key meanwhile.
                let now = self.clock.now().max(now);
                match schedule::plan(&times(keys), policy, now).create {
                    Some(activates) => self.make(now, activates).map(Some),
                    None => Ok(None),
                }
            });
            keys = self.store.add_if(decide).await?;
            plan = schedule::plan(&times(&keys), policy, now);
        }
        // Deleted a day after they left the JWKS: a server whose clock runs behind may still publish
        // them meanwhile (and never one that still signs: the plan keeps the signing key).
        let deletable: Vec<usize> = plan
            .expired
            .iter()
            .copied()
            .filter(|&i| plan.unpublished_at[i].saturating_add(DELETE_MARGIN_SECS) < now)
            .collect();
        if !deletable.is_empty() {
            let kids: Vec<String> = deletable.iter().map(|&i| keys[i].kid.clone()).collect();
            if let Err(e) = self.store.delete(&kids).await {
                tracing::warn!("managed keys past their retention not deleted: {e}");
            }
        }
        let signing_index = plan.signing.ok_or_else(|| {
            KeyStoreError::Store("no managed key is active after making one".into())
        })?;
        let signing = self.open(&keys[signing_index])?;
        let changed = {
            let mut current = match self.current.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = current
                .as_ref()
                .is_none_or(|c| c.signer.kid() != signing.signer.kid());
            *current = Some(signing.clone());
            changed
        };
        let mut others = Vec::new();
        for &i in plan.published.iter().filter(|&&i| i != signing_index) {
            others.push((certificate(&keys[i])?, keys[i].algorithm));
            // A key that will sign must open here too: say so now, not at its activation.
            if keys[i].activates > now
                && let Err(e) = self.unseal(&keys[i])
            {
                tracing::error!("{e}; this server cannot sign with it when it activates");
            }
        }
        Ok(Refreshed {
            signing,
            changed,
            others,
            schedule: statuses(&keys, &plan),
            // Also when a key past its retention is due for deletion.
            next_change: plan
                .expired
                .iter()
                .map(|&i| plan.unpublished_at[i].saturating_add(DELETE_MARGIN_SECS + 1))
                .filter(|t| *t > now)
                .chain(plan.next_change)
                .min(),
        })
    }

    /// The schedule at `now` without changing anything (`check`).
    pub async fn schedule(&self, now: i64) -> Result<(Vec<KeyStatus>, Plan), KeyStoreError> {
        let keys = self.store.load().await?;
        Ok(schedule_of(&keys, self.policy(), now))
    }

    /// A new key activating at `activates`, sealed for the encryption certificate.
    fn make(&self, now: i64, activates: i64) -> Result<StoredKey, KeyStoreError> {
        let failed =
            |reason: String| KeyStoreError::Store(format!("cannot make a signing key: {reason}"));
        let (key, pkcs8) =
            SigningKey::generate(self.settings.algorithm).map_err(|e| failed(e.to_string()))?;
        let kid = jwk::thumbprint(&key.public_key());
        let not_after = activates
            .saturating_add(self.settings.rotation_secs)
            .saturating_add(self.settings.retention_secs)
            .saturating_add(CERTIFICATE_MARGIN_SECS);
        let issued = ids_devpki::self_signed_signing(
            &pkcs8,
            &format!("{} {kid}", ids_proto::discovery::MANAGED_KEY_SUBJECT),
            now - 300,
            not_after,
        )
        .map_err(|e| failed(e.to_string()))?;
        let mut sealer = Encryptor::new(Vec::new(), std::slice::from_ref(&self.recipient))
            .map_err(|e| failed(e.to_string()))?;
        sealer
            .write_all(&pkcs8)
            .map_err(|e| failed(e.to_string()))?;
        let sealed = sealer.finish().map_err(|e| failed(e.to_string()))?;
        tracing::info!(
            %kid,
            algorithm = self.settings.algorithm.as_str(),
            activates = %ids_pki::cert::format_time(activates),
            "made a new signing key: published now, signing from its activation"
        );
        Ok(StoredKey {
            kid,
            algorithm: self.settings.algorithm,
            created: now,
            activates,
            certificate: issued.cert_der,
            sealed,
        })
    }

    /// The PKCS#8 private key of `stored`, decrypted with the encryption certificate's key.
    fn unseal(&self, stored: &StoredKey) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyStoreError> {
        let bad = |reason: String| KeyStoreError::Key {
            kid: stored.kid.clone(),
            reason,
        };
        let mut opened = Decryptor::new(
            std::io::Cursor::new(&stored.sealed),
            std::slice::from_ref(&self.decryption),
        )
        .map_err(|e| {
            bad(format!(
                "cannot be decrypted with EncryptionCertificate `{}` ({e}); the key was sealed for another certificate: put that PFX back, or delete the key from the store to make a new one",
                self.decryption.name().subject
            ))
        })?;
        let mut pkcs8 = zeroize::Zeroizing::new(Vec::new());
        opened
            .read_to_end(&mut pkcs8)
            .map_err(|e| bad(format!("damaged: {e}")))?;
        Ok(pkcs8)
    }

    /// The signing key of `stored`: decrypted with the encryption certificate's key (once).
    fn open(&self, stored: &StoredKey) -> Result<Arc<Signing>, KeyStoreError> {
        if let Ok(current) = self.current.lock()
            && let Some(c) = current.as_ref().filter(|c| c.signer.kid() == stored.kid)
        {
            return Ok(c.clone());
        }
        let bad = |reason: String| KeyStoreError::Key {
            kid: stored.kid.clone(),
            reason,
        };
        let pkcs8 = self.unseal(stored)?;
        let key = SigningKey::from_pkcs8(&pkcs8)
            .and_then(|k| k.with_algorithm(stored.algorithm))
            .map_err(|e| bad(e.to_string()))?;
        let certificate = certificate(stored)?;
        if !key.matches(&certificate) {
            return Err(bad(
                "its certificate is not the one of its private key".into()
            ));
        }
        Ok(Arc::new(Signing {
            nonce_key: NonceKey::derive(&pkcs8),
            signer: TokenSigner::new(key, &certificate),
            certificate,
        }))
    }

    /// Refreshes and puts what changed in force: the JWKS first, then the new signing key.
    pub async fn apply(
        &self,
        keys: &InForce,
        context: &PublishContext,
        now: i64,
    ) -> Result<Refreshed, KeyStoreError> {
        let mut refreshed = self.refresh(now).await?;
        let managed = refreshed.others.clone();
        // Compared with the key in force (not the one opened last): a publication that failed
        // before is done again.
        refreshed.changed = keys.signing().signer.kid() != refreshed.signing.signer.kid();
        let signing = refreshed.changed.then(|| refreshed.signing.clone());
        keys.publish(context, signing, |o| o.managed = managed)
            .map_err(|e| {
                KeyStoreError::Store(format!("the managed keys cannot be published: {e}"))
            })?;
        Ok(refreshed)
    }
}

/// The plan for `keys` at `now`, with each key's place in it.
pub fn schedule_of(keys: &[StoredKey], policy: Policy, now: i64) -> (Vec<KeyStatus>, Plan) {
    let plan = plan(&times(keys), policy, now);
    (statuses(keys, &plan), plan)
}

fn times(keys: &[StoredKey]) -> Vec<KeyTimes> {
    keys.iter().map(StoredKey::times).collect()
}

fn certificate(stored: &StoredKey) -> Result<Certificate, KeyStoreError> {
    Certificate::from_der("managed signing key", &stored.certificate).map_err(|e| {
        KeyStoreError::Key {
            kid: stored.kid.clone(),
            reason: e.to_string(),
        }
    })
}

/// Follows the schedule while the server runs: looks again at the next planned change, and at
/// least every `interval` (another server may have made a key); logs and counts what changed.
pub async fn run(
    manager: Arc<KeyManager>,
    keys: Arc<InForce>,
    context: PublishContext,
    clock: Arc<dyn Clock>,
    telemetry: crate::telemetry::Telemetry,
    interval: std::time::Duration,
    first_change: Option<i64>,
) {
    let regular = clock.now().saturating_add(interval.as_secs() as i64);
    let mut next_check = first_change.map_or(regular, |t| t.min(regular));
    let mut failing = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now();
        if now < next_check {
            continue;
        }
        match manager.apply(&keys, &context, now).await {
            Ok(refreshed) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("managed signing keys read again");
                }
                if refreshed.changed {
                    tracing::info!(
                        kid = refreshed.signing.signer.kid(),
                        "managed signing key in force: new tokens are signed with it"
                    );
                }
                telemetry.key_schedule(&refreshed.schedule);
                let regular = now.saturating_add(interval.as_secs() as i64);
                next_check = refreshed.next_change.map_or(regular, |t| t.min(regular));
            }
            Err(e) => {
                // Once per episode (a store outage is logged by the store itself).
                if !failing {
                    tracing::error!(
                        "managed signing keys: {e}; the keys in force stay, retrying every 10 s"
                    );
                    failing = true;
                } else {
                    tracing::debug!("managed signing keys: {e}");
                }
                next_check = now.saturating_add(10);
            }
        }
    }
}
