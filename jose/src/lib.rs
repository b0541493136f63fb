//! JWT access tokens (RFC 9068): signing on the server, verification everywhere else.
//!
//! Who uses it: the identity server signs tokens and verifies client assertions; the agent verifies the
//! tokens it receives and signs its own assertions; `ids-bench` signs for its measurements. Why a crate
//! of its own: it is the crate any Rust service adds to verify our tokens, so it carries JOSE and
//! nothing of the server (no argon2, no rcgen, no HTTP).
//!
//! # Layout
//! - [`sign`]: [`TokenSigner`], the server's hot path, with a pre-parsed key and a pre-encoded header.
//! - [`keyset`]: [`KeySet`], the public keys a verifier trusts: pinned certificates or a JWKS document.
//! - [`verify`]: [`Verifier`], the RFC 8725 checks every consumer of our tokens runs; usable by any Rust
//!   service that wants to protect its own API with tokens from the identity server.
//! - [`dpop`]: DPoP proofs (RFC 9449): [`DpopSigner`] for clients, [`dpop::verify_proof`] and
//!   [`Verifier::verify_dpop`] for servers and APIs that accept DPoP-bound tokens.
//! - [`assertion`]: client assertions (RFC 7523 `private_key_jwt`): [`AssertionSigner`] for clients,
//!   [`UnverifiedAssertion`] for the server, which finds the client's key before it verifies.
//!
//! Protecting an API with tokens from the identity server, offline, with its certificate pinned:
//!
//! ```no_run
//! use std::path::Path;
//! use ids_jose::{KeySet, Validation, Verifier};
//! use ids_pki::Certificate;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cert = Certificate::from_file(Path::new("server.crt"))?;
//! let verifier = Verifier::new(
//!     KeySet::from_certificates([(&cert, "server.crt".to_string())])?,
//!     Validation {
//!         issuer: "https://ids.example.com".into(),
//!         audience: "https://ids.example.com".into(),
//!         leeway_secs: 30,
//!     },
//! );
//! # let (bearer, now) = ("", 0);
//! match verifier.verify(bearer, now) {
//!     Ok(token) if token.has_scope("api") => println!("client {:?}", token.client_id),
//!     Ok(_) => println!("403: scope `api` missing"),
//!     Err(reason) => println!("401: {reason}"), // e.g. "the token expired at ..."
//! }
//! # Ok(())
//! # }
//! ```

pub mod assertion;
pub mod dpop;
pub mod keyset;
pub mod sign;
pub mod verify;

#[cfg(test)]
mod verify_tests;

pub use assertion::{AssertionError, AssertionSigner, UnverifiedAssertion};
pub use dpop::{DpopError, DpopPolicy, DpopProof, DpopRequest, DpopSigner};
pub use keyset::{KeySet, KeySetError, VerificationKey};
pub use sign::TokenSigner;
pub use verify::{
    AccessToken, DpopVerifyError, MAX_LEEWAY_SECS, MAX_TOKEN_LEN, Presentation, Validation,
    Verifier, VerifyError,
};
