//! Endpoint paths, relative to the issuer (`ApplicationUri`).

/// RFC 6749 token endpoint (IdentityServer's path).
pub const TOKEN: &str = "/connect/token";
/// RFC 7662 token introspection (IdentityServer's path).
pub const INTROSPECT: &str = "/connect/introspect";
/// RFC 7009 token revocation (IdentityServer's path).
pub const REVOCATION: &str = "/connect/revocation";
/// Answers that interactive authorization is not supported (advertised for OIDC discovery clients).
pub const AUTHORIZE: &str = "/connect/authorize";
/// OpenID Connect Discovery 1.0 document.
pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
/// RFC 8414 authorization server metadata.
pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
/// The JWKS (IdentityServer's path).
pub const JWKS: &str = "/.well-known/openid-configuration/jwks";
/// Health check (`Healthy`), as IdentityServer deployments probe it.
pub const HEALTH: &str = "/hc";
/// The deliveries API: `GET` lists; `/{id}` `PUT` delivers and `GET` reads a record; `/{id}/content`
/// `GET` reads the file.
pub const DELIVERIES: &str = "/api/deliveries";

/// `/api/deliveries/{id}`.
pub fn delivery(id: &str) -> String {
    format!("{DELIVERIES}/{id}")
}

/// `/api/deliveries/{id}/content`.
pub fn delivery_content(id: &str) -> String {
    format!("{DELIVERIES}/{id}/content")
}
