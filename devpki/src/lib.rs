//! Certificates made by the project itself: a private CA, TLS server certificates and token-signing
//! certificates, written as PFX files that `openssl pkcs12` and the server read; client certificates for
//! mutual TLS, PKCS#10 requests and their signing (what `ids-keytool` does instead of `openssl` recipes).

use std::net::IpAddr;

use p12_keystore::{
    EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey, PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// Errors while making certificates.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("PFX encoding failed: {0}")]
    Pfx(#[from] p12_keystore::error::Error),
    #[error("{file}: {detail}")]
    Request { file: String, detail: String },
    #[error("{file}: {detail}")]
    Authority { file: String, detail: String },
    #[error("{what}: {detail}")]
    Name { what: String, detail: String },
}

/// Key algorithm of a generated key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
    Rsa3072,
    Rsa4096,
}

impl KeyKind {
    pub fn is_rsa(self) -> bool {
        !matches!(self, KeyKind::EcP256)
    }

    /// `RSA-2048`, `EC P-256`, ...
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::Rsa2048 => "RSA-2048",
            KeyKind::Rsa3072 => "RSA-3072",
            KeyKind::Rsa4096 => "RSA-4096",
            KeyKind::EcP256 => "EC P-256",
        }
    }
}

/// A generated certificate and its PKCS#8 private key.
#[derive(Debug)]
pub struct Issued {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

/// A private certificate authority held in memory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert: Issued,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca(..)")
    }
}

fn key(kind: KeyKind) -> Result<KeyPair, rcgen::Error> {
    match kind {
        KeyKind::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyKind::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyKind::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeyKind::EcP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
    }
}

/// A new private key as PKCS#8 DER.
pub fn generate_key(kind: KeyKind) -> Result<Zeroizing<Vec<u8>>, DevCertError> {
    Ok(Zeroizing::new(key(kind)?.serialize_der()))
}

/// rcgen's key pair for a PKCS#8 key (RSA signs with SHA-256, EC P-256 with ECDSA-SHA256).
fn key_from_pkcs8(pkcs8: &[u8]) -> Result<KeyPair, rcgen::Error> {
    KeyPair::try_from(pkcs8)
}

fn params(common_name: &str, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(days);
    p
}

impl Ca {
    /// A new CA (EC P-256) valid for `days`.
    pub fn new(common_name: &str, days: i64) -> Result<Self, DevCertError> {
        let key = key(KeyKind::EcP256)?;
        let mut p = params(common_name, days);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key)?;
        let issued = Issued {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        };
        Ok(Ca {
            issuer: Issuer::new(p, key),
            cert: issued,
        })
    }

    /// A TLS server certificate for `names` (DNS names or IP addresses in the SAN; never the CN alone).
    pub fn issue_server(
        &self,
        names: &[&str],
        kind: KeyKind,
        days: i64,
    ) -> Result<Issued, DevCertError> {
        let mut p = params(names.first().copied().unwrap_or("localhost"), days);
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*n).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.use_authority_key_identifier_extension = true;
        self.sign(p, kind)
    }

    /// A token-signing certificate (digital signature only).
    pub fn issue_signing(
        &self,
        common_name: &str,
        kind: KeyKind,
        days: i64,
    ) -> Result<Issued, DevCertError> {
        let now = OffsetDateTime::now_utc();
        self.issue_signing_between(
            common_name,
            kind,
            now - Duration::minutes(5),
            now + Duration::days(days),
        )
    }

    /// A file-encryption certificate (the agent's `EncryptionCertificate`): key encipherment for RSA,
    /// key agreement for EC.
    pub fn issue_encryption(
        &self,
        common_name: &str,
        kind: KeyKind,
        days: i64,
    ) -> Result<Issued, DevCertError> {
        let mut p = params(common_name, days);
        p.key_usages = match kind {
            KeyKind::Rsa2048 | KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
                vec![KeyUsagePurpose::KeyEncipherment]
            }
            KeyKind::EcP256 => vec![KeyUsagePurpose::KeyAgreement],
        };
        p.use_authority_key_identifier_extension = true;
        self.sign(p, kind)
    }

    /// A signing certificate with explicit validity (tests make expired and not-yet-valid ones).
    pub fn issue_signing_between(
        &self,
        common_name: &str,
        kind: KeyKind,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, DevCertError> {
        let mut p = params(common_name, 1);
        p.not_before = not_before;
        p.not_after = not_after;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
        self.sign(p, kind)
    }

    fn sign(&self, p: CertificateParams, kind: KeyKind) -> Result<Issued, DevCertError> {
        let key = key(kind)?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        })
    }
}

/// What a leaf certificate is for: its extended key usage (RFC 5280 section 4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS server: `serverAuth`; DNS/IP names in the SAN.
    Server,
    /// TLS client (mutual TLS): `clientAuth`; the client id in the subject and the SAN.
    Client,
}

impl Usage {
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::Server => "server",
            Usage::Client => "client",
        }
    }
}

/// A subject alternative name (RFC 5280 section 4.2.1.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
}

impl std::fmt::Display for San {
    /// OpenSSL's notation: `DNS:host`, `IP Address:1.2.3.4` is shortened to `IP:1.2.3.4`, `URI:urn:...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(name) => write!(f, "DNS:{name}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Uri(uri) => write!(f, "URI:{uri}"),
        }
    }
}

impl San {
    /// An IP address when `name` parses as one, otherwise a DNS name (`*.` allowed as the first label).
    pub fn host(name: &str) -> Result<San, DevCertError> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let rest = name.strip_prefix("*.").unwrap_or(name);
        if is_dns_name(rest) {
            Ok(San::Dns(name.to_string()))
        } else {
            Err(DevCertError::Name {
                what: format!("`{name}`"),
                detail:
                    "not a DNS name (letters, digits and `-` in dot-separated labels of at most 63 \
                         characters) nor an IP address"
                        .into(),
            })
        }
    }

    fn to_rcgen(&self) -> Result<SanType, DevCertError> {
        let ia5 = |text: &str| {
            rcgen::string::Ia5String::try_from(text).map_err(|_| DevCertError::Name {
                what: format!("`{text}`"),
                detail: "not ASCII".into(),
            })
        };
        Ok(match self {
            San::Dns(name) => SanType::DnsName(ia5(name)?),
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Uri(uri) => SanType::URI(ia5(uri)?),
        })
    }
}

/// True for a DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123 section
/// 2.1), each 1-63 characters, at most 253 in all.
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Prefix of the URI SAN naming a client: `urn:ids:client:<client id>`.
pub const CLIENT_URN_PREFIX: &str = "urn:ids:client:";

/// `urn:ids:client:<client id>`.
pub fn client_urn(client_id: &str) -> String {
    format!("{CLIENT_URN_PREFIX}{client_id}")
}

/// Refuses a client id that cannot be written in a URN unescaped (RFC 8141 NSS characters).
pub fn check_client_id(client_id: &str) -> Result<(), DevCertError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~@:+=,;!$*'()".contains(c);
    if client_id.is_empty() || client_id.len() > 128 || !client_id.chars().all(allowed) {
        return Err(DevCertError::Name {
            what: format!("client id `{client_id}`"),
            detail: "expected 1-128 characters among letters, digits and - . _ ~ @ : + = , ; ! $ * ' ( )"
                .into(),
        });
    }
    Ok(())
}

/// The SAN of a client certificate: `urn:ids:client:<id>`, and the id as a DNS name when it is one.
pub fn client_sans(client_id: &str) -> Result<Vec<San>, DevCertError> {
    check_client_id(client_id)?;
    let mut sans = vec![San::Uri(client_urn(client_id))];
    if is_dns_name(client_id) {
        sans.push(San::Dns(client_id.to_string()));
    }
    Ok(sans)
}

/// Subject, names, purpose and lifetime of a leaf certificate.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Subject CN: decoration for servers (clients check the SAN), the client id for clients.
    pub common_name: String,
    pub sans: Vec<San>,
    pub usage: Usage,
    pub days: i64,
}

impl LeafSpec {
    /// A TLS server certificate for `names` (DNS names or IP addresses); CN = the first name.
    pub fn server(names: &[String], days: i64) -> Result<Self, DevCertError> {
        let first = names.first().ok_or_else(|| DevCertError::Name {
            what: "server certificate".into(),
            detail: "at least one DNS name or IP address is required".into(),
        })?;
        Ok(LeafSpec {
            common_name: first.clone(),
            sans: names
                .iter()
                .map(|n| San::host(n))
                .collect::<Result<_, _>>()?,
            usage: Usage::Server,
            days,
        })
    }

    /// A TLS client certificate: CN = the client id, SAN = [`client_sans`].
    pub fn client(client_id: &str, days: i64) -> Result<Self, DevCertError> {
        Ok(LeafSpec {
            common_name: client_id.to_string(),
            sans: client_sans(client_id)?,
            usage: Usage::Client,
            days,
        })
    }

    /// Certificate parameters: random serial, validity from 5 minutes ago, key usage for the key type
    /// (RSA TLS servers also `keyEncipherment`), `CA:FALSE`.
    fn params(&self, rsa: bool) -> Result<CertificateParams, DevCertError> {
        let mut p = params(&self.common_name, self.days);
        p.serial_number = Some(random_serial()?);
        p.is_ca = IsCa::ExplicitNoCa;
        p.subject_alt_names = self
            .sans
            .iter()
            .map(San::to_rcgen)
            .collect::<Result<_, _>>()?;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        match self.usage {
            Usage::Server => {
                if rsa {
                    p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
                }
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Usage::Client => p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
        }
        p.use_authority_key_identifier_extension = true;
        Ok(p)
    }
}

/// A random positive 128-bit serial number (RFC 5280 section 4.1.2.2: unique per CA; rcgen's default
/// is a hash of the public key, which repeats when the same key is certified twice).
fn random_serial() -> Result<rcgen::SerialNumber, DevCertError> {
    let mut bytes = vec![0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| DevCertError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from(bytes))
}

/// A public key from a certificate request, in the form rcgen signs.
struct RequestedKey {
    raw: Vec<u8>,
    alg: &'static rcgen::SignatureAlgorithm,
}

impl rcgen::PublicKeyData for RequestedKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

impl RequestedKey {
    fn new(key: &ids_pki::PublicKey) -> Self {
        RequestedKey {
            raw: ids_pki::keyfile::subject_public_key_bits(key),
            alg: match key {
                ids_pki::PublicKey::Rsa { .. } => &PKCS_RSA_SHA256,
                ids_pki::PublicKey::P256 { .. } => &PKCS_ECDSA_P256_SHA256,
            },
        }
    }
}

impl Ca {
    /// A new CA with a `kind` key, valid for `days`: `CA:TRUE` (critical), `keyCertSign` + `cRLSign`.
    pub fn authority(common_name: &str, kind: KeyKind, days: i64) -> Result<Self, DevCertError> {
        let key = key(kind)?;
        let mut p = params(common_name, days);
        p.serial_number = Some(random_serial()?);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key)?;
        let issued = Issued {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        };
        Ok(Ca {
            issuer: Issuer::new(p, key),
            cert: issued,
        })
    }

    /// An existing CA from its certificate (DER; `file` names it in errors) and PKCS#8 private key.
    /// Refuses a certificate that is not a CA, may not sign certificates, or is not the key's.
    pub fn from_der(file: &str, cert_der: &[u8], key_pkcs8: &[u8]) -> Result<Self, DevCertError> {
        use rcgen::PublicKeyData as _;
        use x509_parser::prelude::FromDer as _;
        let authority = |detail: &str| DevCertError::Authority {
            file: file.to_string(),
            detail: detail.to_string(),
        };
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert_der)
            .map_err(|e| authority(&format!("not an X.509 certificate ({e})")))?;
        if !x509.is_ca() {
            return Err(authority(
                "not a CA certificate (no `basicConstraints: CA:TRUE`): it cannot sign certificates",
            ));
        }
        if let Ok(Some(usage)) = x509.key_usage()
            && !usage.value.key_cert_sign()
        {
            return Err(authority(
                "the CA certificate's key usage does not allow signing certificates (`keyCertSign`)",
            ));
        }
        let key = key_from_pkcs8(key_pkcs8)
            .map_err(|e| authority(&format!("the CA private key is not usable ({e})")))?;
        if key.subject_public_key_info() != x509.tbs_certificate.subject_pki.raw {
            return Err(authority(
                "the CA private key does not belong to this certificate (their public keys differ)",
            ));
        }
        let cert_pem = ids_pki::keyfile::certificate_pem(cert_der);
        let issuer = Issuer::from_ca_cert_der(&cert_der.to_vec().into(), key)?;
        Ok(Ca {
            issuer,
            cert: Issued {
                cert_der: cert_der.to_vec(),
                cert_pem,
                key_pkcs8: Zeroizing::new(key_pkcs8.to_vec()),
            },
        })
    }

    /// A TLS client certificate for `client_id` with a new `kind` key ([`LeafSpec::client`]).
    pub fn issue_client(
        &self,
        client_id: &str,
        kind: KeyKind,
        days: i64,
    ) -> Result<Issued, DevCertError> {
        self.issue(&LeafSpec::client(client_id, days)?, kind)
    }

    /// A leaf certificate with a new `kind` key.
    pub fn issue(&self, spec: &LeafSpec, kind: KeyKind) -> Result<Issued, DevCertError> {
        let p = spec.params(kind.is_rsa())?;
        self.sign(p, kind)
    }

    /// A leaf certificate for a public key held elsewhere (a certificate request's): DER and PEM.
    pub fn issue_for_key(
        &self,
        spec: &LeafSpec,
        public_key: &ids_pki::PublicKey,
    ) -> Result<(Vec<u8>, String), DevCertError> {
        let p = spec.params(matches!(public_key, ids_pki::PublicKey::Rsa { .. }))?;
        let cert = p.signed_by(&RequestedKey::new(public_key), &self.issuer)?;
        Ok((cert.der().to_vec(), cert.pem()))
    }
}

/// A self-signed leaf certificate for an existing PKCS#8 key (`ids-keytool keygen`: a key pinned by
/// its certificate, no CA).
pub fn self_signed(key_pkcs8: &[u8], spec: &LeafSpec) -> Result<Issued, DevCertError> {
    let key = key_from_pkcs8(key_pkcs8)?;
    let rsa = !key.is_compatible(&PKCS_ECDSA_P256_SHA256);
    let mut p = spec.params(rsa)?;
    p.use_authority_key_identifier_extension = false;
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pkcs8: Zeroizing::new(key_pkcs8.to_vec()),
    })
}

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
    let bad = |detail: String| DevCertError::Request {
        file: file.to_string(),
        detail,
    };
    let der = if ids_pki::pem::is_pem(bytes) {
        let pem = ids_pki::pem::first(bytes)
            .map_err(|e| bad(format!("not a PEM certificate request ({e})")))?
            .ok_or_else(|| bad("not a PEM certificate request (no PEM block)".into()))?;
        if !pem.label.ends_with("CERTIFICATE REQUEST") {
            return Err(bad(format!(
                "PEM block is `{}`, expected `CERTIFICATE REQUEST`",
                pem.label
            )));
        }
        pem.der.to_vec()
    } else {
        bytes.to_vec()
    };
    let (_, csr) = X509CertificationRequest::from_der(&der).map_err(|e| {
        bad(format!(
            "not a PKCS#10 certificate request (expected PEM `CERTIFICATE REQUEST` or DER): {e}"
        ))
    })?;
    let info = &csr.certification_request_info;
    let public_key =
        ids_pki::keyfile::public_key_from_spki(file, info.subject_pki.raw).map_err(|e| {
            bad(format!(
                "requested key: {}",
                strip_file(file, &e.to_string())
            ))
        })?;
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

/// `file: detail` -> `detail` (errors of the key reader already name the file).
fn strip_file(file: &str, message: &str) -> String {
    message
        .strip_prefix(&format!("{file}: "))
        .unwrap_or(message)
        .to_string()
}

/// Checks a request's self-signature with its own public key (RFC 2986 section 3).
fn verify_request_signature(
    csr: &x509_parser::certification_request::X509CertificationRequest<'_>,
) -> Result<(), String> {
    use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
    let oid = csr.signature_algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match oid.as_str() {
        "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &signature::RSA_PKCS1_2048_8192_SHA512,
        "1.2.840.10045.4.3.2" => &signature::ECDSA_P256_SHA256_ASN1,
        "1.2.840.10045.4.3.3" => &signature::ECDSA_P256_SHA384_ASN1,
        other => {
            return Err(format!(
                "the request is signed with algorithm {other}; expected sha256/384/512WithRSAEncryption or \
                 ecdsa-with-SHA256/384"
            ));
        }
    };
    let info = &csr.certification_request_info;
    UnparsedPublicKey::new(alg, &info.subject_pki.subject_public_key.data)
        .verify(info.raw, &csr.signature_value.data)
        .map_err(|_| {
            "the request's signature does not verify: it was altered or not signed by its key"
                .to_string()
        })
}

/// PFX encryption profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PfxProfile {
    /// PBES2 AES-256-CBC + HMAC-SHA-256 MAC (what OpenSSL 3 writes by default).
    Modern,
    /// PBE-SHA1-3DES + HMAC-SHA-1 MAC, for old Windows versions.
    Legacy,
}

/// Writes `issued` (with `chain`, e.g. the CA certificate) as a password-protected PFX.
pub fn to_pfx(
    issued: &Issued,
    chain: &[&[u8]],
    alias: &str,
    password: &str,
    profile: PfxProfile,
) -> Result<Vec<u8>, DevCertError> {
    let mut certs = vec![p12_keystore::Certificate::from_der(&issued.cert_der)?];
    for der in chain {
        certs.push(p12_keystore::Certificate::from_der(der)?);
    }
    let key = PrivateKey::from_der(&issued.key_pkcs8)?;
    let local_key_id = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &issued.cert_der,
    );
    let chain = PrivateKeyChain::new(local_key_id.as_ref(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
    let writer = store.writer(password);
    let writer = match profile {
        PfxProfile::Modern => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256),
        PfxProfile::Legacy => writer
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1),
    };
    Ok(writer.write()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
