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
    /// RFC 8707 section 2: a `resource` the client may not ask for, or not an absolute URI.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 9449 section 5: the DPoP proof is missing where required, or invalid.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 section 8: the proof must carry this server nonce (sent in `DPoP-Nonce`).
    #[error("use_dpop_nonce")]
    UseDpopNonce { nonce: String },
    /// The client may not do this (revoke another client's token).
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
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
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce { .. } => "use_dpop_nonce",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
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
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidDpopProof(d)
            | OAuthError::UnauthorizedClient(d) => d.clone(),
            OAuthError::UseDpopNonce { .. } => {
                "the DPoP proof must carry the nonce of the DPoP-Nonce header".into()
            }
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
