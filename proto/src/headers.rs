//! Header and query names of the deliveries API (`docs/deliveries.md`).

/// RFC 9530 digest of the whole file: `sha-256=:<base64>:`.
pub const REPR_DIGEST: &str = "repr-digest";
/// The plaintext size of a delivery whose `Repr-Digest` comes as a request trailer (the body is then
/// sent without `Content-Length`: chunked over HTTP/1.1, a trailing HEADERS frame over HTTP/2).
pub const UPLOAD_LENGTH: &str = "upload-length";
/// Sent by the server on every answer to `GET /api/deliveries/{id}` (the agent's check before it
/// sends): the request trailers a delivery may carry, [`REPR_DIGEST_TRAILER`]. A server without it
/// needs `Repr-Digest` as a header, before the body.
pub const DELIVERY_TRAILERS: &str = "delivery-trailers";
/// The value of [`DELIVERY_TRAILERS`] and of a delivery's `Trailer` header.
pub const REPR_DIGEST_TRAILER: &str = "repr-digest";
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
