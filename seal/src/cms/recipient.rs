//! RecipientInfos (RFC 5652 section 6.2): who a file is for, matching our certificate, and the private
//! key that unwraps the content-encryption key.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{PrivateDecryptingKey, PublicEncryptingKey};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use zeroize::Zeroizing;

use super::ber::{Tlv, hex, malformed, tag};
use super::kari::KeyAgree;
use super::ktri::KeyTrans;
use super::{CmsError, RecipientId};
use ids_pki::cert::{Certificate, PublicKey};

/// A RecipientIdentifier (RFC 5652 sections 6.2.1 and 6.2.2) as found in the file.
#[derive(Clone, Debug)]
pub(super) enum Rid<'a> {
    /// `issuerAndSerialNumber`: the issuer Name's DER and the serial's INTEGER content.
    IssuerSerial {
        issuer: &'a [u8],
        serial: &'a [u8],
    },
    SubjectKeyId(Vec<u8>),
}

impl<'a> Rid<'a> {
    /// IssuerAndSerialNumber ::= SEQUENCE { issuer Name, serialNumber CertificateSerialNumber }
    pub fn issuer_serial(tlv: Tlv<'a>) -> Result<Self, CmsError> {
        let mut reader = tlv.reader()?;
        let issuer = reader
            .expect(tag::SEQUENCE, "the recipient's issuer name")?
            .raw;
        let serial = reader
            .expect(tag::INTEGER, "the recipient's serial number")?
            .content;
        Ok(Rid::IssuerSerial { issuer, serial })
    }

    pub fn matches(&self, me: &CertIdentity) -> bool {
        match self {
            Rid::IssuerSerial { issuer, serial } => {
                *issuer == me.issuer.as_slice() && strip_zeros(serial) == strip_zeros(&me.serial)
            }
            Rid::SubjectKeyId(ski) => me.ski.as_deref() == Some(ski.as_slice()),
        }
    }

    pub fn to_id(&self) -> RecipientId {
        match self {
            Rid::IssuerSerial { issuer, serial } => RecipientId::IssuerSerial {
                issuer: X509Name::from_der(issuer)
                    .map(|(_, name)| name.to_string())
                    .unwrap_or_else(|_| format!("(unreadable name {})", hex(issuer))),
                serial_hex: hex(strip_zeros(serial)),
            },
            Rid::SubjectKeyId(ski) => RecipientId::SubjectKeyId(hex(ski)),
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    &bytes[skip..]
}

/// What a certificate is known by in RecipientIdentifiers, and its public key for encryption.
#[derive(Debug)]
pub(super) struct CertIdentity {
    /// The issuer Name's DER and the serial number's INTEGER content octets, as in the certificate.
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    ski: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl CertIdentity {
    pub fn new(cert: &Certificate) -> Result<Self, CmsError> {
        let (_, parsed) = X509Certificate::from_der(cert.der())
            .map_err(|e| CmsError::crypto(format!("cannot parse the certificate: {e}")))?;
        let ski = parsed
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        Ok(CertIdentity {
            issuer: parsed.issuer().as_raw().to_vec(),
            serial: parsed.raw_serial().to_vec(),
            ski,
            spki: parsed.public_key().raw.to_vec(),
        })
    }
}

/// One element of `recipientInfos`.
#[derive(Debug)]
pub(super) enum RecipientInfo<'a> {
    KeyTrans(KeyTrans<'a>),
    KeyAgree(KeyAgree<'a>),
    /// kekri, pwri, ori: not for a certificate, skipped.
    Other,
}

impl<'a> RecipientInfo<'a> {
    /// RecipientInfos ::= SET SIZE (1..MAX) OF RecipientInfo
    pub fn parse_all(set: Tlv<'a>) -> Result<Vec<Self>, CmsError> {
        let mut reader = set.reader()?;
        let mut infos = Vec::new();
        while let Some(tlv) = reader.next()? {
            infos.push(match tlv.tag {
                tag::SEQUENCE => RecipientInfo::KeyTrans(KeyTrans::parse(tlv)?),
                t if t == tag::context_constructed(1) => {
                    RecipientInfo::KeyAgree(KeyAgree::parse(tlv)?)
                }
                _ => RecipientInfo::Other,
            });
        }
        if infos.is_empty() {
            return Err(malformed("the file has no recipients"));
        }
        Ok(infos)
    }

    /// The identifiers of the recipients this entry is for.
    pub fn ids(&self) -> Vec<&Rid<'a>> {
        match self {
            RecipientInfo::KeyTrans(ktri) => vec![&ktri.rid],
            RecipientInfo::KeyAgree(kari) => kari.keys.iter().map(|(rid, _)| rid).collect(),
            RecipientInfo::Other => Vec::new(),
        }
    }

    /// Whether this entry names our certificate.
    pub fn is_for(&self, me: &CertIdentity) -> bool {
        self.ids().iter().any(|rid| rid.matches(me))
    }

    /// Recovers the content-encryption key with our private key.
    pub fn unwrap_key(
        &self,
        me: &CertIdentity,
        key: &RecipientKey,
    ) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        match (self, key) {
            (RecipientInfo::KeyTrans(ktri), RecipientKey::Rsa(rsa)) => ktri.unwrap_key(rsa),
            (RecipientInfo::KeyAgree(kari), RecipientKey::Ec(ec)) => kari.unwrap_key(me, ec),
            _ => Err(CmsError::KeyUnwrap),
        }
    }
}

/// The recipient's private key, checked against its certificate.
#[derive(Debug)]
pub(super) enum RecipientKey {
    Rsa(PrivateDecryptingKey),
    Ec(agreement::PrivateKey),
}

impl RecipientKey {
    /// Loads a PKCS#8 private key of the certificate's key type and checks it is the certificate's key,
    /// so a wrong key file is reported as such rather than as a damaged file.
    pub fn load(cert: &Certificate, me: &CertIdentity, pkcs8: &[u8]) -> Result<Self, CmsError> {
        let key = match cert.public_key() {
            PublicKey::Rsa { .. } => load_rsa(me, pkcs8)?,
            PublicKey::P256 { x, y } => load_ec(x, y, pkcs8)?,
        };
        key.ok_or_else(|| {
            CmsError::crypto(format!(
                "the private key does not belong to the certificate `{}`",
                cert.subject()
            ))
        })
    }
}

/// The RSA key, or `None` if its public half is not the certificate's.
fn load_rsa(me: &CertIdentity, pkcs8: &[u8]) -> Result<Option<RecipientKey>, CmsError> {
    let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
        .map_err(|_| CmsError::crypto("the private key is not an RSA key in PKCS#8 form"))?;
    // Both sides re-encoded by aws-lc-rs, so equal keys give equal bytes.
    let ours = key.public_key().as_der().ok();
    let theirs = PublicEncryptingKey::from_der(&me.spki)
        .ok()
        .and_then(|k| k.as_der().ok());
    let same = matches!((ours, theirs), (Some(a), Some(b)) if a.as_ref() == b.as_ref());
    Ok(same.then_some(RecipientKey::Rsa(key)))
}

/// The P-256 key, or `None` if its public point is not the certificate's `(x, y)`.
fn load_ec(x: &[u8], y: &[u8], pkcs8: &[u8]) -> Result<Option<RecipientKey>, CmsError> {
    let key = agreement::PrivateKey::from_private_key_der(&agreement::ECDH_P256, pkcs8)
        .map_err(|_| CmsError::crypto("the private key is not an EC P-256 key in PKCS#8 form"))?;
    let same = key
        .compute_public_key()
        .is_ok_and(|point| point.as_ref() == uncompressed_point(x, y).as_slice());
    Ok(same.then_some(RecipientKey::Ec(key)))
}

/// SEC 1 uncompressed point `04 || x || y`.
pub(super) fn uncompressed_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    [&[4u8][..], x, y].concat()
}
