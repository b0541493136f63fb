//! The encrypted-file format (`IDSENC` version 1, specified in `docs/encrypted-file-format.md`):
//! a header naming each recipient certificate by its SHA-256 thumbprint with the file key wrapped for
//! it, then AES-256-GCM chunks in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015).
//!
//! Memory is constant whatever the file size: one chunk buffer on each side. Every chunk is authenticated
//! before a byte of it is handed out, so a reader never sees unauthenticated plaintext; `recover` mode
//! stops at the last authentic chunk of a file cut short (an agent log written until a crash).
//!
//! # Layout
//! - [`format`](mod@format): header layout, limits, parsing and serialising.
//! - [`thumbprint`]: how a header names a recipient (SHA-256 of its certificate).
//! - [`recipient`]: who can read a file: RSA-OAEP-SHA256 or ECDH-ES P-256 key wrapping, by certificate.
//! - [`encrypt`]: [`Encryptor`], a `Write` that seals chunks; [`encrypt_stream`] for a whole reader.
//! - [`layout`](mod@layout): the plaintext length from the chunk framing, without decrypting.
//! - [`decrypt`]: [`Decryptor`], chunk by chunk; [`decrypt_stream`] with strict and recover modes.
//! - [`error`]: what went wrong, classified as "not for this key", "damaged" or I/O.
pub mod decrypt;
pub mod encrypt;
pub mod error;
pub mod format;
pub mod layout;
pub mod recipient;
pub mod thumbprint;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use decrypt::{Decryptor, Mode, Outcome, decrypt_stream};
pub use encrypt::{Encryptor, encrypt_stream};
pub use error::{FailureKind, FileError};
pub use format::{DEFAULT_CHUNK_SIZE, Header, Thumbprint, read_header};
pub use layout::{Layout, layout};
pub use recipient::{DecryptionKey, Recipient};
