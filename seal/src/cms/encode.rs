//! The DER the CMS writer produces, declared as ASN.1 structures with RustCrypto `der`'s derive and
//! encoded by `der` (RFC 5652, RFC 5083, RFC 5084, RFC 5753, RFC 8017 for the field names).
//!
//! Values written as found elsewhere (a certificate's issuer Name and serial number, the pre-sorted
//! RecipientInfos, authenticated attributes) are `AnyRef`s with their tag and content octets, so
//! they are copied, not re-encoded. Every structure is what OpenSSL writes for the same message; the
//! known answers in `known_answers.rs` pin the bytes.

use der::asn1::{AnyRef, BitStringRef, ContextSpecific, OctetStringRef, SetOfVec};
use der::{Encode as _, Sequence, Tag, TagMode, TagNumber};
use spki::{AlgorithmIdentifier, AlgorithmIdentifierRef};

use super::CmsError;
use super::content::GCM_TAG_LEN;
use super::identity::CertIdentity;
use super::oid::id;

/// `ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY }` (RFC 5652 section 3).
#[derive(Sequence)]
struct ContentInfo<'a> {
    content_type: const_oid::ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: AuthEnvelopedData<'a>,
}

/// AuthEnvelopedData (RFC 5083 section 2.1), without originatorInfo and unauthAttrs. The
/// RecipientInfos SET is given whole (its elements already in DER order).
#[derive(Sequence)]
struct AuthEnvelopedData<'a> {
    version: u8,
    recipient_infos: AnyRef<'a>,
    auth_encrypted_content_info: EncryptedContentInfo<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    auth_attrs: Option<SetOfVec<AnyRef<'a>>>,
    mac: &'a OctetStringRef,
}

/// `EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm, encryptedContent
/// [0] IMPLICIT OCTET STRING OPTIONAL }` (RFC 5652 section 6.1).
#[derive(Sequence)]
struct EncryptedContentInfo<'a> {
    content_type: const_oid::ObjectIdentifier,
    content_encryption_algorithm: AlgorithmIdentifier<GcmParameters<'a>>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    encrypted_content: &'a OctetStringRef,
}

/// `GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen DEFAULT 12 }` (RFC 5084
/// section 3.2); the ICV length is written although 16 is not the DEFAULT, as OpenSSL does.
#[derive(Sequence)]
struct GcmParameters<'a> {
    nonce: &'a OctetStringRef,
    icv_len: u8,
}

/// `IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber }`
/// (RFC 5652 section 10.2.4), both copied from the certificate.
#[derive(Sequence)]
struct IssuerAndSerialNumber<'a> {
    issuer: AnyRef<'a>,
    serial_number: AnyRef<'a>,
}

/// KeyTransRecipientInfo (RFC 5652 section 6.2.1), version 0, named by issuer and serial.
#[derive(Sequence)]
struct KeyTransRecipientInfo<'a> {
    version: u8,
    rid: IssuerAndSerialNumber<'a>,
    key_encryption_algorithm: AlgorithmIdentifier<RsaesOaepParams<'a>>,
    encrypted_key: &'a OctetStringRef,
}

/// `RSAES-OAEP-params` (RFC 8017 appendix A.2.1) with the hash and MGF written and the default
/// (empty) label left out, as OpenSSL writes it.
#[derive(Sequence)]
struct RsaesOaepParams<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash_algorithm: AlgorithmIdentifierRef<'a>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen_algorithm: AlgorithmIdentifier<AlgorithmIdentifierRef<'a>>,
}

/// KeyAgreeRecipientInfo (RFC 5652 section 6.2.2), version 3, the originator given by its
/// ephemeral public key (`[1] IMPLICIT OriginatorPublicKey` inside `[0] EXPLICIT`), no ukm.
#[derive(Sequence)]
struct KeyAgreeRecipientInfo<'a> {
    version: u8,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    originator: ContextSpecific<OriginatorPublicKey<'a>>,
    key_encryption_algorithm: AlgorithmIdentifier<AlgorithmIdentifierRef<'a>>,
    recipient_encrypted_keys: Vec<RecipientEncryptedKey<'a>>,
}

/// `OriginatorPublicKey ::= SEQUENCE { algorithm, publicKey BIT STRING }`.
#[derive(Sequence)]
struct OriginatorPublicKey<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    public_key: BitStringRef<'a>,
}

/// `RecipientEncryptedKey ::= SEQUENCE { rid KeyAgreeRecipientIdentifier, encryptedKey }`, the
/// recipient named by issuer and serial.
#[derive(Sequence)]
struct RecipientEncryptedKey<'a> {
    rid: IssuerAndSerialNumber<'a>,
    encrypted_key: &'a OctetStringRef,
}

/// `ECC-CMS-SharedInfo` (RFC 5753 section 7.2).
#[derive(Sequence)]
struct EccCmsSharedInfo<'a> {
    key_info: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    entity_u_info: Option<&'a OctetStringRef>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    supp_pub_info: &'a OctetStringRef,
}

fn failed(e: der::Error) -> CmsError {
    CmsError::crypto(format!("DER encoding of the CMS message failed: {e}"))
}

fn octets(bytes: &[u8]) -> Result<&OctetStringRef, CmsError> {
    OctetStringRef::new(bytes).map_err(failed)
}

/// An AlgorithmIdentifier without parameters (RFC 5754 section 2 for hashes, RFC 3565 for key wrap).
fn bare(oid: const_oid::ObjectIdentifier) -> AlgorithmIdentifierRef<'static> {
    AlgorithmIdentifierRef {
        oid,
        parameters: None,
    }
}

fn issuer_and_serial(me: &CertIdentity) -> Result<IssuerAndSerialNumber<'_>, CmsError> {
    Ok(IssuerAndSerialNumber {
        issuer: der::Decode::from_der(&me.issuer).map_err(failed)?,
        serial_number: AnyRef::new(Tag::Integer, &me.serial).map_err(failed)?,
    })
}

/// `ContentInfo { id-ct-authEnvelopedData, AuthEnvelopedData }` with `recipient_infos` (DER, already
/// in SET OF order), AES-256-GCM with `nonce`, `content` as the encrypted content, the
/// authenticated attributes (each an `Attribute` DER) if any, and `mac` as the tag.
pub(super) fn envelope(
    recipient_infos: &[Vec<u8>],
    nonce: &[u8],
    content: &[u8],
    auth_attrs: Option<&[Vec<u8>]>,
    mac: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let infos = recipient_infos.concat();
    let auth_attrs = auth_attrs
        .map(|attrs| {
            let attrs = attrs
                .iter()
                .map(|attr| der::Decode::from_der(attr))
                .collect::<der::Result<Vec<AnyRef<'_>>>>()?;
            SetOfVec::try_from(attrs)
        })
        .transpose()
        .map_err(failed)?;
    ContentInfo {
        content_type: id::AUTH_ENVELOPED_DATA,
        content: AuthEnvelopedData {
            version: 0,
            recipient_infos: AnyRef::new(Tag::Set, &infos).map_err(failed)?,
            auth_encrypted_content_info: EncryptedContentInfo {
                content_type: id::DATA,
                content_encryption_algorithm: AlgorithmIdentifier {
                    oid: id::AES256_GCM,
                    parameters: Some(GcmParameters {
                        nonce: octets(nonce)?,
                        icv_len: GCM_TAG_LEN as u8,
                    }),
                },
                encrypted_content: octets(content)?,
            },
            auth_attrs,
            mac: octets(mac)?,
        },
    }
    .to_der()
    .map_err(failed)
}

/// The DER of a KeyTransRecipientInfo carrying `encrypted_key` (the OAEP-encrypted content key).
pub(super) fn key_trans_info(me: &CertIdentity, encrypted_key: &[u8]) -> Result<Vec<u8>, CmsError> {
    KeyTransRecipientInfo {
        version: 0,
        rid: issuer_and_serial(me)?,
        key_encryption_algorithm: oaep_sha256(),
        encrypted_key: octets(encrypted_key)?,
    }
    .to_der()
    .map_err(failed)
}

/// `id-RSAES-OAEP` with SHA-256 and MGF1-SHA-256 and the default (empty) label.
fn oaep_sha256() -> AlgorithmIdentifier<RsaesOaepParams<'static>> {
    AlgorithmIdentifier {
        oid: id::RSAES_OAEP,
        parameters: Some(RsaesOaepParams {
            hash_algorithm: bare(id::SHA256),
            mask_gen_algorithm: AlgorithmIdentifier {
                oid: id::MGF1,
                parameters: Some(bare(id::SHA256)),
            },
        }),
    }
}

/// The DER of [`oaep_sha256`], for the test against OpenSSL's bytes.
#[cfg(test)]
pub(super) fn oaep_sha256_algorithm() -> Vec<u8> {
    oaep_sha256().to_der().unwrap_or_default()
}

/// `id-aes256-wrap` with absent parameters (RFC 3565 section 2.3.2), as DER.
pub(super) fn aes256_wrap_algorithm() -> Result<Vec<u8>, CmsError> {
    bare(id::AES256_WRAP).to_der().map_err(failed)
}

/// The DER of a `[1] IMPLICIT` KeyAgreeRecipientInfo: the originator's ephemeral public point
/// `ephemeral_point` (uncompressed), dhSinglePass-stdDH-sha256kdf-scheme with id-aes256-wrap, and
/// `wrapped`, the content key wrapped for `me`.
pub(super) fn key_agree_info(
    me: &CertIdentity,
    ephemeral_point: &[u8],
    wrapped: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let info = KeyAgreeRecipientInfo {
        version: 3,
        originator: ContextSpecific {
            tag_number: TagNumber(1),
            tag_mode: TagMode::Implicit,
            value: OriginatorPublicKey {
                algorithm: bare(id::EC_PUBLIC_KEY),
                public_key: BitStringRef::from_bytes(ephemeral_point).map_err(failed)?,
            },
        },
        key_encryption_algorithm: AlgorithmIdentifier {
            oid: id::STD_DH_SHA256_KDF,
            parameters: Some(bare(id::AES256_WRAP)),
        },
        recipient_encrypted_keys: vec![RecipientEncryptedKey {
            rid: issuer_and_serial(me)?,
            encrypted_key: octets(wrapped)?,
        }],
    };
    ContextSpecific {
        tag_number: TagNumber(1),
        tag_mode: TagMode::Implicit,
        value: info,
    }
    .to_der()
    .map_err(failed)
}

/// ECC-CMS-SharedInfo: `key_info` (the key wrap AlgorithmIdentifier, a SEQUENCE given by its
/// content octets as found in the file), the ukm if any, and the KEK length in bits.
pub(super) fn shared_info(
    key_info_content: &[u8],
    ukm: Option<&[u8]>,
    kek_bits: u32,
) -> Result<Vec<u8>, CmsError> {
    let bits = kek_bits.to_be_bytes();
    EccCmsSharedInfo {
        key_info: AnyRef::new(Tag::Sequence, key_info_content).map_err(failed)?,
        entity_u_info: ukm.map(octets).transpose()?,
        supp_pub_info: octets(&bits)?,
    }
    .to_der()
    .map_err(failed)
}

/// A SET given by its content octets (the authenticated attributes as GCM additional data,
/// RFC 5083 section 2.2).
pub(super) fn set(content: &[u8]) -> Result<Vec<u8>, CmsError> {
    AnyRef::new(Tag::Set, content)
        .and_then(|set| set.to_der())
        .map_err(failed)
}
