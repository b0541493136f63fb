//! Certificates made by the project itself: a private CA, TLS server certificates and token-signing
//! certificates, written as PFX files that `openssl pkcs12` and the server read; client certificates for
//! mutual TLS, PKCS#10 requests and their signing (what `ids-keytool` does instead of `openssl` recipes).
//!
//! Development PKI only: `ids-keytool`, `identity-server quickstart` and the tests use it. It is a crate
//! of its own so that nothing else builds rcgen: the agent and the server's request path read
//! certificates with `ids-pki` and never make them.
//!
//! # Layout
//! - [`key`]: key algorithms ([`KeyKind`]) and new PKCS#8 keys.
//! - [`authority`]: the CA ([`Ca`]): a new one or one read from files, and the certificates it signs.
//! - [`leaf`]: leaf certificate parameters ([`LeafSpec`], [`Usage`], [`San`], client ids) and
//!   self-signed certificates.
//! - [`request`]: PKCS#10 certificate requests, written and verified.
//! - [`pfx`]: PFX files written with p12-keystore ([`to_pfx`]).
//! - [`DevCertError`] and the causes it carries ([`RequestError`], [`AuthorityError`], [`NameError`]).

pub mod authority;
mod error;
pub mod key;
pub mod leaf;
pub mod pfx;
pub mod request;

use zeroize::Zeroizing;

pub use authority::Ca;
pub use error::{AuthorityError, DevCertError, NameError, RequestError};
pub use key::{KeyKind, generate_key};
pub use leaf::{
    CLIENT_URN_PREFIX, LeafSpec, San, Usage, check_client_id, client_sans, client_urn, is_dns_name,
    self_signed, self_signed_signing,
};
pub use pfx::{PfxProfile, to_pfx};
pub use request::{CertificateRequest, create_request, parse_request};

/// A generated certificate and its PKCS#8 private key.
#[derive(Debug)]
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
