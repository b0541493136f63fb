//! The single place where domain errors become HTTP responses (RFC 6749 section 5.2).
//! Every answer carries `Cache-Control: no-store`; bodies never include internal details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oauth::OAuthError;

/// An OAuth error as an HTTP response.
#[derive(Debug)]
pub struct ErrorResponse(pub OAuthError, pub StatusCode);

impl From<OAuthError> for ErrorResponse {
    fn from(e: OAuthError) -> Self {
        let status = match &e {
            OAuthError::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthError::InvalidRequest(_)
            | OAuthError::UnsupportedGrantType(_)
            | OAuthError::InvalidScope(_) => StatusCode::BAD_REQUEST,
            OAuthError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ErrorResponse(e, status)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let ErrorResponse(error, status) = self;
        let body = serde_json::json!({
            "error": error.code(),
            "error_description": error.description(),
        });
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
