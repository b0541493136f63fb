//! PFX (PKCS#12) writing: a certificate, its key and chain as a password-protected file that
//! `openssl pkcs12`, Windows and the server read.

use p12_keystore::{
    EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey, PrivateKeyChain,
};

use crate::{DevCertError, Issued};

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
