//! Bearer tokens presented to the server's own API (RFC 6750): verified locally with the server's keys
//! (the verifier the agents use, [`ids_jose::Verifier`]), then matched to a client registered in
//! the access-control XML in force, so that removing a client or changing its profile takes effect at
//! once, whatever its tokens still say.

use ids_jose::{KeySet, Validation, Verifier};
use ids_pki::Certificate;

use crate::access_control::Clients;

/// Clock leeway for `exp` / `nbf` (the server's own clock signed them).
const LEEWAY_SECS: u64 = 30;

/// Why a request carries no usable token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BearerError {
    /// No `Authorization: Bearer` header (RFC 6750 section 3.1: answer without an error code).
    #[error(
        "this API needs an access token: send `Authorization: Bearer <token>` (from /connect/token)"
    )]
    Missing,
    /// The token is expired, forged, for another server, or its client is gone.
    #[error("{0}")]
    Invalid(String),
}

/// The authenticated client behind a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClient {
    pub client_id: ids_proto::ClientId,
    /// The client's profile in the XML in force.
    pub profile: Option<String>,
}

/// Verifies bearer tokens issued by this server.
#[derive(Debug)]
pub struct BearerVerifier {
    verifier: Verifier,
}

impl BearerVerifier {
    /// Trusts the signing certificate and the validation certificates (tokens signed before a key
    /// rotation stay valid until they expire).
    pub fn new(
        signing: &Certificate,
        validation: &[Certificate],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, ids_jose::KeySetError> {
        let certs = std::iter::once((signing, "IdentityServer:X509KeyFilePath".to_string())).chain(
            validation
                .iter()
                .map(|c| (c, "IdentityServer:ValidationKeys".to_string())),
        );
        let keys = KeySet::from_certificates(certs)?;
        Ok(BearerVerifier {
            verifier: Verifier::new(
                keys,
                Validation {
                    issuer: issuer.to_string(),
                    audience: audience.to_string(),
                    leeway_secs: LEEWAY_SECS,
                },
            ),
        })
    }

    /// The client behind `Authorization: Bearer <token>`, at `now`. `certificate` is the DER of the TLS
    /// client certificate of the request, if any.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        certificate: Option<&[u8]>,
        clients: &Clients,
        now: i64,
    ) -> Result<TokenClient, BearerError> {
        let value = authorization.map(str::trim).unwrap_or_default();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ if value.is_empty() => return Err(BearerError::Missing),
            _ => {
                return Err(BearerError::Invalid(
                    "the Authorization header must be `Bearer <token>`".into(),
                ));
            }
        };
        // RFC 8705 section 3: a certificate-bound token is only good with that certificate.
        let claims = self
            .verifier
            .verify_presented(token, now, certificate)
            .map_err(|e| BearerError::Invalid(e.to_string()))?;
        let client_id = claims
            .subject
            .or(claims.client_id)
            .ok_or_else(|| BearerError::Invalid("the token names no client (sub)".into()))?;
        let Some(client) = clients.by_id.get(&client_id) else {
            return Err(BearerError::Invalid(format!(
                "client `{client_id}` is no longer registered on this server"
            )));
        };
        if client.expires_at.is_some_and(|t| t <= now) {
            return Err(BearerError::Invalid(format!(
                "client `{client_id}` expired (ExpirationDate in the access-control XML)"
            )));
        }
        Ok(TokenClient {
            client_id: client_id.into(),
            profile: client.profile.clone(),
        })
    }
}
