//! Key generation: the algorithms development certificates use, and new PKCS#8 keys (rcgen on aws-lc-rs).

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};
use zeroize::Zeroizing;

use crate::DevCertError;

/// Key algorithm of a generated key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
    Rsa3072,
    Rsa4096,
}

impl KeyKind {
    pub fn is_rsa(self) -> bool {
        !matches!(self, KeyKind::EcP256)
    }

    /// `RSA-2048`, `EC P-256`, ...
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 => "RSA-2048",
            KeyKind::Rsa3072 => "RSA-3072",
            KeyKind::Rsa4096 => "RSA-4096",
            KeyKind::EcP256 => "EC P-256",
        }
    }
}

pub(crate) fn key(kind: KeyKind) -> Result<KeyPair, rcgen::Error> {
    match kind {
        KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyKind::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeyKind::EcP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
    }
}

/// A new private key as PKCS#8 DER.
pub fn generate_key(kind: KeyKind) -> Result<Zeroizing<Vec<u8>>, DevCertError> {
    Ok(Zeroizing::new(key(kind)?.serialize_der()))
}

/// rcgen's key pair for a PKCS#8 key (RSA signs with SHA-256, EC P-256 with ECDSA-SHA256).
pub(crate) fn key_from_pkcs8(pkcs8: &[u8]) -> Result<KeyPair, rcgen::Error> {
    KeyPair::try_from(pkcs8)
}
