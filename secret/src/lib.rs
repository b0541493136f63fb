//! Client secrets and the hashes stored in the XML `HashedSecret` attribute.
//!
//! Two families are accepted:
//! - legacy values: standard base64 of SHA-256 (32 bytes) or SHA-512 (64 bytes) of the UTF-8 secret, with or
//!   without `=` padding, as `New-OpenIDSecret` produced them;
//! - argon2id PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), the default for new hashes.
//!
//! A PHC string always starts with `$`, which is not in the base64 alphabet, so the two never overlap.
//!
//! Who uses it: the identity server (verifying client secrets) and `new-openid-secret` (hashing them).
//! Why a crate of its own: argon2 is needed only there; the agent sends plain secrets and must not build
//! it.
//!
//! # Layout
//! One module: [`generate_secret`] (new random secrets), [`SecretHash`] (a stored `HashedSecret`,
//! parsed, hashed and verified in constant time), [`Argon2Memory`] (the working memory one verification
//! reuses) and [`HashError`].

use std::fmt;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use ids_proto::ClientSecret;

/// A new random client secret: 32 bytes (256 bits) from the system RNG, base64url (43 characters).
pub fn generate_secret() -> Result<ClientSecret, HashError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| HashError::Random)?;
    Ok(ClientSecret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    ))
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

    /// Checks `secret` against this hash. Digest comparisons are constant-time, the argon2 output's
    /// too. argon2 works in memory allocated for this call: a server verifying many secrets uses
    /// [`SecretHash::verify_in`] with memory it keeps.
    pub fn verify(&self, secret: &ClientSecret) -> bool {
        self.verify_in(secret, &mut Argon2Memory::new())
    }

    /// [`SecretHash::verify`] with argon2 working in `memory`, which is grown to the hash's memory
    /// cost (m KiB) the first time and reused afterwards, so that a thread verifying secrets one after
    /// the other keeps one buffer instead of allocating and freeing m KiB per verification (with
    /// glibc, large blocks freed by many threads stay resident in their arenas).
    pub fn verify_in(&self, secret: &ClientSecret, memory: &mut Argon2Memory) -> bool {
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
            SecretHash::Argon2id(phc) => argon2_matches(phc, bytes, memory).unwrap_or(false),
        }
    }

    /// The value to put in `HashedSecret`.
    pub fn to_attribute(&self) -> String {
        match self {
            SecretHash::Sha256(d) => base64::engine::general_purpose::STANDARD.encode(d),
            SecretHash::Sha512(d) => base64::engine::general_purpose::STANDARD.encode(d.as_slice()),
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

/// The memory an argon2 verification works in (m KiB of 1 KiB blocks), kept between verifications by
/// whoever owns it. Its contents after a verification are derived from the secret: it never leaves
/// the thread that owns it and is overwritten by the next verification.
#[derive(Default)]
pub struct Argon2Memory(Vec<Block>);

impl Argon2Memory {
    /// Empty: grown on first use.
    pub fn new() -> Self {
        Argon2Memory(Vec::new())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.len() * Block::SIZE
    }

    /// The first `count` blocks, growing the buffer when it is smaller.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.0.len() < count {
            self.0.resize(count, Block::new());
        }
        &mut self.0[..count]
    }
}

impl fmt::Debug for Argon2Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Argon2Memory({} KiB)", self.bytes() / 1024)
    }
}

/// Recomputes the argon2id output of `phc` for `secret` in `memory` and compares it in constant time
/// (what `PasswordVerifier::verify_password` does, with the caller's memory). `None` when the PHC
/// string cannot be used.
fn argon2_matches(phc: &str, secret: &[u8], memory: &mut Argon2Memory) -> Option<bool> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm.as_str() != "argon2id" {
        return None;
    }
    let (salt, expected) = (parsed.salt.as_ref()?, parsed.hash.as_ref()?);
    let params = Params::try_from(&parsed).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let count = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    argon2
        .hash_password_into_with_memory(secret, salt.as_ref(), &mut out, memory.blocks(count))
        .ok()?;
    Some(out.as_slice().ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

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
        let h = SecretHash::parse(&base64::engine::general_purpose::STANDARD.encode(d.as_ref()))
            .expect("sha512");
        assert!(matches!(h, SecretHash::Sha512(_)));
        assert!(h.verify(&s));
        let a = SecretHash::danger_weak_argon2id(&s).expect("hash");
        let parsed = SecretHash::parse(&a.to_attribute()).expect("phc");
        assert!(parsed.verify(&s));
        assert!(!parsed.verify(&ClientSecret::new("px")));
    }

    /// The verification in caller-provided memory agrees with the argon2 crate's own, at the
    /// production parameters, for the right secret, wrong ones and a smaller hash in the same memory.
    #[test]
    fn verification_in_reused_memory_matches_the_crates_own() {
        let right = ClientSecret::new("right");
        let wrong = ClientSecret::new("wrong");
        let strong = SecretHash::argon2id(&right).expect("hash");
        let weak = SecretHash::danger_weak_argon2id(&right).expect("hash");
        let mut memory = Argon2Memory::new();
        for (hash, secret, expected) in [
            (&strong, &right, true),
            (&strong, &wrong, false),
            (&weak, &right, true),
            (&weak, &wrong, false),
            (&strong, &right, true),
        ] {
            let SecretHash::Argon2id(phc) = hash else {
                panic!("argon2id")
            };
            let reference = Argon2::default()
                .verify_password(
                    secret.expose().as_bytes(),
                    &PasswordHash::new(phc).expect("phc"),
                )
                .is_ok();
            assert_eq!(reference, expected);
            assert_eq!(hash.verify_in(secret, &mut memory), expected);
        }
        // Grown once to the production memory cost (19 MiB), never beyond.
        assert_eq!(memory.bytes(), 19 * 1024 * 1024);
        let tampered =
            SecretHash::Argon2id(strong.to_attribute().replace("$argon2id$", "$argon2i$"));
        assert!(!tampered.verify_in(&right, &mut memory));
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
