//! HTTP layer: routes and thin handlers over [`crate::oauth`]. Errors map to responses in [`error`].

pub mod deliveries;
pub mod error;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

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

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    /// The server's time source.
    pub clock: Arc<dyn crate::Clock>,
    pub tokens: TokenService,
    /// Pre-rendered discovery document and JWKS.
    pub discovery: String,
    pub jwks: String,
    /// Verifies the bearer tokens presented to the server's API.
    pub bearer: crate::oauth::bearer::BearerVerifier,
    /// The deliveries service, or why deliveries are off (a reason safe to show to clients).
    pub deliveries: Result<Arc<crate::deliveries::Deliveries>, String>,
}

/// The server's routes (RFC 8414 / OIDC Discovery paths as IdentityServer serves them).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        .route("/connect/authorize", get(authorize))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/.well-known/openid-configuration/jwks", get(jwks))
        .route("/hc", get(health))
        .layer(DefaultBodyLimit::max(MAX_TOKEN_BODY))
        // Delivery bodies are streamed, never buffered: their limit is Deliveries:MaxFileSizeMiB.
        .merge(deliveries::routes())
        .with_state(state)
}

async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    certificate: ClientCert,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            return ErrorResponse(
                OAuthError::InvalidRequest(format!("request body rejected: {}", e.body_text())),
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    status
                } else {
                    StatusCode::BAD_REQUEST
                },
            )
            .into_response();
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
        return ErrorResponse::from(OAuthError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ))
        .into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state
        .tokens
        .token(
            &body,
            authorization,
            certificate.0.as_ref(),
            peer.ip(),
            state.clock.now(),
        )
        .await
    {
        Ok(response) => {
            let mut r = axum::Json(response).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => ErrorResponse::from(e).into_response(),
    }
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
    json(state.discovery.clone())
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    json(state.jwks.clone())
}

async fn health() -> &'static str {
    "Healthy"
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
