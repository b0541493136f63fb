//! Client authentication with hashed secrets (RFC 6749 section 2.3.1, RFC 9700 section 4.x).
//!
//! argon2id costs ~35 ms per verification, so:
//! - successful verifications are cached, keyed by an HMAC of (client id, presented secret) under a
//!   per-process random key, and bound to the fingerprint of the client's current `HashedSecret`;
//! - failures are never cached;
//! - argon2 runs on a fixed pool of `HashConcurrency` threads that keep their argon2 memory
//!   ([`super::hash_pool`]), behind a semaphore of as many permits; when it stays full for `hash_wait`
//!   the client gets `temporarily_unavailable` instead of an unbounded queue;
//! - failed authentications are rate limited per source address (IPv6 per /64), not per client
//!   ([`super::failure_budget`]: in this process, or shared by every server through PostgreSQL). The
//!   budget is taken *before* a verification and given back on success, so parallel guesses cannot
//!   overrun it; it only gates uncached verifications, so an already-verified secret is accepted even
//!   from an address that has run out;
//! - an unknown client id costs the same argon2 verification as a known one (against a fixed dummy hash),
//!   so response times do not tell which clients exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use ids_proto::ClientSecret;
use ids_secret::Argon2Memory;
use ids_secret::SecretHash;
use tokio::sync::Semaphore;

use super::OAuthError;
use super::failure_budget::FailureBudget;
use super::hash_pool::HashPool;
use crate::access_control::RegisteredClient;

/// Why authentication failed, for the server log only (the client always sees `invalid_client`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    UnknownClient,
    NoSecret,
    WrongSecret,
    Expired,
    /// A secret was presented but the client has no `HashedSecret` (it uses a key or certificate).
    NoSecretRegistered,
}

impl Rejection {
    /// A fixed label for metrics and the audit trail.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::UnknownClient => "unknown_client",
            Rejection::NoSecret => "no_secret",
            Rejection::WrongSecret => "wrong_secret",
            Rejection::Expired => "client_expired",
            Rejection::NoSecretRegistered => "no_secret_registered",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::UnknownClient => "unknown client",
            Rejection::NoSecret => "no client secret presented",
            Rejection::WrongSecret => "wrong secret",
            Rejection::Expired => "client expired (ExpirationDate)",
            Rejection::NoSecretRegistered => {
                "a secret was presented but the client has no HashedSecret (it authenticates with a key or certificate)"
            }
        }
    }
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub cache_ttl: Duration,
    pub cache_size: usize,
    pub hash_concurrency: usize,
    /// How long a request waits for a free argon2 slot before `temporarily_unavailable`.
    pub hash_wait: Duration,
    pub failures_per_minute: u32,
}

struct CacheEntry {
    fingerprint: [u8; 32],
    expires_at: i64,
}

/// Verifies client secrets; shared by all requests.
pub struct Authenticator {
    config: AuthConfig,
    cache_key: hmac::Key,
    cache: Mutex<HashMap<[u8; 32], CacheEntry>>,
    semaphore: Arc<Semaphore>,
    /// `hash_concurrency` threads; a job runs there only with a permit of `semaphore`.
    pool: HashPool,
    /// Failed authentications per source address.
    pub(crate) budget: FailureBudget,
    /// Cache hits and misses, argon2 slot waits.
    telemetry: crate::telemetry::Telemetry,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Outcome of an authentication attempt.
#[derive(Debug)]
pub enum AuthOutcome {
    Authenticated { cached: bool },
    Rejected(Rejection),
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Result<Self, OAuthError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| OAuthError::ServerError)?;
        // Computed now rather than on the first unknown client, on an async thread.
        dummy_hash();
        let pool = HashPool::new(config.hash_concurrency).map_err(|e| {
            tracing::error!(
                "cannot start the argon2 threads (IdentityServer:HashConcurrency): {e}"
            );
            OAuthError::ServerError
        })?;
        Ok(Authenticator {
            semaphore: Arc::new(Semaphore::new(pool.threads())),
            pool,
            budget: FailureBudget::new(config.failures_per_minute),
            config,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            cache: Mutex::new(HashMap::new()),
            telemetry: crate::telemetry::Telemetry::off(),
        })
    }

    /// Reports cache lookups and argon2 waits to `telemetry`.
    pub fn with_telemetry(mut self, telemetry: crate::telemetry::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Keeps the failure budgets in the shared store (`Store:Provider PostgreSql`): one budget per
    /// source address across every server.
    pub fn with_shared_budget(mut self, store: Arc<crate::store::postgres::PgStore>) -> Self {
        self.budget = FailureBudget::shared(self.config.failures_per_minute, store);
        self
    }

    /// Authenticates `secret` for `client` (None when the identifier is unknown) at `now` (Unix seconds).
    pub async fn authenticate(
        &self,
        client_id: &str,
        client: Option<&RegisteredClient>,
        secret: Option<&ClientSecret>,
        peer: IpAddr,
        now: i64,
    ) -> Result<AuthOutcome, OAuthError> {
        let Some(client) = client else {
            if let Some(secret) = secret {
                // Same cost as a real verification; the result is irrelevant.
                let attempt = self.budget.take(peer, now).await?;
                let _ = self.verify(dummy_hash(), secret).await?;
                attempt.spend();
            }
            return Ok(AuthOutcome::Rejected(Rejection::UnknownClient));
        };
        if client.expires_at.is_some_and(|t| t <= now) {
            return Ok(AuthOutcome::Rejected(Rejection::Expired));
        }
        let Some(secret) = secret else {
            return Ok(AuthOutcome::Rejected(Rejection::NoSecret));
        };
        let Some(hash) = client.hash.as_ref() else {
            let attempt = self.budget.take(peer, now).await?;
            let _ = self.verify(dummy_hash(), secret).await?;
            attempt.spend();
            return Ok(AuthOutcome::Rejected(Rejection::NoSecretRegistered));
        };
        let key = self.cache_key(client_id, secret);
        let hit = self.cached(&key, &client.hash_fingerprint, now);
        self.telemetry.secret_cache(hit);
        if hit {
            return Ok(AuthOutcome::Authenticated { cached: true });
        }
        let attempt = self.budget.take(peer, now).await?;
        let ok = self.verify(hash, secret).await?;
        if !hash.is_slow() {
            // A legacy digest answers in microseconds: pay an argon2 verification as unknown ids do, so
            // the first answer's timing does not tell which identifiers exist.
            let _ = self.verify(dummy_hash(), secret).await?;
        }
        if ok {
            // `attempt` is dropped unspent: a success gives the attempt back.
            self.remember(key, client.hash_fingerprint, now);
            Ok(AuthOutcome::Authenticated { cached: false })
        } else {
            attempt.spend();
            Ok(AuthOutcome::Rejected(Rejection::WrongSecret))
        }
    }

    /// Verifies a secret; argon2 runs on the pool, behind the concurrency limit.
    async fn verify(&self, hash: &SecretHash, secret: &ClientSecret) -> Result<bool, OAuthError> {
        if !hash.is_slow() {
            return Ok(hash.verify(secret));
        }
        let hash = hash.clone();
        let secret = secret.clone();
        self.run_hashing(move |memory| hash.verify_in(&secret, memory))
            .await
    }

    /// Runs `job` on the argon2 pool once a permit is free (waiting at most `hash_wait`, else
    /// `temporarily_unavailable`). The permit goes with the job and is released when the job ends,
    /// even if the request is abandoned meanwhile: the pool never has more jobs than threads.
    pub(crate) async fn run_hashing<R, F>(&self, job: F) -> Result<R, OAuthError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Argon2Memory) -> R + Send + 'static,
    {
        let waiting = std::time::Instant::now();
        let permit = tokio::time::timeout(
            self.config.hash_wait,
            self.semaphore.clone().acquire_owned(),
        )
        .await;
        self.telemetry.hash_wait(waiting.elapsed());
        let permit = permit
            .map_err(|_| OAuthError::TemporarilyUnavailable)?
            .map_err(|_| OAuthError::ServerError)?;
        self.pool
            .run(move |memory| {
                let _permit = permit;
                job(memory)
            })
            .await
            .map_err(|_| OAuthError::ServerError)
    }

    fn cache_key(&self, client_id: &str, secret: &ClientSecret) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(&(client_id.len() as u64).to_be_bytes());
        ctx.update(client_id.as_bytes());
        ctx.update(secret.expose().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32], fingerprint: &[u8; 32], now: i64) -> bool {
        if self.config.cache_size == 0 {
            return false;
        }
        let Ok(cache) = self.cache.lock() else {
            return false;
        };
        cache
            .get(key)
            .is_some_and(|e| e.expires_at > now && e.fingerprint == *fingerprint)
    }

    fn remember(&self, key: [u8; 32], fingerprint: [u8; 32], now: i64) {
        if self.config.cache_size == 0 || self.config.cache_ttl.is_zero() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= self.config.cache_size {
            cache.retain(|_, e| e.expires_at > now);
            if cache.len() >= self.config.cache_size {
                // Still full of live entries: drop everything rather than grow; clients re-verify once.
                cache.clear();
            }
        }
        cache.insert(
            key,
            CacheEntry {
                fingerprint,
                expires_at: now + self.config.cache_ttl.as_secs() as i64,
            },
        );
    }

    /// Number of cached successful verifications (for tests and metrics).
    pub fn cache_len(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// A fixed argon2id hash (production parameters) verified for unknown client ids.
fn dummy_hash() -> &'static SecretHash {
    static DUMMY: std::sync::OnceLock<SecretHash> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        SecretHash::argon2id(&ClientSecret::new("unknown-client"))
            .unwrap_or(SecretHash::Sha256([0; 32]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: &str) -> RegisteredClient {
        let hash = SecretHash::danger_weak_argon2id(&ClientSecret::new(secret)).expect("hash");
        let text = hash.to_attribute();
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
        );
        RegisteredClient {
            audiences: None,
            require_dpop: false,
            identifier: "Job".into(),
            hash: Some(hash),
            hash_fingerprint: fingerprint,
            profile: None,
            display_name: None,
            expires_at: None,
            thumbprints: Vec::new(),
            tls_subject_dn: None,
            tls_san: None,
        }
    }

    fn auth(failures_per_minute: u32) -> Authenticator {
        auth_waiting(failures_per_minute, Duration::from_secs(1))
    }

    fn auth_waiting(failures_per_minute: u32, hash_wait: Duration) -> Authenticator {
        Authenticator::new(AuthConfig {
            cache_ttl: Duration::from_secs(60),
            cache_size: 100,
            hash_concurrency: 1,
            hash_wait,
            failures_per_minute,
        })
        .expect("authenticator")
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn check(
        a: &Authenticator,
        c: &RegisteredClient,
        secret: &str,
        now: i64,
    ) -> Result<AuthOutcome, OAuthError> {
        a.authenticate("Job", Some(c), Some(&ClientSecret::new(secret)), PEER, now)
            .await
    }

    #[tokio::test]
    async fn successes_are_cached_failures_are_not() {
        let a = auth(100);
        let c = client("right");
        assert!(matches!(
            check(&a, &c, "right", 0).await,
            Ok(AuthOutcome::Authenticated { cached: false })
        ));
        assert!(matches!(
            check(&a, &c, "right", 1).await,
            Ok(AuthOutcome::Authenticated { cached: true })
        ));
        assert!(matches!(
            check(&a, &c, "wrong", 1).await,
            Ok(AuthOutcome::Rejected(Rejection::WrongSecret))
        ));
        assert!(matches!(
            check(&a, &c, "wrong", 1).await,
            Ok(AuthOutcome::Rejected(Rejection::WrongSecret))
        ));
        assert_eq!(a.cache_len(), 1);
        // TTL elapsed: verified again.
        assert!(matches!(
            check(&a, &c, "right", 61).await,
            Ok(AuthOutcome::Authenticated { cached: false })
        ));
    }

    #[tokio::test]
    async fn a_changed_hash_drops_the_cached_verification() {
        let a = auth(100);
        let old = client("old");
        assert!(matches!(
            check(&a, &old, "old", 0).await,
            Ok(AuthOutcome::Authenticated { .. })
        ));
        let new = client("new");
        // The old secret was cached for the old hash only.
        assert!(matches!(
            check(&a, &new, "old", 1).await,
            Ok(AuthOutcome::Rejected(Rejection::WrongSecret))
        ));
        assert!(matches!(
            check(&a, &new, "new", 1).await,
            Ok(AuthOutcome::Authenticated { cached: false })
        ));
    }

    #[tokio::test]
    async fn expired_clients_are_refused_even_when_cached() {
        let a = auth(100);
        let mut c = client("s");
        assert!(matches!(
            check(&a, &c, "s", 0).await,
            Ok(AuthOutcome::Authenticated { .. })
        ));
        c.expires_at = Some(10);
        assert!(matches!(
            check(&a, &c, "s", 10).await,
            Ok(AuthOutcome::Rejected(Rejection::Expired))
        ));
    }

    #[tokio::test]
    async fn failure_budget_is_per_source_refills_and_spares_cached_secrets() {
        let a = auth(2);
        let c = client("s");
        assert!(matches!(
            check(&a, &c, "s", 0).await,
            Ok(AuthOutcome::Authenticated { .. })
        ));
        for _ in 0..2 {
            assert!(matches!(
                check(&a, &c, "x", 0).await,
                Ok(AuthOutcome::Rejected(_))
            ));
        }
        assert!(matches!(
            check(&a, &c, "x", 0).await,
            Err(OAuthError::SlowDown {
                retry_after_secs: 30
            })
        ));
        // The already-verified secret still works from the exhausted address.
        assert!(matches!(
            check(&a, &c, "s", 0).await,
            Ok(AuthOutcome::Authenticated { cached: true })
        ));
        // Another address verifying an uncached secret of the same client is not locked out.
        let other: IpAddr = "192.0.2.7".parse().expect("ip");
        let fresh = client("fresh");
        let r = a
            .authenticate(
                "Job",
                Some(&fresh),
                Some(&ClientSecret::new("fresh")),
                other,
                0,
            )
            .await;
        assert!(
            matches!(r, Ok(AuthOutcome::Authenticated { cached: false })),
            "{r:?}"
        );
        // 30 s later one attempt is available again.
        assert!(matches!(
            check(&a, &c, "x", 30).await,
            Ok(AuthOutcome::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn unknown_clients_spend_the_budget_and_successes_refund_it() {
        let a = auth(2);
        let c = client("s");
        for _ in 0..2 {
            let r = a
                .authenticate("Nobody", None, Some(&ClientSecret::new("x")), PEER, 0)
                .await;
            assert!(
                matches!(r, Ok(AuthOutcome::Rejected(Rejection::UnknownClient))),
                "{r:?}"
            );
        }
        let r = a
            .authenticate("Nobody", None, Some(&ClientSecret::new("x")), PEER, 0)
            .await;
        assert!(matches!(r, Err(OAuthError::SlowDown { .. })), "{r:?}");
        // A success does not consume the budget: after refilling one attempt, a good secret and then a
        // wrong one both get an answer.
        assert!(matches!(
            check(&a, &c, "s", 30).await,
            Ok(AuthOutcome::Authenticated { cached: false })
        ));
        assert!(matches!(
            check(&a, &c, "x", 30).await,
            Ok(AuthOutcome::Rejected(_))
        ));
    }

    #[tokio::test]
    async fn busy_answers_give_the_attempt_back() {
        let a = auth_waiting(2, Duration::from_millis(1));
        let c = client("s");
        // Every argon2 slot is taken: each request ends in 503 before any verdict.
        let held = a.semaphore.clone().acquire_owned().await.expect("permit");
        for _ in 0..5 {
            let r = check(&a, &c, "s", 0).await;
            assert!(
                matches!(r, Err(OAuthError::TemporarilyUnavailable)),
                "{r:?}"
            );
        }
        drop(held);
        // The budget is intact: two wrong guesses are still answered, the third is refused.
        for _ in 0..2 {
            assert!(matches!(
                check(&a, &c, "x", 0).await,
                Ok(AuthOutcome::Rejected(_))
            ));
        }
        assert!(matches!(
            check(&a, &c, "x", 0).await,
            Err(OAuthError::SlowDown { .. })
        ));
    }

    /// Issue 13 point 7: a flood of distinct addresses used to clear the whole table, resetting the budget
    /// of an address that had exhausted it.
    #[tokio::test]
    async fn an_exhausted_address_stays_limited_after_a_flood_of_other_addresses() {
        let a = auth(2);
        let c = client("s");
        for _ in 0..2 {
            assert!(matches!(
                check(&a, &c, "x", 0).await,
                Ok(AuthOutcome::Rejected(_))
            ));
        }
        // super::super::failure_budget::MAX_TRACKED_SOURCES other addresses fail once each (the accounting of a wrong secret, without
        // the argon2 verification): the table fills up and has to make room, more than once.
        for i in 0..super::super::failure_budget::MAX_TRACKED_SOURCES as u32 {
            let other = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            a.budget
                .take(other, 0)
                .await
                .expect("a fresh address has a budget")
                .spend();
        }
        let tracked = a.budget.tracked();
        assert!(
            tracked <= super::super::failure_budget::MAX_TRACKED_SOURCES,
            "{tracked}"
        );
        let r = check(&a, &c, "x", 0).await;
        assert!(
            matches!(
                r,
                Err(OAuthError::SlowDown {
                    retry_after_secs: 30
                })
            ),
            "{r:?}"
        );
        // And it refills as usual.
        assert!(matches!(
            check(&a, &c, "x", 30).await,
            Ok(AuthOutcome::Rejected(_))
        ));
    }
}
