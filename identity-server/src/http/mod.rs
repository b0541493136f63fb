//! HTTP layer: routes and thin handlers over [`crate::oauth`]. Errors map to responses in [`error`].

pub mod deliveries;
pub mod error;
pub mod forwarded;
pub mod health;
pub mod oauth;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ids_proto::paths;

use crate::oauth::client_keys::PresentedCertificate;
use crate::oauth::{OAuthError, TokenService};
use error::{ErrorResponse, no_store};

/// The TLS client certificate of the request (RFC 8705), when the client presented one.
#[derive(Debug, Clone, Default)]
pub struct ClientCert(pub Option<PresentedCertificate>);

impl ClientCert {
    /// DER of the leaf certificate.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.0.as_ref().and_then(PresentedCertificate::leaf)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientCert {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Behind a known proxy that forwards client certificates, the TLS-level certificate is the
        // proxy's own: only the forwarded one counts.
        if let Some(forwarded) = parts.extensions.get::<forwarded::ForwardedCertificate>() {
            return Ok(ClientCert(forwarded.0.clone()));
        }
        Ok(ClientCert(
            parts
                .extensions
                .get::<Arc<axum_server::tls::TlsInfo>>()
                .filter(|info| !info.peer_certificates.is_empty())
                .map(|info| PresentedCertificate {
                    chain: info.peer_certificates.clone(),
                }),
        ))
    }
}

/// Largest token request body accepted (a client-credentials request is well under 1 KiB).
pub const MAX_TOKEN_BODY: usize = 16 * 1024;

/// How much of a token request body over [`MAX_TOKEN_BODY`] is read and thrown away before the 413.
///
/// Answering while the client is still sending makes most clients lose the answer: over HTTP/1.1 the
/// connection is closed with unread data, so the client's kernel gets a TCP reset (curl: "broken
/// pipe", or the answer discarded); over HTTP/2 curl reports the stream reset that follows an early
/// answer (RST_STREAM(NO_ERROR), RFC 9113 section 8.1) as an error. Reading the rest of a body of
/// reasonable size first lets the client finish sending and then read the 413. Beyond this the
/// answer is given without reading more (and the HTTP/1.1 connection closed).
pub const MAX_DRAINED_TOKEN_BODY: u64 = 4 * 1024 * 1024;

/// Longest time spent reading and discarding an over-limit body.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    /// The server's time source.
    pub clock: Arc<dyn ids_runtime::Clock>,
    /// `Limits:TokenRequestTimeoutSeconds`: the time a client has to send a whole token request body.
    pub token_request_timeout: Duration,
    pub tokens: TokenService,
    /// The keys in force and what is published from them (pre-rendered discovery documents and
    /// JWKS, the verifier of the bearer tokens presented to the server's API): replaced when
    /// certificates are reloaded.
    pub keys: Arc<crate::keys::InForce>,
    /// The deliveries service, or why deliveries are off (a reason safe to show to clients).
    pub deliveries: Result<Arc<crate::deliveries::Deliveries>, crate::deliveries::DeliveriesOff>,
    /// The shared PostgreSQL store, when `Store:Provider` is `PostgreSql`.
    pub store: Option<Arc<crate::store::postgres::PgStore>>,
    /// Metrics and audit trail.
    pub telemetry: crate::telemetry::Telemetry,
    /// `ForwardedHeaders`: the reverse proxies whose forwarding headers are believed.
    pub forwarded: crate::settings::ForwardedSettings,
}

/// The server's routes (RFC 8414 / OIDC Discovery paths as IdentityServer serves them), from the wire
/// contract ([`ids_proto::paths`]) the agent uses too.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(paths::TOKEN, post(token))
        .route(paths::INTROSPECT, post(oauth::introspect))
        .route(paths::REVOCATION, post(oauth::revocation))
        .route(paths::AUTHORIZE, get(authorize))
        .route(paths::OPENID_CONFIGURATION, get(discovery))
        .route(
            paths::OAUTH_AUTHORIZATION_SERVER,
            get(authorization_server_metadata),
        )
        .route(paths::JWKS, get(jwks))
        .route(paths::HEALTH, get(health))
        .route(health::LIVE, get(health::live))
        .route(health::READY, get(health::ready))
        .layer(DefaultBodyLimit::max(MAX_TOKEN_BODY))
        // Delivery bodies are streamed, never buffered: their limit is Deliveries:MaxFileSizeMiB.
        .merge(deliveries::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forwarded::resolve,
        ))
        .with_state(state)
}

/// Counts every request by route and status and times it (`ids_http_requests_total`,
/// `ids_http_request_duration_seconds`): from the request's headers to the answer's headers.
async fn observe(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.telemetry.metrics.is_none() {
        return next.run(request).await;
    }
    let route = route_label(request.uri().path());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .telemetry
        .request(route, response.status().as_u16(), started.elapsed());
    response
}

/// The `route` label of a path: the route's template, or `other` (bounded, whatever clients send).
pub fn route_label(path: &str) -> &'static str {
    const EXACT: [&str; 11] = [
        paths::TOKEN,
        paths::INTROSPECT,
        paths::REVOCATION,
        paths::AUTHORIZE,
        paths::OPENID_CONFIGURATION,
        paths::OAUTH_AUTHORIZATION_SERVER,
        paths::JWKS,
        paths::HEALTH,
        health::LIVE,
        health::READY,
        paths::DELIVERIES,
    ];
    if let Some(known) = EXACT.iter().find(|p| **p == path) {
        return known;
    }
    match path
        .strip_prefix(paths::DELIVERIES)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rest) if rest.ends_with("/content") => "/api/deliveries/{id}/content",
        Some(rest) if !rest.is_empty() && !rest.contains('/') => "/api/deliveries/{id}",
        _ => "other",
    }
}

async fn token(
    State(state): State<Arc<AppState>>,
    forwarded::ClientAddress(peer): forwarded::ClientAddress,
    certificate: ClientCert,
    version: Version,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_form(&state, body, version, &headers).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let authorization = authorization(&headers);
    let now = state.clock.now();
    let result = match oauth::dpop_header(&headers) {
        Err(e) => Err(e),
        Ok(dpop) => {
            state
                .tokens
                .token(
                    &body,
                    authorization,
                    certificate.0.as_ref(),
                    dpop,
                    peer,
                    now,
                )
                .await
        }
    };
    let mut response = match result {
        Ok(response) => {
            let mut r = axum::Json(response).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => ErrorResponse::from(e).into_response(),
    };
    oauth::offer_nonce(&state, response.headers_mut(), now);
    response
}

/// The `Authorization` header, when it is text.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Reads the form body of a token, introspection or revocation request: at most [`MAX_TOKEN_BODY`]
/// bytes within `Limits:TokenRequestTimeoutSeconds`, `application/x-www-form-urlencoded`. The error
/// is the answer to send.
pub(crate) async fn read_form(
    state: &AppState,
    body: Body,
    version: Version,
    headers: &HeaderMap,
) -> Result<Bytes, Response> {
    let deadline = state.token_request_timeout;
    let body = match read_token_body(body, version, headers, deadline).await {
        Ok(b) => b,
        Err(e @ (BodyError::TimedOut(_) | BodyError::TooLarge { .. })) => {
            let (status, unread) = match &e {
                BodyError::TooLarge { drained } => (StatusCode::PAYLOAD_TOO_LARGE, !*drained),
                _ => (StatusCode::REQUEST_TIMEOUT, true),
            };
            let mut response =
                ErrorResponse(OAuthError::InvalidRequest(e.to_string()), status).into_response();
            if unread && version < Version::HTTP_2 {
                // The rest of the body may still come: this connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return Err(response);
        }
        Err(e @ BodyError::Unreadable(_)) => {
            return Err(
                ErrorResponse::from(OAuthError::InvalidRequest(e.to_string())).into_response(),
            );
        }
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(ErrorResponse::from(OAuthError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ))
        .into_response());
    }
    Ok(body)
}

/// Why a token request body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// Over [`MAX_TOKEN_BODY`]; `drained` when the whole body was read (and thrown away), so the
    /// client has finished sending.
    #[error("the request body is larger than the {MAX_TOKEN_BODY} bytes a token request may have")]
    TooLarge { drained: bool },
    #[error("the request body could not be read: {0}")]
    Unreadable(String),
    /// Not all sent within `Limits:TokenRequestTimeoutSeconds`.
    #[error(
        "the request body did not arrive within {} s (Limits:TokenRequestTimeoutSeconds)",
        .0.as_secs()
    )]
    TimedOut(Duration),
}

/// Reads a token request body of at most [`MAX_TOKEN_BODY`] bytes. A larger one is read on and
/// thrown away, up to [`MAX_DRAINED_TOKEN_BODY`] bytes and [`DRAIN_TIMEOUT`], so that the client can
/// read the answer (see [`MAX_DRAINED_TOKEN_BODY`]). It is not read at all when its declared length
/// is over that bound, nor, over HTTP/1.1, when it is over the limit with `Expect: 100-continue`:
/// that client waits for the `100 Continue` reading would send, so answering first spares it
/// sending the body. (curl over HTTP/2 does not read a final answer that comes instead of the
/// `100 Continue`, so there the body is read and drained as any other.)
async fn read_token_body(
    mut body: Body,
    version: Version,
    headers: &HeaderMap,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt as _;

    let limit = MAX_TOKEN_BODY as u64;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let expects_continue = version < Version::HTTP_2
        && headers
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    if declared.is_some_and(|n| n > limit && (expects_continue || n > MAX_DRAINED_TOKEN_BODY)) {
        return Err(BodyError::TooLarge { drained: false });
    }
    let mut kept = bytes::BytesMut::new();
    let mut received: u64 = 0;
    // The deadline bounds reading the body up to the limit; draining an over-limit body has its own.
    let read = async {
        while received <= limit {
            match body.frame().await {
                None => return Ok(Some(kept.split().freeze())),
                Some(Err(e)) => return Err(BodyError::Unreadable(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        received += data.len() as u64;
                        if received <= limit {
                            kept.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
        Ok(None)
    };
    match tokio::time::timeout(deadline, read).await {
        Err(_) => return Err(BodyError::TimedOut(deadline)),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Some(complete))) => return Ok(complete),
        Ok(Ok(None)) => {}
    }
    let drain = async {
        loop {
            match body.frame().await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        received += data.len() as u64;
                        if received > MAX_DRAINED_TOKEN_BODY {
                            return false;
                        }
                    }
                }
            }
        }
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, drain)
        .await
        .unwrap_or(false);
    Err(BodyError::TooLarge { drained })
}

async fn authorize() -> Response {
    ErrorResponse(
        OAuthError::InvalidRequest(
            "this server issues tokens with the client_credentials grant at /connect/token only; interactive authorization is not supported".into(),
        ),
        StatusCode::BAD_REQUEST,
    )
    .into_response()
}

async fn discovery(State(state): State<Arc<AppState>>) -> Response {
    json(
        state
            .keys
            .published()
            .discovery
            .openid_configuration
            .clone(),
    )
}

async fn authorization_server_metadata(State(state): State<Arc<AppState>>) -> Response {
    json(
        state
            .keys
            .published()
            .discovery
            .oauth_authorization_server
            .clone(),
    )
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    json(state.keys.published().jwks.clone())
}

async fn health() -> &'static str {
    "Healthy"
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
