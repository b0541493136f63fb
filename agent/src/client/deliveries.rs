//! The server's delivery API: `GET /api/deliveries/{id}` (has this id arrived? does the server read
//! the digest after the body?) and `PUT /api/deliveries/{id}?name=NAME` with the plaintext as a streamed
//! body, its size as `Content-Length` and its SHA-256 as `Repr-Digest` (RFC 9530) before the body, or,
//! when the server reads it after the body, its size as `Upload-Length` and the digest as a request
//! trailer (one pass over the file). Answers are sorted into what the
//! caller does next: retry later, get a new token, or give the file up ([`UploadFailure`]).

use std::time::Duration;

pub use ids_proto::deliveries::Receipt;
use ids_proto::oauth::ErrorBody;
use ids_proto::{BearerToken, headers};
use reqwest::StatusCode;

use super::http::{Http, printable, read_body, retry_after, summarize};
use crate::error::{AgentError, SetupError};

/// What a delivery announces.
#[derive(Clone, Debug)]
pub struct Announce<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub size: u64,
    /// The SHA-256, sent as a `Repr-Digest` header before the body; `None`: the body ends with it as a
    /// request trailer (the server said it reads one: [`Status::digest_trailer`]).
    pub sha256: Option<[u8; 32]>,
    pub agent: Option<&'a str>,
}

/// The server's answer to the check before a delivery.
#[derive(Clone, Debug)]
pub struct Status {
    /// The record of the id, if it arrived already.
    pub receipt: Option<Receipt>,
    /// The server reads the `Repr-Digest` after the body (`Delivery-Trailers: repr-digest`), so the
    /// file can be sent in one pass.
    pub digest_trailer: bool,
}

/// Why a delivery did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadFailure {
    /// Worth retrying later: the server is down or busy, its storage is full, the same id is being
    /// received on another connection.
    #[error("{detail}")]
    Temporary {
        detail: String,
        retry_after: Option<Duration>,
    },
    /// The server refused the token (401): a new token may help once.
    #[error("the server refused the access token: {0}")]
    InvalidToken(String),
    /// The server wants its nonce in the DPoP proof (401 `use_dpop_nonce`; remembered): once more.
    #[error("the server asked for a DPoP nonce")]
    DpopNonce,
    /// The server refuses this delivery; sending it again will not help.
    #[error("the server refused delivery `{id}` (HTTP {status} {error}): {description}")]
    Refused {
        id: String,
        status: u16,
        error: String,
        description: String,
    },
    /// A problem on the agent's side (TLS trust, configuration, credentials).
    #[error("{0}")]
    Agent(AgentError),
}

impl From<AgentError> for UploadFailure {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unreachable { .. } | AgentError::ServerError { .. } => {
                UploadFailure::Temporary {
                    detail: e.to_string(),
                    retry_after: None,
                }
            }
            other => UploadFailure::Agent(other),
        }
    }
}

fn url(base: &str, id: &str) -> Result<reqwest::Url, UploadFailure> {
    reqwest::Url::parse(&format!("{base}{}", ids_proto::paths::delivery(id))).map_err(|source| {
        UploadFailure::Agent(AgentError::Setup(SetupError::DeliveryUrl {
            base: base.to_string(),
            source: std::sync::Arc::new(source),
        }))
    })
}

/// How a token goes with a request to the API: `Authorization: Bearer`, or `Authorization: DPoP` with
/// a proof of the agent's key for that request (RFC 9449 section 7).
#[derive(Debug, Clone, Copy)]
pub struct ApiAuth<'a> {
    pub token: &'a BearerToken,
    pub dpop: Option<&'a super::dpop::DpopClient>,
    pub now: i64,
}

impl ApiAuth<'_> {
    /// `request` (a `method` to `url`) with the token, and the proof when DPoP-bound.
    pub fn apply(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &str,
    ) -> reqwest::RequestBuilder {
        match self.dpop {
            None => request.bearer_auth(self.token.expose()),
            Some(dpop) => dpop
                .prove(request, method, url, self.now, Some(self.token.expose()))
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!(
                        "{} {}",
                        ids_proto::headers::DPOP_SCHEME,
                        self.token.expose()
                    ),
                ),
        }
    }

    /// Remembers the nonce of an answer (DPoP only).
    fn remember(&self, response: &reqwest::Response) {
        if let Some(dpop) = self.dpop {
            dpop.remember(response.headers());
        }
    }
}

/// The server's record of delivery `id`, if it has one, and whether it reads the digest after the body.
pub async fn status(
    http: &Http,
    base: &str,
    auth: &ApiAuth<'_>,
    id: &str,
) -> Result<Status, UploadFailure> {
    let url = url(base, id)?;
    let text = url.to_string();
    let response = http
        .send_once(
            &text,
            |c| auth.apply(c.get(url), "GET", &text),
            http.timeout(),
        )
        .await?;
    auth.remember(&response);
    let digest_trailer = headers::list_names(
        response
            .headers()
            .get_all(headers::DELIVERY_TRAILERS)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        headers::REPR_DIGEST_TRAILER,
    );
    if response.status() == StatusCode::NOT_FOUND {
        return Ok(Status {
            receipt: None,
            digest_trailer,
        });
    }
    let receipt = receipt(id, &text, response).await?;
    Ok(Status {
        receipt: Some(receipt),
        digest_trailer,
    })
}

/// Delivers `body` (exactly `announce.size` bytes, then the `Repr-Digest` trailer when
/// `announce.sha256` is `None`) as delivery `announce.id`. Returns the receipt and whether the server
/// already had it.
pub async fn put(
    http: &Http,
    base: &str,
    auth: &ApiAuth<'_>,
    announce: &Announce<'_>,
    body: reqwest::Body,
    timeout: Duration,
) -> Result<(Receipt, bool), UploadFailure> {
    let mut url = url(base, announce.id)?;
    url.query_pairs_mut()
        .append_pair(headers::NAME, announce.name);
    let text = url.to_string();
    let response = http
        .send_once(
            &text,
            |c| {
                let mut request = auth
                    .apply(c.put(url), "PUT", &text)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream");
                request = match &announce.sha256 {
                    Some(sha256) => request
                        .header(headers::REPR_DIGEST, headers::repr_digest_sha256(sha256))
                        .header(reqwest::header::CONTENT_LENGTH, announce.size),
                    // No length on the body: chunked over HTTP/1.1, which alone carries trailers.
                    None => request
                        .header(reqwest::header::TRAILER, headers::REPR_DIGEST_TRAILER)
                        .header(headers::UPLOAD_LENGTH, announce.size),
                };
                request = request.body(body);
                if let Some(agent) = announce.agent {
                    request = request.header(headers::AGENT_IDENTIFIER, agent);
                }
                request
            },
            timeout,
        )
        .await?;
    auth.remember(&response);
    let duplicate = response.status() == StatusCode::OK;
    receipt(announce.id, &text, response)
        .await
        .map(|r| (r, duplicate))
}

/// A receipt from a 200/201 answer, or the failure the answer means.
async fn receipt(
    id: &str,
    url: &str,
    response: reqwest::Response,
) -> Result<Receipt, UploadFailure> {
    let status = response.status();
    let retry_after = retry_after(&response);
    let www_authenticate = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match read_body(response, url, "answer").await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) if status.is_success() => return Err(UploadFailure::Agent(e)),
        // Too large or broken: the status still says what to do; the message says why.
        Err(e) => e.to_string(),
    };
    if status.is_success() {
        return serde_json::from_str::<Receipt>(&body).map_err(|e| {
            UploadFailure::Agent(AgentError::Malformed {
                url: url.to_string(),
                detail: format!("the delivery receipt is not the expected JSON: {e}"),
            })
        });
    }
    let parsed: ErrorBody = serde_json::from_str(&body).unwrap_or_default();
    let error = parsed
        .error
        .map_or_else(|| format!("HTTP {}", status.as_u16()), |e| printable(&e));
    let description = parsed
        .error_description
        .map_or_else(|| summarize(&body), |d| printable(&d));
    Err(match status.as_u16() {
        401 if error == "use_dpop_nonce" => UploadFailure::DpopNonce,
        401 => UploadFailure::InvalidToken(if description.is_empty() {
            www_authenticate.unwrap_or_default()
        } else {
            description
        }),
        409 if error == "delivery_in_progress" => UploadFailure::Temporary {
            detail: format!("{url}: {description}"),
            retry_after,
        },
        408 | 429 | 500..=599 => UploadFailure::Temporary {
            detail: format!(
                "{url} answered HTTP {} ({error}): {description}",
                status.as_u16()
            ),
            retry_after,
        },
        code => UploadFailure::Refused {
            id: id.to_string(),
            status: code,
            error,
            description,
        },
    })
}
