//! X.509 certificates: the public half the server publishes and the agent pins.

use std::path::Path;

use aws_lc_rs::digest;
use x509_parser::asn1_rs::{Any, Tag};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedKey;

use crate::b64;

/// The public key of a certificate, in the form JOSE needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent as unsigned big-endian bytes (no leading zero).
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// EC P-256 affine coordinates, 32 bytes each.
    P256 { x: Vec<u8>, y: Vec<u8> },
    /// EC P-384 affine coordinates, 48 bytes each.
    P384 { x: Vec<u8>, y: Vec<u8> },
    /// Ed25519 public key (RFC 8037), 32 bytes.
    Ed25519 { x: Vec<u8> },
}

impl PublicKey {
    /// RSA modulus size in bits, or the curve's size (256 for P-256 and Ed25519, 384 for P-384).
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa { n, .. } => {
                let lead = n.first().map_or(0, |b| 8 - b.leading_zeros() as usize);
                n.len().saturating_sub(1) * 8 + lead
            }
            PublicKey::P256 { .. } | PublicKey::Ed25519 { .. } => 256,
            PublicKey::P384 { .. } => 384,
        }
    }

    /// The key of an uncompressed SEC1 point (`04 || x || y`) on P-256 (65 bytes) or P-384 (97 bytes);
    /// `None` for anything else.
    pub fn from_ec_point(point: &[u8]) -> Option<PublicKey> {
        let size = match point.len() {
            65 => 32,
            97 => 48,
            _ => return None,
        };
        if point[0] != 4 {
            return None;
        }
        let (x, y) = (point[1..1 + size].to_vec(), point[1 + size..].to_vec());
        Some(if size == 32 {
            PublicKey::P256 { x, y }
        } else {
            PublicKey::P384 { x, y }
        })
    }

    /// The uncompressed SEC1 point (`04 || x || y`) of an EC key; `None` for RSA and Ed25519.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::P256 { x, y } | PublicKey::P384 { x, y } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some(point)
            }
            PublicKey::Rsa { .. } | PublicKey::Ed25519 { .. } => None,
        }
    }

    /// Human-readable key type for summaries, e.g. `RSA-2048`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { .. } => format!("RSA-{}", self.bits()),
            PublicKey::P256 { .. } => "EC P-256".to_string(),
            PublicKey::P384 { .. } => "EC P-384".to_string(),
            PublicKey::Ed25519 { .. } => "Ed25519".to_string(),
        }
    }
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{file}: cannot read the file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: not an X.509 certificate (expected PEM `BEGIN CERTIFICATE`, DER or a PFX file): {detail}"
    )]
    Parse { file: String, detail: String },
    #[error(
        "{file}: unsupported public key type {oid} (supported: RSA of at least 2048 bits, EC P-256 or P-384, Ed25519)"
    )]
    UnsupportedKey { file: String, oid: String },
    #[error("{file}: RSA key of {bits} bits is too small: at least 2048 bits are required")]
    WeakRsa { file: String, bits: usize },
}

/// A parsed X.509 certificate with what the server and agent need from it.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    not_before: i64,
    not_after: i64,
    public_key: PublicKey,
    subject_alt_names: Vec<SubjectAltName>,
    subject_der: Vec<u8>,
    subject_rdns: Vec<(String, String)>,
    issuer_der: Vec<u8>,
    version: u32,
    is_ca: bool,
    name_constraints: bool,
}

/// What an issuer's signature covers, split as RFC 5280 section 4.1.1 lays a certificate out, in the
/// forms rustls' `SignatureVerificationAlgorithm` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// `tbsCertificate`, tag and length included: the signed bytes.
    pub tbs: &'a [u8],
    /// The contents of `signatureAlgorithm` (the AlgorithmIdentifier without its SEQUENCE tag and
    /// length), as `signature_alg_id()` spells it.
    pub algorithm_id: &'a [u8],
    /// The `signatureValue` bits.
    pub signature: &'a [u8],
}

/// A `SubjectPublicKeyInfo` split in the forms rustls' `SignatureVerificationAlgorithm` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpkiParts<'a> {
    /// The whole `SubjectPublicKeyInfo` DER.
    pub der: &'a [u8],
    /// The contents of its AlgorithmIdentifier, as `public_key_alg_id()` spells it.
    pub algorithm_id: &'a [u8],
    /// The `subjectPublicKey` bits.
    pub key: &'a [u8],
}

/// One subject alternative name (RFC 5280 section 4.2.1.6) of the kinds the server maps clients by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectAltName {
    Dns(String),
    Uri(String),
    Email(String),
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubjectAltName::Dns(v) => write!(f, "DNS:{v}"),
            SubjectAltName::Uri(v) => write!(f, "URI:{v}"),
            SubjectAltName::Email(v) => write!(f, "email:{v}"),
            SubjectAltName::Ip(v) => write!(f, "IP:{v}"),
        }
    }
}

impl Certificate {
    /// Parses a DER certificate. `file` is only used in error messages.
    pub fn from_der(file: &str, der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Parse {
            file: file.to_string(),
            detail: e.to_string(),
        })?;
        let spki = cert.public_key();
        let oid = &spki.algorithm.algorithm;
        let public_key = if *oid == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(ParsedKey::RSA(rsa)) => PublicKey::Rsa {
                    n: strip_zeros(rsa.modulus).to_vec(),
                    e: strip_zeros(rsa.exponent).to_vec(),
                },
                _ => {
                    return Err(CertError::Parse {
                        file: file.to_string(),
                        detail: "malformed RSA public key".into(),
                    });
                }
            }
        } else if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let point = &spki.subject_public_key.data;
            let size = match curve.as_ref() {
                Some(c) if *c == OID_EC_P256 => 65,
                Some(c) if *c == OID_NIST_EC_P384 => 97,
                _ => 0,
            };
            match PublicKey::from_ec_point(point).filter(|_| point.len() == size) {
                Some(key) => key,
                None => {
                    return Err(CertError::UnsupportedKey {
                        file: file.to_string(),
                        oid: format!(
                            "EC on curve {}",
                            curve.map_or("(unnamed)".to_string(), |c| c.to_id_string())
                        ),
                    });
                }
            }
        } else if *oid == OID_SIG_ED25519 {
            let key = &spki.subject_public_key.data;
            if key.len() != 32 {
                return Err(CertError::Parse {
                    file: file.to_string(),
                    detail: "malformed Ed25519 public key".into(),
                });
            }
            PublicKey::Ed25519 { x: key.to_vec() }
        } else {
            return Err(CertError::UnsupportedKey {
                file: file.to_string(),
                oid: oid.to_id_string(),
            });
        };
        if let PublicKey::Rsa { .. } = public_key {
            let bits = public_key.bits();
            if bits < 2048 {
                return Err(CertError::WeakRsa {
                    file: file.to_string(),
                    bits,
                });
            }
        }
        let validity = cert.validity();
        let mut subject_alt_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &san.value.general_names {
                subject_alt_names.push(match name {
                    GeneralName::DNSName(v) => SubjectAltName::Dns(v.to_string()),
                    GeneralName::URI(v) => SubjectAltName::Uri(v.to_string()),
                    GeneralName::RFC822Name(v) => SubjectAltName::Email(v.to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => SubjectAltName::Ip(std::net::IpAddr::from(
                            <[u8; 4]>::try_from(*b).unwrap_or_default(),
                        )),
                        16 => SubjectAltName::Ip(std::net::IpAddr::from(
                            <[u8; 16]>::try_from(*b).unwrap_or_default(),
                        )),
                        _ => continue,
                    },
                    _ => continue,
                });
            }
        }
        let mut subject_rdns = Vec::new();
        for rdn in cert.subject().iter() {
            for attr in rdn.iter() {
                let name = x509_parser::objects::oid2abbrev(
                    attr.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(str::to_string)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr.as_str().map(str::to_string).unwrap_or_default();
                subject_rdns.push((name, value));
            }
        }
        let name_constraints = matches!(cert.name_constraints(), Ok(Some(_)) | Err(_));
        Ok(Certificate {
            issuer_der: cert.issuer().as_raw().to_vec(),
            version: cert.version().0.saturating_add(1),
            is_ca: cert.is_ca(),
            name_constraints,
            subject_rdns,
            subject_alt_names,
            subject_der: cert.subject().as_raw().to_vec(),
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            public_key,
        })
    }

    /// Reads a public certificate file: PEM (`BEGIN CERTIFICATE`) or DER. PFX files go through [`crate::pfx`].
    pub fn from_file(path: &Path) -> Result<Self, CertError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CertError::Io {
            file: file.clone(),
            source,
        })?;
        let der = pem_or_der(&file, &bytes)?;
        Self::from_der(&file, &der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }
    pub fn subject(&self) -> &str {
        &self.subject
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The subject's attributes in certificate order (most significant first), as (short name, value),
    /// e.g. `("C", "FR"), ("O", "Example"), ("CN", "Poller")`.
    pub fn subject_attributes(&self) -> &[(String, String)] {
        &self.subject_rdns
    }
    /// The DER of the subject name (what TLS sends as a CA hint).
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }
    /// The DNS, URI, email and IP subject alternative names.
    pub fn subject_alt_names(&self) -> &[SubjectAltName] {
        &self.subject_alt_names
    }
    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    /// The DER of the issuer name.
    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }
    /// The X.509 version: 3, or 1 for a certificate without extensions (what `openssl x509 -req`
    /// writes without an extension file).
    pub fn version(&self) -> u32 {
        self.version
    }
    /// `basicConstraints: cA=TRUE` (never for a v1 certificate, which has no extensions).
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
    /// Whether a `nameConstraints` extension is present (or unreadable).
    pub fn has_name_constraints(&self) -> bool {
        self.name_constraints
    }
    /// The issuer name is the subject name, byte for byte (a root, or a self-signed certificate).
    pub fn is_self_issued(&self) -> bool {
        self.issuer_der == self.subject_der
    }

    /// The signed bytes, the signature algorithm and the signature, to check the issuer's signature.
    /// `None` when the DER does not have the three parts of RFC 5280 section 4.1.
    pub fn signed_parts(&self) -> Option<SignedParts<'_>> {
        let content = element(&self.der, Tag::Sequence)
            .filter(|(_, rest)| rest.is_empty())?
            .0;
        let (_, after_tbs) = element(content, Tag::Sequence)?;
        let tbs = &content[..content.len() - after_tbs.len()];
        let (algorithm_id, after_algorithm) = element(after_tbs, Tag::Sequence)?;
        let (bits, end) = element(after_algorithm, Tag::BitString)?;
        if !end.is_empty() {
            return None;
        }
        Some(SignedParts {
            tbs,
            algorithm_id,
            signature: whole_bytes(bits)?,
        })
    }

    /// The subject public key info, split.
    pub fn spki(&self) -> Option<SpkiParts<'_>> {
        let (_, cert) = X509Certificate::from_der(&self.der).ok()?;
        // Borrowed from `self.der`, not from `cert`.
        let der: &[u8] = cert.tbs_certificate.subject_pki.raw;
        let (content, _) = element(der, Tag::Sequence)?;
        let (algorithm_id, after_algorithm) = element(content, Tag::Sequence)?;
        let (bits, end) = element(after_algorithm, Tag::BitString)?;
        if !end.is_empty() {
            return None;
        }
        Some(SpkiParts {
            der,
            algorithm_id,
            key: whole_bytes(bits)?,
        })
    }

    /// SHA-1 of the DER, base64url: the JOSE `x5t` header and JWK member (RFC 7515 section 4.1.7).
    pub fn x5t(&self) -> String {
        b64::url(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref())
    }

    /// SHA-1 of the DER in upper-case hex: the thumbprint Windows and .NET show.
    pub fn sha1_hex(&self) -> String {
        b64::hex_upper(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der).as_ref())
    }

    /// SHA-256 of the DER, base64url: `x5t#S256`.
    pub fn x5t_s256(&self) -> String {
        x5t_s256(&self.der)
    }

    /// Checks the validity window against `now` (Unix seconds).
    pub fn validity_at(&self, now: i64) -> Validity {
        if now < self.not_before {
            Validity::NotYetValid
        } else if now > self.not_after {
            Validity::Expired
        } else {
            Validity::Valid
        }
    }
}

/// The `x5t#S256` of a certificate's DER (RFC 8705 section 3.1: base64url of its SHA-256), readable or
/// not: what bound tokens carry in `cnf` and what logs name a certificate by.
pub fn x5t_s256(der: &[u8]) -> String {
    b64::url(digest::digest(&digest::SHA256, der).as_ref())
}

/// One DER element with tag `tag` at the start of `input`: (its contents, what follows it).
fn element(input: &[u8], tag: Tag) -> Option<(&[u8], &[u8])> {
    let (rest, any) = Any::from_der(input).ok()?;
    (any.header.tag() == tag).then_some((any.data, rest))
}

/// The bytes of a BIT STRING's contents, which must have no unused bits.
fn whole_bytes(bits: &[u8]) -> Option<&[u8]> {
    match bits.split_first() {
        Some((0, bytes)) => Some(bytes),
        _ => None,
    }
}

/// The subject and issuer of a certificate [`Certificate::from_der`] refuses (unsupported key...), for
/// messages; `None` when it is not X.509 at all.
pub fn subject_and_issuer(der: &[u8]) -> Option<(String, String)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some((cert.subject().to_string(), cert.issuer().to_string()))
}

/// Where `now` falls in a certificate's validity window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Valid,
    NotYetValid,
    Expired,
}

/// Formats Unix seconds as RFC 3339 (UTC) for messages.
pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Accepts one PEM certificate (the first block of the file) or raw DER.
fn pem_or_der(file: &str, bytes: &[u8]) -> Result<Vec<u8>, CertError> {
    if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        match crate::pem::first(bytes) {
            Ok(Some(block)) if block.label == "CERTIFICATE" => return Ok(block.der.to_vec()),
            Ok(Some(block)) => {
                return Err(CertError::Parse {
                    file: file.to_string(),
                    detail: format!("PEM block is `{}`, expected `CERTIFICATE`", block.label),
                });
            }
            Err(e) if bytes.starts_with(b"-----") => {
                return Err(CertError::Parse {
                    file: file.to_string(),
                    detail: e.to_string(),
                });
            }
            Ok(None) | Err(_) => {}
        }
    }
    Ok(bytes.to_vec())
}

/// A certificate an HTTPS client was told to trust: a CA (a trust anchor for chains) or a server
/// certificate pinned as it is. Any key type is accepted here: trust anchors are rustls's business.
#[derive(Clone, Debug)]
pub struct TrustedCertificate {
    pub der: Vec<u8>,
    /// `basicConstraints: cA=TRUE`.
    pub is_ca: bool,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the DER, base64url (`x5t#S256`), to name a pinned certificate in messages.
    pub x5t_s256: String,
}

/// Reads every certificate of a PEM bundle, or the one certificate of a DER file.
pub fn trusted_certificates_from_file(path: &Path) -> Result<Vec<TrustedCertificate>, CertError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CertError::Io {
        file: file.clone(),
        source,
    })?;
    let parse_error = |detail: String| CertError::Parse {
        file: file.clone(),
        detail,
    };
    let ders: Vec<Vec<u8>> = if bytes.iter().take(64).all(|b| b.is_ascii()) {
        let blocks = crate::pem::blocks(&bytes).map_err(|e| parse_error(e.to_string()))?;
        let ders: Vec<Vec<u8>> = blocks
            .unwrap_or_default()
            .into_iter()
            .filter(|block| block.label == "CERTIFICATE")
            .map(|block| block.der.to_vec())
            .collect();
        if ders.is_empty() {
            return Err(parse_error("no `BEGIN CERTIFICATE` block".into()));
        }
        ders
    } else {
        vec![bytes]
    };
    ders.into_iter()
        .map(|der| {
            let (_, cert) =
                X509Certificate::from_der(&der).map_err(|e| parse_error(e.to_string()))?;
            Ok(TrustedCertificate {
                is_ca: cert.is_ca(),
                subject: cert.subject().to_string(),
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
                x5t_s256: x5t_s256(&der),
                der,
            })
        })
        .collect()
}

/// Big-endian integer bytes without leading zeros (DER adds one before a high bit; JOSE wants none).
pub fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
