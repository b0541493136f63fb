//! The agent: obtains client-credentials tokens from the identity server over HTTPS and verifies each
//! one with the server's public key before using it.
//!
//! # Layout
//! - [`settings`]: `appsettings.json` + `appsettings.agent.json` -> validated [`Settings`] (plain
//!   data: where the keys are) and [`AgentKeys`] (what the files held).
//! - [`tls`]: what the agent trusts for HTTPS (system store, or only the configured CAs/certificates),
//!   server pinning (`Tls:ServerPinning`), and the client certificate it presents.
//! - [`client`]: talking to the server: [`client::http`] (timeouts, retries, error classes),
//!   [`client::discovery`], [`client::tokens`] (the client-credentials grant).
//! - [`server_keys`]: token verification with pinned certificates or the server's JWKS.
//! - [`Agent`] (here): the facade: cached tokens, refreshed before expiry, one request in flight.
//! - [`check`]: `agent check`, the configuration and connectivity report.
//! - [`files`]: the agent's files: the [`files::vault`] every file it writes goes through (encrypted
//!   with its certificate when `EncryptFile` is true), its encrypted [`files::logs`], and
//!   [`files::crypt`], one file encrypted or decrypted.
//! - [`delivery`]: sending files to the server (`agent push`) and the outbox service (`agent run`);
//!   the HTTP side of it is [`client::deliveries`].
//! - [`commands`]: the `agent` command line, one module per subcommand; `main.rs` only dispatches.
//! - [`exit`]: [`ExitStatus`], the exit codes, and the one mapping from errors to them.
//! - Plumbing the commands use: [`logging`] (standard error and the log file), [`progress`] (progress
//!   bars). `--password-env` / `--password-file` are read by `ids_config::password`, shared with
//!   `ids-keytool`. The clock, the retry policy, the shutdown signal and the rustls provider are
//!   `ids_runtime`'s, shared with the server.
//!
//! The token verifier itself is [`ids_jose::Verifier`], usable by any Rust service; this crate never
//! depends on the server or axum.

pub mod check;
pub mod client;
pub mod commands;
pub mod delivery;
pub mod error;
pub mod exit;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod progress;
pub mod server_keys;
pub mod settings;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use client::discovery::Discovery;
pub use client::tokens::Token;
pub use error::AgentError;
pub use exit::ExitStatus;
pub use ids_jose::AccessToken;
pub use ids_proto::BearerToken;
pub use ids_runtime::clock::{self, Clock, ManualClock, SystemClock};
pub use settings::{AgentKeys, Settings};

use client::http::Http;
use server_keys::ServerKeys;

/// One cache slot per client: its lock is held while a token is fetched, so concurrent callers wait
/// for that one request instead of sending their own (and share its failure instead of repeating it).
#[derive(Debug, Default)]
struct Slot {
    /// Incremented after every fetch, read before waiting for the lock.
    generation: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    token: Option<Arc<Token>>,
    last_error: Option<AgentError>,
}

/// The agent's connection to the identity server. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Agent {
    settings: Settings,
    keys: AgentKeys,
    http: Http,
    clock: Arc<dyn Clock>,
    discovery: tokio::sync::OnceCell<Arc<Discovery>>,
    server_keys: ServerKeys,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    token_requests: AtomicU64,
    /// `Metrics:Urls` of `agent run`: what it counts (None: metrics off).
    metrics: Option<Arc<metrics::AgentMetrics>>,
    /// `OpenId:DPoP`: the key proofs are made with, and the server's nonce.
    dpop: Option<Arc<client::dpop::DpopClient>>,
}

impl Agent {
    /// Counts deliveries and records token times in `metrics` (`agent run` with `Metrics:Urls`).
    pub fn with_metrics(mut self, metrics: Arc<metrics::AgentMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics, when on.
    pub fn metrics(&self) -> Option<&metrics::AgentMetrics> {
        self.metrics.as_deref()
    }

    /// An agent for `settings` with the keys they name ([`settings::LoadedSettings`] has both).
    pub fn new(settings: Settings, keys: AgentKeys) -> Result<Self, AgentError> {
        Self::with_clock(settings, keys, Arc::new(SystemClock))
    }

    /// An agent reading time from `clock` (tests move it forward instead of sleeping).
    pub fn with_clock(
        settings: Settings,
        keys: AgentKeys,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AgentError> {
        Ok(Agent {
            http: Http::new(&settings, &keys)?,
            server_keys: ServerKeys::new(&settings, &keys)?,
            settings,
            keys,
            clock,
            discovery: tokio::sync::OnceCell::new(),
            slots: Mutex::new(HashMap::new()),
            token_requests: AtomicU64::new(0),
            metrics: None,
            dpop: None,
        })
    }

    /// Binds the agent's tokens to `dpop`'s key (RFC 9449): a proof with every request.
    pub fn with_dpop(mut self, dpop: Arc<client::dpop::DpopClient>) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// The DPoP key, when `OpenId:DPoP` is on.
    pub fn dpop(&self) -> Option<&client::dpop::DpopClient> {
        self.dpop.as_deref()
    }

    /// How `token` is sent to the server's API: `Bearer`, or `DPoP` with a proof.
    pub fn api_auth<'a>(&'a self, token: &'a Token) -> client::deliveries::ApiAuth<'a> {
        client::deliveries::ApiAuth {
            token: &token.access_token,
            dpop: self.dpop.as_deref().filter(|_| {
                token
                    .token_type
                    .eq_ignore_ascii_case(ids_proto::headers::DPOP_SCHEME)
            }),
            now: self.now(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The keys the settings name.
    pub fn keys(&self) -> &AgentKeys {
        &self.keys
    }

    /// The HTTPS client (for the server's other APIs, e.g. deliveries).
    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The server's discovery document, fetched once (a failure is not remembered).
    pub async fn discovery(&self) -> Result<Arc<Discovery>, AgentError> {
        self.discovery
            .get_or_try_init(|| async {
                Discovery::fetch(&self.http, &self.settings)
                    .await
                    .map(Arc::new)
            })
            .await
            .cloned()
    }

    /// A verified token for the default client, from the cache while it is fresh.
    pub async fn token(&self) -> Result<Arc<Token>, AgentError> {
        self.token_for(self.settings.default_client.clone().as_str())
            .await
    }

    /// A verified token for `client_id`, from the cache while it is fresh.
    ///
    /// When a refresh fails but the cached token has not expired yet, the cached token is returned (and
    /// the failure logged): the refresh margin exists precisely to ride out a short outage.
    pub async fn token_for(&self, client_id: &str) -> Result<Arc<Token>, AgentError> {
        if self.settings.client(Some(client_id)).is_none() {
            return Err(self.unknown_client(client_id));
        }
        let slot = self.slot(client_id)?;
        let generation = slot.generation.load(Ordering::SeqCst);
        let mut state = slot.state.lock().await;
        let now = self.now();
        if let Some(token) = state.token.as_ref().filter(|t| t.is_fresh(now)) {
            return Ok(token.clone());
        }
        let still_valid = state.token.clone().filter(|t| now < t.claims.expires_at);
        // Someone fetched while this caller waited, and failed: share that outcome.
        if slot.generation.load(Ordering::SeqCst) != generation
            && let Some(error) = &state.last_error
        {
            return still_valid.ok_or_else(|| error.clone());
        }
        let result = self.fetch_token(client_id, None).await;
        slot.generation.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok(token) => {
                let token = Arc::new(token);
                state.token = Some(token.clone());
                state.last_error = None;
                Ok(token)
            }
            Err(error) => {
                state.last_error = Some(error.clone());
                match still_valid {
                    Some(token) => {
                        tracing::warn!(
                            "cannot refresh the token of `{client_id}`, using the current one until it expires at {}: {error}",
                            ids_pki::cert::format_time(token.claims.expires_at)
                        );
                        Ok(token)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Gets a new token for `client_id` in place of the cached one, which a server refused (401): the
    /// cache then holds the new token, so later callers do not present the refused one again.
    pub async fn renew_token(&self, client_id: &str) -> Result<Arc<Token>, AgentError> {
        if self.settings.client(Some(client_id)).is_none() {
            return Err(self.unknown_client(client_id));
        }
        let slot = self.slot(client_id)?;
        let mut state = slot.state.lock().await;
        let result = self.fetch_token(client_id, None).await;
        slot.generation.fetch_add(1, Ordering::SeqCst);
        // The refused token is not kept as a fallback, whatever happens.
        state.token = None;
        match result {
            Ok(token) => {
                let token = Arc::new(token);
                state.token = Some(token.clone());
                state.last_error = None;
                Ok(token)
            }
            Err(error) => {
                state.last_error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// The cache slot of `client_id`.
    fn slot(&self, client_id: &str) -> Result<Arc<Slot>, AgentError> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| error::SetupError::TokenCachePoisoned)?;
        Ok(slots.entry(client_id.to_string()).or_default().clone())
    }

    fn unknown_client(&self, client_id: &str) -> AgentError {
        AgentError::UnknownClient {
            client: client_id.to_string(),
            known: self
                .settings
                .clients
                .iter()
                .map(|c| format!("`{}`", c.client_id))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Asks the server for a new token (no cache) and verifies it.
    pub async fn fetch_token(
        &self,
        client_id: &str,
        scope: Option<&str>,
    ) -> Result<Token, AgentError> {
        let client = self
            .settings
            .client(Some(client_id))
            .ok_or_else(|| self.unknown_client(client_id))?;
        let discovery = self.discovery().await?;
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let clock = self.clock.clone();
        let now = move || clock.now();
        let response = client::tokens::request(
            &self.http,
            &discovery,
            client::tokens::Credentials {
                client,
                secret: self.keys.secret(client),
                key: self.keys.client_key.as_ref(),
            },
            self.dpop.as_deref(),
            scope,
            &now,
        )
        .await?;
        let malformed = |detail: &str| AgentError::Malformed {
            url: discovery.token_endpoint.clone(),
            detail: detail.to_string(),
        };
        let access_token = response
            .access_token
            .filter(|t| !t.expose().is_empty())
            .ok_or_else(|| malformed("the token response has no access_token"))?;
        let token_type = response.token_type.unwrap_or_default();
        let dpop = token_type.eq_ignore_ascii_case(ids_proto::headers::DPOP_SCHEME);
        if !(token_type.eq_ignore_ascii_case("bearer") || dpop && self.dpop.is_some()) {
            let expected = if self.dpop.is_some() {
                "`DPoP` or `Bearer`"
            } else {
                "`Bearer`"
            };
            return Err(malformed(&format!(
                "the token_type is `{token_type}`; expected {expected}"
            )));
        }
        let now = self.now();
        let claims = self
            .server_keys
            .verify(
                &self.http,
                || self.discovery(),
                access_token.expose(),
                now,
                true,
            )
            .await?;
        match (&self.dpop, dpop) {
            (Some(key), true) if claims.dpop_binding() != Some(key.jkt()) => {
                return Err(malformed(&format!(
                    "the DPoP token is bound to the key {} (cnf.jkt), not to this agent's key {} ({})",
                    claims.dpop_binding().unwrap_or("(none)"),
                    key.jkt(),
                    key.origin
                )));
            }
            (Some(_), false) => tracing::warn!(
                "OpenId:DPoP is true but the server issued a Bearer token: it does not support DPoP (RFC 9449)"
            ),
            _ => {}
        }
        let expires_in =
            client::tokens::expires_in(response.expires_in.as_ref(), claims.expires_at, now);
        if let Some(m) = &self.metrics {
            m.last_token.set(now);
        }
        Ok(Token {
            client_id: client.client_id.clone(),
            access_token,
            refresh_at: client::tokens::refresh_at(now, expires_in, claims.expires_at),
            claims,
            token_type,
            expires_in,
            scope: response.scope,
            received_at: now,
        })
    }

    /// Verifies a token with the server's keys (pinned, or the JWKS), at the agent's current time.
    pub async fn verify(&self, token: &str) -> Result<AccessToken, AgentError> {
        let token = strip_scheme(token);
        self.server_keys
            .verify(&self.http, || self.discovery(), token, self.now(), false)
            .await
    }

    /// Asks the server whether `token` is active (RFC 7662 introspection), authenticated as the default
    /// client: revoked tokens, and tokens of clients removed from the server, are not.
    pub async fn introspect(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AgentError> {
        let token = strip_scheme(token);
        let client = self
            .settings
            .client(None)
            .ok_or_else(|| self.unknown_client(self.settings.default_client.as_str()))?;
        let discovery = self.discovery().await?;
        let clock = self.clock.clone();
        let now = move || clock.now();
        client::tokens::introspect(
            &self.http,
            &discovery,
            client::tokens::Credentials {
                client,
                secret: self.keys.secret(client),
                key: self.keys.client_key.as_ref(),
            },
            token,
            &now,
        )
        .await
    }

    /// Token requests sent so far (diagnostics and tests).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far, retries included.
    pub fn http_requests(&self) -> u64 {
        self.http.requests_sent()
    }

    /// JWKS fetches so far (JWKS mode).
    pub fn jwks_fetches(&self) -> u64 {
        self.server_keys.jwks_fetches()
    }
}

/// A token as pasted: `Bearer <token>`, `DPoP <token>` or the token alone.
fn strip_scheme(token: &str) -> &str {
    let token = token.trim();
    match token.split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer")
                || scheme.eq_ignore_ascii_case(ids_proto::headers::DPOP_SCHEME) =>
        {
            rest.trim()
        }
        _ => token,
    }
}
