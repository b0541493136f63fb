//! Who can read a file: the file key wrapped for each recipient certificate, and unwrapped with the
//! private key of one of them.
//!
//! - RSA certificates: RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label (RFC 8017 section 7.1).
//! - EC P-256 certificates: ECDH-ES with a fresh ephemeral key per file (as JOSE `ECDH-ES`, RFC 7518
//!   section 4.6), the shared secret through HKDF-SHA256 (RFC 5869) into a one-time key that seals the
//!   file key with AES-256-GCM.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::{hkdf, hmac, rand};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::error::{FileError, KeyName};
use super::format::{MAC_LEN, Stanza, Thumbprint, WrapKind};
use ids_pki::cert::{Certificate, PublicKey};
use ids_pki::keys::SigningKey;
use ids_pki::pfx::Pfx;

const FILE_KEY_LEN: usize = 32;
const POINT_LEN: usize = 65;
const SEALED_KEY_LEN: usize = FILE_KEY_LEN + 16;
const ECDH_INFO: &[u8] = b"IDSENC v1 ECDH-ES P-256 key wrap";
const PAYLOAD_INFO: &[u8] = b"IDSENC v1 payload";
const HEADER_MAC_INFO: &[u8] = b"IDSENC v1 header MAC";

/// A certificate a file is encrypted for (its public key only).
pub struct Recipient {
    name: KeyName,
    key: PublicWrapKey,
}

enum PublicWrapKey {
    Rsa(OaepPublicEncryptingKey),
    P256(Vec<u8>),
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.name)
    }
}

impl Recipient {
    /// A recipient from its certificate (RSA of at least 2048 bits, or EC P-256).
    pub fn from_certificate(cert: &Certificate) -> Result<Self, FileError> {
        let name = KeyName {
            thumbprint: Thumbprint::of_der(cert.der()),
            subject: cert.subject().to_string(),
        };
        let key = match cert.public_key() {
            PublicKey::Rsa { .. } => {
                let unsupported = |detail: String| FileError::UnsupportedRecipient { detail };
                let (_, parsed) = X509Certificate::from_der(cert.der())
                    .map_err(|e| unsupported(format!("`{}`: {e}", cert.subject())))?;
                let public = PublicEncryptingKey::from_der(parsed.public_key().raw)
                    .map_err(|e| unsupported(format!("`{}`: RSA key: {e}", cert.subject())))?;
                PublicWrapKey::Rsa(OaepPublicEncryptingKey::new(public).map_err(|_| {
                    unsupported(format!("`{}`: RSA-OAEP unavailable", cert.subject()))
                })?)
            }
            PublicKey::P256 { x, y } => {
                let mut point = Vec::with_capacity(POINT_LEN);
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                PublicWrapKey::P256(point)
            }
            other => {
                return Err(FileError::UnsupportedRecipient {
                    detail: format!(
                        "`{}`: a {} key cannot encrypt files (use an RSA or EC P-256 certificate)",
                        cert.subject(),
                        other.describe()
                    ),
                });
            }
        };
        Ok(Recipient { name, key })
    }

    pub fn thumbprint(&self) -> Thumbprint {
        self.name.thumbprint
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Wraps `file_key` for this recipient.
    pub(crate) fn wrap(&self, file_key: &FileKey) -> Result<Stanza, FileError> {
        let (kind, body) = match &self.key {
            PublicWrapKey::Rsa(key) => {
                let mut out = vec![0u8; key.ciphertext_size()];
                let len = key
                    .encrypt(&OAEP_SHA256_MGF1SHA256, &file_key.0[..], &mut out, None)
                    .map_err(|_| FileError::Crypto {
                        what: "RSA-OAEP encryption",
                    })?
                    .len();
                out.truncate(len);
                (WrapKind::RsaOaepSha256, out)
            }
            PublicWrapKey::P256(point) => {
                let ephemeral =
                    agreement::PrivateKey::generate(&ECDH_P256).map_err(|_| FileError::Crypto {
                        what: "EC key generation",
                    })?;
                let ephemeral_point =
                    ephemeral
                        .compute_public_key()
                        .map_err(|_| FileError::Crypto {
                            what: "EC key generation",
                        })?;
                let kek = agreement::agree(
                    &ephemeral,
                    UnparsedPublicKey::new(&ECDH_P256, point.as_slice()),
                    FileError::UnsupportedRecipient {
                        detail: format!("{}: invalid EC public key", self.name),
                    },
                    |z| ecdh_kek(z, ephemeral_point.as_ref(), point),
                )?;
                let mut sealed = Zeroizing::new(file_key.0.to_vec());
                let tag = kek
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from(&self.name.thumbprint.0),
                        &mut sealed,
                    )
                    .map_err(|_| FileError::Crypto { what: "key wrap" })?;
                let mut body = ephemeral_point.as_ref().to_vec();
                body.extend_from_slice(&sealed);
                body.extend_from_slice(tag.as_ref());
                (WrapKind::EcdhEsP256, body)
            }
        };
        Ok(Stanza {
            kind,
            thumbprint: self.name.thumbprint,
            body,
        })
    }
}

/// A private key that can open files encrypted for its certificate.
pub struct DecryptionKey {
    name: KeyName,
    key: PrivateWrapKey,
}

enum PrivateWrapKey {
    Rsa(OaepPrivateDecryptingKey),
    P256(agreement::PrivateKey),
}

impl std::fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecryptionKey({})", self.name)
    }
}

impl DecryptionKey {
    /// The private key of a PFX file, for the files encrypted for its certificate.
    pub fn from_pfx(pfx: &Pfx) -> Result<Self, FileError> {
        let name = KeyName {
            thumbprint: Thumbprint::of_der(pfx.certificate.der()),
            subject: pfx.certificate.subject().to_string(),
        };
        let unsupported = |what: &str| FileError::UnsupportedRecipient {
            detail: format!("{}: {what}", pfx.file),
        };
        let key = match &pfx.key {
            SigningKey::Rsa(_) => PrivateDecryptingKey::from_pkcs8(&pfx.key_pkcs8)
                .ok()
                .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
                .map(PrivateWrapKey::Rsa)
                .ok_or_else(|| unsupported("the RSA key cannot decrypt"))?,
            SigningKey::Ec(_) => {
                agreement::PrivateKey::from_private_key_der(&ECDH_P256, &pfx.key_pkcs8)
                    .map(PrivateWrapKey::P256)
                    .map_err(|_| unsupported("the EC key cannot do ECDH on P-256"))?
            }
            other => {
                return Err(unsupported(&format!(
                    "a {} key cannot decrypt files (use an RSA or EC P-256 certificate)",
                    other.key_type()
                )));
            }
        };
        Ok(DecryptionKey { name, key })
    }

    pub fn thumbprint(&self) -> Thumbprint {
        self.name.thumbprint
    }

    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Unwraps the file key from this key's stanza. A failure means the stanza was altered: the
    /// thumbprint matched, so the key is the right one.
    pub(crate) fn unwrap_key(&self, stanza: &Stanza) -> Result<FileKey, FileError> {
        let tampered = |detail: &str| FileError::HeaderTampered {
            detail: format!(
                "the file key wrapped for {} cannot be unwrapped: {detail}",
                self.name
            ),
        };
        let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
        match (&self.key, stanza.kind) {
            (PrivateWrapKey::Rsa(private), WrapKind::RsaOaepSha256) => {
                let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
                let plain = private
                    .decrypt(&OAEP_SHA256_MGF1SHA256, &stanza.body, &mut out, None)
                    .map_err(|_| tampered("RSA-OAEP decryption failed"))?;
                if plain.len() != FILE_KEY_LEN {
                    return Err(tampered("wrong key length"));
                }
                key.copy_from_slice(plain);
            }
            (PrivateWrapKey::P256(private), WrapKind::EcdhEsP256) => {
                if stanza.body.len() != POINT_LEN + SEALED_KEY_LEN {
                    return Err(tampered("wrong length"));
                }
                let (point, sealed) = stanza.body.split_at(POINT_LEN);
                let own_point = private
                    .compute_public_key()
                    .map_err(|_| FileError::Crypto {
                        what: "EC public key",
                    })?;
                let kek = agreement::agree(
                    private,
                    UnparsedPublicKey::new(&ECDH_P256, point),
                    tampered("invalid ephemeral public key"),
                    |z| ecdh_kek(z, point, own_point.as_ref()),
                )?;
                let mut buf = Zeroizing::new(sealed.to_vec());
                let plain = kek
                    .open_in_place(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::from(&stanza.thumbprint.0),
                        &mut buf,
                    )
                    .map_err(|_| tampered("authentication failed"))?;
                key.copy_from_slice(plain);
            }
            (_, kind) => {
                return Err(tampered(&format!(
                    "key-wrapping kind {kind:?} does not match the key type"
                )));
            }
        }
        Ok(FileKey(key))
    }
}

/// The random per-file key. The payload key and the header MAC key are derived from it with HKDF, so
/// one key is never used for two purposes.
pub(crate) struct FileKey(Zeroizing<[u8; FILE_KEY_LEN]>);

impl FileKey {
    pub(crate) fn generate() -> Result<Self, FileError> {
        let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
        rand::fill(&mut key[..]).map_err(|_| FileError::Crypto {
            what: "random number generation",
        })?;
        Ok(FileKey(key))
    }

    fn derive(&self, info: &[u8]) -> Result<Zeroizing<[u8; 32]>, FileError> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(&self.0[..])
            .expand(&[info], Len(32))
            .and_then(|okm| okm.fill(&mut out[..]))
            .map_err(|_| FileError::Crypto { what: "HKDF" })?;
        Ok(out)
    }

    /// The AES-256-GCM key for the chunks.
    pub(crate) fn payload_key(&self) -> Result<LessSafeKey, FileError> {
        let key = self.derive(PAYLOAD_INFO)?;
        UnboundKey::new(&AES_256_GCM, &key[..])
            .map(LessSafeKey::new)
            .map_err(|_| FileError::Crypto { what: "AES key" })
    }

    /// HMAC-SHA256 over the header: commits the file to this file key (AES-GCM alone does not), so a
    /// sender cannot make one file decrypt differently for two recipients.
    pub(crate) fn header_mac(&self, header: &[u8]) -> Result<[u8; MAC_LEN], FileError> {
        let key = self.derive(HEADER_MAC_INFO)?;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key[..]), header);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    pub(crate) fn verify_header_mac(&self, header: &[u8], mac: &[u8]) -> Result<(), FileError> {
        let key = self.derive(HEADER_MAC_INFO)?;
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key[..]), header, mac).map_err(|_| {
            FileError::HeaderTampered {
                detail: "the header MAC does not match the file key".into(),
            }
        })
    }
}

/// The one-time key-wrapping key: HKDF-SHA256 over the ECDH shared secret, salted with both public
/// points so the key is bound to this exchange.
fn ecdh_kek(z: &[u8], ephemeral: &[u8], recipient: &[u8]) -> Result<LessSafeKey, FileError> {
    let mut salt = Vec::with_capacity(2 * POINT_LEN);
    salt.extend_from_slice(ephemeral);
    salt.extend_from_slice(recipient);
    let mut kek = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, &salt)
        .extract(z)
        .expand(&[ECDH_INFO], Len(32))
        .and_then(|okm| okm.fill(&mut kek[..]))
        .map_err(|_| FileError::Crypto { what: "HKDF" })?;
    UnboundKey::new(&AES_256_GCM, &kek[..])
        .map(LessSafeKey::new)
        .map_err(|_| FileError::Crypto { what: "AES key" })
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}
