//! The public keys a verifier trusts, parsed once: pinned certificates or the entries of a JWKS.
//!
//! A key is found by the token's `kid`, which is only a lookup key (RFC 8725 section 3.10): the
//! algorithm comes from the key, never from the token.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

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
        "the JWKS document has no usable signing key (RSA >= 2048 bits for RS256, EC P-256 for ES256){skipped}"
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
    algorithm: Algorithm,
    key: ParsedPublicKey,
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
            .field("algorithm", &self.algorithm)
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
        let key = Self::from_public_key(&public, entry.kid.clone(), &origin)?;
        if let Some(alg) = entry.alg.as_deref()
            && alg != key.algorithm.as_str()
        {
            return Err(bad(&format!(
                "its \"alg\" is {alg}; this key type verifies {} only",
                key.algorithm.as_str()
            )));
        }
        Ok(key)
    }

    /// The public key of a JWK (RSA, or EC P-256), without any policy on `use` or `alg`.
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
                if entry.crv.as_deref() != Some("P-256") {
                    return Err(bad("only the EC curve P-256 is supported"));
                }
                let (x, y) = (decode(&entry.x, "x")?, decode(&entry.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("P-256 coordinates must be 32 bytes"));
                }
                PublicKey::P256 { x, y }
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
        let (algorithm, parsed, signature_len) = match public {
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
                    Algorithm::RS256,
                    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der),
                    n.len(),
                )
            }
            PublicKey::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                (
                    Algorithm::ES256,
                    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point),
                    64,
                )
            }
        };
        let key = parsed.map_err(|e| KeySetError::Key {
            origin: origin.to_string(),
            detail: e.to_string(),
        })?;
        Ok(VerificationKey {
            kid: kid.unwrap_or_else(|| thumbprint.clone()),
            aliases: Vec::new(),
            algorithm,
            key,
            signature_len,
            origin: origin.to_string(),
            thumbprint,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
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

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
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
        let json = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}"#;
        let err = KeySet::from_jwks(json).expect_err("no usable key");
        let text = err.to_string();
        assert!(text.contains("\"oct\" is not supported"), "{text}");
        assert!(text.contains("P-256"), "{text}");
        assert!(KeySet::from_jwks(b"{}").is_err());
        assert!(KeySet::from_jwks(b"not json").is_err());
    }
}
