//! Leaf certificates: what they are for ([`Usage`]), their names ([`San`], client ids as
//! `urn:ids:client:<id>`), their parameters ([`LeafSpec`]), and self-signed ones for a pinned key.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::key::key_from_pkcs8;
use crate::{DevCertError, Issued, NameError};

pub(crate) fn params(common_name: &str, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::minutes(5);
    p.not_after = now + Duration::days(days);
    p
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
            Err(NameError::NotAHost {
                name: name.to_string(),
            }
            .into())
        }
    }

    pub(crate) fn to_rcgen(&self) -> Result<SanType, DevCertError> {
        let ia5 = |text: &str| {
            rcgen::string::Ia5String::try_from(text).map_err(|_| {
                DevCertError::from(NameError::NotAscii {
                    text: text.to_string(),
                })
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
        return Err(NameError::BadClientId {
            client_id: client_id.to_string(),
        }
        .into());
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
        let first = names.first().ok_or(NameError::NoServerName)?;
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
    pub(crate) fn params(&self, rsa: bool) -> Result<CertificateParams, DevCertError> {
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
pub(crate) fn random_serial() -> Result<rcgen::SerialNumber, DevCertError> {
    let mut bytes = vec![0u8; 16];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| DevCertError::Generate(rcgen::Error::RingUnspecified))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(rcgen::SerialNumber::from(bytes))
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

/// A self-signed token-signing certificate for an existing PKCS#8 key, valid from `not_before` to
/// `not_after` (Unix seconds): the form the server gives the keys it makes itself (`KeyManagement
/// Automatic`), so that they are published like a PFX key (`x5c`, `x5t`). Digital signature only.
pub fn self_signed_signing(
    key_pkcs8: &[u8],
    common_name: &str,
    not_before: i64,
    not_after: i64,
) -> Result<Issued, DevCertError> {
    let key = key_from_pkcs8(key_pkcs8)?;
    let mut p = params(common_name, 1);
    let time = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .map_err(|_| DevCertError::Generate(rcgen::Error::RingUnspecified))
    };
    p.not_before = time(not_before)?;
    p.not_after = time(not_after)?;
    p.serial_number = Some(random_serial()?);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.self_signed(&key)?;
    Ok(Issued {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pkcs8: Zeroizing::new(key_pkcs8.to_vec()),
    })
}
