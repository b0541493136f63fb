-- identity-server shared store, version 4: revoked access tokens (RFC 7009), refused by every server's
-- introspection and API until the token's exp (identity-server/src/store/postgres/revocations.rs).
-- The key is SHA-256(jti) truncated to 128 bits: the jti itself is not kept. Expired rows are deleted
-- by every server's maintenance.
CREATE TABLE ids_revoked_tokens (
    key bytea PRIMARY KEY CHECK (octet_length(key) = 16),
    client_id text NOT NULL,
    expires_at bigint NOT NULL
);
