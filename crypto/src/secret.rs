//! Client secrets and the hashes stored in the XML `HashedSecret` attribute.
//!
//! Two families are accepted:
//! - legacy values: standard base64 of SHA-256 (32 bytes) or SHA-512 (64 bytes) of the UTF-8 secret, with or
//!   without `=` padding, as `New-OpenIDSecret` produced them;
//! - argon2id PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), the default for new hashes.
//!
//! A PHC string always starts with `$`, which is not in the base64 alphabet, so the two never overlap.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A plain client secret. `Debug` never shows it; memory is wiped on drop.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        ClientSecret(Zeroizing::new(secret.into()))
    }

    /// Deliberately named: the only way to read the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A new random secret: 32 bytes (256 bits) from the system RNG, base64url (43 characters).
    pub fn generate() -> Result<Self, HashError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| HashError::Random)?;
        Ok(ClientSecret::new(crate::b64::url(bytes.as_ref())))
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// Why a `HashedSecret` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("empty hash")]
    Empty,
    #[error("unsupported PHC algorithm `{0}` (expected `argon2id`)")]
    UnsupportedPhc(String),
    #[error("malformed argon2id PHC string: {0}")]
    MalformedPhc(String),
    #[error(
        "not base64 of a SHA-256 (32 bytes) or SHA-512 (64 bytes) digest, nor an argon2id PHC string ($argon2id$...)"
    )]
    Unrecognised,
    #[error("base64 value decodes to {0} bytes; expected 32 (SHA-256) or 64 (SHA-512)")]
    WrongLength(usize),
    #[error("the system random number generator failed")]
    Random,
}

/// A parsed `HashedSecret`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretHash {
    Sha256([u8; 32]),
    Sha512(Box<[u8; 64]>),
    /// argon2id PHC string, validated at parse time.
    Argon2id(String),
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SecretHash::Sha256(_) => "SecretHash::Sha256(..)",
            SecretHash::Sha512(_) => "SecretHash::Sha512(..)",
            SecretHash::Argon2id(_) => "SecretHash::Argon2id(..)",
        })
    }
}

const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl SecretHash {
    /// Parses a `HashedSecret` attribute value.
    pub fn parse(value: &str) -> Result<Self, HashError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(HashError::Empty);
        }
        if value.starts_with('$') {
            let phc =
                PasswordHash::new(value).map_err(|e| HashError::MalformedPhc(e.to_string()))?;
            let algorithm = phc.algorithm.to_string();
            if algorithm != "argon2id" {
                return Err(HashError::UnsupportedPhc(algorithm));
            }
            if phc.hash.is_none() || phc.salt.is_none() {
                return Err(HashError::MalformedPhc("salt or hash missing".into()));
            }
            Params::try_from(&phc).map_err(|e| HashError::MalformedPhc(e.to_string()))?;
            return Ok(SecretHash::Argon2id(value.to_string()));
        }
        let bytes = LENIENT_BASE64
            .decode(value)
            .map_err(|_| HashError::Unrecognised)?;
        match bytes.len() {
            32 => {
                let mut d = [0u8; 32];
                d.copy_from_slice(&bytes);
                Ok(SecretHash::Sha256(d))
            }
            64 => {
                let mut d = Box::new([0u8; 64]);
                d.copy_from_slice(&bytes);
                Ok(SecretHash::Sha512(d))
            }
            n => Err(HashError::WrongLength(n)),
        }
    }

    /// True when verification is slow (argon2id) and should run off the async threads.
    pub fn is_slow(&self) -> bool {
        matches!(self, SecretHash::Argon2id(_))
    }

    /// Checks `secret` against this hash. Digest comparisons are constant-time; argon2's own
    /// verification compares in constant time too.
    pub fn verify(&self, secret: &ClientSecret) -> bool {
        let bytes = secret.expose().as_bytes();
        match self {
            SecretHash::Sha256(expected) => {
                let d = digest::digest(&digest::SHA256, bytes);
                d.as_ref().ct_eq(expected.as_slice()).into()
            }
            SecretHash::Sha512(expected) => {
                let d = digest::digest(&digest::SHA512, bytes);
                d.as_ref().ct_eq(expected.as_slice()).into()
            }
            SecretHash::Argon2id(phc) => match PasswordHash::new(phc) {
                Ok(parsed) => Argon2::default().verify_password(bytes, &parsed).is_ok(),
                Err(_) => false,
            },
        }
    }

    /// The value to put in `HashedSecret`.
    pub fn to_attribute(&self) -> String {
        match self {
            SecretHash::Sha256(d) => crate::b64::std(d),
            SecretHash::Sha512(d) => crate::b64::std(d.as_slice()),
            SecretHash::Argon2id(s) => s.clone(),
        }
    }

    /// Legacy value: base64(SHA-256(secret)), e.g. `secret` -> `K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=`.
    pub fn legacy_sha256(secret: &ClientSecret) -> Self {
        let d = digest::digest(&digest::SHA256, secret.expose().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        SecretHash::Sha256(out)
    }

    /// New argon2id hash with the OWASP parameters (m=19456 KiB, t=2, p=1) and a random salt.
    pub fn argon2id(secret: &ClientSecret) -> Result<Self, HashError> {
        Self::argon2id_with(secret, Params::DEFAULT)
    }

    /// argon2id with weak parameters, for tests only (m=64 KiB, t=1).
    pub fn danger_weak_argon2id(secret: &ClientSecret) -> Result<Self, HashError> {
        let params =
            Params::new(64, 1, 1, None).map_err(|e| HashError::MalformedPhc(e.to_string()))?;
        Self::argon2id_with(secret, params)
    }

    fn argon2id_with(secret: &ClientSecret, params: Params) -> Result<Self, HashError> {
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let hash: PasswordHash = hasher
            .hash_password(secret.expose().as_bytes())
            .map_err(|e| HashError::MalformedPhc(e.to_string()))?;
        Ok(SecretHash::Argon2id(hash.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_vector() {
        let s = ClientSecret::new("secret");
        let h = SecretHash::legacy_sha256(&s);
        assert_eq!(
            h.to_attribute(),
            "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="
        );
        for text in [
            "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=",
            "K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols",
        ] {
            let parsed = SecretHash::parse(text).expect("parse");
            assert!(parsed.verify(&s));
            assert!(!parsed.verify(&ClientSecret::new("Secret")));
        }
    }

    #[test]
    fn sha512_and_argon2() {
        let s = ClientSecret::new("pw");
        let d = digest::digest(&digest::SHA512, b"pw");
        let h = SecretHash::parse(&crate::b64::std(d.as_ref())).expect("sha512");
        assert!(matches!(h, SecretHash::Sha512(_)));
        assert!(h.verify(&s));
        let a = SecretHash::danger_weak_argon2id(&s).expect("hash");
        let parsed = SecretHash::parse(&a.to_attribute()).expect("phc");
        assert!(parsed.verify(&s));
        assert!(!parsed.verify(&ClientSecret::new("px")));
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(SecretHash::parse(""), Err(HashError::Empty));
        assert_eq!(
            SecretHash::parse("c2hvcnQ="),
            Err(HashError::WrongLength(5))
        );
        assert_eq!(
            SecretHash::parse("not base64!"),
            Err(HashError::Unrecognised)
        );
        assert!(matches!(
            SecretHash::parse("$2b$12$abcdefghijklmnopqrstuv"),
            Err(HashError::UnsupportedPhc(_)) | Err(HashError::MalformedPhc(_))
        ));
        assert!(format!("{:?}", ClientSecret::new("hunter2")).contains("redacted"));
    }
}
