//! Private keys: checked by loading them into aws-lc-rs, converted to PKCS#8 (PKCS#1 and SEC1 keys
//! are re-encoded by aws-lc-rs), and decrypted from PBES2 `EncryptedPrivateKeyInfo` with `pkcs8`.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RsaKeyPair,
};
use const_oid::ObjectIdentifier;
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use super::asn1::{
    EC_PUBLIC_KEY, ED25519, P256, P384, RSA_ENCRYPTION, oid_name, rsa_private_bits, rsa_public_key,
    sec1_curve,
};
use super::{KeyFileError, malformed, unsupported};
use crate::cert::PublicKey;

/// The public key of an aws-lc RSA key pair.
fn rsa_pair_public(file: &str, pair: &RsaKeyPair) -> Result<PublicKey, KeyFileError> {
    let components: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
    rsa_public_key(file, &components.n, &components.e)
}

fn ec_pair_public(file: &str, pair: &EcdsaKeyPair) -> Result<PublicKey, KeyFileError> {
    PublicKey::from_ec_point(pair.public_key().as_ref()).ok_or_else(|| {
        malformed(
            file,
            "the EC key",
            "its public point is not an uncompressed P-256 or P-384 point",
        )
    })
}

pub(super) fn rsa_refused(file: &str, pkcs1: &[u8], error: impl std::fmt::Display) -> KeyFileError {
    match rsa_private_bits(pkcs1) {
        Some(bits) if bits < 2048 => KeyFileError::WeakRsa {
            file: file.to_string(),
            bits,
        },
        _ => malformed(file, "the RSA private key", format!("refused ({error})")),
    }
}

/// Checks a PKCS#8 key and returns it with its public key.
pub(super) fn pkcs8_key(
    file: &str,
    der: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|e| malformed(file, "the PKCS#8 private key", e))?;
    let oid = info.algorithm.oid;
    let public_key = match oid {
        RSA_ENCRYPTION => {
            let pair = RsaKeyPair::from_pkcs8(der)
                .map_err(|e| rsa_refused(file, info.private_key.as_bytes(), e))?;
            rsa_pair_public(file, &pair)?
        }
        EC_PUBLIC_KEY => {
            let curve = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let signing = match curve {
                Some(P256) => &ECDSA_P256_SHA256_FIXED_SIGNING,
                Some(P384) => &ECDSA_P384_SHA384_FIXED_SIGNING,
                Some(c) => {
                    return Err(unsupported(
                        file,
                        &format!("EC key on curve {}", oid_name(&c)),
                    ));
                }
                None => return Err(unsupported(file, "EC key without a named curve")),
            };
            let pair = EcdsaKeyPair::from_pkcs8(signing, der)
                .map_err(|e| malformed(file, "the EC private key", format!("refused ({e})")))?;
            ec_pair_public(file, &pair)?
        }
        ED25519 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| {
                malformed(file, "the Ed25519 private key", format!("refused ({e})"))
            })?;
            PublicKey::Ed25519 {
                x: pair.public_key().as_ref().to_vec(),
            }
        }
        _ => return Err(unsupported(file, &format!("{} key", oid_name(&oid)))),
    };
    Ok((Zeroizing::new(der.to_vec()), public_key))
}

/// PKCS#1 `RSAPrivateKey` -> PKCS#8.
pub(super) fn rsa_pkcs1_key(
    file: &str,
    der: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| rsa_refused(file, der, e))?;
    let public_key = rsa_pair_public(file, &pair)?;
    let pkcs8 = pair
        .as_der()
        .map_err(|_| malformed(file, "the RSA private key", "cannot convert it to PKCS#8"))?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public_key))
}

/// SEC1 `ECPrivateKey` (P-256 or P-384) -> PKCS#8.
pub(super) fn sec1_key(
    file: &str,
    der: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, PublicKey), KeyFileError> {
    let curve = sec1_curve(der).map_err(|e| malformed(file, "the EC private key", e))?;
    let signing = match curve {
        Some(P384) => &ECDSA_P384_SHA384_FIXED_SIGNING,
        Some(P256) | None => &ECDSA_P256_SHA256_FIXED_SIGNING,
        Some(curve) => {
            return Err(unsupported(
                file,
                &format!("EC key on curve {}", oid_name(&curve)),
            ));
        }
    };
    let pair = EcdsaKeyPair::from_private_key_der(signing, der)
        .map_err(|e| malformed(file, "the EC private key", format!("refused ({e})")))?;
    let public_key = ec_pair_public(file, &pair)?;
    let pkcs8 = pair
        .to_pkcs8v1()
        .map_err(|_| malformed(file, "the EC private key", "cannot convert it to PKCS#8"))?;
    Ok((Zeroizing::new(pkcs8.as_ref().to_vec()), public_key))
}

/// Decrypts an `EncryptedPrivateKeyInfo` (PBES2) to PKCS#8 DER.
pub(super) fn decrypt_pkcs8(
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
