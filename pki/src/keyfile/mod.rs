//! Key files of every common format, read into the crate's [`PublicKey`] and PKCS#8 private keys, and
//! written back as PKCS#8 PEM.
//!
//! Read: PEM blocks `CERTIFICATE`, `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1), `PRIVATE KEY`
//! (PKCS#8), `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2, RFC 8018), `RSA PRIVATE KEY` (PKCS#1),
//! `EC PRIVATE KEY` (SEC1, RFC 5915), `CERTIFICATE REQUEST` (its public key); the same structures as
//! DER; a JWK (RFC 7517 JSON object with `kty`, or a JWK set holding one key); a PFX (PKCS#12).
//! Only RSA of at least 2048 bits and EC P-256 keys are accepted, as everywhere in the crate.
//! OpenSSH keys are recognised only to say how to convert them (`ssh-keygen -e -m PKCS8`).
//!
//! Written: PKCS#8 `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with PBES2 = PBKDF2-HMAC-SHA256
//! ([`PBKDF2_ITERATIONS`] rounds, 16-byte random salt) + AES-256-CBC (random IV), which OpenSSL 1.1
//! and 3 read (`openssl pkey -in key.pem -passin ...`); SPKI `PUBLIC KEY`.
//!
//! Every error names the file and says what was expected; none carries a passphrase or key bytes.
//!
//! # Layout
//! One ASN.1 stack: RustCrypto `der` (with its derive), `spki`, `pkcs8` and `const-oid`, the crates
//! `p12-keystore` already brings; one PEM implementation, [`crate::pem`] on `pem-rfc7468`.
//! - `mod.rs` (this file): the types, the error, and the entry points ([`parse_public`],
//!   [`parse_private`] and their `read_*` forms, [`public_key_from_jwk`]).
//! - `formats.rs`: what a file holds (PEM blocks, DER, JSON, PFX) and which of its parts is the key.
//! - `asn1.rs`: the DER structures (SPKI, PKCS#1 `RSAPublicKey`/`RSAPrivateKey`, SEC1
//!   `ECPrivateKey`, declared with `der`'s derive), recognising DER by its shape, SPKI encoding.
//! - `private.rs`: private keys checked with aws-lc-rs and converted to PKCS#8; PBES2 decryption.
//! - `write.rs`: PKCS#8 PEM (optionally encrypted), SPKI DER and PEM, certificate PEM.

use std::path::Path;

use zeroize::Zeroizing;

use crate::cert::{CertError, Certificate, PublicKey};
use crate::jwk::{Jwk, thumbprint};
use crate::pfx::PfxError;

mod asn1;
mod formats;
mod private;
mod write;

pub use asn1::public_key_from_spki;
pub use write::{
    certificate_pem, private_key_pem, public_key_der, public_key_pem, subject_public_key_bits,
};

use asn1::rsa_public_key;
use asn1::{DerKind, classify_der, public_key_from_csr, public_key_from_pkcs1};
use formats::{
    looks_like_json, pem_blocks, private_from_der, private_from_pem, private_from_pfx,
    public_from_json, public_from_pem, public_from_pfx, read, unrecognized,
};

/// PBKDF2-HMAC-SHA256 rounds for keys written with a passphrase. OWASP (2023) recommends 600,000;
/// 100,000 keeps a key operation under a second on small machines and in unoptimised test builds, and
/// is still 50 times OpenSSL's default of 2,048.
pub const PBKDF2_ITERATIONS: u32 = 100_000;

/// What is accepted, for error messages.
const ACCEPTED: &str = "accepted: PEM `PUBLIC KEY`, `RSA PUBLIC KEY`, `CERTIFICATE`, `PRIVATE KEY`, \
     `ENCRYPTED PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY` or `CERTIFICATE REQUEST`, the same as DER, \
     a JWK JSON object (with `kty`), or a PFX/PKCS#12 file";

/// What a key file held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileKind {
    Certificate,
    PublicKey,
    PrivateKey,
    Jwk,
    Pfx,
}

impl KeyFileKind {
    /// `certificate`, `public key`, `private key`, `JWK`, `PFX`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFileKind::Certificate => "certificate",
            KeyFileKind::PublicKey => "public key",
            KeyFileKind::PrivateKey => "private key",
            KeyFileKind::Jwk => "JWK",
            KeyFileKind::Pfx => "PFX",
        }
    }
}

impl std::fmt::Display for KeyFileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key file could not be used. Messages name the file, never a passphrase or key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{file}: cannot read the file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a key, certificate, JWK or PFX file ({detail}); {ACCEPTED}")]
    Unrecognized { file: String, detail: String },
    #[error("{file}: {what} is damaged: {detail}")]
    Malformed {
        file: String,
        what: String,
        detail: String,
    },
    #[error(
        "{file}: the key is protected by a passphrase (ENCRYPTED PRIVATE KEY or PFX): give the passphrase"
    )]
    NeedsPassword { file: String },
    #[error("{file}: wrong passphrase: the key could not be decrypted with it")]
    WrongPassword { file: String },
    #[error("{file}: {detail}")]
    UnsupportedEncryption { file: String, detail: String },
    #[error("{file}: unsupported key: {detail} (supported: RSA of at least 2048 bits, EC P-256)")]
    UnsupportedKey { file: String, detail: String },
    #[error("{file}: RSA key of {bits} bits is too small: at least 2048 bits are required")]
    WeakRsa { file: String, bits: usize },
    #[error("{file}: {count} private keys in one file: expected exactly one")]
    SeveralKeys { file: String, count: usize },
    #[error("{file}: holds no private key (found {found}); expected a private key here")]
    NoPrivateKey { file: String, found: String },
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Pfx(PfxError),
    #[error("cannot write the private key as PKCS#8 PEM: {detail}")]
    Write { detail: String },
}

/// Public key material read from a file.
#[derive(Clone, Debug)]
pub struct PublicKeyFile {
    pub public_key: PublicKey,
    /// The certificate the key came from or was found with (a PEM bundle, a PFX, a JWK `x5c`).
    pub certificate: Option<Certificate>,
    pub kind: KeyFileKind,
}

impl PublicKeyFile {
    /// RFC 7638 JWK thumbprint of the public key.
    pub fn jwk_thumbprint(&self) -> String {
        thumbprint(&self.public_key)
    }
}

/// A private key (PKCS#8 DER) with the certificate(s) found beside it.
pub struct PrivateKeyFile {
    /// PKCS#8 `PrivateKeyInfo` DER, whatever the file's format; wiped on drop.
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub public_key: PublicKey,
    /// The first certificate in the file whose public key is the key's.
    pub certificate: Option<Certificate>,
    /// The other certificates in the file.
    pub chain: Vec<Certificate>,
    pub kind: KeyFileKind,
}

impl std::fmt::Debug for PrivateKeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKeyFile")
            .field("pkcs8", &"<redacted>")
            .field("public_key", &self.public_key.describe())
            .field(
                "certificate",
                &self.certificate.as_ref().map(|c| c.subject()),
            )
            .field("chain", &self.chain.len())
            .field("kind", &self.kind)
            .finish()
    }
}

impl PrivateKeyFile {
    /// RFC 7638 JWK thumbprint of the public key.
    pub fn jwk_thumbprint(&self) -> String {
        thumbprint(&self.public_key)
    }
}

/// Reads any public key material: PEM or DER certificate, SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`,
/// a private key (its public half), a JWK (JSON object with kty), or a PFX (password needed).
pub fn read_public(path: &Path, password: Option<&str>) -> Result<PublicKeyFile, KeyFileError> {
    let (file, bytes) = read(path)?;
    parse_public(&file, &bytes, password)
}

/// [`read_public`] on bytes; `file` names them in errors.
pub fn parse_public(
    file: &str,
    bytes: &[u8],
    password: Option<&str>,
) -> Result<PublicKeyFile, KeyFileError> {
    if looks_like_json(bytes) {
        return public_from_json(file, bytes);
    }
    if let Some(blocks) = pem_blocks(file, bytes)? {
        return public_from_pem(file, &blocks, password);
    }
    let der = bytes;
    match classify_der(der) {
        DerKind::Certificate => {
            let cert = Certificate::from_der(file, der)?;
            Ok(PublicKeyFile {
                public_key: cert.public_key().clone(),
                certificate: Some(cert),
                kind: KeyFileKind::Certificate,
            })
        }
        DerKind::Spki => Ok(PublicKeyFile {
            public_key: public_key_from_spki(file, der)?,
            certificate: None,
            kind: KeyFileKind::PublicKey,
        }),
        DerKind::RsaPublic => Ok(PublicKeyFile {
            public_key: public_key_from_pkcs1(file, der)?,
            certificate: None,
            kind: KeyFileKind::PublicKey,
        }),
        DerKind::Csr => Ok(PublicKeyFile {
            public_key: public_key_from_csr(file, der)?,
            certificate: None,
            kind: KeyFileKind::PublicKey,
        }),
        DerKind::Pfx => public_from_pfx(file, der, password),
        DerKind::Pkcs8 | DerKind::EncryptedPkcs8 | DerKind::RsaPrivate | DerKind::EcPrivate => {
            let key = private_from_der(file, der, password)?;
            Ok(PublicKeyFile {
                public_key: key.public_key,
                certificate: None,
                kind: KeyFileKind::PrivateKey,
            })
        }
        DerKind::Unknown => Err(unrecognized(file, bytes)),
    }
}

/// A public key from a JWK (RSA or EC P-256; RSA >= 2048 bits).
pub fn public_key_from_jwk(file: &str, jwk: &Jwk) -> Result<PublicKey, KeyFileError> {
    let member = |name: &str, value: &Option<String>| -> Result<Vec<u8>, KeyFileError> {
        let text = value.as_deref().ok_or_else(|| KeyFileError::Malformed {
            file: file.to_string(),
            what: format!("the {} JWK", jwk.kty),
            detail: format!("member `{name}` is missing"),
        })?;
        b64_url_lenient(text).ok_or_else(|| KeyFileError::Malformed {
            file: file.to_string(),
            what: format!("the {} JWK", jwk.kty),
            detail: format!("member `{name}` is not base64url"),
        })
    };
    match jwk.kty.as_str() {
        "RSA" => {
            let n = member("n", &jwk.n)?;
            let e = member("e", &jwk.e)?;
            rsa_public_key(file, &n, &e)
        }
        "EC" => {
            let crv = jwk.crv.as_deref().unwrap_or("(missing)");
            if crv != "P-256" {
                return Err(KeyFileError::UnsupportedKey {
                    file: file.to_string(),
                    detail: format!("EC key on curve `{crv}`"),
                });
            }
            let x = member("x", &jwk.x)?;
            let y = member("y", &jwk.y)?;
            if x.len() != 32 || y.len() != 32 {
                return Err(KeyFileError::Malformed {
                    file: file.to_string(),
                    what: "the EC JWK".into(),
                    detail: format!(
                        "P-256 coordinates are 32 bytes each, found x {} and y {} bytes",
                        x.len(),
                        y.len()
                    ),
                });
            }
            Ok(PublicKey::P256 { x, y })
        }
        "OKP" => Err(KeyFileError::UnsupportedKey {
            file: file.to_string(),
            detail: format!(
                "OKP key ({})",
                jwk.crv.as_deref().unwrap_or("no curve named")
            ),
        }),
        "oct" => Err(KeyFileError::UnsupportedKey {
            file: file.to_string(),
            detail: "symmetric (`oct`) JWK: it has no public key".into(),
        }),
        other => Err(KeyFileError::UnsupportedKey {
            file: file.to_string(),
            detail: format!("JWK key type `{other}`"),
        }),
    }
}

/// PEM `PRIVATE KEY`, `ENCRYPTED PRIVATE KEY` (PBES2; passphrase required), `RSA PRIVATE KEY` (PKCS#1),
/// `EC PRIVATE KEY` (SEC1, P-256), DER PKCS#8, or a PFX. A PEM file may also contain CERTIFICATE blocks
/// (key + cert in one file): the first whose public key matches the private key becomes `certificate`,
/// the others `chain`.
pub fn read_private(path: &Path, password: Option<&str>) -> Result<PrivateKeyFile, KeyFileError> {
    let (file, bytes) = read(path)?;
    parse_private(&file, &bytes, password)
}

/// [`read_private`] on bytes; `file` names them in errors.
pub fn parse_private(
    file: &str,
    bytes: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    if looks_like_json(bytes) {
        return Err(KeyFileError::NoPrivateKey {
            file: file.to_string(),
            found: "a JWK; JWK private keys are not read, give the key as PEM".into(),
        });
    }
    if let Some(blocks) = pem_blocks(file, bytes)? {
        return private_from_pem(file, &blocks, password);
    }
    match classify_der(bytes) {
        DerKind::Pfx => private_from_pfx(file, bytes, password),
        DerKind::Pkcs8 | DerKind::EncryptedPkcs8 | DerKind::RsaPrivate | DerKind::EcPrivate => {
            private_from_der(file, bytes, password)
        }
        DerKind::Certificate | DerKind::Spki | DerKind::RsaPublic | DerKind::Csr => {
            Err(KeyFileError::NoPrivateKey {
                file: file.to_string(),
                found: "public key material only (DER)".into(),
            })
        }
        DerKind::Unknown => Err(unrecognized(file, bytes)),
    }
}

fn unsupported(file: &str, detail: &str) -> KeyFileError {
    KeyFileError::UnsupportedKey {
        file: file.to_string(),
        detail: detail.to_string(),
    }
}

fn malformed(file: &str, what: &str, detail: impl std::fmt::Display) -> KeyFileError {
    KeyFileError::Malformed {
        file: file.to_string(),
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// base64url, tolerating padding and the standard alphabet some tools write.
fn b64_url_lenient(text: &str) -> Option<Vec<u8>> {
    crate::b64::url_decode(&crate::b64::url_alphabet(text.trim()))
}
