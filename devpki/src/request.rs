//! PKCS#10 certificate requests (RFC 2986): written for a key held here, read and verified when a
//! requester sends one for the CA to sign.

use std::net::IpAddr;

use rcgen::{CertificateParams, DnType};

use crate::key::key_from_pkcs8;
use crate::{DevCertError, RequestError, San};

/// A PKCS#10 certificate request (PEM) for an existing PKCS#8 key: subject CN, requested SANs.
pub fn create_request(
    key_pkcs8: &[u8],
    common_name: &str,
    sans: &[San],
) -> Result<String, DevCertError> {
    let key = key_from_pkcs8(key_pkcs8)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.subject_alt_names = sans.iter().map(San::to_rcgen).collect::<Result<_, _>>()?;
    Ok(p.serialize_request(&key)?.pem()?)
}

/// A certificate request read and verified (its signature proves the requester holds the key).
#[derive(Clone, Debug)]
pub struct CertificateRequest {
    /// The whole subject, RFC 4514 style.
    pub subject: String,
    pub common_name: Option<String>,
    /// DNS, IP and URI names of the requested SAN extension.
    pub sans: Vec<San>,
    /// Other requested names (e-mail, directory names, ...), as text.
    pub other_names: Vec<String>,
    pub public_key: ids_pki::PublicKey,
}

/// Reads a PKCS#10 request (PEM `CERTIFICATE REQUEST` or DER) and checks its signature. Other requested
/// extensions (key usage, basic constraints, ...) are ignored: the signer decides them.
pub fn parse_request(file: &str, bytes: &[u8]) -> Result<CertificateRequest, DevCertError> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::{FromDer as _, X509CertificationRequest};
    let bad = |reason: RequestError| DevCertError::Request {
        file: file.to_string(),
        reason: Box::new(reason),
    };
    let der = if ids_pki::pem::is_pem(bytes) {
        let pem = ids_pki::pem::first(bytes)
            .map_err(|e| bad(RequestError::NotPem(e)))?
            .ok_or_else(|| bad(RequestError::NoPemBlock))?;
        if !pem.label.ends_with("CERTIFICATE REQUEST") {
            return Err(bad(RequestError::WrongLabel {
                label: pem.label.to_string(),
            }));
        }
        pem.der.to_vec()
    } else {
        bytes.to_vec()
    };
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| bad(RequestError::NotPkcs10(e)))?;
    let info = &csr.certification_request_info;
    let public_key = ids_pki::keyfile::public_key_from_spki(file, info.subject_pki.raw)
        .map_err(|e| bad(RequestError::RequestedKey(e)))?;
    verify_request_signature(&csr).map_err(bad)?;
    let mut sans = Vec::new();
    let mut other_names = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = ext else {
            continue;
        };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push(San::Dns((*dns).to_string())),
                GeneralName::URI(uri) => sans.push(San::Uri((*uri).to_string())),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => {
                        let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                        sans.push(San::Ip(IpAddr::from(octets)));
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(bytes);
                        sans.push(San::Ip(IpAddr::from(octets)));
                    }
                    _ => other_names.push("IP:(malformed)".into()),
                },
                GeneralName::RFC822Name(mail) => other_names.push(format!("email:{mail}")),
                other => other_names.push(format!("{other}")),
            }
        }
    }
    Ok(CertificateRequest {
        subject: info.subject.to_string(),
        common_name: info
            .subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        sans,
        other_names,
        public_key,
    })
}

/// Checks a request's self-signature with its own public key (RFC 2986 section 3).
fn verify_request_signature(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> Result<(), RequestError> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    let oid = csr.signature_algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match oid.as_str() {
        "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "1.2.840.10045.4.3.2" => &signature::ECDSA_P256_SHA256_ASN1,
        "1.2.840.10045.4.3.3" => &signature::ECDSA_P256_SHA384_ASN1,
        other => {
            return Err(RequestError::UnsupportedSignature {
                oid: other.to_string(),
            });
        }
    };
    let info = &csr.certification_request_info;
    UnparsedPublicKey::new(alg, &info.subject_pki.subject_public_key.data)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| RequestError::BadSignature)
}
