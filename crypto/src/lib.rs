//! Cryptography shared by the identity server, the agent and the tools.
//!
//! # Layout
//! - [`cert`]: X.509 certificates (PEM, DER or PFX without key): public key, validity, thumbprints.
//! - [`pfx`]: PKCS#12 (PFX) files with a private key, read with `p12-keystore`'s `Pkcs12Archive`.
//! - [`keys`]: pre-parsed signing keys (RSA >= 2048 bits -> RS256, EC P-256 -> ES256).
//! - [`keyfile`]: key files of any common format (PEM, DER, JWK, PFX) -> public/private key; PKCS#8 PEM out.
//! - [`jwk`]: JSON Web Keys published in the JWKS and RFC 7638 thumbprints.
//! - [`jwt`]: JWT signing with a pre-parsed key (the server's hot path) and the access-token verifier
//!   (pinned certificates or a JWKS) that the agent and any Rust service use.
//! - [`secret`]: client secrets, legacy SHA-256/512 `HashedSecret` values and argon2id PHC strings.
//! - [`devcerts`]: development CA, TLS and signing certificates written as PFX files.
//! - [`cms`]: file encryption as CMS EnvelopedData/AuthEnvelopedData, interoperable with `openssl cms`.
//!
//! Every error names the file it is about and never includes a password or secret.

pub mod b64;
pub mod cert;
pub mod cms;
pub mod devcerts;
pub mod encrypted_file;
pub mod jwk;
pub mod jwt;
pub mod keyfile;
pub mod keys;
pub mod pfx;
pub mod secret;

pub use cert::{Certificate, PublicKey};
pub use jwk::Jwk;
pub use jwt::{
    AccessToken, AssertionSigner, KeySet, TokenSigner, Validation, Verifier, VerifyError,
};
pub use keys::{Algorithm, SigningKey};
pub use pfx::{Pfx, PfxError};
pub use secret::{ClientSecret, SecretHash};
