//! Who a recipient is: the identifier a CMS file names it by (issuer and serial number, or subject
//! key identifier) and the same facts read from a certificate, so the two can be matched.

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::ber::{Tlv, hex, tag};
use super::{CmsError, RecipientId};
use ids_pki::cert::Certificate;

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
