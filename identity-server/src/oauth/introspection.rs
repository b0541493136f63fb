//! Token introspection (RFC 7662) at `/connect/introspect`, with JWT answers (RFC 9701).
//!
//! The caller authenticates as a token client does (secret, `private_key_jwt`, mutual TLS). A client
//! whose profile is in `IdentityServer:IntrospectionProfiles` may introspect any token of this server;
//! any other client only its own tokens (so `agent verify --online` works without a profile). The
//! answer is `{"active": false}` for every token that is not good now: malformed, forged, another
//! server's, expired, revoked, of a client removed from the XML, or one the caller may not see;
//! nothing tells those cases apart (RFC 7662 section 2.2).

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::client_keys::PresentedCertificate;
use super::request::{Credentials, Form};
use super::{OAuthError, TokenService};

/// The media type of a JWT introspection answer (RFC 9701 section 4).
pub const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// What the introspection endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    /// The RFC 7662 answer: `active`, and when active the token's claims and `token_type`.
    pub body: Map<String, Value>,
    /// The client that asked (the `aud` of a JWT answer).
    pub caller: String,
}

impl Introspection {
    pub fn active(&self) -> bool {
        self.body.get("active") == Some(&Value::Bool(true))
    }
}

/// The form of an introspection or revocation request, and the client's credentials.
pub(crate) fn parse_token_form(
    body: &[u8],
    authorization: Option<&str>,
    authorities: &[String],
) -> Result<(String, Credentials), OAuthError> {
    let mut form = Form::parse(body, &["token", "token_type_hint"], &[])?;
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest("missing `token`".into()))?
        .to_string();
    let credentials = form.credentials(authorization, authorities)?;
    Ok((token, credentials))
}

impl TokenService {
    /// Handles an introspection request (RFC 7662 section 2.1).
    pub async fn introspect(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        certificate: Option<&PresentedCertificate>,
        peer: IpAddr,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        let (token, credentials) = parse_token_form(body, authorization, &self.authorities)?;
        let clients = self.clients.current();
        let caller = self
            .authenticate(&credentials, &clients.by_id, certificate, peer, now)
            .await?;
        let sees_all = caller
            .profile
            .as_ref()
            .is_some_and(|p| self.introspection_profiles.contains(p));
        let answer = self.active_claims(&token, now).await.filter(|claims| {
            let owner = claims.get("client_id").and_then(Value::as_str);
            let registered = owner
                .and_then(|id| clients.by_id.get(id))
                .is_some_and(|c| c.expires_at.is_none_or(|t| t > now));
            registered && (sees_all || owner == Some(caller.identifier.as_str()))
        });
        let active = answer.is_some();
        self.telemetry.introspected(active);
        let mut body = Map::new();
        body.insert("active".into(), Value::Bool(active));
        if let Some(claims) = answer {
            let dpop = claims.get("cnf").and_then(|c| c.get("jkt")).is_some();
            for (name, value) in claims {
                body.entry(name).or_insert(value);
            }
            body.insert(
                "token_type".into(),
                Value::from(if dpop {
                    ids_proto::headers::DPOP_SCHEME
                } else {
                    "Bearer"
                }),
            );
        }
        Ok(Introspection {
            body,
            caller: caller.identifier.to_string(),
        })
    }

    /// The claims of `token` if it is one of this server's tokens, good at `now` (signature, `typ`,
    /// `iss`, times; any audience) and not revoked. A revocation list that cannot be asked counts as
    /// revoked (fail closed).
    pub(crate) async fn active_claims(&self, token: &str, now: i64) -> Option<Map<String, Value>> {
        match self.good_claims(token, now).await {
            Ok(claims) => claims,
            Err(e) => {
                // The outage is logged once by the store's health transitions, not per request.
                tracing::debug!("introspection: cannot check revocations, answering inactive: {e}");
                None
            }
        }
    }

    /// [`Self::active_claims`], with the revocation list's failure as an error (a revocation must
    /// not take "cannot tell" for "not active"). A token without `jti` cannot be checked: not good.
    pub(crate) async fn good_claims(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<Map<String, Value>>, super::revocation::RevocationError> {
        let published = self.issuer.keys.published();
        let Ok(verified) = published.bearer.verifier().verify_any_audience(token, now) else {
            return Ok(None);
        };
        let Some(jti) = verified.jti.as_deref() else {
            return Ok(None);
        };
        Ok((!self.revoked.is_revoked(jti, now).await?).then_some(verified.claims))
    }

    /// An introspection answer as a signed JWT (RFC 9701 section 5): `iss`, `aud` (the caller),
    /// `iat` and `token_introspection`, signed with the token-signing key.
    pub fn introspection_jwt(
        &self,
        introspection: &Introspection,
        now: i64,
    ) -> Result<String, OAuthError> {
        let signing = self.issuer.keys.signing();
        let header = serde_json::json!({
            "alg": signing.signer.algorithm().as_str(),
            "kid": signing.signer.kid(),
            "typ": "token-introspection+jwt",
        });
        let claims = serde_json::json!({
            "iss": self.issuer.issuer,
            "aud": introspection.caller,
            "iat": now,
            "token_introspection": introspection.body,
        });
        let mut jwt = format!(
            "{}.{}",
            ids_pki::b64::url(header.to_string().as_bytes()),
            ids_pki::b64::url(claims.to_string().as_bytes())
        );
        let signature = signing
            .signer
            .sign_raw(jwt.as_bytes())
            .map_err(|_| OAuthError::ServerError)?;
        jwt.push('.');
        jwt.push_str(&ids_pki::b64::url(&signature));
        Ok(jwt)
    }
}
