//! The wire contract the identity server and the agent share: one definition of each path, header and
//! body, so that the two sides cannot drift apart.
//!
//! # Layout
//! - [`paths`]: endpoint paths (token, discovery, JWKS, health, deliveries).
//! - [`headers`]: header and query names of the deliveries API, the `Repr-Digest` value.
//! - [`oauth`]: the token response and the OAuth error body (RFC 6749 section 5).
//! - [`discovery`]: the metadata document (OpenID Connect Discovery, RFC 8414).
//! - [`deliveries`]: the delivery receipt.
//! - [`ids`]: identifier types (`ClientId`, `DeliveryId`) from one macro.
//! - [`secrets`]: secret types (`ClientSecret`, `Password`, `BearerToken`) from one macro: redacted
//!   `Debug`, constant-time equality, wiped on drop.

pub mod deliveries;
pub mod discovery;
pub mod headers;
pub mod ids;
pub mod oauth;
pub mod paths;
pub mod secrets;

pub use ids::{ClientId, DeliveryId};
pub use secrets::{BearerToken, ClientSecret, Password};

#[doc(hidden)]
pub mod __private {
    pub use serde::{Deserialize, Deserializer, Serialize, Serializer};
    pub use subtle::ConstantTimeEq;
    pub use zeroize::Zeroizing;
}
