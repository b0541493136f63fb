//! JWT access tokens (RFC 9068): signing on the server, verification everywhere else.
//!
//! - [`sign`]: [`TokenSigner`], the server's hot path, with a pre-parsed key and a pre-encoded header.
//! - [`keyset`]: [`KeySet`], the public keys a verifier trusts: pinned certificates or a JWKS document.
//! - [`verify`]: [`Verifier`], the RFC 8725 checks every consumer of our tokens runs; usable by any Rust
//!   service that wants to protect its own API with tokens from the identity server.

pub mod keyset;
pub mod sign;
pub mod verify;

#[cfg(test)]
mod verify_tests;

pub use keyset::{KeySet, KeySetError, VerificationKey};
pub use sign::TokenSigner;
pub use verify::{AccessToken, MAX_LEEWAY_SECS, MAX_TOKEN_LEN, Validation, Verifier, VerifyError};
