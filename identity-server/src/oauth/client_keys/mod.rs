//! Client authentication without a shared secret:
//! - `private_key_jwt` (RFC 7523, OpenID Connect Core section 9): an assertion signed with a key
//!   registered for the client (a file in the authorized-clients folder, or a `Thumbprints` entry plus
//!   the key the assertion carries), with a `jti` replay cache;
//! - `tls_client_auth` (RFC 8705 section 2.1): a TLS client certificate issued by a configured CA and
//!   mapped to the client by subject alternative name or subject. X.509 v1 certificates (no
//!   extensions: what `openssl x509 -req` writes without an extension file), which webpki refuses,
//!   are checked here when issued directly by a configured CA, and mapped by subject;
//! - `self_signed_tls_client_auth` (RFC 8705 section 2.2): a TLS client certificate (or its key)
//!   whose thumbprint is registered for the client.
//!
//! Every refusal carries a [`KeyRejection`] for the server log, with the thumbprint the client
//! presented, so an operator can register it; the client itself only sees `invalid_client`.
//!
//! # Layout
//! - here: [`KeyRejection`], why a key or certificate was refused (server log only);
//! - `replay`: [`ReplayCache`] and the bounded in-memory [`MemoryReplayCache`] of used `jti`s;
//! - `assertion`: `private_key_jwt`, [`authenticate_assertion`];
//! - `certificate`: `tls_client_auth` and `self_signed_tls_client_auth`, [`authenticate_certificate`]
//!   and the client CAs ([`ClientAuthorities`]).

mod assertion;
mod certificate;
mod replay;
#[cfg(test)]
mod tests;

use ids_jose::assertion::AssertionError;

pub use assertion::{AssertionPolicy, LEEWAY, authenticate_assertion};
pub use certificate::{
    CLIENT_URN_PREFIX, ClientAuthorities, ClientAuthoritiesError, PresentedCertificate,
    authenticate_certificate,
};
pub(crate) use replay::replay_key;
pub use replay::{MemoryReplayCache, ReplayCache, ReplayFuture};

/// Why key or certificate authentication failed (server log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error(
        "the presented key {presented} is not registered for this client (add it to Thumbprints in the XML or to the authorized-clients folder)"
    )]
    UnregisteredKey { presented: String },
    #[error(
        "the client is registered by Thumbprints only and the assertion carries no key (no `jwk` or `x5c` header; {presented}): a thumbprint can only check a key the assertion carries, which most client libraries do not send; put the client's public key or certificate in the authorized-clients folder (AccessControl:AuthorizedClientsPath, as `{client}.pem`) instead"
    )]
    ThumbprintWithoutKey { client: String, presented: String },
    #[error("{0}")]
    Assertion(#[from] AssertionError),
    #[error("no client certificate was presented and no other credentials were sent")]
    NoCredentials,
    #[error(
        "the client certificate (subject `{subject}`, issuer `{issuer}`, x5t#S256 {x5t_s256}, key thumbprint {thumbprint}) is not registered for this client: {reason}"
    )]
    CertificateNotRegistered {
        subject: String,
        issuer: String,
        x5t_s256: String,
        thumbprint: String,
        reason: String,
    },
    #[error("the client certificate cannot be read: {0}")]
    BadCertificate(String),
    #[error(
        "the client certificate (subject `{subject}`, issuer `{issuer}`, x5t#S256 {x5t_s256}) expired or is not valid yet"
    )]
    CertificateOutOfValidity {
        subject: String,
        issuer: String,
        x5t_s256: String,
    },
    #[error(
        "too many assertions from this client within their lifetime (replay cache share full); retry later"
    )]
    ReplayCacheFull,
    /// The shared replay cache (PostgreSQL) cannot be reached: the assertion is refused (fail closed),
    /// the client is answered 503.
    #[error("the shared replay cache is unavailable, the assertion is refused: {0}")]
    ReplayCacheUnavailable(String),
}

impl KeyRejection {
    /// A fixed label for metrics and the audit trail (the message is the detail).
    pub fn label(&self) -> &'static str {
        match self {
            KeyRejection::UnregisteredKey { .. } => "unregistered_key",
            KeyRejection::ThumbprintWithoutKey { .. } => "thumbprint_without_key",
            KeyRejection::Assertion(AssertionError::Replayed(_)) => "replayed_assertion",
            KeyRejection::Assertion(
                AssertionError::Expired { .. }
                | AssertionError::TooLong { .. }
                | AssertionError::NotYetValid { .. },
            ) => "assertion_out_of_validity",
            KeyRejection::Assertion(AssertionError::BadSignature { .. }) => "bad_signature",
            KeyRejection::Assertion(_) => "invalid_assertion",
            KeyRejection::NoCredentials => "no_credentials",
            KeyRejection::CertificateNotRegistered { .. } => "certificate_not_registered",
            KeyRejection::BadCertificate(_) => "bad_certificate",
            KeyRejection::CertificateOutOfValidity { .. } => "certificate_out_of_validity",
            KeyRejection::ReplayCacheFull => "replay_cache_full",
            KeyRejection::ReplayCacheUnavailable(_) => "store_unavailable",
        }
    }
}
