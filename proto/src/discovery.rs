//! The server's metadata (OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2): what the server
//! writes and what the agent reads. Fields are in alphabetical order, the order of the JSON written.

use serde::{Deserialize, Serialize};

/// A metadata document. When read, every field may be missing (a reader says which one it needs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// Required by OpenID Connect Discovery, absent from the RFC 8414 document of a server without an
    /// authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub claims_supported: Vec<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub subject_types_supported: Vec<String>,
    /// RFC 8705 section 3.3.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}
