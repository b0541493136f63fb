//! Header and query names of the deliveries API (`docs/deliveries.md`).

/// RFC 9530 digest of the whole file: `sha-256=:<base64>:`.
pub const REPR_DIGEST: &str = "repr-digest";
/// The agent's `OpenId:AgentIdentifier`, recorded with a delivery.
pub const AGENT_IDENTIFIER: &str = "agent-identifier";
/// Query parameter: the file name of a delivery.
pub const NAME: &str = "name";
/// Query parameter: whose delivery an administrator reads.
pub const CLIENT: &str = "client";

/// The `Repr-Digest` value for a SHA-256 digest.
pub fn repr_digest_sha256(digest: &[u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}
