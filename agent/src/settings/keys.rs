//! The agent's key material, read from the files the settings name: the server certificates tokens
//! are verified with, the certificates HTTPS trusts, the agent's own key (`ClientCertificate`) and
//! client secret files. Everything here opens a file; the rest of [`crate::settings`] only validates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ids_config::appsettings::{aliased, take};
use ids_config::keys::flag;
use ids_config::{Config, ConfigError, Setting, invalid};
use ids_pki::Certificate;
use ids_pki::cert::{TrustedCertificate, Validity, format_time, trusted_certificates_from_file};
use ids_pki::pfx;
use ids_proto::ClientSecret;

use super::schema as key;

/// How the agent checks the signature of the tokens it receives.
#[derive(Debug, Clone)]
pub enum TokenValidation {
    /// Offline pinning: the server's certificate(s) from `IdentityServer:X509KeyFilePath` and
    /// `IdentityServer:ValidationKeys`, loaded at start-up.
    Pinned(Vec<PinnedCertificate>),
    /// The JWKS the server publishes (`jwks_uri` of discovery), re-fetched when a token names an unknown
    /// `kid`, at most once per `refresh_interval`.
    Jwks { refresh_interval: Duration },
}

/// A server certificate the agent verifies tokens with.
#[derive(Debug, Clone)]
pub struct PinnedCertificate {
    pub certificate: Certificate,
    /// The setting and file it came from, for messages.
    pub origin: String,
}

/// What the agent trusts for HTTPS.
#[derive(Debug, Clone)]
pub enum TlsTrust {
    /// The operating system's trust store.
    System,
    /// Only these: CA certificates anchor chains; other certificates are pinned as they are.
    Only {
        certificates: Vec<TrustedCertificate>,
        files: Vec<PathBuf>,
    },
}

/// `ClientCertificate`: the agent's own key (and certificate), for `private_key_jwt` and mutual TLS.
#[derive(Clone)]
pub struct ClientKey {
    /// Signs client assertions.
    pub signer: std::sync::Arc<ids_jose::AssertionSigner>,
    /// PKCS#8 DER of the key, for the TLS client identity.
    pub pkcs8: std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>,
    /// The certificate (leaf first, then its chain) presented in TLS handshakes; none for a bare key.
    pub certificates: Vec<Certificate>,
    /// RFC 7638 thumbprint of the public key.
    pub thumbprint: String,
    /// The file, for messages.
    pub file: PathBuf,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("thumbprint", &self.thumbprint)
            .field("file", &self.file)
            .field("certificates", &self.certificates.len())
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// `x5t#S256` of the certificate presented in TLS handshakes.
    pub fn certificate_thumbprint(&self) -> Option<String> {
        self.certificates.first().map(Certificate::x5t_s256)
    }
}

/// `IdentityServer:TokenValidation` (`Certificate` by default, or `Jwks`) and the pinned certificates.
pub(super) fn token_validation(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<TokenValidation> {
    let mode = config.get(key::TOKEN_VALIDATION.path);
    let jwks = match mode.map(|s| s.value.trim().to_ascii_lowercase()) {
        None => false,
        Some(m) if m.is_empty() || m == "certificate" => false,
        Some(m) if m == "jwks" => true,
        Some(_) => {
            if let Some(s) = mode {
                errors.push(invalid(
                    s,
                    "expected `Certificate` (verify tokens with the configured server certificate) or `Jwks` (with the keys the server publishes)",
                ));
            }
            return None;
        }
    };
    let danger_expired = flag(config, &key::DANGER_ACCEPT_EXPIRED, errors);
    let password = config
        .string(key::SERVER_CERTIFICATE_PASSWORD.path)
        .unwrap_or_default();
    let main = aliased(
        config,
        "IdentityServer:X509KeyFilePath",
        "IdentityServer:X509File",
        errors,
    );
    if jwks {
        let refresh = take(errors, config.number(&key::JWKS_REFRESH))?;
        if let Some(s) = main {
            warnings.push(format!(
                "{} (in {}) is not used: IdentityServer:TokenValidation is Jwks, so tokens are verified with the keys the server publishes",
                s.path, s.origin
            ));
        }
        return Some(TokenValidation::Jwks {
            refresh_interval: Duration::from_secs(refresh),
        });
    }
    let Some(main) = main else {
        errors.push(ConfigError::Missing {
            path: "IdentityServer:X509KeyFilePath".into(),
            message: "the server's public certificate (PEM, DER, or a PFX without private key) that tokens are verified with; or set IdentityServer:TokenValidation to Jwks".into(),
        });
        return None;
    };
    let mut pinned = Vec::new();
    let mut load = |setting: &Setting, primary: bool| {
        let path = config.resolve(setting.value.trim());
        let origin = format!("{} ({})", setting.path, path.display());
        match pfx::public_certificate_from_file(
            &path,
            &password,
            "IdentityServer:X509KeyFilePassword",
        ) {
            Ok(certificate) => {
                match certificate.validity_at(now) {
                    Validity::Valid => {}
                    Validity::Expired if primary && !danger_expired => {
                        errors.push(invalid(setting, &format!(
                            "the certificate `{}` expired on {}; install the server's current certificate (or set IdentityServer:DangerAcceptExpiredCertificate to true)",
                            certificate.subject(),
                            format_time(certificate.not_after())
                        )));
                        return;
                    }
                    Validity::Expired => warnings.push(format!(
                        "{origin}: the certificate `{}` expired on {}",
                        certificate.subject(),
                        format_time(certificate.not_after())
                    )),
                    Validity::NotYetValid => warnings.push(format!(
                        "{origin}: the certificate `{}` is not valid before {}",
                        certificate.subject(),
                        format_time(certificate.not_before())
                    )),
                }
                if pfx::looks_like_pfx(&path) && pfx::Pfx::from_file(&path, &password).is_ok() {
                    warnings.push(format!(
                        "{origin} holds the server's PRIVATE key; the agent needs only the certificate: export it with `openssl pkcs12 -in {} -nokeys -out server.crt` and keep the PFX on the server",
                        path.display()
                    ));
                }
                pinned.push(PinnedCertificate {
                    certificate,
                    origin,
                });
            }
            Err(e) => errors.push(invalid(setting, &e.to_string())),
        }
    };
    load(main, true);
    for s in config.list(key::VALIDATION_KEYS.path) {
        load(&s, false);
    }
    Some(TokenValidation::Pinned(pinned))
}

/// `Tls:TrustedCertificates`: CA or server certificates (PEM bundles or DER); the system store if unset.
pub(super) fn tls_trust(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> TlsTrust {
    let list = config.list(key::TRUSTED_CERTIFICATES.path);
    if list.is_empty() {
        return TlsTrust::System;
    }
    let mut certificates = Vec::new();
    let mut files = Vec::new();
    for s in list {
        let path = config.resolve(s.value.trim());
        match trusted_certificates_from_file(&path) {
            Ok(found) => {
                for c in &found {
                    if c.not_after < now {
                        warnings.push(format!(
                            "{} ({}): the certificate `{}` expired on {}; HTTPS connections that rely on it will fail",
                            s.path,
                            path.display(),
                            c.subject,
                            format_time(c.not_after)
                        ));
                    }
                }
                certificates.extend(found);
                files.push(path);
            }
            Err(e) => errors.push(invalid(&s, &e.to_string())),
        }
    }
    TlsTrust::Only {
        certificates,
        files,
    }
}

/// The `OpenId` section: clients and their secrets, the default client, the agent identifier.
/// `ClientCertificate:File` (a PFX, or a PEM private key with or without its certificate),
/// `ClientCertificate:Password` (the PFX password or the PEM passphrase) and
/// `ClientCertificate:CertificateFile` (the certificate, when the key file has none).
pub(super) fn client_key(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<ClientKey> {
    let setting = config
        .get(key::CLIENT_KEY_FILE.path)
        .filter(|s| !s.value.trim().is_empty())?;
    let path = config.resolve(setting.value.trim());
    let password = config.string(key::CLIENT_KEY_PASSWORD.path);
    let file = match ids_pki::keyfile::read_private(&path, password.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            errors.push(invalid(setting, &e.to_string()));
            return None;
        }
    };
    let mut certificates: Vec<Certificate> = file.certificate.into_iter().collect();
    if let Some(cert_setting) = config
        .get(key::CLIENT_KEY_CERTIFICATE.path)
        .filter(|s| !s.value.trim().is_empty())
    {
        let cert_path = config.resolve(cert_setting.value.trim());
        match ids_pki::keyfile::read_public(&cert_path, None) {
            Ok(found) => match found.certificate {
                Some(cert) if cert.public_key() == &file.public_key => {
                    certificates = vec![cert];
                }
                Some(cert) => {
                    errors.push(invalid(
                        cert_setting,
                        &format!(
                            "the certificate `{}` is not the certificate of the key in ClientCertificate:File ({})",
                            cert.subject(),
                            path.display()
                        ),
                    ));
                    return None;
                }
                None => {
                    errors.push(invalid(
                        cert_setting,
                        &format!("{} holds no certificate", cert_path.display()),
                    ));
                    return None;
                }
            },
            Err(e) => {
                errors.push(invalid(cert_setting, &e.to_string()));
                return None;
            }
        }
    }
    if let Some(leaf) = certificates.first() {
        match leaf.validity_at(now) {
            Validity::Valid => {}
            Validity::Expired => {
                errors.push(invalid(
                    setting,
                    &format!(
                        "the client certificate `{}` expired on {}; renew it (ids-keytool client / keygen --force)",
                        leaf.subject(),
                        format_time(leaf.not_after())
                    ),
                ));
                return None;
            }
            Validity::NotYetValid => warnings.push(format!(
                "ClientCertificate:File ({}): the certificate `{}` is not valid before {}",
                path.display(),
                leaf.subject(),
                format_time(leaf.not_before())
            )),
        }
        certificates.extend(file.chain.iter().cloned());
    }
    let key = match ids_pki::SigningKey::from_pkcs8(&file.pkcs8) {
        Ok(k) => k,
        Err(e) => {
            errors.push(invalid(setting, &format!("{}: {e}", path.display())));
            return None;
        }
    };
    let signer = match certificates.first() {
        Some(cert) => ids_jose::AssertionSigner::with_certificate(key, cert),
        None => ids_jose::AssertionSigner::new(key, &file.public_key),
    };
    Some(ClientKey {
        thumbprint: signer.thumbprint().to_string(),
        signer: std::sync::Arc::new(signer),
        pkcs8: std::sync::Arc::new(file.pkcs8),
        certificates,
        file: path,
    })
}

/// Why a client secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read the secret file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret file {} is empty", .path.display())]
    Empty { path: PathBuf },
}

/// Reads a secret file: the whole content without the final line break. A file others can read earns
/// a warning, as ssh gives for private keys.
pub(super) fn read_secret_file(
    path: &Path,
) -> Result<(ClientSecret, Option<String>), SecretFileError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        SecretFileError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?);
    let secret = text.strip_suffix('\n').unwrap_or(text.as_str());
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            warning = Some(format!(
                "the secret file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            ));
        }
    }
    Ok((ClientSecret::new(secret.to_string()), warning))
}
