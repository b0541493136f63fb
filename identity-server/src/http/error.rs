//! The single place where domain errors become HTTP responses (RFC 6749 section 5.2).
//! Every answer carries `Cache-Control: no-store`; bodies never include internal details. The body is
//! the wire contract's [`ErrorBody`] (`{"error", "error_description"}`), which the agent reads.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ids_proto::oauth::ErrorBody;

use crate::deliveries::DeliveryError;
use crate::oauth::OAuthError;
use crate::oauth::bearer::BearerError;

/// An OAuth error as an HTTP response.
#[derive(Debug)]
pub struct ErrorResponse(pub OAuthError, pub StatusCode);

impl From<OAuthError> for ErrorResponse {
    fn from(e: OAuthError) -> Self {
        let status = match &e {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthError::InvalidRequest(_)
            | OAuthError::UnsupportedGrantType(_)
            | OAuthError::InvalidScope(_)
            | OAuthError::InvalidTarget(_)
            | OAuthError::InvalidDpopProof(_)
            | OAuthError::UseDpopNonce { .. }
            | OAuthError::UnauthorizedClient(_) => StatusCode::BAD_REQUEST,
            OAuthError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::TemporarilyUnavailable | OAuthError::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ErrorResponse(e, status)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let ErrorResponse(error, status) = self;
        let body = ErrorBody {
            error: Some(error.code().to_string()),
            error_description: Some(error.description()),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        match error {
            OAuthError::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="identity-server", charset="UTF-8""#),
                );
            }
            OAuthError::SlowDown { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            OAuthError::TemporarilyUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            OAuthError::UseDpopNonce { nonce } => {
                if let Ok(v) = HeaderValue::from_str(&nonce) {
                    headers.insert(ids_proto::headers::DPOP_NONCE, v);
                }
            }
            OAuthError::StoreUnavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::oauth::error::STORE_RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 section 5.1).
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// An error of the server's own API (deliveries): bearer-token problems (RFC 6750 section 3) and
/// delivery errors, as JSON `{"error", "error_description"}`.
#[derive(Debug)]
pub enum ApiError {
    Bearer(BearerError),
    Delivery(DeliveryError),
}

impl From<BearerError> for ApiError {
    fn from(e: BearerError) -> Self {
        ApiError::Bearer(e)
    }
}

impl From<DeliveryError> for ApiError {
    fn from(e: DeliveryError) -> Self {
        ApiError::Delivery(e)
    }
}

impl From<crate::deliveries::InvalidDeliveryId> for ApiError {
    fn from(e: crate::deliveries::InvalidDeliveryId) -> Self {
        ApiError::Delivery(e.into())
    }
}

impl ApiError {
    /// The refusal as the server's side sees it (for the audit trail): the whole message.
    pub fn detail(&self) -> String {
        match self {
            ApiError::Bearer(e) => e.to_string(),
            ApiError::Delivery(e) => e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, description) = match &self {
            ApiError::Bearer(BearerError::Unavailable) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                BearerError::Unavailable.to_string(),
            ),
            ApiError::Bearer(e @ BearerError::InvalidDpopProof(_)) => (
                StatusCode::UNAUTHORIZED,
                "invalid_dpop_proof",
                e.to_string(),
            ),
            ApiError::Bearer(e @ BearerError::InvalidDpopToken(_)) => {
                (StatusCode::UNAUTHORIZED, "invalid_token", e.to_string())
            }
            ApiError::Bearer(e @ BearerError::UseDpopNonce { .. }) => {
                (StatusCode::UNAUTHORIZED, "use_dpop_nonce", e.to_string())
            }
            ApiError::Bearer(e) => (StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()),
            ApiError::Delivery(e) => {
                let (status, code) = match e {
                    DeliveryError::InvalidRequest(_) | DeliveryError::Incomplete { .. } => {
                        (StatusCode::BAD_REQUEST, "invalid_request")
                    }
                    DeliveryError::DigestMismatch { .. } => {
                        (StatusCode::BAD_REQUEST, "digest_mismatch")
                    }
                    DeliveryError::Forbidden(_) => (StatusCode::FORBIDDEN, "access_denied"),
                    DeliveryError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                    DeliveryError::Ambiguous { .. } => (StatusCode::CONFLICT, "delivery_ambiguous"),
                    DeliveryError::LengthRequired => {
                        (StatusCode::LENGTH_REQUIRED, "invalid_request")
                    }
                    DeliveryError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                    DeliveryError::Conflict(_) => (StatusCode::CONFLICT, "delivery_conflict"),
                    DeliveryError::InProgress(_) => (StatusCode::CONFLICT, "delivery_in_progress"),
                    DeliveryError::StorageFull(_) => {
                        (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
                    }
                    DeliveryError::Disabled(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "deliveries_disabled")
                    }
                    DeliveryError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
                    }
                    DeliveryError::Busy(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
                    }
                    DeliveryError::ClientBusy { .. } => {
                        (StatusCode::TOO_MANY_REQUESTS, "too_many_uploads")
                    }
                    DeliveryError::TooSlow { .. } => {
                        (StatusCode::REQUEST_TIMEOUT, "upload_too_slow")
                    }
                    DeliveryError::Internal(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
                    }
                };
                // Server-side details (paths, disk figures) stay in the server's log.
                let description = match e {
                    DeliveryError::StorageFull(_) => {
                        "the server's delivery storage is full; nothing was stored, retry later"
                            .to_string()
                    }
                    DeliveryError::Internal(_) => "internal error; see the server log".to_string(),
                    DeliveryError::Unavailable(_) => {
                        "the delivery store is unavailable; nothing was stored, retry later"
                            .to_string()
                    }
                    other => other.to_string(),
                };
                (status, code, description)
            }
        };
        let body = ErrorBody {
            error: Some(code.to_string()),
            error_description: Some(description),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        match &self {
            ApiError::Bearer(BearerError::Missing) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="identity-server""#),
                );
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"DPoP realm="identity-server""#),
                );
            }
            ApiError::Bearer(BearerError::InvalidDpopProof(_)) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"DPoP realm="identity-server", error="invalid_dpop_proof""#,
                    ),
                );
            }
            ApiError::Bearer(BearerError::InvalidDpopToken(_)) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"DPoP realm="identity-server", error="invalid_token""#,
                    ),
                );
            }
            ApiError::Bearer(BearerError::UseDpopNonce { nonce }) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"DPoP realm="identity-server", error="use_dpop_nonce""#,
                    ),
                );
                if let Ok(v) = HeaderValue::from_str(nonce) {
                    headers.insert(ids_proto::headers::DPOP_NONCE, v);
                }
            }
            // The same pause as the API's own store outage (deliveries), which it is.
            ApiError::Bearer(BearerError::Unavailable) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            ApiError::Bearer(BearerError::Invalid(detail)) => {
                let quoted: String = detail
                    .chars()
                    .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                    .collect();
                let value = format!(
                    r#"Bearer realm="identity-server", error="invalid_token", error_description="{quoted}""#
                );
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&value).unwrap_or_else(|_| {
                        HeaderValue::from_static(
                            r#"Bearer realm="identity-server", error="invalid_token""#,
                        )
                    }),
                );
            }
            ApiError::Delivery(
                DeliveryError::InProgress(_)
                | DeliveryError::Busy(_)
                | DeliveryError::ClientBusy { .. },
            ) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::Delivery(DeliveryError::StorageFull(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            ApiError::Delivery(DeliveryError::Unavailable(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            _ => {}
        }
        response
    }
}
