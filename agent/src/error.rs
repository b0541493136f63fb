//! What can go wrong when the agent talks to the identity server, in words an operator can act on.
//!
//! Each variant is one of the situations the operator must tell apart: the server is down, its TLS
//! certificate is not trusted, it refuses the agent's credentials, it answers something unexpected,
//! or the token it returned does not verify. [`AgentError::exit_code`] gives each its own exit code.

use ids_jose::VerifyError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("the agent's configuration is not usable: {0}")]
    Setup(String),
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
        client: String,
        status: u16,
        /// The OAuth `error` code (RFC 6749 section 5.2).
        error: String,
        /// The server's `error_description`.
        description: Option<String>,
        hint: String,
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

impl AgentError {
    /// Process exit codes, documented in the README: 2 configuration, 3 unreachable or server error,
    /// 4 TLS (trust or handshake), 5 credentials rejected, 6 invalid token or unexpected answer.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Setup(_) | AgentError::UnknownClient { .. } => 2,
            AgentError::Unreachable { .. } | AgentError::ServerError { .. } => 3,
            AgentError::TlsTrust { .. } | AgentError::TlsHandshake { .. } => 4,
            AgentError::Rejected { error, .. } if is_credentials_error(error) => 5,
            AgentError::Rejected { .. } => 6,
            AgentError::Malformed { .. } | AgentError::InvalidToken(_) => 6,
        }
    }
}

/// OAuth errors that mean "these credentials are not accepted" (RFC 6749 section 5.2), and a bare
/// HTTP 401/403 from something in front of the server.
fn is_credentials_error(error: &str) -> bool {
    matches!(
        error,
        "invalid_client" | "unauthorized_client" | "invalid_grant" | "access_denied"
    ) || error.starts_with("HTTP 401")
        || error.starts_with("HTTP 403")
}
