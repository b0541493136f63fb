//! OpenID Connect Discovery (OIDC Discovery 1.0 section 4; RFC 8414): where the token endpoint and the
//! JWKS are, checked against the issuer the agent expects.

use ids_proto::discovery::ProviderMetadata;
use ids_proto::paths;

use super::http::{Http, read_body, summarize};
use crate::error::AgentError;
use crate::settings::Settings;

/// What the agent uses from the discovery document.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub url: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: Option<String>,
    /// RFC 7662 (`agent verify --online`), when the server has one.
    pub introspection_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`; empty when not advertised.
    pub auth_methods: Vec<String>,
}

/// `scheme://host[:port]` of a URL, lower-cased, for same-origin checks.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    format!("{scheme}://{authority}")
}

impl Discovery {
    pub async fn fetch(http: &Http, settings: &Settings) -> Result<Discovery, AgentError> {
        let url = format!(
            "{}{}",
            settings.application_uri,
            paths::OPENID_CONFIGURATION
        );
        let response = http.send(&url, |c| c.get(&url)).await?;
        let status = response.status();
        let malformed = |detail: String| AgentError::Malformed {
            url: url.clone(),
            detail,
        };
        let body = read_body(response, &url, "discovery document").await?;
        if !status.is_success() {
            return Err(malformed(format!(
                "HTTP {status} for the discovery document; is ApplicationUri ({}) the identity server's base URL? {}",
                settings.application_uri,
                summarize(&String::from_utf8_lossy(&body))
            )));
        }
        let doc: ProviderMetadata = serde_json::from_slice(&body).map_err(|e| {
            malformed(format!(
                "the discovery document is not the expected JSON: {e}"
            ))
        })?;
        let issuer = doc
            .issuer
            .ok_or_else(|| malformed("the discovery document has no `issuer`".into()))?;
        if issuer != settings.issuer {
            return Err(malformed(format!(
                "the server's issuer is `{issuer}` but the agent expects `{}` (IdentityServer:Issuer, or ApplicationUri): set ApplicationUri on the server to its public URL, or IdentityServer:Issuer here",
                settings.issuer
            )));
        }
        // The client secret goes to the token endpoint: only to an https URL on the host the agent was
        // configured for (ApplicationUri, or the issuer's host), never wherever a document points.
        let allowed = [origin(&settings.application_uri), origin(&settings.issuer)];
        let check = |name: &str, u: Option<String>| -> Result<Option<String>, AgentError> {
            let Some(u) = u else { return Ok(None) };
            let secure = u.starts_with("https://")
                || (settings.allow_insecure_http && u.starts_with("http://"));
            if !secure || !allowed.contains(&origin(&u)) {
                return Err(malformed(format!(
                    "the discovery document's `{name}` is {u}; the agent only talks https to {} (check ApplicationUri on the server and behind any reverse proxy)",
                    allowed[0]
                )));
            }
            Ok(Some(u))
        };
        let token_endpoint = check("token_endpoint", doc.token_endpoint)?
            .ok_or_else(|| malformed("the discovery document has no `token_endpoint`".into()))?;
        let jwks_uri = check("jwks_uri", doc.jwks_uri)?;
        let introspection_endpoint = check("introspection_endpoint", doc.introspection_endpoint)?;
        Ok(Discovery {
            url,
            issuer,
            token_endpoint,
            jwks_uri,
            introspection_endpoint,
            auth_methods: doc.token_endpoint_auth_methods_supported,
        })
    }

    /// Whether to send the secret in the form body (`client_secret_post`) rather than HTTP Basic, the
    /// default every server supports (RFC 6749 section 2.3.1).
    pub fn prefers_post(&self) -> bool {
        self.auth_methods.iter().any(|m| m == "client_secret_post")
    }
}
