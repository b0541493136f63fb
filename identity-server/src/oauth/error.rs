//! OAuth 2.0 errors (RFC 6749 section 5.2). Mapped to HTTP in exactly one place: `http::error`.

/// An error the token endpoint answers with. `description` is safe to show to the client: it never says
/// whether a client exists or which part of its credentials was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client, wrong secret, expired client, or no credentials: one uniform answer.
    #[error("invalid_client")]
    InvalidClient,
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// Too many failed authentications from this address or for this client.
    #[error("too many failed attempts, retry after {retry_after_secs} s")]
    SlowDown { retry_after_secs: u64 },
    /// Secret verification capacity exhausted (argon2 concurrency limit).
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// The shared store (PostgreSQL) is down: what needs it (a `private_key_jwt` replay check) is
    /// refused until it returns, with `Retry-After`.
    #[error("temporarily_unavailable: the shared store is unavailable")]
    StoreUnavailable,
    #[error("server_error")]
    ServerError,
}

/// `Retry-After` while the shared store is down: the monitor retries within 1-10 s.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

impl OAuthError {
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            // RFC 6749 section 5.2 has no code for "try later"; the HTTP status (429/503) and
            // `Retry-After` carry the meaning, the code stays one a token client knows.
            OAuthError::SlowDown { .. }
            | OAuthError::TemporarilyUnavailable
            | OAuthError::StoreUnavailable => "invalid_request",
            OAuthError::ServerError => "server_error",
        }
    }

    /// The `error_description` sent to the client.
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d) => d.clone(),
            OAuthError::InvalidClient => "client authentication failed".into(),
            OAuthError::SlowDown { retry_after_secs } => {
                format!("too many failed authentications; retry after {retry_after_secs} seconds")
            }
            OAuthError::TemporarilyUnavailable => {
                "the server is busy verifying secrets; retry shortly".into()
            }
            OAuthError::StoreUnavailable => format!(
                "the server cannot check assertions for replay right now (its shared store is unavailable); retry after {STORE_RETRY_AFTER_SECS} seconds"
            ),
            OAuthError::ServerError => "internal error; see the server log".into(),
        }
    }
}
