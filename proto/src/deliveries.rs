//! The deliveries API's receipt (`docs/deliveries.md`): what the server answers for a delivery stored,
//! found or listed, and what the agent reads back.

use serde::{Deserialize, Serialize};

use crate::{ClientId, DeliveryId};

/// The record of a completed delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The id the agent chose (idempotency key, in the namespace of `client_id`).
    pub id: DeliveryId,
    /// The file name the agent gave (never used as a path on the server).
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
    /// The OAuth client (token `sub`) that delivered it.
    pub client_id: ClientId,
    /// The agent identifier the agent sent (`OpenId:AgentIdentifier`), if any.
    #[serde(default)]
    pub agent: Option<String>,
    /// The client's profile from the access-control XML at the time of delivery.
    #[serde(default)]
    pub profile: Option<String>,
    /// When the server committed it (RFC 3339, UTC).
    pub received_at: String,
    /// Size of the stored encrypted file.
    #[serde(default)]
    pub stored_bytes: u64,
    /// SHA-256 thumbprint (x5t#S256, hex) of the certificate the content is encrypted for.
    #[serde(default)]
    pub encrypted_for: String,
}
