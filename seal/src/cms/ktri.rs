//! KeyTransRecipientInfo (RFC 5652 section 6.2.1) for RSA keys: RSAES-PKCS1-v1_5 (RFC 3370
//! section 4.2.1, OpenSSL's default) and RSAES-OAEP (RFC 3560, RFC 8017 appendix A.2.1).

use std::borrow::Cow;

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use zeroize::Zeroizing;

use super::ber::{AlgId, Tlv, malformed, tag};
use super::identity::{CertIdentity, Rid};
use super::{CmsError, encode, oid};

/// A parsed KeyTransRecipientInfo.
#[derive(Debug)]
pub(super) struct KeyTrans<'a> {
    pub rid: Rid<'a>,
    algorithm: AlgId<'a>,
    encrypted_key: Cow<'a, [u8]>,
}

impl<'a> KeyTrans<'a> {
    /// KeyTransRecipientInfo ::= SEQUENCE { version, rid RecipientIdentifier,
    ///   keyEncryptionAlgorithm, encryptedKey OCTET STRING }
    /// RecipientIdentifier ::= CHOICE { issuerAndSerialNumber, subjectKeyIdentifier [0] }
    pub fn parse(tlv: Tlv<'a>) -> Result<Self, CmsError> {
        let mut reader = tlv.reader()?;
        reader.expect(tag::INTEGER, "the key transport recipient's version")?;
        let rid = reader.required("the recipient identifier")?;
        let rid = match rid.tag {
            tag::SEQUENCE => Rid::issuer_serial(rid)?,
            t if t & !tag::CONSTRUCTED == tag::context(0) => {
                Rid::SubjectKeyId(rid.octets()?.into_owned())
            }
            t => {
                return Err(malformed(format!(
                    "unknown recipient identifier (tag {t:#04x})"
                )));
            }
        };
        Ok(KeyTrans {
            rid,
            algorithm: AlgId::read(&mut reader, "the key encryption algorithm")?,
            encrypted_key: reader.octet_string("the encrypted key")?,
        })
    }

    /// Decrypts the content-encryption key with the recipient's RSA key.
    pub fn unwrap_key(&self, key: &PrivateDecryptingKey) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let mut out = Zeroizing::new(vec![0u8; key.key_size_bytes()]);
        let len = if self.algorithm.oid == oid::RSA_ENCRYPTION {
            Pkcs1PrivateDecryptingKey::new(key.clone())
                .and_then(|k| k.decrypt(&self.encrypted_key, &mut out).map(|p| p.len()))
        } else if self.algorithm.oid == oid::RSAES_OAEP {
            let (oaep, label) = oaep_params(self.algorithm.params)?;
            OaepPrivateDecryptingKey::new(key.clone()).and_then(|k| {
                k.decrypt(oaep, &self.encrypted_key, &mut out, label.as_deref())
                    .map(|p| p.len())
            })
        } else {
            return Err(CmsError::unsupported(format!(
                "key transport algorithm {}; supported: rsaEncryption, RSAES-OAEP",
                oid::describe(self.algorithm.oid)
            )));
        }
        .map_err(|_| CmsError::KeyUnwrap)?;
        out.truncate(len);
        Ok(out)
    }
}

/// The OAEP variants aws-lc-rs offers: the same hash for OAEP and MGF1.
const OAEP: &[(&[u8], &OaepAlgorithm)] = &[
    (oid::SHA1, &OAEP_SHA1_MGF1SHA1),
    (oid::SHA256, &OAEP_SHA256_MGF1SHA256),
    (oid::SHA384, &OAEP_SHA384_MGF1SHA384),
    (oid::SHA512, &OAEP_SHA512_MGF1SHA512),
];

/// RSAES-OAEP-params ::= SEQUENCE { hashAlgorithm [0] DEFAULT sha1, maskGenAlgorithm [1] DEFAULT
/// mgf1SHA1, pSourceAlgorithm [2] DEFAULT pSpecifiedEmpty } (RFC 8017 appendix A.2.1); absent
/// parameters mean all defaults. Returns the algorithm and the label, if any.
fn oaep_params(
    params: Option<Tlv<'_>>,
) -> Result<(&'static OaepAlgorithm, Option<Vec<u8>>), CmsError> {
    let (mut hash, mut mgf_hash, mut label) = (oid::SHA1, oid::SHA1, None);
    if let Some(params) = params {
        let mut reader = params.reader()?;
        if let Some(field) = reader.optional(tag::context_constructed(0))? {
            hash = explicit_alg(field, "the OAEP hash")?.oid;
        }
        if let Some(field) = reader.optional(tag::context_constructed(1))? {
            let mgf = explicit_alg(field, "the OAEP mask generation function")?;
            if mgf.oid != oid::MGF1 {
                return Err(CmsError::unsupported(format!(
                    "OAEP mask generation function {}",
                    oid::describe(mgf.oid)
                )));
            }
            let mgf_params = mgf
                .params
                .ok_or_else(|| malformed("the MGF1 hash is missing"))?;
            mgf_hash = AlgId::parse(mgf_params)?.oid;
        }
        if let Some(field) = reader.optional(tag::context_constructed(2))? {
            let source = explicit_alg(field, "the OAEP label source")?;
            if source.oid != oid::P_SPECIFIED {
                return Err(CmsError::unsupported(format!(
                    "OAEP label source {}",
                    oid::describe(source.oid)
                )));
            }
            label = source.params.map(|p| p.octets()).transpose()?;
        }
    }
    let algorithm = OAEP
        .iter()
        .find(|(h, _)| *h == hash && *h == mgf_hash)
        .map(|(_, algorithm)| *algorithm)
        .ok_or_else(|| {
            CmsError::unsupported(format!(
                "RSAES-OAEP with hash {} and MGF1 hash {}; supported: the same SHA-1 or SHA-2 \
                 hash for both",
                oid::describe(hash),
                oid::describe(mgf_hash)
            ))
        })?;
    Ok((algorithm, label.map(Cow::into_owned)))
}

/// An `[n] EXPLICIT AlgorithmIdentifier`.
fn explicit_alg<'a>(field: Tlv<'a>, what: &str) -> Result<AlgId<'a>, CmsError> {
    AlgId::read(&mut field.reader()?, what)
}

/// A KeyTransRecipientInfo for an RSA certificate: version 0, issuerAndSerialNumber, RSAES-OAEP with
/// SHA-256 and MGF1-SHA-256.
pub(super) fn recipient_info(me: &CertIdentity, content_key: &[u8]) -> Result<Vec<u8>, CmsError> {
    let failed = |_| CmsError::crypto("RSA-OAEP encryption of the content key failed");
    let public_key = PublicEncryptingKey::from_der(&me.spki)
        .map_err(|_| CmsError::crypto("the certificate's RSA public key is not usable"))?;
    let public_key = OaepPublicEncryptingKey::new(public_key).map_err(failed)?;
    let mut encrypted = vec![0u8; public_key.ciphertext_size()];
    let len = public_key
        .encrypt(&OAEP_SHA256_MGF1SHA256, content_key, &mut encrypted, None)
        .map_err(failed)?
        .len();
    encrypted.truncate(len);
    encode::key_trans_info(me, &encrypted)
}
