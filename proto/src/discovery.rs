//! The server's metadata (OpenID Connect Discovery 1.0 section 3, RFC 8414 section 2): what the server
//! writes and what the agent reads. Fields are in alphabetical order, the order of the JSON written.

use serde::{Deserialize, Serialize};

/// The common name of the certificates of the signing keys a server makes and rotates itself
/// (`IdentityServer:KeyManagement Automatic`), followed by the key's `kid`: how an agent that pins
/// a certificate learns that it must read the JWKS instead.
pub const MANAGED_KEY_SUBJECT: &str = "identity-server signing key";

/// A metadata document. When read, every field may be missing (a reader says which one it needs); the
/// fields this product does not act on are also read leniently (a value of the wrong type counts as
/// absent), so that a server with an odd document elsewhere is still usable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// Required by OpenID Connect Discovery, absent from the RFC 8414 document of a server without an
    /// authorization endpoint.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub authorization_endpoint: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub claims_supported: Vec<String>,
    /// RFC 9449 section 5.1.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dpop_signing_alg_values_supported: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub grant_types_supported: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// RFC 8414 section 2 (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9701 section 7.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub introspection_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub response_types_supported: Vec<String>,
    /// RFC 8414 section 2 (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub scopes_supported: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub subject_types_supported: Vec<String>,
    /// RFC 8705 section 3.3.
    #[serde(default, deserialize_with = "lenient")]
    pub tls_client_certificate_bound_access_tokens: bool,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

/// A field that is only informative: a value of another type than expected reads as the default.
fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn informative_fields_of_the_wrong_type_read_as_absent_the_used_ones_do_not() {
        let odd = r#"{"issuer":"https://ids","token_endpoint":"https://ids/connect/token",
            "claims_supported":null,"scopes_supported":"api","grant_types_supported":[1],
            "tls_client_certificate_bound_access_tokens":"yes","authorization_endpoint":7}"#;
        let m: ProviderMetadata = serde_json::from_str(odd).unwrap();
        assert_eq!(m.issuer.as_deref(), Some("https://ids"));
        assert!(m.claims_supported.is_empty() && m.scopes_supported.is_empty());
        assert!(m.grant_types_supported.is_empty());
        assert!(!m.tls_client_certificate_bound_access_tokens);
        assert!(m.authorization_endpoint.is_none());
        assert!(serde_json::from_str::<ProviderMetadata>(r#"{"issuer":5}"#).is_err());
        assert!(
            serde_json::from_str::<ProviderMetadata>(
                r#"{"token_endpoint_auth_methods_supported":"private_key_jwt"}"#
            )
            .is_err()
        );
    }
}
