//! Header and query names of the deliveries API (`docs/deliveries.md`) and of DPoP (RFC 9449).

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
/// RFC 9449: the DPoP proof of a request.
pub const DPOP: &str = "dpop";
/// RFC 9449 section 8: a nonce the server wants in the next DPoP proof.
pub const DPOP_NONCE: &str = "dpop-nonce";
/// The `Authorization` scheme of DPoP-bound tokens (RFC 9449 section 7.1) and their `token_type`.
pub const DPOP_SCHEME: &str = "DPoP";
/// Query parameter: the file name of a delivery.
pub const NAME: &str = "name";
/// Query parameter: whose delivery an administrator reads.
pub const CLIENT: &str = "client";

/// Whether the values of a comma-separated list header (RFC 9110 section 5.6.1: `Trailer`,
/// [`DELIVERY_TRAILERS`]) name `field`, compared without regard to case.
pub fn list_names<'a>(values: impl IntoIterator<Item = &'a str>, field: &str) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|member| member.trim().eq_ignore_ascii_case(field))
}

/// The `Repr-Digest` value for a SHA-256 digest.
pub fn repr_digest_sha256(digest: &[u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_members_are_found_in_any_value_and_case() {
        assert!(list_names(["Repr-Digest"], REPR_DIGEST_TRAILER));
        assert!(list_names(
            ["x-a, repr-digest ", "x-b"],
            REPR_DIGEST_TRAILER
        ));
        assert!(list_names(["x-a", "REPR-DIGEST"], REPR_DIGEST_TRAILER));
        assert!(!list_names(["repr-digest-2, x"], REPR_DIGEST_TRAILER));
        assert!(!list_names([], REPR_DIGEST_TRAILER));
    }
}
