//! Content encryption: AES-CBC (RFC 3565) for EnvelopedData and AES-GCM (RFC 5084) for
//! AuthEnvelopedData.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{self, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use zeroize::Zeroizing;

use super::CmsError;
use super::ber::{AlgId, Tlv, malformed, tag};
use super::oid;

/// GCM nonce length written and the only one accepted (RFC 5084 section 3.2 recommends 12 octets;
/// aws-lc-rs supports only that).
pub(super) const GCM_NONCE_LEN: usize = 12;
/// GCM tag length written and the only one accepted (`aes-ICVlen` 16, what OpenSSL writes).
pub(super) const GCM_TAG_LEN: usize = 16;
const CBC_IV_LEN: usize = 16;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Cbc { iv: [u8; CBC_IV_LEN] },
    Gcm { nonce: [u8; GCM_NONCE_LEN] },
}

/// A content-encryption algorithm with its parameters, from `contentEncryptionAlgorithm`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ContentCipher {
    mode: Mode,
    key_len: usize,
    name: &'static str,
}

/// OID, name and key length of each supported cipher; `true` for GCM.
const CIPHERS: &[(&[u8], &str, usize, bool)] = &[
    (oid::AES128_CBC, "AES-128-CBC", 16, false),
    (oid::AES192_CBC, "AES-192-CBC", 24, false),
    (oid::AES256_CBC, "AES-256-CBC", 32, false),
    (oid::AES128_GCM, "AES-128-GCM", 16, true),
    (oid::AES192_GCM, "AES-192-GCM", 24, true),
    (oid::AES256_GCM, "AES-256-GCM", 32, true),
];

impl ContentCipher {
    pub fn parse(alg: &AlgId<'_>) -> Result<Self, CmsError> {
        let Some(&(_, name, key_len, gcm)) = CIPHERS.iter().find(|c| c.0 == alg.oid) else {
            return Err(CmsError::unsupported(format!(
                "content encryption algorithm {}; only AES-CBC and AES-GCM are supported (3DES is \
                 what `openssl cms -encrypt` uses by default before OpenSSL 3.5): encrypt with \
                 `openssl cms -encrypt -aes-256-gcm`",
                oid::describe(alg.oid)
            )));
        };
        let params = alg
            .params
            .ok_or_else(|| malformed(format!("{name} parameters are missing")))?;
        let mode = if gcm {
            Mode::Gcm {
                nonce: gcm_nonce(params, name)?,
            }
        } else {
            let iv = params.octets()?;
            Mode::Cbc {
                iv: iv
                    .as_ref()
                    .try_into()
                    .map_err(|_| malformed(format!("{name} IV is not {CBC_IV_LEN} bytes")))?,
            }
        };
        Ok(ContentCipher {
            mode,
            key_len,
            name,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn key_len(&self) -> usize {
        self.key_len
    }

    /// Whether the cipher authenticates the content (GCM).
    pub fn is_aead(&self) -> bool {
        matches!(self.mode, Mode::Gcm { .. })
    }

    /// Decrypts `buf` (the ciphertext) in place and returns the plaintext. For GCM, `mac` is the tag
    /// and `aad` the authenticated attributes; nothing is returned unless the tag matches.
    pub fn decrypt(
        &self,
        key: &[u8],
        mut buf: Zeroizing<Vec<u8>>,
        mac: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        if key.len() != self.key_len {
            return Err(CmsError::KeyUnwrap);
        }
        let len = match self.mode {
            Mode::Gcm { nonce } => {
                let mac =
                    mac.ok_or_else(|| malformed("the authentication tag (mac) is missing"))?;
                if mac.len() != GCM_TAG_LEN {
                    return Err(malformed(format!(
                        "the authentication tag is {} bytes, its parameters say {GCM_TAG_LEN}",
                        mac.len()
                    )));
                }
                gcm_key(key)?
                    .open_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        mac,
                        &mut buf,
                    )
                    .map_err(|_| CmsError::Tampered)?
                    .len()
            }
            Mode::Cbc { iv } => {
                let key = cbc_key(key)?;
                key.decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                    .map_err(|_| CmsError::BadPadding)?
                    .len()
            }
        };
        buf.truncate(len);
        Ok(buf)
    }
}

/// GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen AES-GCM-ICVlen DEFAULT 12 }
/// (RFC 5084 section 3.2).
fn gcm_nonce(params: Tlv<'_>, name: &str) -> Result<[u8; GCM_NONCE_LEN], CmsError> {
    if params.tag != tag::SEQUENCE {
        return Err(malformed(format!("{name} parameters are not a SEQUENCE")));
    }
    let mut reader = params.reader()?;
    let nonce = reader.octet_string("the GCM nonce")?;
    let icv_len = match reader.optional(tag::INTEGER)? {
        Some(icv) => icv.small_uint()?,
        None => 12,
    };
    if icv_len as usize != GCM_TAG_LEN {
        return Err(CmsError::unsupported(format!(
            "{name} with a {icv_len}-byte authentication tag; only {GCM_TAG_LEN} is supported"
        )));
    }
    nonce.as_ref().try_into().map_err(|_| {
        CmsError::unsupported(format!(
            "{name} with a {}-byte nonce; only {GCM_NONCE_LEN} is supported",
            nonce.len()
        ))
    })
}

fn gcm_key(key: &[u8]) -> Result<LessSafeKey, CmsError> {
    let algorithm = match key.len() {
        16 => &aead::AES_128_GCM,
        24 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    };
    UnboundKey::new(algorithm, key)
        .map(LessSafeKey::new)
        .map_err(|_| CmsError::crypto("cannot set up the AES-GCM key"))
}

fn cbc_key(key: &[u8]) -> Result<PaddedBlockDecryptingKey, CmsError> {
    let algorithm = match key.len() {
        16 => &cipher::AES_128,
        24 => &cipher::AES_192,
        _ => &cipher::AES_256,
    };
    UnboundCipherKey::new(algorithm, key)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| CmsError::crypto("cannot set up the AES-CBC key"))
}

/// Encrypts `in_out` in place with AES-256-GCM and no additional data; returns the tag.
pub(super) fn seal_aes256_gcm(
    key: &[u8],
    nonce: [u8; GCM_NONCE_LEN],
    in_out: &mut [u8],
) -> Result<[u8; GCM_TAG_LEN], CmsError> {
    let tag = gcm_key(key)?
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), in_out)
        .map_err(|_| CmsError::crypto("AES-256-GCM encryption failed"))?;
    tag.as_ref()
        .try_into()
        .map_err(|_| CmsError::crypto("AES-256-GCM produced a tag of unexpected length"))
}
