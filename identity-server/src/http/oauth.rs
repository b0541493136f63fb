//! The introspection (RFC 7662, RFC 9701) and revocation (RFC 7009) endpoints, and the DPoP headers
//! (RFC 9449) the token endpoint and the API share.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};

use super::error::{ErrorResponse, no_store};
use super::{AppState, ClientCert, authorization, forwarded, read_form};
use crate::oauth::OAuthError;
use crate::oauth::introspection::JWT_MEDIA_TYPE;
use ids_jose::DpopError;

/// The `DPoP` header of a request: none, or exactly one (RFC 9449 section 4.3 item 1).
pub fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(ids_proto::headers::DPOP).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::InvalidDpopProof(DpopError::Several.to_string()));
    }
    first.to_str().map(Some).map_err(|_| {
        OAuthError::InvalidDpopProof(DpopError::Malformed("not ASCII".into()).to_string())
    })
}

/// Adds `DPoP-Nonce` with the current nonce when nonces are on (RFC 9449 section 8.2: the server may
/// give a fresh one with any answer), unless the answer already carries one.
pub fn offer_nonce(state: &AppState, headers: &mut HeaderMap, now: i64) {
    if headers.contains_key(ids_proto::headers::DPOP_NONCE) {
        return;
    }
    if let Some(nonce) = state.tokens.dpop.nonce(now)
        && let Ok(value) = HeaderValue::from_str(&nonce)
    {
        headers.insert(ids_proto::headers::DPOP_NONCE, value);
    }
}

/// Whether the client asked for a JWT answer (RFC 9701 section 4).
fn wants_jwt(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(JWT_MEDIA_TYPE))
        })
}

/// `POST /connect/introspect`.
pub async fn introspect(
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
    let introspection = match state
        .tokens
        .introspect(&body, authorization, certificate.0.as_ref(), peer, now)
        .await
    {
        Ok(i) => i,
        Err(e) => return ErrorResponse::from(e).into_response(),
    };
    let mut response = if wants_jwt(&headers) {
        match state.tokens.introspection_jwt(&introspection, now) {
            Ok(jwt) => ([(header::CONTENT_TYPE, JWT_MEDIA_TYPE)], jwt).into_response(),
            Err(e) => return ErrorResponse::from(e).into_response(),
        }
    } else {
        axum::Json(introspection.body).into_response()
    };
    no_store(response.headers_mut());
    response
}

/// `POST /connect/revocation`: 200 with an empty body (RFC 7009 section 2.2).
pub async fn revocation(
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
    match state
        .tokens
        .revoke(
            &body,
            authorization,
            certificate.0.as_ref(),
            peer,
            state.clock.now(),
        )
        .await
    {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => ErrorResponse::from(e).into_response(),
    }
}
