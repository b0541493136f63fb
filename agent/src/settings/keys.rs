//! The agent's key material, read from the files the settings name: the server certificates tokens
//! are verified with, the certificates HTTPS trusts, the agent's own key (`ClientCertificate`) and
//! client secret files. The settings hold where they are ([`TokenValidation`], [`TlsTrust`],
//! [`ClientKeyFiles`], [`ClientAuth::SecretFile`](super::ClientAuth::SecretFile)); [`AgentKeys`] holds
//! what was read. Everything that opens a file is here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ids_config::appsettings::{aliased, take};
use ids_config::keys::flag;
use ids_config::{Config, ConfigError, Setting, invalid};
use ids_pki::Certificate;
use ids_pki::cert::{TrustedCertificate, Validity, format_time, trusted_certificates_from_file};
use ids_pki::pfx;
use ids_proto::{ClientId, ClientSecret, Password};

use super::schema as key;
use super::{ClientAuth, ClientCredentials, Settings};

/// The key material the settings name, read from their files ([`AgentKeys::load`]).
#[derive(Debug, Clone, Default)]
pub struct AgentKeys {
    /// The server certificates tokens are verified with (`TokenValidation` `Certificate`).
    pub pinned: Vec<PinnedCertificate>,
    /// The certificates of `Tls:TrustedCertificates`.
    pub trusted: Vec<TrustedCertificate>,
    /// `ClientCertificate`: the agent's key for `private_key_jwt` and mutual TLS.
    pub client_key: Option<ClientKey>,
    /// The secrets of `OpenId:OpenIdClientSecretFiles`.
    pub secrets: Vec<(ClientId, ClientSecret)>,
}

/// Keys plus what deserves a warning.
#[derive(Debug)]
pub struct LoadedKeys {
    pub keys: AgentKeys,
    pub warnings: Vec<String>,
}

impl AgentKeys {
    /// Reads the files `settings` name, checking certificates at `now` (Unix seconds): the same
    /// errors and warnings, in the same order, as [`Settings::load`] gives for them.
    pub fn load(settings: &Settings, now: i64) -> Result<LoadedKeys, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut keys = AgentKeys::default();
        if let TokenValidation::Pinned(files) = &settings.token_validation {
            keys.pinned = load_pinned(files, now, &mut errors, &mut warnings);
        }
        if let TlsTrust::Only { files } = &settings.tls {
            keys.trusted = load_trusted(files, now, &mut errors, &mut warnings);
        }
        if let Some(files) = &settings.client_key {
            keys.client_key = load_client_key(files, now, &mut errors, &mut warnings);
        }
        for c in &settings.clients {
            if let ClientAuth::SecretFile { setting, path } = &c.auth {
                match read_secret_file(path) {
                    Ok((secret, warning)) => {
                        warnings.extend(warning);
                        keys.secrets.push((c.client_id.clone(), secret));
                    }
                    Err(e) => errors.push(invalid(setting, &e.to_string())),
                }
            }
        }
        if errors.is_empty() {
            Ok(LoadedKeys { keys, warnings })
        } else {
            Err(errors)
        }
    }

    /// The secret `client` authenticates with: from the settings, or read from its file.
    pub fn secret<'a>(&'a self, client: &'a ClientCredentials) -> Option<&'a ClientSecret> {
        match &client.auth {
            ClientAuth::Secret(secret) => Some(secret),
            ClientAuth::SecretFile { .. } => self
                .secrets
                .iter()
                .find(|(id, _)| *id == client.client_id)
                .map(|(_, secret)| secret),
            ClientAuth::PrivateKeyJwt | ClientAuth::TlsClientAuth => None,
        }
    }
}

/// How the agent checks the signature of the tokens it receives.
#[derive(Debug, Clone)]
pub enum TokenValidation {
    /// Offline pinning: the server's certificate(s) from `IdentityServer:X509KeyFilePath` and
    /// `IdentityServer:ValidationKeys`, loaded at start-up into [`AgentKeys::pinned`].
    Pinned(ServerCertificateFiles),
    /// The JWKS the server publishes (`jwks_uri` of discovery), re-fetched when a token names an unknown
    /// `kid`, at most once per `refresh_interval`.
    Jwks { refresh_interval: Duration },
}

/// Where the server certificates tokens are verified with are.
#[derive(Debug, Clone)]
pub struct ServerCertificateFiles {
    /// `IdentityServer:X509KeyFilePath` (which must be valid now), then `IdentityServer:ValidationKeys`.
    pub files: Vec<Setting>,
    /// Resolved paths, in the order of `files`.
    pub paths: Vec<PathBuf>,
    /// `IdentityServer:X509KeyFilePassword`, for a PFX.
    pub password: Password,
    /// `IdentityServer:DangerAcceptExpiredCertificate`.
    pub danger_accept_expired: bool,
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
    /// Only these ([`AgentKeys::trusted`]): CA certificates anchor chains; other certificates are
    /// pinned as they are.
    Only { files: Vec<TrustedFile> },
}

/// One `Tls:TrustedCertificates` entry.
#[derive(Debug, Clone)]
pub struct TrustedFile {
    pub setting: Setting,
    pub path: PathBuf,
}

/// Where `ClientCertificate` is: the key file, its password, and the certificate file when the key
/// file has none.
#[derive(Debug, Clone)]
pub struct ClientKeyFiles {
    pub setting: Setting,
    pub path: PathBuf,
    pub password: Option<Password>,
    /// `ClientCertificate:CertificateFile` and its resolved path.
    pub certificate: Option<(Setting, PathBuf)>,
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
    let mut files = vec![main.clone()];
    files.extend(config.list(key::VALIDATION_KEYS.path));
    let paths = files
        .iter()
        .map(|s| config.resolve(s.value.trim()))
        .collect();
    Some(TokenValidation::Pinned(ServerCertificateFiles {
        files,
        paths,
        password: Password::new(password),
        danger_accept_expired: danger_expired,
    }))
}

/// The certificates of `files`, checked at `now`.
pub(super) fn load_pinned(
    files: &ServerCertificateFiles,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<PinnedCertificate> {
    let password = files.password.expose();
    let danger_expired = files.danger_accept_expired;
    let mut pinned = Vec::new();
    let mut load = |setting: &Setting, path: &Path, primary: bool| {
        let origin = format!("{} ({})", setting.path, path.display());
        match pfx::public_certificate_from_file(
            path,
            password,
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
                if pfx::looks_like_pfx(path) && pfx::Pfx::from_file(path, password).is_ok() {
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
    for (index, (setting, path)) in files.files.iter().zip(&files.paths).enumerate() {
        load(setting, path, index == 0);
    }
    pinned
}

/// `Tls:TrustedCertificates`: CA or server certificates (PEM bundles or DER); the system store if unset.
pub(super) fn tls_trust(config: &Config) -> TlsTrust {
    let list = config.list(key::TRUSTED_CERTIFICATES.path);
    if list.is_empty() {
        return TlsTrust::System;
    }
    let files = list
        .into_iter()
        .map(|setting| TrustedFile {
            path: config.resolve(setting.value.trim()),
            setting,
        })
        .collect();
    TlsTrust::Only { files }
}

/// The certificates of `Tls:TrustedCertificates`, checked at `now`.
pub(super) fn load_trusted(
    files: &[TrustedFile],
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<TrustedCertificate> {
    let mut certificates = Vec::new();
    for TrustedFile { setting: s, path } in files {
        match trusted_certificates_from_file(path) {
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
            }
            Err(e) => errors.push(invalid(s, &e.to_string())),
        }
    }
    certificates
}

/// The `OpenId` section: clients and their secrets, the default client, the agent identifier.
/// `ClientCertificate:File` (a PFX, or a PEM private key with or without its certificate),
/// `ClientCertificate:Password` (the PFX password or the PEM passphrase) and
/// `ClientCertificate:CertificateFile` (the certificate, when the key file has none).
pub(super) fn client_key(config: &Config) -> Option<ClientKeyFiles> {
    let setting = config
        .get(key::CLIENT_KEY_FILE.path)
        .filter(|s| !s.value.trim().is_empty())?;
    let certificate = config
        .get(key::CLIENT_KEY_CERTIFICATE.path)
        .filter(|s| !s.value.trim().is_empty())
        .map(|s| (s.clone(), config.resolve(s.value.trim())));
    Some(ClientKeyFiles {
        setting: setting.clone(),
        path: config.resolve(setting.value.trim()),
        password: config
            .string(key::CLIENT_KEY_PASSWORD.path)
            .map(Password::new),
        certificate,
    })
}

/// The agent's key (and certificate) from `files`, checked at `now`.
pub(super) fn load_client_key(
    files: &ClientKeyFiles,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<ClientKey> {
    let setting = &files.setting;
    let path = files.path.clone();
    let password = files.password.as_ref().map(Password::expose);
    let file = match ids_pki::keyfile::read_private(&path, password) {
        Ok(f) => f,
        Err(e) => {
            errors.push(invalid(setting, &e.to_string()));
            return None;
        }
    };
    let mut certificates: Vec<Certificate> = file.certificate.into_iter().collect();
    if let Some((cert_setting, cert_path)) = &files.certificate {
        match ids_pki::keyfile::read_public(cert_path, None) {
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
