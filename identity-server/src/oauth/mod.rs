//! The OAuth domain: client authentication, the client-credentials grant, token issuing.
//! No HTTP framework here: handlers in `crate::http` call [`TokenService::token`].

pub mod bearer;
pub mod client_auth;
pub mod error;
pub mod request;
pub mod token;

use std::net::IpAddr;
use std::sync::Arc;

pub use error::OAuthError;
use request::printable;
pub use token::{AccessTokenClaims, TokenIssuer, TokenResponse};

use crate::access_control::LiveClients;
use client_auth::{AuthOutcome, Authenticator};

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
}

impl TokenService {
    /// Handles a token request: parse, authenticate, authorise the scopes, sign.
    pub async fn token(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        peer: IpAddr,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let request = request::parse(body, authorization, &self.authorities)?;
        let id = &request.credentials.client_id;
        let clients = self.clients.current();
        let client = clients.by_id.get(id);
        let outcome = self
            .authenticator
            .authenticate(id, client, request.credentials.secret.as_ref(), peer, now)
            .await;
        let client = match (outcome, client) {
            (Ok(AuthOutcome::Authenticated { .. }), Some(client)) => client,
            (Ok(AuthOutcome::Rejected(reason)), _) => {
                tracing::warn!(client_id = %printable(id), %peer, reason = reason.as_str(), "client authentication failed");
                return Err(OAuthError::InvalidClient);
            }
            (Ok(AuthOutcome::Authenticated { .. }), None) => return Err(OAuthError::ServerError),
            (Err(e), _) => {
                tracing::warn!(client_id = %printable(id), %peer, error = %e, "client authentication refused");
                return Err(e);
            }
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
        let response = self.issuer.issue(client, &scopes, now)?;
        tracing::debug!(client_id = %client.identifier, scope = %scopes.join(" "), "access token issued");
        Ok(response)
    }
}
