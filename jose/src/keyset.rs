//! The public keys a verifier trusts, parsed once: pinned certificates or the entries of a JWKS.
//!
//! A key is found by the token's `kid`, which is only a lookup key (RFC 8725 section 3.10): the
//! algorithm comes from the key, never from the token.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};

use ids_pki::cert::strip_zeros;
use ids_pki::keys::Algorithm;
use ids_pki::{Certificate, Jwk, PublicKey, b64, jwk};

/// Why a key set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("{origin}: the key cannot verify signatures: {detail}")]
    Key { origin: String, detail: String },
    #[error("the JWKS document is not valid JSON of the form {{\"keys\": [...]}}: {detail}")]
    JwksSyntax { detail: String },
    #[error(
        "the JWKS document has no usable signing key (RSA >= 2048 bits for RS256 or PS256, EC P-256 for ES256, EC P-384 for ES384, Ed25519 for EdDSA){skipped}"
    )]
    JwksEmpty { skipped: String },
    #[error("no verification key configured")]
    Empty,
}

/// One trusted public key, ready to verify.
pub struct VerificationKey {
    /// The `kid` tokens name this key by: the RFC 7638 thumbprint for certificates, the JWKS `kid`.
    kid: String,
    /// Other names tokens from .NET servers use for a certificate key: `x5t` and the SHA-1 hex thumbprint.
    aliases: Vec<String>,
    /// What the key verifies: one algorithm, or RS256 and PS256 for an RSA key that does not say
    /// which (a certificate): the first is the key's own algorithm.
    algorithms: Vec<(Algorithm, ParsedPublicKey)>,
    /// RSA signatures are exactly the modulus length.
    signature_len: usize,
    /// Where the key came from, for messages: a certificate subject or a JWKS entry.
    origin: String,
    /// RFC 7638 thumbprint of the public key.
    thumbprint: String,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .field("origin", &self.origin)
            .finish()
    }
}

impl VerificationKey {
    /// The key of a certificate. `origin` names it in messages (for example the file it came from).
    pub fn from_certificate(cert: &Certificate, origin: &str) -> Result<Self, KeySetError> {
        let mut key = Self::from_public_key(cert.public_key(), None, origin)?;
        key.aliases = vec![cert.x5t(), cert.sha1_hex()];
        Ok(key)
    }

    /// The key of one JWKS entry. Entries for encryption or other algorithms are refused.
    pub fn from_jwk(entry: &Jwk) -> Result<Self, KeySetError> {
        let origin = format!(
            "JWKS key {}",
            entry
                .kid
                .as_deref()
                .map_or("(no kid)".to_string(), |k| format!("'{k}'"))
        );
        let bad = |detail: &str| KeySetError::Key {
            origin: origin.clone(),
            detail: detail.to_string(),
        };
        if entry.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(bad("its \"use\" is not \"sig\""));
        }
        let public = Self::public_key_of(entry).map_err(|e| match e {
            KeySetError::Key { detail, .. } => bad(&detail),
            other => other,
        })?;
        let mut key = Self::from_public_key(&public, entry.kid.clone(), &origin)?;
        match entry.alg.as_deref() {
            // RFC 8725 section 3.1: an entry that names its algorithm verifies that one only.
            Some(alg) => match Algorithm::from_name(alg).filter(|a| a.fits(&public)) {
                Some(pinned) => key.algorithms.retain(|(a, _)| *a == pinned),
                None => {
                    return Err(bad(&format!(
                        "its \"alg\" is {}; this key type verifies {} only",
                        crate::verify::shown(alg),
                        key.algorithms_text()
                    )));
                }
            },
            // No `alg`: the key type's first algorithm (RS256 for RSA), as before PS256 existed.
            None => key.algorithms.truncate(1),
        }
        Ok(key)
    }

    /// The public key of a JWK (RSA, EC P-256 or P-384, Ed25519), without any policy on `use` or `alg`.
    pub fn public_key_of(entry: &Jwk) -> Result<PublicKey, KeySetError> {
        let bad = |detail: &str| KeySetError::Key {
            origin: "JWK".into(),
            detail: detail.to_string(),
        };
        let decode = |member: &Option<String>, name: &str| {
            member
                .as_deref()
                .and_then(b64::url_decode)
                .ok_or_else(|| bad(&format!("member \"{name}\" is missing or not base64url")))
        };
        Ok(match entry.kty.as_str() {
            "RSA" => PublicKey::Rsa {
                n: strip_zeros(&decode(&entry.n, "n")?).to_vec(),
                e: strip_zeros(&decode(&entry.e, "e")?).to_vec(),
            },
            "EC" => {
                let size = match entry.crv.as_deref() {
                    Some("P-256") => 32,
                    Some("P-384") => 48,
                    _ => return Err(bad("only the EC curves P-256 and P-384 are supported")),
                };
                let (x, y) = (decode(&entry.x, "x")?, decode(&entry.y, "y")?);
                if x.len() != size || y.len() != size {
                    return Err(bad(&format!(
                        "{} coordinates must be {size} bytes",
                        entry.crv.as_deref().unwrap_or_default()
                    )));
                }
                if size == 32 {
                    PublicKey::P256 { x, y }
                } else {
                    PublicKey::P384 { x, y }
                }
            }
            "OKP" => {
                if entry.crv.as_deref() != Some("Ed25519") {
                    return Err(bad("only the OKP curve Ed25519 is supported"));
                }
                let x = decode(&entry.x, "x")?;
                if x.len() != 32 {
                    return Err(bad("an Ed25519 key is 32 bytes"));
                }
                PublicKey::Ed25519 { x }
            }
            other => return Err(bad(&format!("key type \"{other}\" is not supported"))),
        })
    }

    /// A key to verify signatures with, named by `origin` in messages.
    pub fn from_public(public: &PublicKey, origin: &str) -> Result<Self, KeySetError> {
        Self::from_public_key(public, None, origin)
    }

    fn from_public_key(
        public: &PublicKey,
        kid: Option<String>,
        origin: &str,
    ) -> Result<Self, KeySetError> {
        let thumbprint = jwk::thumbprint(public);
        let failed = |e: aws_lc_rs::error::KeyRejected| KeySetError::Key {
            origin: origin.to_string(),
            detail: e.to_string(),
        };
        let (algorithms, signature_len) = match public {
            PublicKey::Rsa { n, .. } => {
                if public.bits() < 2048 {
                    return Err(KeySetError::Key {
                        origin: origin.to_string(),
                        detail: format!(
                            "RSA key of {} bits; at least 2048 are required",
                            public.bits()
                        ),
                    });
                }
                // DER `RSAPublicKey` (RFC 8017 A.1.1), what aws-lc-rs parses.
                let der = ids_pki::keyfile::subject_public_key_bits(public);
                (
                    vec![
                        (
                            Algorithm::RS256,
                            ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
                                .map_err(failed)?,
                        ),
                        (
                            Algorithm::PS256,
                            ParsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &der)
                                .map_err(failed)?,
                        ),
                    ],
                    n.len(),
                )
            }
            PublicKey::P256 { .. } | PublicKey::P384 { .. } => {
                let point = public.ec_point().unwrap_or_default();
                let (algorithm, verification, len) = if matches!(public, PublicKey::P256 { .. }) {
                    (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED, 64)
                } else {
                    (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED, 96)
                };
                (
                    vec![(
                        algorithm,
                        ParsedPublicKey::new(verification, point).map_err(failed)?,
                    )],
                    len,
                )
            }
            PublicKey::Ed25519 { x } => (
                vec![(
                    Algorithm::EdDSA,
                    ParsedPublicKey::new(&ED25519, x).map_err(failed)?,
                )],
                64,
            ),
        };
        Ok(VerificationKey {
            kid: kid.unwrap_or_else(|| thumbprint.clone()),
            aliases: Vec::new(),
            algorithms,
            signature_len,
            origin: origin.to_string(),
            thumbprint,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The key's own algorithm (the first it verifies).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithms
            .first()
            .map_or(Algorithm::RS256, |(algorithm, _)| *algorithm)
    }

    /// Whether the key verifies signatures made with `algorithm`.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.algorithms.iter().any(|(a, _)| *a == algorithm)
    }

    /// The algorithms the key verifies, for messages (`RS256 or PS256`).
    pub fn algorithms_text(&self) -> String {
        self.algorithms
            .iter()
            .map(|(a, _)| a.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    pub(crate) fn signature_len(&self) -> usize {
        self.signature_len
    }

    /// Whether a token header's `kid` names this key.
    pub(crate) fn answers_to(&self, kid: &str) -> bool {
        self.kid == kid
            || self.thumbprint == kid
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(kid))
    }

    /// Whether `signature` is a valid `algorithm` signature of `message` by this key (false when the
    /// key does not verify that algorithm).
    pub(crate) fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.algorithms
            .iter()
            .find(|(a, _)| *a == algorithm)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// The keys a verifier trusts. Built once; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    /// JWKS entries that were skipped, with the reason (shown by `agent check`).
    skipped: Vec<String>,
}

impl KeySet {
    /// Pinned certificates, each named by `origin` (for example its file).
    pub fn from_certificates<'a>(
        certs: impl IntoIterator<Item = (&'a Certificate, String)>,
    ) -> Result<Self, KeySetError> {
        let keys = certs
            .into_iter()
            .map(|(cert, origin)| VerificationKey::from_certificate(cert, &origin))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        Ok(KeySet {
            keys,
            skipped: Vec::new(),
        })
    }

    /// The signing keys of a JWKS document (RFC 7517 section 5). Entries we cannot use (encryption keys,
    /// other algorithms) are skipped and listed by [`KeySet::skipped`]; a document with no usable key is an
    /// error.
    pub fn from_jwks(json: &[u8]) -> Result<Self, KeySetError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<serde_json::Value>,
        }
        let doc: Jwks = serde_json::from_slice(json).map_err(|e| KeySetError::JwksSyntax {
            detail: e.to_string(),
        })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, value) in doc.keys.into_iter().enumerate() {
            match serde_json::from_value::<Jwk>(value) {
                Ok(entry) => match VerificationKey::from_jwk(&entry) {
                    Ok(key) => keys.push(key),
                    Err(e) => skipped.push(e.to_string()),
                },
                Err(e) => skipped.push(format!("JWKS entry #{index}: {e}")),
            }
        }
        if keys.is_empty() {
            let skipped = if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped: {}", skipped.join("; "))
            };
            return Err(KeySetError::JwksEmpty { skipped });
        }
        Ok(KeySet { keys, skipped })
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The key a token's `kid` names, if any.
    pub(crate) fn find(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|k| k.answers_to(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let der = |n: &[u8], e: &[u8]| {
            let key = PublicKey::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
            };
            ids_pki::keyfile::subject_public_key_bits(&key)
        };
        assert_eq!(
            der(&[0, 0x80], &[1, 0, 1]),
            vec![0x30, 9, 2, 2, 0, 0x80, 2, 3, 1, 0, 1]
        );
        assert_eq!(der(&[], &[1]), vec![0x30, 6, 2, 1, 0, 2, 1, 1]);
        let long = der(&[0x7f; 257], &[3]);
        assert_eq!(long[..8], [0x30, 0x82, 1, 8, 2, 0x82, 1, 1]);
    }

    #[test]
    fn jwks_without_usable_keys_is_an_error_that_lists_what_was_skipped() {
        let json = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}"#;
        let err = KeySet::from_jwks(json).expect_err("no usable key");
        let text = err.to_string();
        assert!(text.contains("\"oct\" is not supported"), "{text}");
        assert!(text.contains("P-256 and P-384"), "{text}");
        assert!(KeySet::from_jwks(b"{}").is_err());
        assert!(KeySet::from_jwks(b"not json").is_err());
    }
}
