//! Bodies of the token endpoint (RFC 6749 section 5) and the server's metadata documents.

use serde::{Deserialize, Serialize};

pub use crate::discovery::ProviderMetadata;

/// The token endpoint's success body (RFC 6749 section 5.1). Every field is optional when read, so
/// that a reader can say which one a server left out.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TokenResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<crate::BearerToken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// A number; some servers send it as a string, so it is kept as JSON until checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// An OAuth error body (RFC 6749 section 5.2), also used by the deliveries API.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_responses_keep_the_token_out_of_debug_and_write_rfc_6749_json() {
        let r = TokenResponse {
            access_token: Some(crate::BearerToken::new("eyJsecret")),
            token_type: Some("Bearer".into()),
            expires_in: Some(3600.into()),
            scope: Some("api".into()),
        };
        assert!(!format!("{r:?}").contains("eyJsecret"));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"access_token":"eyJsecret","token_type":"Bearer","expires_in":3600,"scope":"api"}"#
        );
        let read: TokenResponse = serde_json::from_str(r#"{"token_type":"Bearer"}"#).unwrap();
        assert!(read.access_token.is_none());
        let e = ErrorBody {
            error: Some("invalid_client".into()),
            error_description: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"error":"invalid_client"}"#
        );
    }
}
