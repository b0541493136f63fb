//! PKCS#12 (PFX) files: the server's signing certificate, its TLS certificate, the agent's certificates.
//!
//! Read with `p12-keystore`'s [`Pkcs12Archive`], which keeps keys without a `localKeyID` (some Windows
//! exports) and reads OpenSSL 3 defaults (PBES2/AES-256, SHA-256 MAC) as well as `-legacy` files
//! (RC2/3DES, SHA-1 MAC). The private key is matched to its certificate by public key, not by `localKeyID`.

use std::path::Path;

use p12_keystore::Pkcs12Archive;
use zeroize::Zeroizing;

use crate::cert::{CertError, Certificate, Validity, format_time};
use crate::keys::{KeyError, SigningKey};

/// Why a PFX file could not be used. Messages name the file, never the password.
#[derive(Debug, thiserror::Error)]
pub enum PfxError {
    #[error("{file}: cannot read the file: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file}: wrong password for the PFX file (its integrity check failed), check the password setting"
    )]
    WrongPassword { file: String },
    #[error("{file}: cannot decrypt the PFX file: wrong password or damaged file ({detail})")]
    Decrypt { file: String, detail: String },
    #[error("{file}: not a PKCS#12/PFX file ({detail})")]
    Malformed { file: String, detail: String },
    #[error(
        "{file}: the PFX file holds no private key; a certificate with its private key is required here"
    )]
    NoPrivateKey { file: String },
    #[error("{file}: the PFX file holds no certificate")]
    NoCertificate { file: String },
    #[error("{file}: no certificate in the PFX file matches its private key")]
    KeyMismatch { file: String },
    #[error("{file}: {source}")]
    Key { file: String, source: KeyError },
    #[error(transparent)]
    Cert(#[from] CertError),
    /// A PEM file given where a PFX is expected (certificate and key in one file): its problem.
    #[error(transparent)]
    KeyFile(Box<crate::keyfile::KeyFileError>),
    #[error(
        "{file}: the PEM file holds a private key but not its certificate; put the CERTIFICATE block in the same file (cat cert.pem key.pem > {file})"
    )]
    PemWithoutCertificate { file: String },
    /// The certificate's `notAfter` (Unix seconds) is before `time`, the instant it was checked at.
    #[error("{file}: certificate `{subject}` expired on {}", format_time(*not_after))]
    Expired {
        file: String,
        subject: String,
        time: i64,
        not_after: i64,
    },
    /// The certificate's `notBefore` (Unix seconds) is after `time`, the instant it was checked at.
    #[error("{file}: certificate `{subject}` is not valid before {}", format_time(*not_before))]
    NotYetValid {
        file: String,
        subject: String,
        time: i64,
        not_before: i64,
    },
}

/// A certificate with its private key and the rest of the chain found in the file.
/// `Debug` leaves the private key out (its length only): a `{:?}` of anything holding a `Pfx` must not
/// print key material.
pub struct Pfx {
    pub file: String,
    pub certificate: Certificate,
    /// The other certificates in the file (intermediates, CA) as DER, leaf excluded. They are not
    /// parsed for their key type: a P-384 intermediate or an old root must not make the file unusable.
    pub chain: Vec<Vec<u8>>,
    pub key: SigningKey,
    /// The private key as PKCS#8 DER, kept for TLS configuration; wiped on drop.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Pfx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pfx")
            .field("file", &self.file)
            .field("certificate", &self.certificate)
            .field("chain_len", &self.chain.len())
            .field("key", &self.key)
            .field(
                "key_pkcs8",
                &format_args!("<redacted, {} bytes>", self.key_pkcs8.len()),
            )
            .finish()
    }
}

impl Pfx {
    /// Reads and decrypts a PFX file.
    pub fn from_file(path: &Path, password: &str) -> Result<Self, PfxError> {
        let (file, bytes) = read(path)?;
        Self::from_bytes(&file, &bytes, password)
    }

    /// Decrypts PFX bytes; `file` names them in errors. PEM text with a CERTIFICATE and its private
    /// key (`PRIVATE KEY`, `ENCRYPTED PRIVATE KEY` with `password`, `RSA PRIVATE KEY`, `EC PRIVATE
    /// KEY`) is read as well, what `openssl req -x509 -newkey ... -keyout` makes once concatenated.
    pub fn from_bytes(file: &str, bytes: &[u8], password: &str) -> Result<Self, PfxError> {
        if bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'-')
        {
            return Self::from_pem(file, bytes, password);
        }
        let archive = open_archive(file, bytes, password)?;
        let key_bag = archive.keys.first().ok_or_else(|| PfxError::NoPrivateKey {
            file: file.to_string(),
        })?;
        if archive.certs.is_empty() {
            return Err(PfxError::NoCertificate {
                file: file.to_string(),
            });
        }
        let key_pkcs8 = Zeroizing::new(key_bag.key.as_der().to_vec());
        let key = match SigningKey::from_pkcs8(&key_pkcs8) {
            Ok(key) => key,
            Err(source) => {
                // A key refused as too small: its certificate tells how small.
                let weak = archive.certs.iter().find_map(|bag| {
                    match Certificate::from_der(file, bag.cert.as_der()) {
                        Err(e @ CertError::WeakRsa { .. }) => Some(e),
                        _ => None,
                    }
                });
                return Err(match weak {
                    Some(e) => e.into(),
                    None => PfxError::Key {
                        file: file.to_string(),
                        source,
                    },
                });
            }
        };
        let mut leaf = None;
        let mut chain = Vec::new();
        let mut leaf_error = None;
        for bag in &archive.certs {
            let der = bag.cert.as_der();
            match Certificate::from_der(file, der) {
                Ok(cert) if leaf.is_none() && key.matches(&cert) => leaf = Some(cert),
                Ok(_) => chain.push(der.to_vec()),
                Err(e) => {
                    leaf_error.get_or_insert(e);
                    chain.push(der.to_vec());
                }
            }
        }
        let certificate = match (leaf, leaf_error) {
            (Some(cert), _) => cert,
            // The key is usable, so its certificate parsed badly: say why.
            (None, Some(e)) => return Err(e.into()),
            (None, None) => {
                return Err(PfxError::KeyMismatch {
                    file: file.to_string(),
                });
            }
        };
        Ok(Pfx {
            file: file.to_string(),
            certificate,
            chain,
            key,
            key_pkcs8,
        })
    }

    fn from_pem(file: &str, bytes: &[u8], password: &str) -> Result<Self, PfxError> {
        let password = (!password.is_empty()).then_some(password);
        let parsed = crate::keyfile::parse_private(file, bytes, password)
            .map_err(|e| PfxError::KeyFile(Box::new(e)))?;
        let certificate = parsed
            .certificate
            .ok_or_else(|| PfxError::PemWithoutCertificate {
                file: file.to_string(),
            })?;
        let key = SigningKey::from_pkcs8(&parsed.pkcs8).map_err(|source| PfxError::Key {
            file: file.to_string(),
            source,
        })?;
        Ok(Pfx {
            file: file.to_string(),
            certificate,
            chain: parsed.chain.iter().map(|c| c.der().to_vec()).collect(),
            key,
            key_pkcs8: parsed.pkcs8,
        })
    }

    /// Refuses a certificate outside its validity window at `now` (Unix seconds).
    pub fn check_validity(&self, now: i64) -> Result<(), PfxError> {
        check_validity(&self.file, &self.certificate, now)
    }
}

/// Refuses a certificate outside its validity window at `now` (Unix seconds).
pub fn check_validity(file: &str, cert: &Certificate, now: i64) -> Result<(), PfxError> {
    match cert.validity_at(now) {
        Validity::Valid => Ok(()),
        Validity::Expired => Err(PfxError::Expired {
            file: file.to_string(),
            subject: cert.subject().to_string(),
            time: now,
            not_after: cert.not_after(),
        }),
        Validity::NotYetValid => Err(PfxError::NotYetValid {
            file: file.to_string(),
            subject: cert.subject().to_string(),
            time: now,
            not_before: cert.not_before(),
        }),
    }
}

/// Reads the leaf certificate of a PFX file that may have no private key (a published validation key):
/// the certificate that issued no other certificate in the file. Intermediates and roots are not parsed
/// for their key type; the leaf must be usable.
pub fn leaf_certificate_from_file(path: &Path, password: &str) -> Result<Certificate, PfxError> {
    let (file, bytes) = read(path)?;
    let archive = open_archive(&file, &bytes, password)?;
    leaf_certificate(&file, &archive)
}

/// The leaf certificate of an opened PFX (`file` names it in errors): the certificate that issued no
/// other certificate in it, else the first.
pub(crate) fn leaf_certificate(
    file: &str,
    archive: &Pkcs12Archive,
) -> Result<Certificate, PfxError> {
    let bags = &archive.certs;
    let leaf = bags
        .iter()
        .find(|b| {
            !bags.iter().any(|other| {
                other.cert.issuer() == b.cert.subject() && other.cert.subject() != b.cert.subject()
            })
        })
        .or(bags.first())
        .ok_or_else(|| PfxError::NoCertificate {
            file: file.to_string(),
        })?;
    Ok(Certificate::from_der(file, leaf.cert.as_der())?)
}

/// True when `bytes` look like a PKCS#12 file rather than a PEM/DER certificate.
pub fn looks_like_pfx(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"))
}

/// A certificate file named by a setting, with its password (`X509KeyFilePath` + `X509KeyFilePassword`,
/// `EncryptionCertificate:File` + `Password`, ...).
#[derive(Clone, Debug)]
pub struct CertificateFile {
    pub path: std::path::PathBuf,
    pub password: ids_proto::Password,
    /// The setting that named the file, for messages.
    pub setting: String,
}

impl CertificateFile {
    /// The file at `path`, protected by `password`, named by the setting `setting`.
    pub fn new(path: std::path::PathBuf, password: String, setting: &str) -> Self {
        CertificateFile {
            path,
            password: ids_proto::Password::new(password),
            setting: setting.to_string(),
        }
    }

    /// Opens the PFX with its private key.
    pub fn open(&self) -> Result<Pfx, PfxError> {
        Pfx::from_file(&self.path, self.password.expose())
    }
}

/// Why [`public_certificate_from_file`] found no certificate.
#[derive(Debug, thiserror::Error)]
pub enum PublicCertificateError {
    /// Not a PFX by name, and not a PEM/DER certificate (nor a PFX under another name).
    #[error(transparent)]
    Cert(#[from] CertError),
    /// A PEM file given where a PFX is expected (certificate and key in one file): its problem.
    #[error(transparent)]
    KeyFile(Box<crate::keyfile::KeyFileError>),
    #[error(
        "{file}: the PEM file holds a private key but not its certificate; put the CERTIFICATE block in the same file (cat cert.pem key.pem > {file})"
    )]
    PemWithoutCertificate { file: String },
    /// A PFX that opened neither without a password nor with the one of `password_setting`.
    #[error("{without} (tried without a password); with {password_setting}: {with}")]
    Pfx {
        without: Box<PfxError>,
        with: Box<PfxError>,
        password_setting: String,
    },
}

/// A public certificate for verification: PEM/DER, or a PFX (with or without a private key) opened with
/// an empty password, then with `password` (named by `password_setting` in the message).
pub fn public_certificate_from_file(
    path: &Path,
    password: &str,
    password_setting: &str,
) -> Result<Certificate, PublicCertificateError> {
    if !looks_like_pfx(path) {
        match Certificate::from_file(path) {
            Ok(cert) => return Ok(cert),
            // A PFX under another name (`server.cer`, no extension): try it as one before giving up.
            Err(e @ CertError::Parse { .. }) => {
                if leaf_certificate_from_file(path, "").is_err()
                    && leaf_certificate_from_file(path, password).is_err()
                {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    match leaf_certificate_from_file(path, "") {
        Ok(cert) => Ok(cert),
        Err(without) => {
            leaf_certificate_from_file(path, password).map_err(|with| PublicCertificateError::Pfx {
                without: Box::new(without),
                with: Box::new(with),
                password_setting: password_setting.to_string(),
            })
        }
    }
}

/// The file's name for messages, and its bytes.
fn read(path: &Path) -> Result<(String, Vec<u8>), PfxError> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => Ok((file, bytes)),
        Err(source) => Err(PfxError::Io { file, source }),
    }
}

fn open_archive(file: &str, bytes: &[u8], password: &str) -> Result<Pkcs12Archive, PfxError> {
    use p12_keystore::error::Error as E;
    Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
        E::MacError(_) => PfxError::WrongPassword {
            file: file.to_string(),
        },
        E::UnpadError | E::Pkcs5Error(_) | E::InvalidPrivateKey => PfxError::Decrypt {
            file: file.to_string(),
            detail: e.to_string(),
        },
        other => PfxError::Malformed {
            file: file.to_string(),
            detail: other.to_string(),
        },
    })
}
