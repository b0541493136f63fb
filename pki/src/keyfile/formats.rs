//! What a key file holds: PEM blocks (a key, its certificate, a chain), DER, a JWK or a PFX, and
//! which of its parts is the key asked for.

use std::path::Path;

use zeroize::Zeroizing;

use super::asn1::{
    DerKind, classify_der, public_key_from_csr, public_key_from_pkcs1, public_key_from_spki,
};
use super::private::{decrypt_pkcs8, pkcs8_key, rsa_pkcs1_key, sec1_key};
use super::{
    KeyFileError, KeyFileKind, PrivateKeyFile, PublicKeyFile, public_key_from_jwk, unsupported,
};
use crate::cert::{Certificate, PublicKey};
use crate::jwk::Jwk;
use crate::pem::{self, Block};
use crate::pfx::{Pfx, PfxError};

pub(super) fn read(path: &Path) -> Result<(String, Zeroizing<Vec<u8>>), KeyFileError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((file, Zeroizing::new(bytes))),
        Err(source) => Err(KeyFileError::Io { file, source }),
    }
}

pub(super) fn looks_like_json(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    text.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

pub(super) fn unrecognized(file: &str, bytes: &[u8]) -> KeyFileError {
    let detail = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if bytes.starts_with(b"ssh-") || bytes.starts_with(b"ecdsa-sha2-") {
        "an OpenSSH public key; convert it with `ssh-keygen -e -m PKCS8 -f FILE`".to_string()
    } else if bytes.iter().take(256).all(|b| b.is_ascii()) {
        "text without a `-----BEGIN` PEM block".to_string()
    } else {
        "binary data that is not a DER certificate, key or PKCS#12 structure".to_string()
    };
    KeyFileError::Unrecognized {
        file: file.to_string(),
        detail,
    }
}

/// The PEM blocks of `bytes`, or `None` when there is no `-----BEGIN` line (DER or other input).
pub(super) fn pem_blocks(file: &str, bytes: &[u8]) -> Result<Option<Vec<Block>>, KeyFileError> {
    pem::blocks(bytes).map_err(|e| match e.label() {
        None => KeyFileError::Unrecognized {
            file: file.to_string(),
            detail: e.to_string(),
        },
        Some(label) => KeyFileError::Malformed {
            file: file.to_string(),
            what: format!("the PEM block `{label}`"),
            detail: e.to_string(),
        },
    })
}

/// PEM labels that hold a private key.
fn is_private_label(label: &str) -> bool {
    matches!(
        label,
        "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
    ) || label.ends_with("PRIVATE KEY")
}

fn is_certificate_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

fn labels(blocks: &[Block]) -> String {
    if blocks.is_empty() {
        return "no PEM block".into();
    }
    let names: Vec<String> = blocks.iter().map(|b| format!("`{}`", b.label)).collect();
    format!("PEM blocks {}", names.join(", "))
}

pub(super) fn public_from_pem(
    file: &str,
    blocks: &[Block],
    password: Option<&str>,
) -> Result<PublicKeyFile, KeyFileError> {
    let has_key = blocks.iter().any(|b| is_private_label(&b.label));
    let has_cert = blocks.iter().any(|b| is_certificate_label(&b.label));
    if has_key {
        match private_from_pem(file, blocks, password) {
            Ok(key) => {
                return Ok(PublicKeyFile {
                    public_key: key.public_key,
                    certificate: key.certificate,
                    kind: KeyFileKind::PrivateKey,
                });
            }
            // An encrypted key beside its certificate: the certificate is public.
            Err(KeyFileError::NeedsPassword { .. }) if has_cert => {}
            Err(e) => return Err(e),
        }
    }
    for block in blocks {
        let label = block.label.as_str();
        if is_certificate_label(label) {
            let cert = Certificate::from_der(file, &block.der)?;
            return Ok(PublicKeyFile {
                public_key: cert.public_key().clone(),
                certificate: Some(cert),
                kind: KeyFileKind::Certificate,
            });
        }
        let public_key = match label {
            "PUBLIC KEY" => public_key_from_spki(file, &block.der)?,
            "RSA PUBLIC KEY" => public_key_from_pkcs1(file, &block.der)?,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => {
                public_key_from_csr(file, &block.der)?
            }
            "DSA PUBLIC KEY" => return Err(unsupported(file, "DSA key")),
            _ => continue,
        };
        return Ok(PublicKeyFile {
            public_key,
            certificate: None,
            kind: KeyFileKind::PublicKey,
        });
    }
    Err(KeyFileError::Unrecognized {
        file: file.to_string(),
        detail: labels(blocks),
    })
}

pub(super) fn private_from_pem(
    file: &str,
    blocks: &[Block],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let keys: Vec<&Block> = blocks
        .iter()
        .filter(|b| is_private_label(&b.label))
        .collect();
    let block = match keys.as_slice() {
        [one] => *one,
        [] => {
            return Err(KeyFileError::NoPrivateKey {
                file: file.to_string(),
                found: labels(blocks),
            });
        }
        several => {
            return Err(KeyFileError::SeveralKeys {
                file: file.to_string(),
                count: several.len(),
            });
        }
    };
    if block.legacy_encrypted {
        return Err(KeyFileError::UnsupportedEncryption {
            file: file.to_string(),
            detail: format!(
                "`{}` with legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`) is not read: convert it to \
                 PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {file} -out new.key`",
                block.label
            ),
        });
    }
    let (pkcs8, public_key) = match block.label.as_str() {
        "PRIVATE KEY" => pkcs8_key(file, &block.der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let pkcs8 = decrypt_pkcs8(file, &block.der, password)?;
            pkcs8_key(file, &pkcs8)?
        }
        "RSA PRIVATE KEY" => rsa_pkcs1_key(file, &block.der)?,
        "EC PRIVATE KEY" => sec1_key(file, &block.der)?,
        "OPENSSH PRIVATE KEY" => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!(
                    "an OpenSSH private key; convert it to PKCS#8 with `ssh-keygen -p -m PKCS8 -f {file}` \
                     (rewrites the file in place)"
                ),
            });
        }
        "DSA PRIVATE KEY" => return Err(unsupported(file, "DSA key")),
        other => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!("PEM block `{other}`"),
            });
        }
    };
    let mut certificates = Vec::new();
    for block in blocks.iter().filter(|b| is_certificate_label(&b.label)) {
        certificates.push(Certificate::from_der(file, &block.der)?);
    }
    let (certificate, chain) = split_chain(&public_key, certificates);
    Ok(PrivateKeyFile {
        pkcs8,
        public_key,
        certificate,
        chain,
        kind: KeyFileKind::PrivateKey,
    })
}

/// The first certificate of `key`, and the others.
fn split_chain(
    key: &PublicKey,
    certificates: Vec<Certificate>,
) -> (Option<Certificate>, Vec<Certificate>) {
    let mut certificate = None;
    let mut chain = Vec::new();
    for cert in certificates {
        if certificate.is_none() && cert.public_key() == key {
            certificate = Some(cert);
        } else {
            chain.push(cert);
        }
    }
    (certificate, chain)
}

pub(super) fn private_from_der(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let (pkcs8, public_key) = match classify_der(der) {
        DerKind::Pkcs8 => pkcs8_key(file, der)?,
        DerKind::EncryptedPkcs8 => {
            let pkcs8 = decrypt_pkcs8(file, der, password)?;
            pkcs8_key(file, &pkcs8)?
        }
        DerKind::RsaPrivate => rsa_pkcs1_key(file, der)?,
        DerKind::EcPrivate => sec1_key(file, der)?,
        _ => return Err(unrecognized(file, der)),
    };
    Ok(PrivateKeyFile {
        pkcs8,
        public_key,
        certificate: None,
        chain: Vec::new(),
        kind: KeyFileKind::PrivateKey,
    })
}

pub(super) fn public_from_json(file: &str, bytes: &[u8]) -> Result<PublicKeyFile, KeyFileError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| KeyFileError::Unrecognized {
            file: file.to_string(),
            detail: format!("JSON that does not parse ({e})"),
        })?;
    let value = match value.get("keys").and_then(|k| k.as_array()) {
        Some(keys) if keys.len() == 1 => keys[0].clone(),
        Some(keys) => {
            return Err(KeyFileError::Unrecognized {
                file: file.to_string(),
                detail: format!(
                    "a JWK set with {} keys; give a file with the one key wanted",
                    keys.len()
                ),
            });
        }
        None => value,
    };
    if value.get("kty").is_none() {
        return Err(KeyFileError::Unrecognized {
            file: file.to_string(),
            detail: "a JSON object without `kty`".into(),
        });
    }
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| KeyFileError::Malformed {
        file: file.to_string(),
        what: "the JWK".into(),
        detail: e.to_string(),
    })?;
    let public_key = public_key_from_jwk(file, &jwk)?;
    // `x5c[0]` is the key's certificate (RFC 7517 section 4.7) when its key matches.
    let certificate = jwk
        .x5c
        .as_ref()
        .and_then(|chain| chain.first())
        .and_then(|b64| crate::b64::std_decode(b64))
        .and_then(|der| Certificate::from_der(file, &der).ok())
        .filter(|cert| *cert.public_key() == public_key);
    Ok(PublicKeyFile {
        public_key,
        certificate,
        kind: KeyFileKind::Jwk,
    })
}

/// Opens a PFX with `password`, or, without one, with the empty password many exports use.
fn open_pfx<T>(
    file: &str,
    password: Option<&str>,
    open: impl Fn(&str) -> Result<T, PfxError>,
) -> Result<T, KeyFileError> {
    let result = open(password.unwrap_or(""));
    result.map_err(|e| match e {
        PfxError::WrongPassword { .. } if password.is_none() => KeyFileError::NeedsPassword {
            file: file.to_string(),
        },
        PfxError::WrongPassword { .. } => KeyFileError::WrongPassword {
            file: file.to_string(),
        },
        PfxError::Cert(e) => KeyFileError::Cert(e),
        PfxError::Key { source, .. } => KeyFileError::UnsupportedKey {
            file: file.to_string(),
            detail: source.to_string(),
        },
        other => KeyFileError::Pfx(other),
    })
}

pub(super) fn public_from_pfx(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PublicKeyFile, KeyFileError> {
    let cert = open_pfx(file, password, |pw| match Pfx::from_bytes(file, der, pw) {
        Ok(pfx) => Ok(pfx.certificate),
        // A certificate-only PFX (published validation key).
        Err(PfxError::NoPrivateKey { .. }) => pfx_leaf(file, der, pw),
        Err(e) => Err(e),
    })?;
    Ok(PublicKeyFile {
        public_key: cert.public_key().clone(),
        certificate: Some(cert),
        kind: KeyFileKind::Pfx,
    })
}

/// The leaf certificate of a PFX without a key: the one that issued no other certificate in it.
fn pfx_leaf(file: &str, der: &[u8], password: &str) -> Result<Certificate, PfxError> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(der, password).map_err(|e| {
        PfxError::Malformed {
            file: file.to_string(),
            detail: e.to_string(),
        }
    })?;
    crate::pfx::leaf_certificate(file, &archive)
}

pub(super) fn private_from_pfx(
    file: &str,
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyFile, KeyFileError> {
    let pfx = open_pfx(file, password, |pw| Pfx::from_bytes(file, der, pw))?;
    let mut chain = Vec::new();
    for der in &pfx.chain {
        chain.push(Certificate::from_der(file, der)?);
    }
    Ok(PrivateKeyFile {
        public_key: pfx.certificate.public_key().clone(),
        certificate: Some(pfx.certificate),
        chain,
        pkcs8: pfx.key_pkcs8,
        kind: KeyFileKind::Pfx,
    })
}
