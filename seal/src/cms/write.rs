//! Writing: DER `ContentInfo { id-ct-authEnvelopedData, AuthEnvelopedData }` (RFC 5083) with
//! AES-256-GCM (RFC 5084) and one recipient per certificate.

use aws_lc_rs::rand;
use zeroize::Zeroizing;

use super::content::{GCM_NONCE_LEN, GCM_TAG_LEN, seal_aes256_gcm};
use super::identity::CertIdentity;
use super::recipient::uncompressed_point;
use super::{CmsError, MAX_CMS_PLAINTEXT, encode, kari, ktri};
use ids_pki::cert::{Certificate, PublicKey};

/// Encrypts `plaintext` for every certificate in `recipients` (RSA or EC P-256); any one of their
/// private keys decrypts the result, with [`super::decrypt`] or
/// `openssl cms -decrypt -inform DER -binary -inkey key.pem -recip cert.pem`.
///
/// A fresh random 256-bit content key and 96-bit nonce are used for every call.
pub fn encrypt(recipients: &[Certificate], plaintext: &[u8]) -> Result<Vec<u8>, CmsError> {
    let size = plaintext.len() as u64;
    if size > MAX_CMS_PLAINTEXT {
        return Err(CmsError::TooLarge { size });
    }
    if recipients.is_empty() {
        return Err(CmsError::crypto(
            "at least one recipient certificate is required",
        ));
    }
    let mut content_key = Zeroizing::new([0u8; 32]);
    let mut nonce = [0u8; GCM_NONCE_LEN];
    rand::fill(content_key.as_mut())
        .and_then(|()| rand::fill(&mut nonce))
        .map_err(|_| CmsError::crypto("the system random number generator failed"))?;

    let identities = recipients
        .iter()
        .map(CertIdentity::new)
        .collect::<Result<Vec<_>, _>>()?;
    let recipient_infos = recipient_infos(recipients, &identities, content_key.as_ref())?;

    // The plaintext is copied into the output where the ciphertext goes and encrypted there, so
    // only one copy of a large file is made. The mac is written last, after the ciphertext.
    let mut out = encode::envelope(
        &recipient_infos,
        &nonce,
        plaintext,
        None,
        &[0u8; GCM_TAG_LEN],
    )?;
    // The mac OCTET STRING (2 header bytes + tag) ends the encoding; the content comes just before it.
    let tag_start = out.len() - GCM_TAG_LEN;
    let content_end = tag_start - 2;
    let content_start = content_end - plaintext.len();
    debug_assert_eq!(out[content_end + 1], GCM_TAG_LEN as u8);
    let mac = seal_aes256_gcm(
        content_key.as_ref(),
        nonce,
        &mut out[content_start..content_end],
    )?;
    out[tag_start..].copy_from_slice(&mac);
    Ok(out)
}

/// One DER RecipientInfo per certificate, sorted as DER requires for a SET OF (X.690 section 11.6).
fn recipient_infos(
    recipients: &[Certificate],
    identities: &[CertIdentity],
    content_key: &[u8],
) -> Result<Vec<Vec<u8>>, CmsError> {
    let mut infos = recipients
        .iter()
        .zip(identities)
        .map(|(cert, me)| {
            let info = match cert.public_key() {
                PublicKey::Rsa { .. } => ktri::recipient_info(me, content_key)?,
                PublicKey::P256 { x, y } => {
                    kari::recipient_info(me, &uncompressed_point(x, y), content_key)?
                }
                other => {
                    return Err(CmsError::crypto(format!(
                        "the certificate `{}` has a {} key; CMS files are encrypted for RSA or EC P-256 keys",
                        cert.subject(),
                        other.describe()
                    )));
                }
            };
            Ok(info)
        })
        .collect::<Result<Vec<_>, CmsError>>()?;
    infos.sort();
    Ok(infos)
}
