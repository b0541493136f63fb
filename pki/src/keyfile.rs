//! Key files of every common format, read into the crate's [`PublicKey`] and PKCS#8 private keys, and
//! written back as PKCS#8 PEM.
//!
//! Read: PEM blocks `CERTIFICATE`, `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1), `PRIVATE KEY`
//! (PKCS#8), `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2, RFC 8018), `RSA PRIVATE KEY` (PKCS#1),
//! `EC PRIVATE KEY` (SEC1, RFC 5915), `CERTIFICATE REQUEST` (its public key); the same structures as
//! DER; a JWK (RFC 7517 JSON object with `kty`, or a JWK set holding one key); a PFX (PKCS#12).
//! Only RSA of at least 2048 bits and EC P-256 keys are accepted, as everywhere in the crate.
//!
//! Written: PKCS#8 `PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with PBES2 = PBKDF2-HMAC-SHA256
//! ([`PBKDF2_ITERATIONS`] rounds, 16-byte random salt) + AES-256-CBC (random IV), which OpenSSL 1.1
//! and 3 read (`openssl pkey -in key.pem -passin ...`); SPKI `PUBLIC KEY`.
//!
//! Every error names the file and says what was expected; none carries a passphrase or key bytes.

use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
use pkcs8::der::{Decode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::{FromDer as _, X509Certificate, X509CertificationRequest};
use x509_parser::public_key::PublicKey as ParsedKey;
use x509_parser::x509::SubjectPublicKeyInfo;
use zeroize::Zeroizing;

use crate::cert::{CertError, Certificate, PublicKey, strip_zeros};
use crate::jwk::{Jwk, thumbprint};
use crate::pfx::{Pfx, PfxError};

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

/// PKCS#8 PEM of a private key; with a passphrase, `ENCRYPTED PRIVATE KEY` with PBES2
/// (PBKDF2-HMAC-SHA256, [`PBKDF2_ITERATIONS`] rounds, random 16-byte salt, AES-256-CBC with a random
/// IV) that `openssl pkey -in k.pem -passin pass:..` reads.
pub fn private_key_pem(
    pkcs8: &[u8],
    passphrase: Option<&str>,
) -> Result<Zeroizing<String>, KeyFileError> {
    let write_error = |detail: String| KeyFileError::Write { detail };
    let info = PrivateKeyInfoRef::try_from(pkcs8)
        .map_err(|e| write_error(format!("not a PKCS#8 private key ({e})")))?;
    let Some(passphrase) = passphrase else {
        return Ok(pem_encode("PRIVATE KEY", pkcs8));
    };
    if passphrase.is_empty() {
        return Err(write_error("the passphrase is empty".into()));
    }
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&rng, &mut salt)
        .and_then(|()| aws_lc_rs::rand::SecureRandom::fill(&rng, &mut iv))
        .map_err(|_| write_error("the system random generator failed".into()))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        PBKDF2_ITERATIONS,
        &salt,
        iv,
    )
    .map_err(|e| write_error(e.to_string()))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| write_error(format!("encryption failed ({e})")))?;
    Ok(pem_encode("ENCRYPTED PRIVATE KEY", encrypted.as_bytes()))
}

/// SPKI `PUBLIC KEY` PEM.
pub fn public_key_pem(key: &PublicKey) -> String {
    pem_encode("PUBLIC KEY", &public_key_der(key)).to_string()
}

/// The `subjectPublicKey` BIT STRING contents of an SPKI: PKCS#1 `RSAPublicKey` DER, or the
/// uncompressed EC point.
pub fn subject_public_key_bits(key: &PublicKey) -> Vec<u8> {
    match key {
        PublicKey::Rsa { n, e } => {
            let mut rsa_key = der_integer(n);
            rsa_key.extend(der_integer(e));
            tlv(0x30, &rsa_key)
        }
        PublicKey::P256 { x, y } => {
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            point
        }
    }
}

/// PEM of public data (a certificate, a public key).
pub fn pem(label: &str, der: &[u8]) -> String {
    pem_encode(label, der).to_string()
}

/// `CERTIFICATE` PEM of a DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    pem("CERTIFICATE", der)
}

/// SPKI DER.
pub fn public_key_der(key: &PublicKey) -> Vec<u8> {
    match key {
        PublicKey::Rsa { .. } => rsa_spki(&subject_public_key_bits(key)),
        PublicKey::P256 { x, y } => {
            // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING 0x04 || x || y }
            const PREFIX: [u8; 27] = [
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
            ];
            let mut der = PREFIX.to_vec();
            der.extend_from_slice(x);
            der.extend_from_slice(y);
            der
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading

fn read(path: &Path) -> Result<(String, Zeroizing<Vec<u8>>), KeyFileError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((file, Zeroizing::new(bytes))),
        Err(source) => Err(KeyFileError::Io { file, source }),
    }
}

fn looks_like_json(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    text.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

fn unrecognized(file: &str, bytes: &[u8]) -> KeyFileError {
    let detail = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if bytes.starts_with(b"ssh-") || bytes.starts_with(b"ecdsa-sha2-") {
        "an OpenSSH public key; convert it with `ssh-keygen -e -m PKCS8 -f FILE`".to_string()
    } else if bytes.iter().take(256).all(|b| b.is_ascii()) {
        "text without a `-----BEGIN` PEM block".to_string()
    } else {
        "binary data that is not a DER certificate, key or PKCS#12 structure".to_string()
    };
    KeyFileError::Unrecognized {
        file: file.to_string(),
        detail,
    }
}

/// One PEM block; the decoded contents are wiped on drop.
struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
    /// Pre-PKCS#8 OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` header).
    legacy_encrypted: bool,
}

/// The PEM blocks of `bytes`, or `None` when there is no `-----BEGIN` line (DER or other input).
fn pem_blocks(file: &str, bytes: &[u8]) -> Result<Option<Vec<PemBlock>>, KeyFileError> {
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok(None);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| KeyFileError::Unrecognized {
        file: file.to_string(),
        detail: "PEM text that is not UTF-8".into(),
    })?;
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = Zeroizing::new(String::new());
        let mut legacy_encrypted = false;
        let mut ended = false;
        for line in lines.by_ref() {
            if line == end {
                ended = true;
                break;
            }
            if line.contains(':') {
                // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`).
                legacy_encrypted |= line.starts_with("Proc-Type:") && line.contains("ENCRYPTED");
                continue;
            }
            body.push_str(line);
        }
        let malformed = |detail: &str| KeyFileError::Malformed {
            file: file.to_string(),
            what: format!("the PEM block `{label}`"),
            detail: detail.to_string(),
        };
        if !ended {
            return Err(malformed(&format!("no `{end}` line (truncated file?)")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| malformed("its body is not base64"))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            der: Zeroizing::new(der),
            legacy_encrypted,
        });
    }
    Ok(Some(blocks))
}

/// PEM labels that hold a private key.
fn is_private_label(label: &str) -> bool {
    matches!(
        label,
        "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
    ) || label.ends_with("PRIVATE KEY")
}

fn is_certificate_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

fn labels(blocks: &[PemBlock]) -> String {
    if blocks.is_empty() {
        return "no PEM block".into();
    }
    let names: Vec<String> = blocks.iter().map(|b| format!("`{}`", b.label)).collect();
    format!("PEM blocks {}", names.join(", "))
}

fn public_from_pem(
    file: &str,
    blocks: &[PemBlock],
    password: Option<&str>,
) -> Result<PublicKeyFile, KeyFileError> {
    let has_key = blocks.iter().any(|b| is_private_label(&b.label));
    let has_cert = blocks.iter().any(|b| is_certificate_label(&b.label));
    if has_key {
        match private_from_pem(file, blocks, password) {
            Ok(key) => {
                return Ok(PublicKeyFile {
                    public_key: key.public_key,
                    certificate: key.certificate,
                    kind: KeyFileKind::PrivateKey,
                });
            }
            // An encrypted key beside its certificate: the certificate is public.
            Err(KeyFileError::NeedsPassword { .. }) if has_cert => {}
            Err(e) => return Err(e),
        }
    }
    for block in blocks {
        let label = block.label.as_str();
        if is_certificate_label(label) {
            let cert = Certificate::from_der(file, &block.der)?;
            return Ok(PublicKeyFile {
                public_key: cert.public_key().clone(),
                certificate: Some(cert),
                kind: KeyFileKind::Certificate,
            });
        }
        let public_key = match label {
            "PUBLIC KEY" => public_key_from_spki(file, &block.der)?,
            "RSA PUBLIC KEY" => public_key_from_pkcs1(file, &block.der)?,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                public_key_from_csr(file, &block.der)?
            }
            "DSA PUBLIC KEY" => return Err(unsupported(file, "DSA key")),
            _ => continue,
        };
        return Ok(PublicKeyFile {
            public_key,
            certificate: None,
            kind: KeyFileKind::PublicKey,
        });
    }
    Err(KeyFileError::Unrecognized {
        file: file.to_string(),
        detail: labels(blocks),
    })
}

fn private_from_pem(
    file: &str,
    blocks: &[PemBlock],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let keys: Vec<&PemBlock> = blocks
        .iter()
        .filter(|b| is_private_label(&b.label))
        .collect();
    let block = match keys.as_slice() {
        [one] => *one,
        [] => {
            return Err(KeyFileError::NoPrivateKey {
                file: file.to_string(),
                found: labels(blocks),
            });
        }
        several => {
            return Err(KeyFileError::SeveralKeys {
                file: file.to_string(),
                count: several.len(),
            });
        }
    };
    if block.legacy_encrypted {
        return Err(KeyFileError::UnsupportedEncryption {
            file: file.to_string(),
            detail: format!(
                "`{}` with legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`) is not read: convert it to \
                 PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {file} -out new.key`",
                block.label
            ),
        });
    }
    let (pkcs8, public_key) = match block.label.as_str() {
        "PRIVATE KEY" => pkcs8_key(file, &block.der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let pkcs8 = decrypt_pkcs8(file, &block.der, password)?;
            pkcs8_key(file, &pkcs8)?
        }
        "RSA PRIVATE KEY" => rsa_pkcs1_key(file, &block.der)?,
        "EC PRIVATE KEY" => sec1_key(file, &block.der)?,
        "OPENSSH PRIVATE KEY" => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!(
                    "an OpenSSH private key; convert it to PKCS#8 with `ssh-keygen -p -m PKCS8 -f {file}` \
                     (rewrites the file in place)"
                ),
            });
        }
        "DSA PRIVATE KEY" => return Err(unsupported(file, "DSA key")),
        other => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!("PEM block `{other}`"),
            });
        }
    };
    let mut certificates = Vec::new();
    for block in blocks.iter().filter(|b| is_certificate_label(&b.label)) {
        certificates.push(Certificate::from_der(file, &block.der)?);
    }
    let (certificate, chain) = split_chain(&public_key, certificates);
    Ok(PrivateKeyFile {
        pkcs8,
        public_key,
        certificate,
        chain,
        kind: KeyFileKind::PrivateKey,
    })
}

/// The first certificate of `key`, and the others.
fn split_chain(
    key: &PublicKey,
    certificates: Vec<Certificate>,
) -> (Option<Certificate>, Vec<Certificate>) {
    let mut certificate = None;
    let mut chain = Vec::new();
    for cert in certificates {
        if certificate.is_none() && cert.public_key() == key {
            certificate = Some(cert);
        } else {
            chain.push(cert);
        }
    }
    (certificate, chain)
}

fn private_from_der(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let (pkcs8, public_key) = match classify_der(der) {
        DerKind::Pkcs8 => pkcs8_key(file, der)?,
        DerKind::EncryptedPkcs8 => {
            let pkcs8 = decrypt_pkcs8(file, der, password)?;
            pkcs8_key(file, &pkcs8)?
        }
        DerKind::RsaPrivate => rsa_pkcs1_key(file, der)?,
        DerKind::EcPrivate => sec1_key(file, der)?,
        _ => return Err(unrecognized(file, der)),
    };
    Ok(PrivateKeyFile {
        pkcs8,
        public_key,
        certificate: None,
        chain: Vec::new(),
        kind: KeyFileKind::PrivateKey,
    })
}

fn public_from_json(file: &str, bytes: &[u8]) -> Result<PublicKeyFile, KeyFileError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| KeyFileError::Unrecognized {
            file: file.to_string(),
            detail: format!("JSON that does not parse ({e})"),
        })?;
    let value = match value.get("keys").and_then(|k| k.as_array()) {
        Some(keys) if keys.len() == 1 => keys[0].clone(),
        Some(keys) => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!(
                    "a JWK set with {} keys; give a file with the one key wanted",
                    keys.len()
                ),
            });
        }
        None => value,
    };
    if value.get("kty").is_none() {
        return Err(KeyFileError::Unrecognized {
            file: file.to_string(),
            detail: "a JSON object without `kty`".into(),
        });
    }
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| KeyFileError::Malformed {
        file: file.to_string(),
        what: "the JWK".into(),
        detail: e.to_string(),
    })?;
    let public_key = public_key_from_jwk(file, &jwk)?;
    // `x5c[0]` is the key's certificate (RFC 7517 section 4.7) when its key matches.
    let certificate = jwk
        .x5c
        .as_ref()
        .and_then(|chain| chain.first())
        .and_then(|b64| crate::b64::std_decode(b64))
        .and_then(|der| Certificate::from_der(file, &der).ok())
        .filter(|cert| *cert.public_key() == public_key);
    Ok(PublicKeyFile {
        public_key,
        certificate,
        kind: KeyFileKind::Jwk,
    })
}

/// Opens a PFX with `password`, or, without one, with the empty password many exports use.
fn open_pfx<T>(
    file: &str,
    password: Option<&str>,
    open: impl Fn(&str) -> Result<T, PfxError>,
) -> Result<T, KeyFileError> {
    let result = open(password.unwrap_or(""));
    result.map_err(|e| match e {
        PfxError::WrongPassword { .. } if password.is_none() => KeyFileError::NeedsPassword {
            file: file.to_string(),
        },
        PfxError::WrongPassword { .. } => KeyFileError::WrongPassword {
            file: file.to_string(),
        },
        PfxError::Cert(e) => KeyFileError::Cert(e),
        PfxError::Key { source, .. } => KeyFileError::UnsupportedKey {
            file: file.to_string(),
            detail: source.to_string(),
        },
        other => KeyFileError::Pfx(other),
    })
}

fn public_from_pfx(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PublicKeyFile, KeyFileError> {
    let cert = open_pfx(file, password, |pw| match Pfx::from_bytes(file, der, pw) {
        Ok(pfx) => Ok(pfx.certificate),
        // A certificate-only PFX (published validation key).
        Err(PfxError::NoPrivateKey { .. }) => pfx_leaf(file, der, pw),
        Err(e) => Err(e),
    })?;
    Ok(PublicKeyFile {
        public_key: cert.public_key().clone(),
        certificate: Some(cert),
        kind: KeyFileKind::Pfx,
    })
}

/// The leaf certificate of a PFX without a key: the one that issued no other certificate in it.
fn pfx_leaf(file: &str, der: &[u8], password: &str) -> Result<Certificate, PfxError> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password).map_err(|e| {
        PfxError::Malformed {
            file: file.to_string(),
            detail: e.to_string(),
        }
    })?;
    let bags = &archive.certs;
    let leaf = bags
        .iter()
        .find(|b| {
            !bags.iter().any(|other| {
                other.cert.issuer() == b.cert.subject() && other.cert.subject() != b.cert.subject()
            })
        })
        .or(bags.first())
        .ok_or_else(|| PfxError::NoCertificate {
            file: file.to_string(),
        })?;
    Ok(Certificate::from_der(file, leaf.cert.as_der())?)
}

fn private_from_pfx(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let pfx = open_pfx(file, password, |pw| Pfx::from_bytes(file, der, pw))?;
    let mut chain = Vec::new();
    for der in &pfx.chain {
        chain.push(Certificate::from_der(file, der)?);
    }
    Ok(PrivateKeyFile {
        public_key: pfx.certificate.public_key().clone(),
        certificate: Some(pfx.certificate),
        chain,
        pkcs8: pfx.key_pkcs8,
        kind: KeyFileKind::Pfx,
    })
}

// ---------------------------------------------------------------------------------------------------
// DER structures

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DerKind {
    Certificate,
    Spki,
    RsaPublic,
    Csr,
    Pkcs8,
    EncryptedPkcs8,
    RsaPrivate,
    EcPrivate,
    Pfx,
    Unknown,
}

/// Recognises a DER structure by its shape.
fn classify_der(der: &[u8]) -> DerKind {
    if matches!(X509Certificate::from_der(der), Ok((rest, _)) if rest.is_empty()) {
        return DerKind::Certificate;
    }
    if matches!(SubjectPublicKeyInfo::from_der(der), Ok((rest, _)) if rest.is_empty()) {
        return DerKind::Spki;
    }
    if PrivateKeyInfoRef::try_from(der).is_ok() {
        return DerKind::Pkcs8;
    }
    if EncryptedPrivateKeyInfoRef::try_from(der).is_ok() {
        return DerKind::EncryptedPkcs8;
    }
    if matches!(X509CertificationRequest::from_der(der), Ok((rest, _)) if rest.is_empty()) {
        return DerKind::Csr;
    }
    let Ok(elements) = sequence_elements(der) else {
        // BER with indefinite lengths: only PKCS#12 files (some Windows exports) come this way.
        return if der.starts_with(&[0x30, 0x80]) {
            DerKind::Pfx
        } else {
            DerKind::Unknown
        };
    };
    let small_int = |any: &AnyRef<'_>| -> Option<u8> {
        (any.tag() == Tag::Integer && any.value().len() == 1).then(|| any.value()[0])
    };
    let is_int = |any: &AnyRef<'_>| any.tag() == Tag::Integer;
    match elements.as_slice() {
        // PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL }
        [version, content, ..]
            if small_int(version) == Some(3) && content.tag() == Tag::Sequence =>
        {
            DerKind::Pfx
        }
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        [n, e] if is_int(n) && is_int(e) => DerKind::RsaPublic,
        // RSAPrivateKey ::= SEQUENCE { version (0), n, e, d, p, q, dp, dq, qinv }
        [version, rest @ ..]
            if small_int(version) == Some(0) && rest.len() >= 8 && rest.iter().all(is_int) =>
        {
            DerKind::RsaPrivate
        }
        // ECPrivateKey ::= SEQUENCE { version (1), privateKey OCTET STRING, [0] params, [1] public }
        [version, key, ..] if small_int(version) == Some(1) && key.tag() == Tag::OctetString => {
            DerKind::EcPrivate
        }
        _ => DerKind::Unknown,
    }
}

/// The elements of a DER SEQUENCE that spans all of `der`.
fn sequence_elements(der: &[u8]) -> Result<Vec<AnyRef<'_>>, pkcs8::der::Error> {
    let any = AnyRef::from_der(der)?;
    any.sequence(|reader: &mut SliceReader<'_>| {
        let mut elements = Vec::new();
        while !reader.is_finished() {
            elements.push(AnyRef::decode(reader)?);
        }
        Ok(elements)
    })
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

/// Name of a well-known key algorithm or curve OID, for messages.
fn oid_name(oid: &ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384 (secp384r1)",
        "1.3.132.0.35" => "P-521 (secp521r1)",
        "1.3.132.0.10" => "secp256k1",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.10045.3.1.7" => "P-256",
        _ => return format!("OID {oid}"),
    };
    name.to_string()
}

fn rsa_public_key(file: &str, n: &[u8], e: &[u8]) -> Result<PublicKey, KeyFileError> {
    let key = PublicKey::Rsa {
        n: strip_zeros(n).to_vec(),
        e: strip_zeros(e).to_vec(),
    };
    let bits = key.bits();
    if bits < 2048 {
        return Err(KeyFileError::WeakRsa {
            file: file.to_string(),
            bits,
        });
    }
    Ok(key)
}

/// The public key of an SPKI structure.
pub fn public_key_from_spki(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| malformed(file, "the public key", e))?;
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(ParsedKey::RSA(rsa)) => rsa_public_key(file, rsa.modulus, rsa.exponent),
            _ => Err(malformed(file, "the RSA public key", "not an RSAPublicKey")),
        }
    } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let point = &spki.subject_public_key.data;
        if curve.as_ref() != Some(&OID_EC_P256) {
            let name = curve
                .and_then(|c| ObjectIdentifier::new(&c.to_id_string()).ok())
                .map_or("(unnamed)".to_string(), |c| oid_name(&c));
            return Err(unsupported(file, &format!("EC key on curve {name}")));
        }
        if point.len() != 65 || point[0] != 4 {
            return Err(malformed(
                file,
                "the EC public key",
                "not an uncompressed P-256 point",
            ));
        }
        Ok(PublicKey::P256 {
            x: point[1..33].to_vec(),
            y: point[33..65].to_vec(),
        })
    } else {
        let name = ObjectIdentifier::new(&oid.to_id_string())
            .map_or_else(|_| oid.to_id_string(), |o| oid_name(&o));
        Err(unsupported(file, &format!("{name} key")))
    }
}

/// The public key of a PKCS#1 `RSAPublicKey`.
fn public_key_from_pkcs1(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let elements = sequence_elements(der).map_err(|e| malformed(file, "the RSA public key", e))?;
    match elements.as_slice() {
        [n, e] if n.tag() == Tag::Integer && e.tag() == Tag::Integer => {
            rsa_public_key(file, n.value(), e.value())
        }
        _ => Err(malformed(
            file,
            "the RSA public key",
            "expected SEQUENCE { modulus, publicExponent }",
        )),
    }
}

/// The public key of a PKCS#10 certificate request (its signature is not checked here).
fn public_key_from_csr(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| malformed(file, "the certificate request", e))?;
    public_key_from_spki(file, csr.certification_request_info.subject_pki.raw)
}

/// The public key of an aws-lc RSA key pair.
fn rsa_pair_public(file: &str, pair: &RsaKeyPair) -> Result<PublicKey, KeyFileError> {
    let components: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
    rsa_public_key(file, &components.n, &components.e)
}

fn ec_pair_public(file: &str, pair: &EcdsaKeyPair) -> Result<PublicKey, KeyFileError> {
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return Err(malformed(
            file,
            "the EC key",
            "its public point is not an uncompressed P-256 point",
        ));
    }
    Ok(PublicKey::P256 {
        x: point[1..33].to_vec(),
        y: point[33..65].to_vec(),
    })
}

/// Bits of the modulus of a PKCS#1 `RSAPrivateKey`, to name a key aws-lc refused.
fn rsa_private_bits(der: &[u8]) -> Option<usize> {
    let elements = sequence_elements(der).ok()?;
    let n = elements.get(1)?;
    (n.tag() == Tag::Integer).then(|| {
        PublicKey::Rsa {
            n: strip_zeros(n.value()).to_vec(),
            e: Vec::new(),
        }
        .bits()
    })
}

fn rsa_refused(file: &str, pkcs1: &[u8], error: impl std::fmt::Display) -> KeyFileError {
    match rsa_private_bits(pkcs1) {
        Some(bits) if bits < 2048 => KeyFileError::WeakRsa {
            file: file.to_string(),
            bits,
        },
        _ => malformed(file, "the RSA private key", format!("refused ({error})")),
    }
}

/// Checks a PKCS#8 key and returns it with its public key.
fn pkcs8_key(file: &str, der: &[u8]) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|e| malformed(file, "the PKCS#8 private key", e))?;
    let oid = info.algorithm.oid;
    let public_key = match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => {
            let pair = RsaKeyPair::from_pkcs8(der)
                .map_err(|e| rsa_refused(file, info.private_key.as_bytes(), e))?;
            rsa_pair_public(file, &pair)?
        }
        "1.2.840.10045.2.1" => {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match curve {
                Some(c) if c.to_string() == "1.2.840.10045.3.1.7" => {}
                Some(c) => {
                    return Err(unsupported(
                        file,
                        &format!("EC key on curve {}", oid_name(&c)),
                    ));
                }
                None => return Err(unsupported(file, "EC key without a named curve")),
            }
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|e| {
                    malformed(file, "the EC P-256 private key", format!("refused ({e})"))
                })?;
            ec_pair_public(file, &pair)?
        }
        _ => return Err(unsupported(file, &format!("{} key", oid_name(&oid)))),
    };
    Ok((Zeroizing::new(der.to_vec()), public_key))
}

/// PKCS#1 `RSAPrivateKey` -> PKCS#8.
fn rsa_pkcs1_key(file: &str, der: &[u8]) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| rsa_refused(file, der, e))?;
    let public_key = rsa_pair_public(file, &pair)?;
    let pkcs8 = pair
        .as_der()
        .map_err(|_| malformed(file, "the RSA private key", "cannot convert it to PKCS#8"))?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public_key))
}

/// SEC1 `ECPrivateKey` (P-256) -> PKCS#8.
fn sec1_key(file: &str, der: &[u8]) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    // The curve is the `[0]` element, when present.
    let elements = sequence_elements(der).map_err(|e| malformed(file, "the EC private key", e))?;
    let curve = elements
        .iter()
        .find(|e| {
            e.tag()
                == Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber(0),
                }
        })
        .and_then(|e| ObjectIdentifier::from_der(e.value()).ok());
    if let Some(curve) = curve
        && curve.to_string() != "1.2.840.10045.3.1.7"
    {
        return Err(unsupported(
            file,
            &format!("EC key on curve {}", oid_name(&curve)),
        ));
    }
    let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
        .map_err(|e| malformed(file, "the EC private key", format!("refused ({e})")))?;
    let public_key = ec_pair_public(file, &pair)?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|_| malformed(file, "the EC private key", "cannot convert it to PKCS#8"))?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public_key))
}

/// Decrypts an `EncryptedPrivateKeyInfo` (PBES2) to PKCS#8 DER.
fn decrypt_pkcs8(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    use pkcs8::pkcs5::Error as P5;
    let info = EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|e| malformed(file, "the encrypted private key", e))?;
    let Some(password) = password else {
        return Err(KeyFileError::NeedsPassword {
            file: file.to_string(),
        });
    };
    let unsupported_scheme = |detail: String| KeyFileError::UnsupportedEncryption {
        file: file.to_string(),
        detail: format!(
            "the private key is encrypted with {detail}; supported: PBES2 with PBKDF2-HMAC-SHA-2 or scrypt and \
             AES-CBC/GCM (re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {file} -out new.key`)"
        ),
    };
    match info.decrypt(password.as_bytes()) {
        Ok(doc) => Ok(doc.to_bytes()),
        Err(pkcs8::Error::EncryptedPrivateKey(P5::DecryptFailed)) | Err(pkcs8::Error::Asn1(_)) => {
            Err(KeyFileError::WrongPassword {
                file: file.to_string(),
            })
        }
        Err(pkcs8::Error::EncryptedPrivateKey(P5::NoPbes1CryptSupport)) => {
            Err(unsupported_scheme("PBES1 (PKCS#5 v1.5)".into()))
        }
        Err(pkcs8::Error::EncryptedPrivateKey(P5::UnsupportedAlgorithm { oid })) => {
            Err(unsupported_scheme(format!("algorithm {oid}")))
        }
        Err(e) => Err(unsupported_scheme(format!("parameters refused ({e})"))),
    }
}

// ---------------------------------------------------------------------------------------------------
// Writing

/// DER length octets (X.690 section 8.1.3).
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

/// A non-negative INTEGER from unsigned big-endian bytes.
fn der_integer(unsigned: &[u8]) -> Vec<u8> {
    let digits = strip_zeros(unsigned);
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    tlv(0x02, &content)
}

/// SPKI of a PKCS#1 `RSAPublicKey`.
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0];
    bits.extend_from_slice(rsa_public_key);
    let mut content = ALGORITHM.to_vec();
    content.extend(tlv(0x03, &bits));
    tlv(0x30, &content)
}

/// RFC 7468 PEM: base64 lines of 64 characters. Built in place so private keys leave no copy.
fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body_len = der.len().div_ceil(3) * 4;
    let mut pem = Zeroizing::new(String::with_capacity(
        body_len + body_len / 64 + 2 * label.len() + 40,
    ));
    pem.push_str("-----BEGIN ");
    pem.push_str(label);
    pem.push_str("-----\n");
    for chunk in der.chunks(48) {
        base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut pem);
        pem.push('\n');
    }
    pem.push_str("-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
    pem
}

/// base64url, tolerating padding and the standard alphabet some tools write.
fn b64_url_lenient(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    crate::b64::url_decode(&cleaned)
}
