//! KeyAgreeRecipientInfo (RFC 5652 section 6.2.2) for EC P-256 keys: ephemeral-static ECDH with the
//! ANSI X9.63 KDF and AES key wrap, as specified by RFC 5753 section 3.1 and written by OpenSSL.

use std::borrow::Cow;

use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::digest;
use aws_lc_rs::key_wrap::{self, AesBlockCipher, AesKek, BlockCipher, KeyWrap};
use zeroize::Zeroizing;

use super::ber::{AlgId, Reader, Tlv, malformed, tag};
use super::identity::{CertIdentity, Rid};
use super::{CmsError, encode, oid};

/// A parsed KeyAgreeRecipientInfo.
#[derive(Debug)]
pub(super) struct KeyAgree<'a> {
    /// The OriginatorIdentifierOrKey CHOICE.
    originator: Tlv<'a>,
    ukm: Option<Cow<'a, [u8]>>,
    algorithm: AlgId<'a>,
    /// RecipientEncryptedKeys: who each wrapped key is for.
    pub keys: Vec<(Rid<'a>, Cow<'a, [u8]>)>,
}

impl<'a> KeyAgree<'a> {
    /// KeyAgreeRecipientInfo ::= SEQUENCE { version (3), originator [0] EXPLICIT
    ///   OriginatorIdentifierOrKey, ukm [1] EXPLICIT UserKeyingMaterial OPTIONAL,
    ///   keyEncryptionAlgorithm, recipientEncryptedKeys SEQUENCE OF RecipientEncryptedKey }
    pub fn parse(tlv: Tlv<'a>) -> Result<Self, CmsError> {
        let mut reader = tlv.reader()?;
        reader.expect(tag::INTEGER, "the key agreement recipient's version")?;
        let originator = reader
            .expect(tag::context_constructed(0), "the originator")?
            .reader()?
            .required("the originator key")?;
        let ukm = match reader.optional(tag::context_constructed(1))? {
            Some(field) => Some(field.reader()?.octet_string("the user keying material")?),
            None => None,
        };
        let algorithm = AlgId::read(&mut reader, "the key agreement algorithm")?;
        let mut list = reader
            .expect(tag::SEQUENCE, "the recipient encrypted keys")?
            .reader()?;
        let mut keys = Vec::new();
        while let Some(entry) = list.next()? {
            keys.push(recipient_encrypted_key(entry)?);
        }
        Ok(KeyAgree {
            originator,
            ukm,
            algorithm,
            keys,
        })
    }

    /// Derives the key-encryption key from our key and the originator's ephemeral key, then unwraps the
    /// content-encryption key addressed to our certificate.
    pub fn unwrap_key(
        &self,
        me: &CertIdentity,
        key: &agreement::PrivateKey,
    ) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let wrapped = self
            .keys
            .iter()
            .find(|(rid, _)| rid.matches(me))
            .map(|(_, wrapped)| wrapped)
            .ok_or(CmsError::KeyUnwrap)?;
        let hash = kdf_hash(self.algorithm.oid)?;
        let wrap = AlgId::parse(
            self.algorithm
                .params
                .ok_or_else(|| malformed("the key wrap algorithm is missing"))?,
        )?;
        let cipher = wrap_cipher(wrap.oid)?;
        let ephemeral = originator_public_key(self.originator)?;
        let info = shared_info(wrap.content, self.ukm.as_deref(), cipher)?;
        let kek = agreement::agree(
            key,
            UnparsedPublicKey::new(&ECDH_P256, ephemeral),
            CmsError::KeyUnwrap,
            |z| Ok(x963_kdf(hash, z, &info, cipher.key_len())),
        )?;
        aes_unwrap(cipher, &kek, wrapped)
    }
}

/// RecipientEncryptedKey ::= SEQUENCE { rid KeyAgreeRecipientIdentifier, encryptedKey }
/// KeyAgreeRecipientIdentifier ::= CHOICE { issuerAndSerialNumber,
///   rKeyId [0] IMPLICIT SEQUENCE { subjectKeyIdentifier, date OPTIONAL, other OPTIONAL } }
fn recipient_encrypted_key(entry: Tlv<'_>) -> Result<(Rid<'_>, Cow<'_, [u8]>), CmsError> {
    let mut reader = entry.reader()?;
    let rid = reader.required("the recipient identifier")?;
    let rid = match rid.tag {
        tag::SEQUENCE => Rid::issuer_serial(rid)?,
        t if t == tag::context_constructed(0) => Rid::SubjectKeyId(
            rid.reader()?
                .octet_string("the subject key identifier")?
                .into_owned(),
        ),
        t => {
            return Err(malformed(format!(
                "unknown key agreement recipient identifier (tag {t:#04x})"
            )));
        }
    };
    Ok((rid, reader.octet_string("the encrypted key")?))
}

/// The KDF hash of each ECDH scheme (RFC 5753 section 7.1.4). The cofactor variants equal the
/// standard ones on P-256, whose cofactor is 1.
const KDF_SCHEMES: &[(&[u8], &digest::Algorithm)] = &[
    (oid::STD_DH_SHA1_KDF, &digest::SHA1_FOR_LEGACY_USE_ONLY),
    (oid::STD_DH_SHA224_KDF, &digest::SHA224),
    (oid::STD_DH_SHA256_KDF, &digest::SHA256),
    (oid::STD_DH_SHA384_KDF, &digest::SHA384),
    (oid::STD_DH_SHA512_KDF, &digest::SHA512),
    (oid::COFACTOR_DH_SHA1_KDF, &digest::SHA1_FOR_LEGACY_USE_ONLY),
    (oid::COFACTOR_DH_SHA224_KDF, &digest::SHA224),
    (oid::COFACTOR_DH_SHA256_KDF, &digest::SHA256),
    (oid::COFACTOR_DH_SHA384_KDF, &digest::SHA384),
    (oid::COFACTOR_DH_SHA512_KDF, &digest::SHA512),
];

fn kdf_hash(scheme: &[u8]) -> Result<&'static digest::Algorithm, CmsError> {
    KDF_SCHEMES
        .iter()
        .find(|(o, _)| *o == scheme)
        .map(|(_, hash)| *hash)
        .ok_or_else(|| {
            CmsError::unsupported(format!(
                "key agreement algorithm {}; supported: dhSinglePass stdDH and cofactorDH with \
                 the X9.63 KDF",
                oid::describe(scheme)
            ))
        })
}

fn wrap_cipher(wrap: &[u8]) -> Result<&'static AesBlockCipher, CmsError> {
    if wrap == oid::AES128_WRAP {
        Ok(&key_wrap::AES_128)
    } else if wrap == oid::AES256_WRAP {
        Ok(&key_wrap::AES_256)
    } else {
        Err(CmsError::unsupported(format!(
            "key wrap algorithm {}; supported: id-aes128-wrap, id-aes256-wrap (for an EC \
             certificate encrypt with `openssl cms -encrypt -aes-256-gcm`)",
            oid::describe(wrap)
        )))
    }
}

/// The `[1] originatorKey` alternative (RFC 5753 section 3.1.1): id-ecPublicKey on P-256 (parameters
/// absent, as OpenSSL writes them, or naming P-256) and the uncompressed point.
fn originator_public_key(originator: Tlv<'_>) -> Result<&[u8], CmsError> {
    if originator.tag != tag::context_constructed(1) {
        return Err(CmsError::unsupported(
            "an originator identified by its certificate (static-static ECDH); only ephemeral \
             originator keys are supported",
        ));
    }
    let mut reader = originator.reader()?;
    let algorithm = AlgId::read(&mut reader, "the originator key algorithm")?;
    if algorithm.oid != oid::EC_PUBLIC_KEY {
        return Err(CmsError::unsupported(format!(
            "originator key type {}",
            oid::describe(algorithm.oid)
        )));
    }
    if let Some(curve) = algorithm.params {
        let curve = curve.oid()?;
        if curve != oid::PRIME256V1 {
            return Err(CmsError::unsupported(format!(
                "EC curve {}; only P-256 is supported",
                oid::describe(curve)
            )));
        }
    }
    reader
        .expect(tag::BIT_STRING, "the originator public key")?
        .bit_string()
}

/// ECC-CMS-SharedInfo ::= SEQUENCE { keyInfo AlgorithmIdentifier, entityUInfo [0] EXPLICIT OCTET
/// STRING OPTIONAL, suppPubInfo [2] EXPLICIT OCTET STRING } (RFC 5753 section 7.2), where keyInfo is
/// the key wrap algorithm (given by its content octets) and suppPubInfo the KEK length in bits.
fn shared_info(
    key_info_content: &[u8],
    ukm: Option<&[u8]>,
    cipher: &AesBlockCipher,
) -> Result<Vec<u8>, CmsError> {
    let bits = u32::try_from(cipher.key_len() * 8).unwrap_or(u32::MAX);
    encode::shared_info(key_info_content, ukm, bits)
}

/// ANSI X9.63 KDF (SEC 1 section 3.6.1): Hash(Z || counter || SharedInfo) for counter = 1, 2, ...
fn x963_kdf(
    hash: &'static digest::Algorithm,
    z: &[u8],
    shared_info: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + hash.output_len()));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut context = digest::Context::new(hash);
        context.update(z);
        context.update(&counter.to_be_bytes());
        context.update(shared_info);
        out.extend_from_slice(context.finish().as_ref());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// RFC 3394 AES key unwrap; any failure (wrong key, damage) is [`CmsError::KeyUnwrap`].
fn aes_unwrap(
    cipher: &'static AesBlockCipher,
    kek: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(CmsError::KeyUnwrap);
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    let len = AesKek::new(cipher, kek)
        .and_then(|kek| kek.unwrap(wrapped, &mut out).map(|k| k.len()))
        .map_err(|_| CmsError::KeyUnwrap)?;
    out.truncate(len);
    Ok(out)
}

/// A KeyAgreeRecipientInfo for an EC P-256 certificate whose public point is `recipient_point`:
/// version 3, a fresh ephemeral originator key, dhSinglePass-stdDH-sha256kdf-scheme with
/// id-aes256-wrap, no ukm, the recipient named by issuer and serial.
pub(super) fn recipient_info(
    me: &CertIdentity,
    recipient_point: &[u8],
    content_key: &[u8],
) -> Result<Vec<u8>, CmsError> {
    let failed = |_| CmsError::crypto("ECDH key agreement with the certificate's key failed");
    let ephemeral = agreement::PrivateKey::generate(&ECDH_P256).map_err(failed)?;
    let ephemeral_point = ephemeral.compute_public_key().map_err(failed)?;
    let cipher = &key_wrap::AES_256;
    let wrap_algorithm = encode::aes256_wrap_algorithm()?;
    let wrap_content = Reader::new(&wrap_algorithm)
        .expect(tag::SEQUENCE, "the key wrap algorithm")?
        .content;
    let info = shared_info(wrap_content, None, cipher)?;
    let kek = agreement::agree(
        &ephemeral,
        UnparsedPublicKey::new(&ECDH_P256, recipient_point),
        CmsError::crypto("the certificate's EC public key is not usable"),
        |z| Ok(x963_kdf(&digest::SHA256, z, &info, 32)),
    )?;
    let mut wrapped = vec![0u8; content_key.len() + 8];
    AesKek::new(cipher, &kek)
        .and_then(|kek| kek.wrap(content_key, &mut wrapped).map(|_| ()))
        .map_err(|_| CmsError::crypto("AES key wrap of the content key failed"))?;
    encode::key_agree_info(me, ephemeral_point.as_ref(), &wrapped)
}
