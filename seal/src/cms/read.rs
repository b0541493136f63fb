//! Reading: ContentInfo with EnvelopedData (RFC 5652 section 6.1) or AuthEnvelopedData (RFC 5083
//! section 2.1), in DER or the BER OpenSSL writes with `-stream`.

use std::borrow::Cow;

use zeroize::Zeroizing;

use super::ber::{AlgId, Reader, Tlv, malformed, tag};
use super::content::{ContentCipher, GCM_TAG_LEN};
use super::identity::CertIdentity;
use super::recipient::{RecipientInfo, RecipientKey};
use super::{CmsError, Decrypted, MAX_CMS_PLAINTEXT, RecipientId, encode, oid};
use ids_pki::cert::Certificate;

/// The parts of an encrypted message that decryption needs.
#[derive(Debug)]
struct Envelope<'a> {
    /// AuthEnvelopedData rather than EnvelopedData.
    authenticated: bool,
    recipients: Vec<RecipientInfo<'a>>,
    content_algorithm: AlgId<'a>,
    /// The `[0] IMPLICIT encryptedContent` element.
    encrypted_content: Tlv<'a>,
    /// AuthEnvelopedData only: the GCM tag and the authenticated attributes.
    mac: Option<Cow<'a, [u8]>>,
    auth_attrs: Option<Tlv<'a>>,
}

impl<'a> Envelope<'a> {
    /// ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY }
    fn parse(der: &'a [u8]) -> Result<Self, CmsError> {
        if let Some(hint) = text_format_hint(der) {
            return Err(malformed(hint));
        }
        if der.first() != Some(&tag::SEQUENCE) {
            return Err(malformed(
                "the file does not start with an ASN.1 SEQUENCE, so it is not a DER CMS message",
            ));
        }
        let mut reader = Reader::new(der)
            .expect(tag::SEQUENCE, "the ContentInfo")?
            .reader()?;
        let content_type = reader.expect(tag::OID, "the content type")?.oid()?;
        let authenticated = if content_type == oid::ENVELOPED_DATA {
            false
        } else if content_type == oid::AUTH_ENVELOPED_DATA {
            true
        } else {
            return Err(CmsError::unsupported(format!(
                "content type {}; expected an encrypted file (EnvelopedData or AuthEnvelopedData)",
                oid::describe(content_type)
            )));
        };
        let body = reader
            .expect(tag::context_constructed(0), "the content")?
            .reader()?
            .expect(tag::SEQUENCE, "the enveloped data")?;
        Self::parse_body(body, authenticated)
    }

    /// EnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL, recipientInfos,
    ///   encryptedContentInfo, unprotectedAttrs [1] IMPLICIT OPTIONAL }
    /// AuthEnvelopedData ::= SEQUENCE { version, originatorInfo [0] IMPLICIT OPTIONAL,
    ///   recipientInfos, authEncryptedContentInfo, authAttrs [1] IMPLICIT OPTIONAL,
    ///   mac MessageAuthenticationCode, unauthAttrs [2] IMPLICIT OPTIONAL }
    fn parse_body(body: Tlv<'a>, authenticated: bool) -> Result<Self, CmsError> {
        let mut reader = body.reader()?;
        reader.expect(tag::INTEGER, "the version")?;
        reader.optional(tag::context_constructed(0))?; // certificates and CRLs: not needed
        let recipients = RecipientInfo::parse_all(reader.expect(tag::SET, "the recipient infos")?)?;
        let mut info = reader
            .expect(tag::SEQUENCE, "the encrypted content info")?
            .reader()?;
        // EncryptedContentInfo ::= SEQUENCE { contentType, contentEncryptionAlgorithm,
        //   encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }
        info.expect(tag::OID, "the encrypted content type")?;
        let content_algorithm = AlgId::read(&mut info, "the content encryption algorithm")?;
        let encrypted_content = match info.next()? {
            Some(tlv) if tlv.tag & !tag::CONSTRUCTED == tag::context(0) => tlv,
            Some(_) => {
                return Err(malformed(
                    "unexpected element instead of the encrypted content",
                ));
            }
            None => {
                return Err(CmsError::unsupported(
                    "detached content (the encrypted content is not in the file)",
                ));
            }
        };
        let (auth_attrs, mac) = if authenticated {
            (
                reader.optional(tag::context_constructed(1))?,
                Some(reader.octet_string("the authentication tag (mac)")?),
            )
        } else {
            (None, None)
        };
        Ok(Envelope {
            authenticated,
            recipients,
            content_algorithm,
            encrypted_content,
            mac,
            auth_attrs,
        })
    }

    fn recipient_ids(&self) -> Vec<RecipientId> {
        self.recipients
            .iter()
            .flat_map(RecipientInfo::ids)
            .map(|rid| rid.to_id())
            .collect()
    }

    /// The ciphertext in a buffer that decryption overwrites with the plaintext.
    fn ciphertext(&self) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let ciphertext = self.encrypted_content.octets()?;
        let size = ciphertext.len() as u64;
        // CBC padding or the GCM tag may add up to one block.
        if size > MAX_CMS_PLAINTEXT + GCM_TAG_LEN as u64 {
            return Err(CmsError::TooLarge { size });
        }
        Ok(Zeroizing::new(ciphertext.into_owned()))
    }

    /// The additional authenticated data: the DER of authAttrs with its `[1] IMPLICIT` tag replaced by
    /// the SET OF tag (RFC 5083 section 2.2), or nothing.
    fn aad(&self) -> Result<Vec<u8>, CmsError> {
        let Some(attrs) = self.auth_attrs else {
            return Ok(Vec::new());
        };
        encode::set(attrs.content)
    }
}

/// Advice for the text forms of `openssl cms` output: S/MIME (its default) and `-outform PEM`.
fn text_format_hint(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"-----BEGIN") {
        Some(
            "the file is PEM text, DER is expected: encrypt with `openssl cms -encrypt -outform DER`, \
             or convert with `openssl cms -cmsout -inform PEM -outform DER -in FILE -out FILE.der`",
        )
    } else if data.starts_with(b"MIME-Version:") || data.starts_with(b"Content-") {
        Some(
            "the file is S/MIME text (the default of `openssl cms -encrypt`), DER is expected: \
             encrypt with `-outform DER`, or convert with \
             `openssl cms -cmsout -inform SMIME -outform DER -in FILE -out FILE.der`",
        )
    } else {
        None
    }
}

/// Who `der` is encrypted for: one entry per certificate recipient (key transport and key
/// agreement); password, KEK and other recipients are not listed.
pub fn recipients(der: &[u8]) -> Result<Vec<RecipientId>, CmsError> {
    Ok(Envelope::parse(der)?.recipient_ids())
}

/// Decrypts a CMS file for `cert`, whose private key is `key_pkcs8` (PKCS#8 DER, unencrypted).
///
/// The recipient entries naming `cert` (by issuer and serial number, or subject key identifier) are
/// tried in turn; if none names it, the error lists who the file is for. For AES-GCM the tag is
/// verified before any plaintext is returned.
pub fn decrypt(der: &[u8], cert: &Certificate, key_pkcs8: &[u8]) -> Result<Decrypted, CmsError> {
    let envelope = Envelope::parse(der)?;
    let cipher = ContentCipher::parse(&envelope.content_algorithm)?;
    if cipher.is_aead() != envelope.authenticated {
        return Err(CmsError::unsupported(format!(
            "{} inside {}; GCM belongs in AuthEnvelopedData, CBC in EnvelopedData",
            cipher.name(),
            if envelope.authenticated {
                "AuthEnvelopedData"
            } else {
                "EnvelopedData"
            }
        )));
    }
    let me = CertIdentity::new(cert)?;
    let mine: Vec<&RecipientInfo<'_>> = envelope
        .recipients
        .iter()
        .filter(|info| info.is_for(&me))
        .collect();
    if mine.is_empty() {
        return Err(CmsError::NotForThisKey {
            recipients: envelope.recipient_ids(),
        });
    }
    let key = RecipientKey::load(cert, &me, key_pkcs8)?;
    let content_key = first_content_key(&mine, &me, &key, cipher.key_len())?;
    let plaintext = cipher.decrypt(
        &content_key,
        envelope.ciphertext()?,
        envelope.mac.as_deref(),
        &envelope.aad()?,
    )?;
    Ok(Decrypted {
        plaintext,
        authenticated: envelope.authenticated,
        content_cipher: cipher.name(),
    })
}

/// The first content-encryption key of the right length that one of our entries yields, else the
/// first entry's error.
fn first_content_key(
    mine: &[&RecipientInfo<'_>],
    me: &CertIdentity,
    key: &RecipientKey,
    key_len: usize,
) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let mut first_error = None;
    for info in mine {
        match info.unwrap_key(me, key) {
            Ok(content_key) if content_key.len() == key_len => return Ok(content_key),
            Ok(_) => first_error = first_error.or(Some(CmsError::KeyUnwrap)),
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    Err(first_error.unwrap_or(CmsError::KeyUnwrap))
}
