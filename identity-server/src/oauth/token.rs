//! Access tokens (RFC 9068 JWT profile) signed with the server's certificate key.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use ids_proto::oauth::TokenResponse;
use ids_proto::{BearerToken, ClientId};
use serde::{Deserialize, Serialize};

use super::OAuthError;
use crate::access_control::RegisteredClient;

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: ClientId,
    pub client_id: ClientId,
    pub aud: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// RFC 8705 section 3.1: the client certificate the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` of a certificate-bound token.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// What the audit trail records of a token issued (never the token itself).
#[derive(Debug)]
pub struct Issued {
    pub jti: String,
    /// The signing key's `kid`.
    pub kid: String,
    pub exp: i64,
}

/// Signs access tokens with the key in force ([`crate::keys::InForce`]: replaced when the signing
/// PFX is reloaded).
#[derive(Debug)]
pub struct TokenIssuer {
    pub keys: std::sync::Arc<crate::keys::InForce>,
    pub issuer: String,
    pub audience: String,
    pub lifetime_secs: u64,
    /// `IdentityServer:DangerAcceptExpiredCertificate`.
    pub accept_expired: bool,
}

impl TokenIssuer {
    pub fn issue(
        &self,
        client: &RegisteredClient,
        scopes: &[String],
        now: i64,
        bound_to: Option<String>,
    ) -> Result<(TokenResponse, Issued), OAuthError> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| OAuthError::ServerError)?;
        let scope = scopes.join(" ");
        let claims = AccessTokenClaims {
            iss: self.issuer.clone(),
            sub: client.identifier.clone(),
            client_id: client.identifier.clone(),
            aud: self.audience.clone(),
            scope: scope.clone(),
            profile: client.profile.clone(),
            jti: ids_pki::b64::url(&jti),
            iat: now,
            nbf: now,
            exp: now + self.lifetime_secs as i64,
            cnf: bound_to.map(|x5t_s256| Confirmation { x5t_s256 }),
        };
        let signing = self.keys.signing();
        let access_token = signing
            .signer
            .sign(&claims)
            .map_err(|_| OAuthError::ServerError)?;
        let issued = Issued {
            jti: claims.jti,
            kid: signing.signer.kid().to_string(),
            exp: claims.exp,
        };
        // The wire contract's body, every field set: the JSON is RFC 6749 section 5.1's, in this order.
        let response = TokenResponse {
            access_token: Some(BearerToken::new(access_token)),
            token_type: Some("Bearer".into()),
            expires_in: Some(self.lifetime_secs.into()),
            scope: Some(scope),
        };
        Ok((response, issued))
    }
}
