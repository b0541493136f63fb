-- identity-server shared store, version 5: the token-signing keys the servers make and rotate
-- themselves (IdentityServer:KeyManagement Automatic; identity-server/src/store/postgres/keys.rs).
-- One row per key: its RFC 7638 thumbprint, algorithm, times (Unix seconds), self-signed certificate
-- (public) and PKCS#8 private key sealed for the servers' EncryptionCertificate (IDSENC). A key is made
-- by one server under an advisory lock; every server reads them.
CREATE TABLE ids_signing_keys (
    kid text PRIMARY KEY,
    algorithm text NOT NULL,
    created bigint NOT NULL,
    activates bigint NOT NULL,
    certificate bytea NOT NULL,
    sealed bytea NOT NULL
);
