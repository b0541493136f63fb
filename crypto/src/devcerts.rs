//! Certificates made by the project itself: a private CA, TLS server certificates and token-signing
//! certificates, written as PFX files that `openssl pkcs12` and the server read.

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
}

/// Key algorithm of a generated key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa2048,
    EcP256,
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
        KeyKind::EcP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
    }
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
            KeyKind::Rsa2048 => vec![KeyUsagePurpose::KeyEncipherment],
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
