//! The server's public keys the agent verifies tokens with: pinned certificates (offline), or the JWKS
//! the server publishes, re-fetched when a token names a `kid` the agent has not seen, at most once per
//! `IdentityServer:JwksRefreshSeconds` so a stream of forged `kid`s cannot make it hammer the server.

use std::sync::{Arc, RwLock};

use ids_jose::{AccessToken, KeySet, Validation, Verifier};

use crate::client::discovery::Discovery;
use crate::client::http::{Http, read_body, summarize};
use crate::error::{AgentError, SetupError};
use crate::settings::{AgentKeys, Settings, TokenValidation};

#[derive(Debug)]
pub enum ServerKeys {
    Pinned(Verifier),
    Jwks(JwksKeys),
}

#[derive(Debug)]
pub struct JwksKeys {
    validation: Validation,
    interval: i64,
    current: RwLock<Option<Arc<Verifier>>>,
    /// When the JWKS was last fetched (agent clock) and how that ended; the lock also makes fetches
    /// single-flight.
    last_fetch: tokio::sync::Mutex<LastFetch>,
    fetches: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct LastFetch {
    at: Option<i64>,
    error: Option<AgentError>,
}

impl ServerKeys {
    pub fn new(settings: &Settings, keys: &AgentKeys) -> Result<Self, AgentError> {
        let validation = Validation {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway_secs: settings.clock_skew.as_secs(),
        };
        Ok(match &settings.token_validation {
            TokenValidation::Pinned(_) => {
                let keys = KeySet::from_certificates(
                    keys.pinned
                        .iter()
                        .map(|p| (&p.certificate, p.origin.clone())),
                )
                .map_err(|e| SetupError::PinnedKeys(std::sync::Arc::new(e)))?;
                ServerKeys::Pinned(Verifier::new(keys, validation))
            }
            TokenValidation::Jwks { refresh_interval } => ServerKeys::Jwks(JwksKeys {
                validation,
                interval: refresh_interval.as_secs() as i64,
                current: RwLock::new(None),
                last_fetch: tokio::sync::Mutex::new(LastFetch::default()),
                fetches: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }

    /// How many times the JWKS was fetched (zero when pinning).
    pub fn jwks_fetches(&self) -> u64 {
        match self {
            ServerKeys::Pinned(_) => 0,
            ServerKeys::Jwks(j) => j.fetches.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Verifies `token` at `now`. `discovery` is only called in JWKS mode.
    ///
    /// `from_server` says the token was just received from the token endpoint over verified TLS: an
    /// unknown `kid` then means the server rotated its key, and the JWKS is re-fetched at once. A token
    /// presented by anyone else re-fetches at most once per interval.
    pub async fn verify<F, Fut>(
        &self,
        http: &Http,
        discovery: F,
        token: &str,
        now: i64,
        from_server: bool,
    ) -> Result<AccessToken, AgentError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<Discovery>, AgentError>>,
    {
        let jwks = match self {
            ServerKeys::Pinned(verifier) => return Ok(verifier.verify(token, now)?),
            ServerKeys::Jwks(jwks) => jwks,
        };
        let seen = jwks.current();
        if let Some(verifier) = &seen {
            match verifier.verify(token, now) {
                Ok(claims) => return Ok(claims),
                Err(e) if e.is_unknown_key() => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Single flight: whoever holds the lock fetches; the others then use what it fetched.
        let mut last_fetch = jwks.last_fetch.lock().await;
        let latest = jwks.current();
        let refreshed_meanwhile = match (&seen, &latest) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, Some(_)) => true,
            _ => false,
        };
        let recent = last_fetch.at.is_some_and(|t| now - t < jwks.interval);
        let verifier = match latest {
            Some(latest) if refreshed_meanwhile => latest,
            // Fetched too recently: the unknown kid stays unknown.
            Some(latest) if recent && !from_server => latest,
            None if recent && !from_server => {
                // The last fetch failed moments ago: do not let every token knock again.
                return Err(last_fetch
                    .error
                    .clone()
                    .unwrap_or_else(|| AgentError::Setup(SetupError::JwksNotAvailable)));
            }
            _ => {
                last_fetch.at = Some(now);
                let fetched = match discovery().await {
                    Ok(d) => jwks.fetch(http, &d).await,
                    Err(e) => Err(e),
                };
                last_fetch.error = fetched.as_ref().err().cloned();
                let fresh = Arc::new(fetched?);
                if let Ok(mut current) = jwks.current.write() {
                    *current = Some(fresh.clone());
                }
                fresh
            }
        };
        drop(last_fetch);
        Ok(verifier.verify(token, now)?)
    }
}

impl JwksKeys {
    fn current(&self) -> Option<Arc<Verifier>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    async fn fetch(&self, http: &Http, discovery: &Discovery) -> Result<Verifier, AgentError> {
        let url = discovery.jwks_uri.clone().ok_or_else(|| AgentError::Malformed {
            url: discovery.url.clone(),
            detail: "the discovery document has no `jwks_uri`, so IdentityServer:TokenValidation cannot be Jwks; configure the server's certificate instead".into(),
        })?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let response = http.send(&url, |c| c.get(&url)).await?;
        let status = response.status();
        let body = read_body(response, &url, "JWKS").await?;
        if !status.is_success() {
            return Err(AgentError::Malformed {
                url,
                detail: format!(
                    "HTTP {status} for the JWKS: {}",
                    summarize(&String::from_utf8_lossy(&body))
                ),
            });
        }
        let keys = KeySet::from_jwks(&body).map_err(|e| AgentError::Malformed {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        for skipped in keys.skipped() {
            tracing::warn!("{url}: {skipped}");
        }
        Ok(Verifier::new(keys, self.validation.clone()))
    }
}
