//! CMS file encryption (RFC 5652 EnvelopedData, RFC 5083 AuthEnvelopedData) that interoperates with
//! `openssl cms -encrypt` / `openssl cms -decrypt`.
//!
//! # What is written
//! [`encrypt`] writes DER `ContentInfo { id-ct-authEnvelopedData, AuthEnvelopedData }` (RFC 5083
//! section 2.1) with AES-256-GCM content encryption (RFC 5084) and one recipient per certificate:
//! - RSA: KeyTransRecipientInfo with RSAES-OAEP, SHA-256 and MGF1-SHA-256 (RFC 8017, RFC 4055), the
//!   recipient named by issuer and serial number;
//! - EC P-256: KeyAgreeRecipientInfo with an ephemeral-static ECDH key, the X9.63 SHA-256 KDF and
//!   AES-256 key wrap (RFC 5753 section 3.1, as OpenSSL writes it).
//!
//! `openssl cms -decrypt -inform DER -binary -inkey key.pem -recip cert.pem` reads the result.
//!
//! # What is read
//! [`decrypt`] reads what `openssl cms -encrypt -outform DER` writes, with or without `-stream`
//! (BER indefinite lengths): EnvelopedData with AES-CBC and AuthEnvelopedData with AES-GCM; RSA
//! recipients with PKCS#1 v1.5 or OAEP (SHA-1 or SHA-2), named by issuer and serial or by subject key
//! identifier (`-keyid`); EC P-256 recipients with the X9.63 KDF over SHA-1 or SHA-2 and AES key
//! wrap. Authenticated attributes are checked as GCM additional data (RFC 5083 section 2.2).
//!
//! Refused with [`CmsError::Unsupported`], naming the OID:
//! - 3DES (`des-ede3-cbc`, the default of `openssl cms -encrypt` before OpenSSL 3.5, and the 3DES key
//!   wrap it pairs with EC keys): aws-lc-rs offers DES only behind its `legacy-des` feature, which
//!   rebuilds aws-lc-sys with all bindings. Encrypt with `-aes-256-gcm` instead.
//! - `id-aes192-wrap` (EC recipients of `-aes-192-*` files): aws-lc-rs key wrap has AES-128 and
//!   AES-256 only.
//! - password, KEK and other recipient kinds are skipped; detached content is refused.
//!
//! # Limits
//! CMS mode is not streaming: the whole file is held in memory, so plaintexts are limited to
//! [`MAX_CMS_PLAINTEXT`]. GCM's tag is checked before any plaintext is returned.

mod ber;
mod content;
mod encode;
mod identity;
mod kari;
mod ktri;
mod oid;
mod read;
mod recipient;
mod write;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod known_answers;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fmt;

pub use read::{decrypt, recipients};
pub use write::encrypt;

/// Largest plaintext [`encrypt`] accepts (1 GiB); [`decrypt`] refuses ciphertexts longer than this
/// plus one AES block (CBC padding). CMS mode is not streaming: AES-GCM in aws-lc-rs is one-shot and
/// the tag must be checked before any plaintext is released (RFC 5083), so the whole file
/// is held in memory. Larger files are refused with [`CmsError::TooLarge`].
pub const MAX_CMS_PLAINTEXT: u64 = 1 << 30;

/// Whether `prefix` (the first bytes of a file, 64 are plenty) starts a CMS encrypted message: a
/// DER or BER SEQUENCE whose first element is the OID id-envelopedData (1.2.840.113549.1.7.3,
/// RFC 5652 section 6.1) or id-ct-authEnvelopedData (1.2.840.113549.1.9.16.1.23, RFC 5083 section 2.1).
/// Only the headers are looked at, so a prefix of a large file works.
pub fn looks_like_cms(prefix: &[u8]) -> bool {
    let Ok(outer) = ber::parse_header(prefix) else {
        return false;
    };
    if outer.tag != ber::tag::SEQUENCE {
        return false;
    }
    let rest = &prefix[outer.header_len..];
    let Ok(first) = ber::parse_header(rest) else {
        return false;
    };
    let oid = rest
        .get(first.header_len..)
        .and_then(|r| first.len.and_then(|len| r.get(..len)));
    first.tag == ber::tag::OID
        && matches!(oid, Some(o) if o == oid::ENVELOPED_DATA || o == oid::AUTH_ENVELOPED_DATA)
}

/// The result of [`decrypt`]. `Debug` shows the plaintext's length, not its bytes.
pub struct Decrypted {
    /// The content, wiped from memory when dropped.
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    /// `true` for AuthEnvelopedData (AES-GCM: the content is known to be unmodified); `false` for
    /// EnvelopedData (AES-CBC: damage or tampering may go unnoticed).
    pub authenticated: bool,
    /// The content cipher, e.g. `AES-256-GCM` or `AES-256-CBC`.
    pub content_cipher: &'static str,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("authenticated", &self.authenticated)
            .field("content_cipher", &self.content_cipher)
            .finish()
    }
}

/// Who a file is encrypted for (RFC 5652 section 6.2.1 `RecipientIdentifier`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientId {
    /// The certificate with this issuer and serial number (`openssl x509 -noout -issuer -serial`).
    IssuerSerial {
        /// Issuer distinguished name, e.g. `CN=Example CA, O=Example`.
        issuer: String,
        /// Serial number in upper-case hex without separators, as `openssl x509 -serial` shows it.
        serial_hex: String,
    },
    /// The certificate with this subject key identifier, upper-case hex
    /// (`openssl x509 -noout -ext subjectKeyIdentifier` shows it with colons).
    SubjectKeyId(String),
}

impl fmt::Display for RecipientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientId::IssuerSerial { issuer, serial_hex } => {
                write!(
                    f,
                    "certificate issued by `{issuer}` with serial {serial_hex}"
                )
            }
            RecipientId::SubjectKeyId(ski) => {
                write!(f, "certificate with subject key identifier {ski}")
            }
        }
    }
}

fn list(recipients: &[RecipientId]) -> String {
    if recipients.is_empty() {
        return "no certificate (the file has no recipient this program understands)".into();
    }
    recipients
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a CMS file could not be written or read. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("not a valid CMS encrypted file (damaged or truncated?): {detail}")]
    Malformed { detail: String },
    #[error("unsupported CMS file: it uses {what}")]
    Unsupported { what: String },
    #[error(
        "the file is not encrypted for this certificate; it can be decrypted with: {}",
        list(recipients)
    )]
    NotForThisKey { recipients: Vec<RecipientId> },
    #[error(
        "the file is encrypted for this certificate, but its content key could not be decrypted \
         with the private key: the file is damaged or was tampered with"
    )]
    KeyUnwrap,
    #[error(
        "the file was modified or damaged after it was encrypted (AES-GCM authentication tag \
         mismatch); nothing was decrypted"
    )]
    Tampered,
    #[error(
        "decryption produced invalid padding (AES-CBC): the file is damaged or its content key is \
         wrong; CBC files carry no integrity check, so damage and tampering look the same"
    )]
    BadPadding,
    #[error(
        "the content is {size} bytes; CMS files are processed in memory and may hold at most \
         {MAX_CMS_PLAINTEXT} bytes (1 GiB): use the native format for larger files"
    )]
    TooLarge { size: u64 },
    #[error("cryptographic operation failed: {detail}")]
    Crypto { detail: String },
}

impl CmsError {
    fn unsupported(what: impl Into<String>) -> Self {
        CmsError::Unsupported { what: what.into() }
    }

    fn crypto(detail: impl Into<String>) -> Self {
        CmsError::Crypto {
            detail: detail.into(),
        }
    }
}
