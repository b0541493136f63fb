//! RecipientInfos (RFC 5652 section 6.2): who a file is for, matching our certificate, and the private
//! key that unwraps the content-encryption key.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{PrivateDecryptingKey, PublicEncryptingKey};
use zeroize::Zeroizing;

use super::CmsError;
use super::ber::{Tlv, malformed, tag};
use super::identity::{CertIdentity, Rid};
use super::kari::KeyAgree;
use super::ktri::KeyTrans;
use ids_pki::cert::{Certificate, PublicKey};

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
            other => {
                return Err(CmsError::crypto(format!(
                    "the certificate `{}` has a {} key; CMS files are encrypted for RSA or EC P-256 keys",
                    cert.subject(),
                    other.describe()
                )));
            }
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
