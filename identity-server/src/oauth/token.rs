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
    pub aud: Audience,
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

/// `aud`: one audience as a string (what tokens always carried), several as an array (RFC 7519
/// section 4.1.3), when a client asked for several resources (RFC 8707).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Several(Vec<String>),
}

/// `cnf` of a bound token: the client certificate (RFC 8705 section 3.1) and/or the DPoP key (RFC 9449
/// section 6.1).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// What a token is bound to (RFC 8705, RFC 9449), and what it is for (RFC 8707).
#[derive(Debug, Default)]
pub struct Grant {
    /// `x5t#S256` of the client's TLS certificate.
    pub certificate: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP proof's key.
    pub dpop_jkt: Option<String>,
    /// The audiences asked for with `resource` (none: the default audience).
    pub audiences: Vec<String>,
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
        grant: &Grant,
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
            aud: match grant.audiences.len() {
                0 => Audience::One(self.audience.clone()),
                1 => Audience::One(grant.audiences[0].clone()),
                _ => Audience::Several(grant.audiences.clone()),
            },
            scope: scope.clone(),
            profile: client.profile.clone(),
            jti: ids_pki::b64::url(&jti),
            iat: now,
            nbf: now,
            exp: now + self.lifetime_secs as i64,
            cnf: (grant.certificate.is_some() || grant.dpop_jkt.is_some()).then(|| Confirmation {
                x5t_s256: grant.certificate.clone(),
                jkt: grant.dpop_jkt.clone(),
            }),
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
            // RFC 9449 section 5: a DPoP-bound token's type is DPoP.
            token_type: Some(
                if grant.dpop_jkt.is_some() {
                    ids_proto::headers::DPOP_SCHEME
                } else {
                    "Bearer"
                }
                .into(),
            ),
            expires_in: Some(self.lifetime_secs.into()),
            scope: Some(scope),
        };
        Ok((response, issued))
    }
}
