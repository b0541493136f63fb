//! Signing keys, parsed once at start-up (jsonwebtoken re-parses the key on every `encode`, ~3x slower).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};

use crate::cert::strip_zeros;

/// JWS algorithm, pinned to the key type (RFC 8725 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    ES256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
        }
    }
}

/// Why a private key cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key of {bits} bits is too small: at least 2048 bits are required")]
    WeakRsa { bits: usize },
    #[error("RSA key smaller than 2048 bits: at least 2048 bits are required")]
    RsaTooSmall,
    #[error("unsupported private key (supported: RSA of at least 2048 bits, EC P-256): {detail}")]
    Unsupported { detail: String },
    #[error("signing failed")]
    Sign,
}

/// A private key ready to sign JWS payloads.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.algorithm().as_str())
    }
}

impl SigningKey {
    /// Parses a PKCS#8 DER private key (what a PFX holds).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        match RsaKeyPair::from_pkcs8(der) {
            Ok(rsa) => {
                let bits = rsa.public_modulus_len() * 8;
                if bits < 2048 {
                    return Err(KeyError::WeakRsa { bits });
                }
                Ok(SigningKey::Rsa(rsa))
            }
            Err(rsa_err) if rsa_err.description_() == "TooSmall" => Err(KeyError::RsaTooSmall),
            Err(rsa_err) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(SigningKey::Ec)
                .map_err(|ec_err| KeyError::Unsupported {
                    detail: format!("not RSA ({rsa_err}), not EC P-256 ({ec_err})"),
                }),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Rsa(_) => Algorithm::RS256,
            SigningKey::Ec(_) => Algorithm::ES256,
        }
    }

    /// Public key bytes as aws-lc-rs gives them: PKCS#1 `RSAPublicKey` DER, or the uncompressed EC point.
    pub fn public_key_bytes(&self) -> &[u8] {
        match self {
            SigningKey::Rsa(k) => k.public_key().as_ref(),
            SigningKey::Ec(k) => k.public_key().as_ref(),
        }
    }

    /// Signs `message` (RS256: RSASSA-PKCS1-v1_5 SHA-256; ES256: fixed-size r||s, RFC 7518 section 3.4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            SigningKey::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }

    /// True when this private key is the one of `cert` (compares the public keys).
    pub fn matches(&self, cert: &crate::Certificate) -> bool {
        match (self, cert.public_key()) {
            (SigningKey::Ec(_), crate::PublicKey::P256 { x, y }) => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                self.public_key_bytes() == point.as_slice()
            }
            (SigningKey::Rsa(k), crate::PublicKey::Rsa { n, e }) => {
                let public = k.public_key();
                use aws_lc_rs::rsa::PublicKeyComponents;
                let components: PublicKeyComponents<Vec<u8>> = public.into();
                strip_zeros(&components.n) == n.as_slice()
                    && strip_zeros(&components.e) == e.as_slice()
            }
            _ => false,
        }
    }
}
