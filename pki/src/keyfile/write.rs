//! Writing key material: PKCS#8 PEM (optionally PBES2-encrypted with `pkcs8`), SPKI DER and PEM,
//! certificate PEM. The DER comes from `der`/`spki` ([`super::asn1`]), the PEM from [`crate::pem`].

use pkcs8::PrivateKeyInfoRef;
use zeroize::Zeroizing;

use super::asn1::{rsa_public_key_der, spki_der};
use super::{KeyFileError, PBKDF2_ITERATIONS};
use crate::cert::PublicKey;
use crate::pem;

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
        return pem::encode("PRIVATE KEY", pkcs8).map_err(|e| write_error(e.to_string()));
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
    pem::encode("ENCRYPTED PRIVATE KEY", encrypted.as_bytes())
        .map_err(|e| write_error(e.to_string()))
}

/// SPKI `PUBLIC KEY` PEM.
pub fn public_key_pem(key: &PublicKey) -> String {
    public_pem("PUBLIC KEY", &public_key_der(key))
}

/// The `subjectPublicKey` BIT STRING contents of an SPKI: PKCS#1 `RSAPublicKey` DER, or the
/// uncompressed EC point.
///
/// Encoding cannot fail for a key this crate holds (DER lengths go up to 256 MiB); the result
/// would be empty if it did.
pub fn subject_public_key_bits(key: &PublicKey) -> Vec<u8> {
    match key {
        PublicKey::Rsa { n, e } => rsa_public_key_der(n, e).unwrap_or_default(),
        PublicKey::P256 { .. } | PublicKey::P384 { .. } => key.ec_point().unwrap_or_default(),
        PublicKey::Ed25519 { x } => x.clone(),
    }
}

/// `CERTIFICATE` PEM of a DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    public_pem("CERTIFICATE", der)
}

/// SPKI DER (RFC 5280 section 4.1.2.7; RFC 5480 for EC). Empty in the case
/// [`subject_public_key_bits`] describes.
pub fn public_key_der(key: &PublicKey) -> Vec<u8> {
    spki_der(key, &subject_public_key_bits(key)).unwrap_or_default()
}

/// PEM of public data under one of this module's fixed labels, which RFC 7468 allows, so encoding
/// does not fail.
fn public_pem(label: &'static str, der: &[u8]) -> String {
    pem::encode(label, der)
        .map(|text| text.to_string())
        .unwrap_or_default()
}
