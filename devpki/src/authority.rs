//! The certificate authority: a new private CA or an existing one read from its files, and the leaf
//! certificates it signs (TLS servers, token signing, file encryption, clients, certificate requests).

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::key::{key, key_from_pkcs8};
use crate::leaf::{params, random_serial};
use crate::{AuthorityError, DevCertError, Issued, KeyKind, LeafSpec};

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
        Ca::self_signed(p, key)
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
        Ok(issued(&cert, &key))
    }

    /// The CA `p` describes, signed with its own `key`.
    fn self_signed(p: CertificateParams, key: KeyPair) -> Result<Self, DevCertError> {
        let cert = p.self_signed(&key)?;
        Ok(Ca {
            cert: issued(&cert, &key),
            issuer: Issuer::new(p, key),
        })
    }
}

/// What rcgen made, as the certificate (DER and PEM) and its PKCS#8 key.
fn issued(cert: &rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pkcs8: Zeroizing::new(key.serialize_der()),
    }
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
                ids_pki::PublicKey::P384 { .. } => &rcgen::PKCS_ECDSA_P384_SHA384,
                ids_pki::PublicKey::Ed25519 { .. } => &rcgen::PKCS_ED25519,
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
        Ca::self_signed(p, key)
    }

    /// An existing CA from its certificate (DER; `file` names it in errors) and PKCS#8 private key.
    /// Refuses a certificate that is not a CA, may not sign certificates, or is not the key's.
    pub fn from_der(file: &str, cert_der: &[u8], key_pkcs8: &[u8]) -> Result<Self, DevCertError> {
        use rcgen::PublicKeyData as _;
        use x509_parser::prelude::FromDer as _;
        let authority = |reason: AuthorityError| DevCertError::Authority {
            file: file.to_string(),
            reason,
        };
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert_der)
            .map_err(|e| authority(AuthorityError::NotX509(e)))?;
        if !x509.is_ca() {
            return Err(authority(AuthorityError::NotCa));
        }
        if let Ok(Some(usage)) = x509.key_usage()
            && !usage.value.key_cert_sign()
        {
            return Err(authority(AuthorityError::NoKeyCertSign));
        }
        let key =
            key_from_pkcs8(key_pkcs8).map_err(|e| authority(AuthorityError::KeyUnusable(e)))?;
        if key.subject_public_key_info() != x509.tbs_certificate.subject_pki.raw {
            return Err(authority(AuthorityError::KeyMismatch));
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
