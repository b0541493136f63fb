//! The client-credentials grant (RFC 6749 section 4.4) and the response the agent accepts.

use ids_proto::oauth::{ErrorBody, TokenResponse};
use ids_proto::{BearerToken, ClientId, ClientSecret};

use super::discovery::Discovery;
use super::http::{Http, printable, read_body, summarize};
use crate::error::{AgentError, Refusal, SetupError};
use crate::settings::{ClientAuth, ClientCredentials, ClientKey};
use ids_jose::AccessToken;

/// A token the agent obtained and verified.
#[derive(Debug, Clone)]
pub struct Token {
    pub client_id: ClientId,
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

/// What a client authenticates with: its settings, its secret, its key.
#[derive(Clone, Copy)]
pub(crate) struct Credentials<'a> {
    pub client: &'a ClientCredentials,
    pub secret: Option<&'a ClientSecret>,
    pub key: Option<&'a ClientKey>,
}

/// Sends the request; returns the parsed response or the classified error.
pub(crate) async fn request(
    http: &Http,
    discovery: &Discovery,
    credentials: Credentials<'_>,
    dpop: Option<&super::dpop::DpopClient>,
    scope: Option<&str>,
    now: &(dyn Fn() -> i64 + Sync),
) -> Result<TokenResponse, AgentError> {
    // RFC 9449 section 8: a server that wants a nonce answers use_dpop_nonce with one; once more
    // with it.
    let mut params = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let endpoint = Endpoint {
        url: discovery.token_endpoint.as_str(),
        what: "token response",
        dpop,
    };
    let mut nonce_retried = false;
    loop {
        let result = client_request(http, discovery, &endpoint, &params, credentials, now).await;
        match result {
            Err(AgentError::Rejected { ref error, .. })
                if error == "use_dpop_nonce" && dpop.is_some() && !nonce_retried =>
            {
                nonce_retried = true;
            }
            other => return other,
        }
    }
}

/// Where an authenticated client request goes.
pub(crate) struct Endpoint<'a> {
    pub url: &'a str,
    /// What a success answer is, for messages.
    pub what: &'static str,
    /// DPoP proof with the request (the token endpoint).
    pub dpop: Option<&'a super::dpop::DpopClient>,
}

/// Introspects `token` (RFC 7662) with the client's credentials: the server's answer as JSON.
pub(crate) async fn introspect(
    http: &Http,
    discovery: &Discovery,
    credentials: Credentials<'_>,
    token: &str,
    now: &(dyn Fn() -> i64 + Sync),
) -> Result<serde_json::Map<String, serde_json::Value>, AgentError> {
    let url = discovery.introspection_endpoint.as_deref().ok_or_else(|| {
        AgentError::Malformed {
            url: discovery.url.clone(),
            detail: "the server advertises no introspection_endpoint (RFC 8414): it cannot check a token online".into(),
        }
    })?;
    let endpoint = Endpoint {
        url,
        what: "introspection answer",
        dpop: None,
    };
    client_request(
        http,
        discovery,
        &endpoint,
        &[("token", token)],
        credentials,
        now,
    )
    .await
}

/// Posts `params` to `endpoint` with the client's credentials (secret in Basic or the body, a client
/// assertion, or the TLS certificate alone), and reads the JSON answer or the OAuth error.
async fn client_request<T: serde::de::DeserializeOwned>(
    http: &Http,
    discovery: &Discovery,
    endpoint: &Endpoint<'_>,
    params: &[(&str, &str)],
    credentials: Credentials<'_>,
    now: &(dyn Fn() -> i64 + Sync),
) -> Result<T, AgentError> {
    let Credentials {
        client,
        secret,
        key,
    } = credentials;
    let url = endpoint.url;
    let dpop = endpoint.dpop;
    // Client assertions are made for the token endpoint, which the server accepts as their audience
    // at every endpoint that authenticates clients.
    let audience = discovery.token_endpoint.as_str();
    let post = discovery.prefers_post();
    let signer = match (&client.auth, key) {
        (ClientAuth::PrivateKeyJwt, Some(key)) => Some(key.signer.clone()),
        (ClientAuth::PrivateKeyJwt, None) => {
            return Err(SetupError::NoAssertionKey.into());
        }
        _ => None,
    };
    if matches!(
        client.auth,
        ClientAuth::Secret(_) | ClientAuth::SecretFile { .. }
    ) && secret.is_none()
    {
        return Err(SetupError::NoSecret {
            client: client.client_id.clone(),
        }
        .into());
    }
    if let Some(signer) = &signer {
        // Surfaces a signing failure once, before any request.
        signer
            .sign(client.client_id.as_str(), audience, now())
            .map_err(|e| SetupError::Assertion(std::sync::Arc::new(e)))?;
    }
    let response = http
        .send(url, |c| {
            let c = &DpopBuilder {
                client: c,
                dpop,
                url,
                now: now(),
            };
            let mut form: Vec<(&str, &str)> = params.to_vec();
            match (&client.auth, secret) {
                (ClientAuth::Secret(_) | ClientAuth::SecretFile { .. }, Some(secret)) if post => {
                    form.push(("client_id", client.client_id.as_str()));
                    form.push(("client_secret", secret.expose()));
                    c.post(url).form(&form)
                }
                // RFC 6749 section 2.3.1: both parts are form-urlencoded before Basic encoding.
                (ClientAuth::Secret(_) | ClientAuth::SecretFile { .. }, Some(secret)) => c
                    .post(url)
                    .basic_auth(
                        form_urlencode(client.client_id.as_str()),
                        Some(form_urlencode(secret.expose())),
                    )
                    .form(&form),
                (ClientAuth::PrivateKeyJwt, _) => {
                    // A new assertion (new jti) for every attempt: the server refuses a replay.
                    let assertion = signer
                        .as_ref()
                        .and_then(|s| s.sign(client.client_id.as_str(), audience, now()).ok())
                        .unwrap_or_default();
                    form.push(("client_id", client.client_id.as_str()));
                    form.push(("client_assertion_type", ids_jose::assertion::ASSERTION_TYPE));
                    form.push(("client_assertion", &assertion));
                    c.post(url).form(&form)
                }
                // A secret client without its secret was refused before the request.
                (ClientAuth::TlsClientAuth, _) | (_, None) => {
                    form.push(("client_id", client.client_id.as_str()));
                    c.post(url).form(&form)
                }
            }
        })
        .await?;
    if let Some(dpop) = dpop {
        dpop.remember(response.headers());
    }
    let status = response.status();
    let www_authenticate_error = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("error=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .map(summarize);
    let what = if status.is_success() {
        endpoint.what
    } else {
        "error answer"
    };
    let body = read_body(response, url, what).await?;
    if status.is_success() {
        let parsed: T = serde_json::from_slice(&body).map_err(|e| AgentError::Malformed {
            url: url.to_string(),
            detail: format!("the {what} is not the expected JSON: {e}"),
        })?;
        return Ok(parsed);
    }
    // An OAuth error body has an `error` (RFC 6749 section 5.2); without one it is not an OAuth error.
    let oauth_error = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .and_then(|e| Some((e.error?, e.error_description)));
    match oauth_error {
        Some((code, description)) => {
            let error = printable(&code);
            Err(AgentError::Rejected {
                client: client.client_id.clone(),
                status: status.as_u16(),
                hint: hint(&code, client, key, dpop.is_some()),
                refusal: Refusal::of_oauth_error(&error),
                error,
                description: description.map(|d| summarize(&d)),
            })
        }
        None if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN =>
        {
            // A proxy or a non-OAuth server in front: still a refusal, say so.
            // The challenge's OAuth error when it gives one (RFC 6750 section 3), else the status.
            let (error, refusal) = match www_authenticate_error {
                Some(error) => {
                    let refusal = Refusal::of_oauth_error(&error);
                    (error, refusal)
                }
                None => (format!("HTTP {status}"), Refusal::Credentials),
            };
            Err(AgentError::Rejected {
                client: client.client_id.clone(),
                status: status.as_u16(),
                hint: hint(&error, client, key, dpop.is_some()),
                refusal,
                error,
                description: Some(summarize(&String::from_utf8_lossy(&body)))
                    .filter(|d| !d.is_empty()),
            })
        }
        None => Err(AgentError::Malformed {
            url: url.to_string(),
            detail: format!(
                "HTTP {status} without an OAuth error: {}",
                summarize(&String::from_utf8_lossy(&body))
            ),
        }),
    }
}

/// `post(url)` with a DPoP proof for it when DPoP is on (a new proof, new `jti`, for every attempt).
struct DpopBuilder<'a> {
    client: &'a reqwest::Client,
    dpop: Option<&'a super::dpop::DpopClient>,
    url: &'a str,
    now: i64,
}

impl DpopBuilder<'_> {
    fn post(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.post(url);
        match self.dpop {
            Some(dpop) => dpop.prove(request, "POST", self.url, self.now, None),
            None => request,
        }
    }
}

/// What to check for each OAuth error code. For a key or certificate the server refused, the agent
/// prints its own thumbprint and the exact setting to add on the server.
fn hint(error: &str, client: &ClientCredentials, key: Option<&ClientKey>, dpop: bool) -> String {
    let client_id = client.client_id.as_str();
    let source = client.source.as_str();
    match error {
        "invalid_client" => match (&client.auth, key) {
            (ClientAuth::Secret(_) | ClientAuth::SecretFile { .. }, _) | (_, None) => format!(
                "check the secret of `{client_id}` ({source}) against the HashedSecret of <OpenIdClient Identifier=\"{client_id}\"> on the server (and its ExpirationDate)"
            ),
            (ClientAuth::PrivateKeyJwt, Some(key)) => format!(
                "the server does not accept this agent's key (RFC 7638 thumbprint {tp}, {file}) for `{client_id}`: on the server, add Thumbprints=\"{tp}\" to <OpenIdClient Identifier=\"{client_id}\"> in the access-control XML, or copy the public key (the .pub or .crt beside the key) to the AccessControl:AuthorizedClientsPath folder as {client_id}.pem; also check the client's ExpirationDate",
                tp = key.thumbprint,
                file = key.file.display()
            ),
            (ClientAuth::TlsClientAuth, Some(key)) => match key.certificate_thumbprint() {
                Some(x5t) => format!(
                    "the server does not accept this agent's TLS client certificate (x5t#S256 {x5t}, key thumbprint {tp}, {file}) for `{client_id}`: on the server, add Thumbprints=\"{x5t}\" to <OpenIdClient Identifier=\"{client_id}\">, or issue the certificate from a CA in IdentityServer:ClientCertificateAuthorities with SAN URI:urn:ids:client:{client_id} (`ids-keytool client --client-id {client_id}`); check that the server asks for client certificates (IdentityServer:ClientCertificates)",
                    tp = key.thumbprint,
                    file = key.file.display()
                ),
                None => format!(
                    "TlsClientAuth needs a certificate beside the key {}",
                    key.file.display()
                ),
            },
        },
        "unauthorized_client" => {
            format!("the server does not allow `{client_id}` to use the client-credentials grant")
        }
        "invalid_scope" => {
            "the requested scope is not one the server grants (IdentityServer:Scopes on the server)"
                .into()
        }
        "invalid_dpop_proof" if dpop => "the server refused the agent's DPoP proof: check that this machine's clock is right (a proof is good for a minute) and that the server accepts the agent's key type (IdentityServer:DPoPSigningAlgorithms; the agent's generated key is ES256)".into(),
        "invalid_dpop_proof" => format!(
            "the server refused the agent's DPoP proof; with RequireDPoP=\"true\" on <OpenIdClient Identifier=\"{client_id}\">, set OpenId:DPoP to true in the agent's settings"
        ),
        _ => "see the server's log for details".into(),
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL: `*-._` and alphanumerics
/// kept, space as `+`, everything else `%XX`).
fn form_urlencode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// When to stop using a token: a quarter of its lifetime before it expires, at most 60 s before.
pub(crate) fn refresh_at(received_at: i64, expires_in: u64, exp: i64) -> i64 {
    let expires_in = i64::try_from(expires_in).unwrap_or(i64::MAX);
    let lifetime_end = received_at.saturating_add(expires_in).min(exp);
    let margin = (expires_in / 4).min(60);
    lifetime_end.saturating_sub(margin)
}

/// `expires_in` in seconds (some servers send it as a string), never beyond the token's own `exp`.
pub(crate) fn expires_in(value: Option<&serde_json::Value>, exp: i64, now: i64) -> u64 {
    let until_exp = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .map_or(until_exp, |e| e.min(until_exp))
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
        assert_eq!(expires_in(Some(&serde_json::json!("120")), 1000, 0), 120);
        // A huge or lying expires_in is capped by the token's exp; no overflow.
        assert_eq!(
            expires_in(Some(&serde_json::json!(u64::MAX)), 1300, 1000),
            300
        );
        assert_eq!(refresh_at(i64::MAX - 10, u64::MAX, i64::MAX), i64::MAX - 60);
    }
}
