//! Public-key infrastructure shared by the identity server, the agent and the tools.
//!
//! Who uses it: the server (its signing and TLS PFX, validation keys, client certificates and
//! `authorized_clients` key files), the agent (the server's pinned certificate, its own PFX), `ids-jose`
//! and `ids-seal` (the keys they sign, verify and encrypt with), `ids-config` (the certificate that
//! protects settings) and the tools. Why a crate of its own: every one of them reads certificates and
//! keys, and none of them should build what only some need (JWT, argon2, rcgen): this is the one
//! place a certificate or key file is parsed, with one ASN.1 and one PEM stack.
//!
//! # Layout
//! - [`cert`]: X.509 certificates (PEM, DER or PFX without key): public key, validity, thumbprints.
//! - [`pfx`]: PKCS#12 (PFX) files with a private key, read with `p12-keystore`'s `Pkcs12Archive`.
//! - [`keys`]: pre-parsed signing keys (RSA >= 2048 bits -> RS256, EC P-256 -> ES256).
//! - [`keyfile`]: key files of any common format (PEM, DER, JWK, PFX) -> public/private key; PKCS#8 PEM out.
//! - [`pem`]: PEM (RFC 7468) on `pem-rfc7468`, the one PEM reader and writer of the workspace.
//! - [`jwk`]: JSON Web Keys published in the JWKS and RFC 7638 thumbprints.
//! - [`b64`]: the base64 alphabets used on the wire and in files, and hex (on the `hex` crate).
//!
//! ASN.1 is RustCrypto `der` (with `spki`, `pkcs8`, `const-oid`) for everything this crate encodes or
//! decodes itself; `x509-parser` reads certificates and certificate requests.
//!
//! Every error names the file it is about and never includes a password or secret.

pub mod b64;
pub mod cert;
pub mod jwk;
pub mod keyfile;
pub mod keys;
pub mod pem;
pub mod pfx;

pub use cert::{Certificate, PublicKey};
pub use jwk::Jwk;
pub use keys::{Algorithm, SigningKey};
pub use pfx::{Pfx, PfxError};
