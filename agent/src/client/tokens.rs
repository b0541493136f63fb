//! The client-credentials grant (RFC 6749 section 4.4) and the response the agent accepts.

use serde::Deserialize;

use super::discovery::Discovery;
use super::http::{Http, summarize};
use crate::error::AgentError;
use crate::settings::ClientCredentials;
use ids_crypto::AccessToken;

/// A bearer token: the compact JWT. `Debug` never shows it.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    pub(crate) fn from_response(token: String) -> Self {
        BearerToken(token)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// A token the agent obtained and verified.
#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: String,
    pub access_token: BearerToken,
    /// The verified claims.
    pub claims: AccessToken,
    pub token_type: String,
    pub expires_in: u64,
    /// The `scope` of the response, when the server sent one.
    pub scope: Option<String>,
    /// When the agent received it (its clock, Unix seconds).
    pub received_at: i64,
    /// When the agent stops using it and asks for a new one.
    pub refresh_at: i64,
}

impl Token {
    /// Whether the agent should still use this token at `now`.
    pub fn is_fresh(&self, now: i64) -> bool {
        now < self.refresh_at
    }
}

/// The token response fields (RFC 6749 section 5.1).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: Option<String>,
    pub token_type: Option<String>,
    pub expires_in: Option<serde_json::Value>,
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// Sends the request; returns the parsed response or the classified error.
pub(crate) async fn request(
    http: &Http,
    discovery: &Discovery,
    client: &ClientCredentials,
    scope: Option<&str>,
) -> Result<(TokenResponse, String), AgentError> {
    let url = discovery.token_endpoint.as_str();
    let post = discovery.prefers_post();
    let response = http
        .send(url, |c| {
            let mut form = vec![("grant_type", "client_credentials")];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            if post {
                form.push(("client_id", &client.client_id));
                form.push(("client_secret", client.secret.expose()));
                c.post(url).form(&form)
            } else {
                // RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
                c.post(url)
                    .basic_auth(
                        form_urlencode(&client.client_id),
                        Some(form_urlencode(client.secret.expose())),
                    )
                    .form(&form)
            }
        })
        .await?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| AgentError::Malformed {
        url: url.to_string(),
        detail: format!("cannot read the answer: {e}"),
    })?;
    if status.is_success() {
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| AgentError::Malformed {
                url: url.to_string(),
                detail: format!("the token response is not the expected JSON: {e}"),
            })?;
        return Ok((parsed, String::from_utf8_lossy(&body).into_owned()));
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(e) => Err(AgentError::Rejected {
            client: client.client_id.clone(),
            status: status.as_u16(),
            hint: hint(&e.error, &client.client_id, &client.source),
            error: e.error,
            description: e.error_description.map(|d| summarize(&d)),
        }),
        Err(_) => Err(AgentError::Malformed {
            url: url.to_string(),
            detail: format!(
                "HTTP {status} without an OAuth error: {}",
                summarize(&String::from_utf8_lossy(&body))
            ),
        }),
    }
}

/// What to check for each OAuth error code.
fn hint(error: &str, client_id: &str, source: &str) -> String {
    match error {
        "invalid_client" => format!(
            "check the secret of `{client_id}` ({source}) against the HashedSecret of <OpenIdClient Identifier=\"{client_id}\"> on the server (and its ExpirationDate)"
        ),
        "unauthorized_client" => {
            format!("the server does not allow `{client_id}` to use the client-credentials grant")
        }
        "invalid_scope" => {
            "the requested scope is not one the server grants (IdentityServer:Scopes on the server)"
                .into()
        }
        _ => "see the server's log for details".into(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// When to stop using a token: a quarter of its lifetime before it expires, at most 60 s before.
pub(crate) fn refresh_at(received_at: i64, expires_in: u64, exp: i64) -> i64 {
    let lifetime_end = (received_at + expires_in as i64).min(exp);
    let margin = (expires_in as i64 / 4).min(60);
    lifetime_end - margin
}

/// `expires_in` as a number of seconds (some servers send it as a string).
pub(crate) fn expires_in(value: Option<&serde_json::Value>, exp: i64, now: i64) -> u64 {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| (exp - now).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_urlencode("Job"), "Job");
        assert_eq!(form_urlencode("a b+c/d%é"), "a+b%2Bc%2Fd%25%C3%A9");
    }

    #[test]
    fn refresh_happens_before_expiry() {
        assert_eq!(refresh_at(1000, 3600, 4600), 4540);
        assert_eq!(refresh_at(1000, 60, 1060), 1045);
        // The token's own exp wins when it is earlier than received + expires_in.
        assert_eq!(refresh_at(1000, 3600, 2000), 1940);
        assert_eq!(expires_in(None, 1300, 1000), 300);
        assert_eq!(expires_in(Some(&serde_json::json!("120")), 0, 0), 120);
    }
}
