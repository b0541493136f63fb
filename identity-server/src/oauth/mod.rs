//! The OAuth domain: client authentication, the client-credentials grant, token issuing, DPoP,
//! resource indicators, introspection and revocation. No HTTP framework here: handlers in
//! `crate::http` call [`TokenService::token`], [`TokenService::introspect`] and
//! [`TokenService::revoke`].

pub mod bearer;
pub mod client_auth;
pub mod client_keys;
pub mod dpop;
pub mod error;
pub mod failure_budget;
pub mod hash_pool;
pub mod introspection;
pub mod replay_journal;
pub mod request;
pub mod revocation;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;

pub use error::OAuthError;
pub use ids_proto::oauth::TokenResponse;
use request::printable;
pub use token::{AccessTokenClaims, TokenIssuer};

use crate::access_control::{LiveClients, RegisteredClient};
use crate::authorized_clients::LiveKeys;
use client_auth::{AuthOutcome, Authenticator};
use client_keys::{KeyRejection, PresentedCertificate, ReplayCache};
use ids_jose::assertion::UnverifiedAssertion;
use ids_proto::paths;
use request::AuthMethod;

/// Everything the token endpoint needs; shared by all requests.
#[derive(Debug)]
pub struct TokenService {
    pub clients: Arc<LiveClients>,
    pub authenticator: Authenticator,
    pub issuer: TokenIssuer,
    /// Scopes clients may request.
    pub scopes: Vec<String>,
    /// The server's `host:port` spellings accepted as `client_id` suffixes (`Job@host:port`).
    pub authorities: Vec<String>,
    /// Client keys of `AccessControl:AuthorizedClientsPath`.
    pub keys: Arc<LiveKeys>,
    /// `jti` of accepted client assertions.
    pub replay: Arc<dyn ReplayCache>,
    /// What a client assertion's `aud` may be: the token endpoint URLs and the issuer.
    pub assertion_audiences: Vec<String>,
    /// `IdentityServer:MaxClientAssertionLifetimeSeconds`.
    pub max_assertion_lifetime: i64,
    /// Metrics and audit trail.
    pub telemetry: crate::telemetry::Telemetry,
    /// `IdentityServer:Audiences`: what `resource` may name for clients without `Audiences`.
    pub audiences: Vec<String>,
    /// `IdentityServer:IntrospectionProfiles`.
    pub introspection_profiles: Vec<String>,
    /// Revoked tokens (RFC 7009).
    pub revoked: Arc<dyn revocation::RevokedTokens>,
    /// DPoP proofs (RFC 9449).
    pub dpop: dpop::DpopService,
}

/// The `method` label of a token request.
fn method_label(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::ClientSecretBasic => "client_secret_basic",
        AuthMethod::ClientSecretPost => "client_secret_post",
        AuthMethod::PrivateKeyJwt => "private_key_jwt",
        AuthMethod::None => "tls_client_auth",
    }
}

impl TokenService {
    /// Handles a token request: parse, authenticate, check the DPoP proof, authorise the scopes and
    /// resources, sign. `certificate` is the TLS client certificate, if the client presented one: the
    /// token is then bound to it; `dpop` the `DPoP` header: the token is then bound to its key.
    pub async fn token(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        certificate: Option<&PresentedCertificate>,
        dpop: Option<&str>,
        peer: IpAddr,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let request = request::parse(body, authorization, &self.authorities)?;
        let clients = self.clients.current();
        let client = self
            .authenticate(&request.credentials, &clients.by_id, certificate, peer, now)
            .await?;
        let proof = match dpop {
            None if client.require_dpop => {
                self.telemetry.dpop_refused("dpop_missing");
                tracing::warn!(client_id = %client.identifier, %peer, "token request without the DPoP proof the client requires (RequireDPoP)");
                return Err(OAuthError::InvalidDpopProof(format!(
                    "client `{}` must prove possession of a key with DPoP (RequireDPoP): send a DPoP header",
                    client.identifier
                )));
            }
            None => None,
            Some(proof) => Some(
                self.check_dpop(
                    proof,
                    "POST",
                    paths::TOKEN,
                    None,
                    None,
                    client.identifier.as_str(),
                    peer,
                    now,
                )
                .await?,
            ),
        };
        let scopes = if request.scopes.is_empty() {
            self.scopes.clone()
        } else {
            if let Some(unknown) = request.scopes.iter().find(|s| !self.scopes.contains(s)) {
                return Err(OAuthError::InvalidScope(format!(
                    "scope `{}` is not available (available: {})",
                    printable(unknown),
                    self.scopes.join(" ")
                )));
            }
            request.scopes
        };
        let audiences = self.audiences_for(client, request.resources)?;
        let grant = token::Grant {
            certificate: certificate.and_then(PresentedCertificate::x5t_s256),
            dpop_jkt: proof.map(|p| p.jkt),
            audiences,
        };
        let (response, issued) = self.issuer.issue(client, &scopes, now, &grant)?;
        tracing::debug!(client_id = %client.identifier, scope = %scopes.join(" "), method = ?request.credentials.method, bound_to = ?grant.certificate, dpop_jkt = ?grant.dpop_jkt, "access token issued");
        self.telemetry.token_issued(
            &crate::telemetry::TokenIssued {
                client: client.identifier.as_str(),
                method: method_label(request.credentials.method),
                scopes: &scopes,
                jti: &issued.jti,
                kid: &issued.kid,
                peer,
                cnf_x5t_s256: grant.certificate.as_deref(),
                cnf_jkt: grant.dpop_jkt.as_deref(),
                audiences: &grant.audiences,
                exp: issued.exp,
            },
            now,
        );
        Ok(response)
    }

    /// RFC 8707: the audiences of `resources`, each the default audience or one the client may ask
    /// for (its `Audiences` attribute, else `IdentityServer:Audiences`).
    fn audiences_for(
        &self,
        client: &RegisteredClient,
        resources: Vec<String>,
    ) -> Result<Vec<String>, OAuthError> {
        let allowed = client.audiences.as_deref().unwrap_or(&self.audiences);
        if let Some(refused) = resources
            .iter()
            .find(|r| **r != self.issuer.audience && !allowed.contains(r))
        {
            return Err(OAuthError::InvalidTarget(format!(
                "resource `{}` is not an audience client `{}` may ask for",
                printable(refused),
                client.identifier
            )));
        }
        Ok(resources)
    }

    /// Checks a DPoP proof of `client` (logged, counted and answered with its reason when refused).
    #[allow(clippy::too_many_arguments)]
    pub async fn check_dpop(
        &self,
        proof: &str,
        method: &str,
        path: &str,
        access_token: Option<&str>,
        expected_jkt: Option<&str>,
        client_id: &str,
        peer: IpAddr,
        now: i64,
    ) -> Result<ids_jose::DpopProof, OAuthError> {
        self.dpop
            .check(
                proof,
                method,
                path,
                access_token,
                expected_jkt,
                client_id,
                now,
            )
            .await
            .map_err(|reason| {
                self.telemetry.dpop_refused(reason.label());
                match reason {
                    dpop::DpopRejection::UseNonce { nonce, .. } => {
                        tracing::debug!(client_id, %peer, "DPoP nonce asked for");
                        OAuthError::UseDpopNonce { nonce }
                    }
                    dpop::DpopRejection::Unavailable(why) => {
                        tracing::debug!(client_id, %peer, "DPoP proof refused, the shared store is unavailable: {why}");
                        OAuthError::StoreUnavailable
                    }
                    dpop::DpopRejection::Busy => OAuthError::TemporarilyUnavailable,
                    dpop::DpopRejection::KeyMismatch(e) => {
                        tracing::warn!(client_id, %peer, reason = %e, "DPoP proof refused");
                        OAuthError::InvalidDpopProof(e)
                    }
                    dpop::DpopRejection::Proof(e) => {
                        tracing::warn!(client_id, %peer, reason = %e, "DPoP proof refused");
                        OAuthError::InvalidDpopProof(e.to_string())
                    }
                }
            })
    }

    /// Authenticates the client of a token, introspection or revocation request (every method the
    /// token endpoint accepts); failures are logged, counted and audited.
    pub async fn authenticate<'c>(
        &self,
        credentials: &request::Credentials,
        clients: &'c std::collections::HashMap<String, RegisteredClient>,
        certificate: Option<&PresentedCertificate>,
        peer: IpAddr,
        now: i64,
    ) -> Result<&'c RegisteredClient, OAuthError> {
        match credentials.method {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => {
                let id = &credentials.client_id;
                let client = clients.get(id);
                let outcome = self
                    .authenticator
                    .authenticate(id, client, credentials.secret.as_ref(), peer, now)
                    .await;
                match (outcome, client) {
                    (Ok(AuthOutcome::Authenticated { .. }), Some(client)) => Ok(client),
                    (Ok(AuthOutcome::Rejected(reason)), _) => {
                        tracing::warn!(client_id = %printable(id), %peer, method = "client_secret", reason = reason.as_str(), "client authentication failed");
                        self.failed(
                            id,
                            credentials.method,
                            reason.label(),
                            reason.as_str(),
                            peer,
                            now,
                        );
                        Err(OAuthError::InvalidClient)
                    }
                    (Ok(AuthOutcome::Authenticated { .. }), None) => Err(OAuthError::ServerError),
                    (Err(e), _) => {
                        tracing::warn!(client_id = %printable(id), %peer, error = %e, "client authentication refused");
                        if let OAuthError::SlowDown { .. } = e {
                            self.failed(
                                id,
                                credentials.method,
                                "rate_limited",
                                &e.to_string(),
                                peer,
                                now,
                            );
                        }
                        Err(e)
                    }
                }
            }
            AuthMethod::PrivateKeyJwt => {
                self.authenticate_assertion(credentials, clients, peer, now)
                    .await
            }
            AuthMethod::None => {
                let id = &credentials.client_id;
                let client = self.known(clients, id, "tls_client_auth", peer, now)?;
                let result = match certificate {
                    None => Err(KeyRejection::NoCredentials),
                    Some(presented) => client_keys::authenticate_certificate(
                        presented,
                        client,
                        self.keys.current().of(id),
                        self.issuer.keys.client_authorities().as_deref(),
                        now,
                    ),
                };
                if let Err(reason) = result {
                    tracing::warn!(client_id = %printable(id), %peer, method = "tls_client_auth", reason = %reason, "client authentication failed");
                    self.failed(
                        id,
                        AuthMethod::None,
                        reason.label(),
                        &reason.to_string(),
                        peer,
                        now,
                    );
                    return Err(OAuthError::InvalidClient);
                }
                Ok(client)
            }
        }
    }

    /// Reports a failed client authentication (already logged) to the metrics and the audit trail.
    fn failed(
        &self,
        client: &str,
        method: AuthMethod,
        reason: &'static str,
        detail: &str,
        peer: IpAddr,
        now: i64,
    ) {
        self.telemetry.authentication_failed(
            &crate::telemetry::AuthenticationFailed {
                client: &printable(client),
                method: method_label(method),
                reason,
                detail,
                peer,
            },
            now,
        );
    }

    /// The registered client `id`, or `invalid_client` (logged) when it is unknown or expired.
    fn known<'c>(
        &self,
        clients: &'c std::collections::HashMap<String, RegisteredClient>,
        id: &str,
        method: &str,
        peer: IpAddr,
        now: i64,
    ) -> Result<&'c RegisteredClient, OAuthError> {
        let auth_method = if method == "private_key_jwt" {
            AuthMethod::PrivateKeyJwt
        } else {
            AuthMethod::None
        };
        match clients.get(id) {
            None => {
                tracing::warn!(client_id = %printable(id), %peer, method, reason = "unknown client", "client authentication failed");
                self.failed(
                    id,
                    auth_method,
                    "unknown_client",
                    "unknown client",
                    peer,
                    now,
                );
                Err(OAuthError::InvalidClient)
            }
            Some(c) if c.expires_at.is_some_and(|t| t <= now) => {
                tracing::warn!(client_id = %printable(id), %peer, method, reason = "client expired (ExpirationDate)", "client authentication failed");
                self.failed(
                    id,
                    auth_method,
                    "client_expired",
                    "client expired (ExpirationDate)",
                    peer,
                    now,
                );
                Err(OAuthError::InvalidClient)
            }
            Some(c) => Ok(c),
        }
    }

    /// `private_key_jwt`: the client is the body's `client_id`, else the assertion's `iss`.
    async fn authenticate_assertion<'c>(
        &self,
        credentials: &request::Credentials,
        clients: &'c std::collections::HashMap<String, RegisteredClient>,
        peer: IpAddr,
        now: i64,
    ) -> Result<&'c RegisteredClient, OAuthError> {
        let raw = credentials.assertion.as_deref().unwrap_or_default();
        let assertion = match UnverifiedAssertion::parse(raw) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(client_id = %printable(&credentials.client_id), %peer, method = "private_key_jwt", reason = %e, "client authentication failed");
                self.failed(
                    &credentials.client_id,
                    AuthMethod::PrivateKeyJwt,
                    KeyRejection::Assertion(e.clone()).label(),
                    &e.to_string(),
                    peer,
                    now,
                );
                return Err(OAuthError::InvalidClient);
            }
        };
        let id = if credentials.client_id.is_empty() {
            let claimed = assertion.claimed_issuer().unwrap_or_default();
            request::strip_authority(claimed, &self.authorities).to_string()
        } else {
            credentials.client_id.clone()
        };
        let client = self.known(clients, &id, "private_key_jwt", peer, now)?;
        let presented = assertion
            .embedded_key()
            .map(|k| k.thumbprint.clone())
            .or_else(|| assertion.kid().map(str::to_string));
        let keys = self.keys.current();
        let spellings: Vec<String> = self
            .authorities
            .iter()
            .map(|a| format!("{id}@{a}"))
            .collect();
        client_keys::authenticate_assertion(
            assertion,
            client,
            &spellings,
            keys.of(&id),
            client_keys::AssertionPolicy {
                audiences: &self.assertion_audiences,
                replay: self.replay.as_ref(),
                max_lifetime: self.max_assertion_lifetime,
            },
            now,
        )
        .await
        .map_err(|reason| {
            if let KeyRejection::ReplayCacheUnavailable(why) = &reason {
                // The outage is logged once by the store's health transitions, not per request.
                tracing::debug!(client_id = %printable(&id), %peer, method = "private_key_jwt", "assertion refused, the shared store is unavailable: {why}");
                return OAuthError::StoreUnavailable;
            }
            tracing::warn!(
                client_id = %printable(&id),
                %peer,
                method = "private_key_jwt",
                presented_key = presented.as_deref().unwrap_or("(none)"),
                reason = %reason,
                "client authentication failed"
            );
            self.failed(
                &id,
                AuthMethod::PrivateKeyJwt,
                reason.label(),
                &reason.to_string(),
                peer,
                now,
            );
            match reason {
                KeyRejection::ReplayCacheFull => OAuthError::TemporarilyUnavailable,
                _ => OAuthError::InvalidClient,
            }
        })?;
        Ok(client)
    }
}
