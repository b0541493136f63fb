//! What can go wrong when the agent talks to the identity server, in words an operator can act on.
//!
//! Each variant is one of the situations the operator must tell apart: the server is down, its TLS
//! certificate is not trusted, it refuses the agent's credentials, it answers something unexpected,
//! or the token it returned does not verify. [`crate::exit::ExitStatus`] gives each its own exit code.

use std::sync::Arc;

use ids_jose::VerifyError;

use crate::tls::TlsSetupError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("the agent's configuration is not usable: {0}")]
    Setup(#[from] SetupError),
    #[error("cannot reach the identity server at {url} after {attempts} attempt(s): {detail}")]
    Unreachable {
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("the identity server at {url} is not trusted: {detail}; {hint}")]
    TlsTrust {
        url: String,
        detail: String,
        hint: String,
    },
    #[error("cannot talk TLS with {url}: {detail}")]
    TlsHandshake { url: String, detail: String },
    #[error(
        "the identity server refused the token request of client `{client}`: {error}{}; {hint}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    Rejected {
        client: ids_proto::ClientId,
        status: u16,
        /// The OAuth `error` code (RFC 6749 section 5.2).
        error: String,
        /// The server's `error_description`.
        description: Option<String>,
        hint: String,
        /// What the refusal means for the operator (and the exit code).
        refusal: Refusal,
    },
    #[error(
        "the identity server at {url} answered HTTP {status} after {attempts} attempt(s){detail}"
    )]
    ServerError {
        url: String,
        status: u16,
        attempts: u32,
        detail: String,
    },
    #[error("unexpected answer from {url}: {detail}")]
    Malformed { url: String, detail: String },
    #[error("the token was rejected: {0}")]
    InvalidToken(#[from] VerifyError),
    #[error("no client `{client}` in OpenId:OpenIdClients (configured: {known})")]
    UnknownClient { client: String, known: String },
}

/// What a refused token request means: the credentials themselves, or something else in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// These credentials are not accepted: an OAuth `invalid_client`, `unauthorized_client`,
    /// `invalid_grant` or `access_denied` (RFC 6749 section 5.2), or a bare HTTP 401/403 from
    /// something in front of the server.
    Credentials,
    /// Any other OAuth error (`invalid_scope`, `unsupported_grant_type`, ...).
    Request,
}

impl Refusal {
    /// The refusal an OAuth `error` code means.
    pub fn of_oauth_error(error: &str) -> Self {
        match error {
            "invalid_client" | "unauthorized_client" | "invalid_grant" | "access_denied" => {
                Refusal::Credentials
            }
            _ => Refusal::Request,
        }
    }
}

/// Why the agent cannot do what it was asked with its configuration (the settings were valid, but
/// something built from them is not usable). Sources that are not `Clone` are shared: an
/// [`AgentError`] is handed to every caller waiting for the same token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot build the HTTPS client: {0}")]
    HttpClient(Arc<reqwest::Error>),
    /// reqwest refused to build a request (a URL it cannot send to).
    #[error("cannot send a request to {url}: {source}")]
    Request {
        url: String,
        source: Arc<reqwest::Error>,
    },
    #[error("token cache poisoned")]
    TokenCachePoisoned,
    /// The keys handed to the agent are not those of its settings: no secret for a client that
    /// authenticates with one.
    #[error("no secret was read for client `{client}`")]
    NoSecret { client: ids_proto::ClientId },
    #[error("private_key_jwt needs ClientCertificate:File")]
    NoAssertionKey,
    #[error("cannot sign the client assertion: {0}")]
    Assertion(Arc<ids_pki::keys::KeyError>),
    /// The pinned certificates of `IdentityServer` (token validation) make no key set.
    #[error("{0}")]
    PinnedKeys(Arc<ids_jose::KeySetError>),
    #[error("the server's JWKS is not available yet")]
    JwksNotAvailable,
    #[error("ApplicationUri `{base}` does not make a delivery URL: {source}")]
    DeliveryUrl {
        base: String,
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}
