//! Tokens presented to the server's own API (RFC 6750 `Bearer`, RFC 9449 `DPoP`): verified locally with the server's keys
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
    /// The token is expired, forged, for another server, revoked, or its client is gone.
    #[error("{0}")]
    Invalid(String),
    /// A DPoP-bound token's proof is missing or wrong (RFC 9449 section 7.1).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// The token sent with the `DPoP` scheme is not good (answered with a `DPoP` challenge).
    #[error("{0}")]
    InvalidDpopToken(String),
    /// The proof must carry the server's nonce (RFC 9449 section 9).
    #[error("the DPoP proof must carry the nonce of the DPoP-Nonce header")]
    UseDpopNonce { nonce: String },
    /// The revocation list or the replay cache (shared store) cannot be asked: refused (fail closed).
    #[error(
        "the server cannot check this token now (its shared store is unavailable); retry later"
    )]
    Unavailable,
}

/// The scheme a token came with (RFC 6750 section 2.1, RFC 9449 section 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// `Authorization: Bearer <token>` or `Authorization: DPoP <token>`.
pub fn parse_authorization(authorization: Option<&str>) -> Result<(Scheme, &str), BearerError> {
    let value = authorization.map(str::trim).unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok((Scheme::Bearer, token.trim()))
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(ids_proto::headers::DPOP_SCHEME) => {
            Ok((Scheme::Dpop, token.trim()))
        }
        _ if value.is_empty() => Err(BearerError::Missing),
        _ => Err(BearerError::Invalid(
            "the Authorization header must be `Bearer <token>` or `DPoP <token>`".into(),
        )),
    }
}

/// The authenticated client behind a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClient {
    pub client_id: ids_proto::ClientId,
    /// The client's profile in the XML in force.
    pub profile: Option<String>,
    /// The token's `jti` (checked against the revocation list).
    pub jti: Option<String>,
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

    /// The verifier of the server's own tokens (every published key).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The verified claims of `token` at `now`, bindings not checked yet ([`BearerVerifier::client`]).
    pub fn claims(&self, token: &str, now: i64) -> Result<ids_jose::AccessToken, BearerError> {
        self.verifier
            .verify(token, now)
            .map_err(|e| BearerError::Invalid(e.to_string()))
    }

    /// The registered client behind verified `claims`, once their bindings hold for `presented` (RFC
    /// 8705 section 3: a certificate-bound token only with that certificate; RFC 9449: a DPoP-bound
    /// token only with a proof of its key).
    pub fn client(
        &self,
        claims: &ids_jose::AccessToken,
        presented: &ids_jose::Presentation<'_>,
        clients: &Clients,
        now: i64,
    ) -> Result<TokenClient, BearerError> {
        claims.check_binding(presented).map_err(|e| match e {
            ids_jose::VerifyError::DpopKeyMismatch { .. } => {
                BearerError::InvalidDpopProof(e.to_string())
            }
            other => BearerError::Invalid(other.to_string()),
        })?;
        let client_id = claims
            .subject
            .clone()
            .or_else(|| claims.client_id.clone())
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
            jti: claims.jti.clone(),
        })
    }
}
