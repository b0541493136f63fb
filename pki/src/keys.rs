//! Signing keys, parsed once at start-up (jsonwebtoken re-parses the key on every `encode`, ~3x slower).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};

use crate::cert::strip_zeros;

/// JWS algorithm, pinned to the key (RFC 8725 section 3.1): RS256 or PS256 for RSA (PS256 when the
/// key is configured for it), ES256 for P-256, ES384 for P-384, EdDSA for Ed25519.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256, salt of 32 bytes (RFC 7518 section 3.5).
    PS256,
    ES256,
    ES384,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in the order discovery documents list them.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named `name` (JWS `alg`), if it is one of ours.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Whether a key of type `key` signs with this algorithm.
    pub fn fits(self, key: &crate::PublicKey) -> bool {
        matches!(
            (self, key),
            (
                Algorithm::RS256 | Algorithm::PS256,
                crate::PublicKey::Rsa { .. }
            ) | (Algorithm::ES256, crate::PublicKey::P256 { .. })
                | (Algorithm::ES384, crate::PublicKey::P384 { .. })
                | (Algorithm::EdDSA, crate::PublicKey::Ed25519 { .. })
        )
    }

    /// The algorithm a key signs with when nothing else is said: RS256 for RSA.
    pub fn default_for(key: &crate::PublicKey) -> Algorithm {
        match key {
            crate::PublicKey::Rsa { .. } => Algorithm::RS256,
            crate::PublicKey::P256 { .. } => Algorithm::ES256,
            crate::PublicKey::P384 { .. } => Algorithm::ES384,
            crate::PublicKey::Ed25519 { .. } => Algorithm::EdDSA,
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
    #[error(
        "unsupported private key (supported: RSA of at least 2048 bits, EC P-256 or P-384, Ed25519): {detail}"
    )]
    Unsupported { detail: String },
    #[error("the algorithm {wanted} cannot be used with a {key} key (it signs with {fits})")]
    AlgorithmMismatch {
        wanted: &'static str,
        key: &'static str,
        fits: &'static str,
    },
    #[error("signing failed")]
    Sign,
}

/// A private key ready to sign JWS payloads.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    /// An RSA key that signs with RSASSA-PSS (PS256).
    RsaPss(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ec384(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.algorithm().as_str())
    }
}

impl SigningKey {
    /// Parses a PKCS#8 DER private key (what a PFX holds): RSA (RS256), EC P-256 (ES256), EC P-384
    /// (ES384) or Ed25519 (EdDSA).
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
            Err(rsa_err) => {
                if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                    return Ok(SigningKey::Ec(ec));
                }
                if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der) {
                    return Ok(SigningKey::Ec384(ec));
                }
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map(SigningKey::Ed25519)
                    .map_err(|ed_err| KeyError::Unsupported {
                        detail: format!(
                            "not RSA ({rsa_err}), not EC P-256 or P-384, not Ed25519 ({ed_err})"
                        ),
                    })
            }
        }
    }

    /// Generates a new key for `algorithm` (RSA keys are 2048 bits, 3072 for PS256... both 2048 here:
    /// the size the performance model measures). Returns the key and its PKCS#8 DER.
    pub fn generate(algorithm: Algorithm) -> Result<(Self, zeroize::Zeroizing<Vec<u8>>), KeyError> {
        use aws_lc_rs::encoding::AsDer as _;
        let rng = SystemRandom::new();
        let pkcs8: Vec<u8> = match algorithm {
            Algorithm::RS256 | Algorithm::PS256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError::Sign)?;
                pair.as_der().map_err(|_| KeyError::Sign)?.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Sign)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Sign)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Sign)?
                .as_ref()
                .to_vec(),
        };
        let pkcs8 = zeroize::Zeroizing::new(pkcs8);
        let key = Self::from_pkcs8(&pkcs8)?.with_algorithm(algorithm)?;
        Ok((key, pkcs8))
    }

    /// This key, signing with `algorithm`: PS256 turns an RSA key to RSASSA-PSS; any other
    /// algorithm must be the one the key already signs with.
    pub fn with_algorithm(self, algorithm: Algorithm) -> Result<Self, KeyError> {
        match (self, algorithm) {
            (SigningKey::Rsa(k) | SigningKey::RsaPss(k), Algorithm::PS256) => {
                Ok(SigningKey::RsaPss(k))
            }
            (SigningKey::Rsa(k) | SigningKey::RsaPss(k), Algorithm::RS256) => {
                Ok(SigningKey::Rsa(k))
            }
            (key, wanted) if key.algorithm() == wanted => Ok(key),
            (key, wanted) => Err(KeyError::AlgorithmMismatch {
                wanted: wanted.as_str(),
                key: key.key_type(),
                fits: key.algorithm().as_str(),
            }),
        }
    }

    /// The key type, for messages.
    pub fn key_type(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) | SigningKey::RsaPss(_) => "RSA",
            SigningKey::Ec(_) => "EC P-256",
            SigningKey::Ec384(_) => "EC P-384",
            SigningKey::Ed25519(_) => "Ed25519",
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Rsa(_) => Algorithm::RS256,
            SigningKey::RsaPss(_) => Algorithm::PS256,
            SigningKey::Ec(_) => Algorithm::ES256,
            SigningKey::Ec384(_) => Algorithm::ES384,
            SigningKey::Ed25519(_) => Algorithm::EdDSA,
        }
    }

    /// Public key bytes as aws-lc-rs gives them: PKCS#1 `RSAPublicKey` DER, the uncompressed EC
    /// point, or the 32 bytes of an Ed25519 key.
    pub fn public_key_bytes(&self) -> &[u8] {
        match self {
            SigningKey::Rsa(k) | SigningKey::RsaPss(k) => k.public_key().as_ref(),
            SigningKey::Ec(k) | SigningKey::Ec384(k) => k.public_key().as_ref(),
            SigningKey::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    /// The public key, in the form JOSE needs.
    pub fn public_key(&self) -> crate::PublicKey {
        match self {
            SigningKey::Rsa(k) | SigningKey::RsaPss(k) => {
                use aws_lc_rs::rsa::PublicKeyComponents;
                let components: PublicKeyComponents<Vec<u8>> = k.public_key().into();
                crate::PublicKey::Rsa {
                    n: strip_zeros(&components.n).to_vec(),
                    e: strip_zeros(&components.e).to_vec(),
                }
            }
            // aws-lc-rs gives the uncompressed point of the key's own curve.
            SigningKey::Ec(k) | SigningKey::Ec384(k) => crate::PublicKey::from_ec_point(
                k.public_key().as_ref(),
            )
            .unwrap_or(crate::PublicKey::P256 {
                x: Vec::new(),
                y: Vec::new(),
            }),
            SigningKey::Ed25519(k) => crate::PublicKey::Ed25519 {
                x: k.public_key().as_ref().to_vec(),
            },
        }
    }

    /// Signs `message` (RS256: RSASSA-PKCS1-v1_5 SHA-256; PS256: RSASSA-PSS SHA-256; ES256/ES384:
    /// fixed-size r||s, RFC 7518 section 3.4; EdDSA: RFC 8037 section 3.1).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(k) | SigningKey::RsaPss(k) => {
                let padding = if matches!(self, SigningKey::Rsa(_)) {
                    &RSA_PKCS1_SHA256
                } else {
                    &RSA_PSS_SHA256
                };
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            SigningKey::Ec(k) | SigningKey::Ec384(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            SigningKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }

    /// True when this private key is the one of `cert` (compares the public keys).
    pub fn matches(&self, cert: &crate::Certificate) -> bool {
        &self.public_key() == cert.public_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_with_their_algorithm_and_refuse_another() {
        for algorithm in Algorithm::ALL {
            let (key, pkcs8) = SigningKey::generate(algorithm).expect("generate");
            assert_eq!(key.algorithm(), algorithm);
            assert!(algorithm.fits(&key.public_key()));
            let again = SigningKey::from_pkcs8(&pkcs8)
                .and_then(|k| k.with_algorithm(algorithm))
                .expect("parse");
            assert_eq!(again.public_key(), key.public_key());
            assert!(!key.sign(b"message").expect("sign").is_empty());
        }
        let (ec, _) = SigningKey::generate(Algorithm::ES256).expect("generate");
        let err = ec
            .with_algorithm(Algorithm::PS256)
            .expect_err("EC cannot PS256");
        assert!(err.to_string().contains("PS256"), "{err}");
    }
}
