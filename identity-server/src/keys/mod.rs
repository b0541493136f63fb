//! The server's certificates: the token-signing key, the keys published for verification (JWKS), the
//! discovery document and the TLS configuration.
//!
//! The third stage of the settings pipeline ([`crate::settings`]): [`ServerKeys::load`] and
//! [`EncryptionKeys::load`] read the files the validated [`Settings`] name. Problems are [`KeyError`]s,
//! rendered to text by the caller.

pub mod in_force;
pub mod managed;

use std::path::PathBuf;

use std::sync::Arc;

use ids_jose::TokenSigner;
use ids_pki::cert::{Validity, format_time};
use ids_pki::pfx;
use ids_pki::{Algorithm, Certificate, Jwk, Pfx};
use ids_proto::discovery::ProviderMetadata;
use ids_proto::paths;
use ids_seal::encrypted_file::{DecryptionKey, Recipient};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::deliveries::DeliveriesOff;
use crate::settings::{CertificateFile, Settings};
pub use in_force::{InForce, PublishContext, Published, Signing};

/// Why the server's key material could not be loaded. Messages name the setting and the file, never
/// a password.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A certificate file could not be opened, or its certificate is not valid now.
    #[error("{setting}: {source}")]
    Certificate {
        setting: String,
        #[source]
        source: Box<ids_pki::pfx::PfxError>,
    },
    /// The signing certificate is expired or not yet valid.
    #[error("{setting} ({}): {source}; renew it, or set IdentityServer:DangerAcceptExpiredCertificate to true to start anyway", .path.display())]
    SigningValidity {
        setting: String,
        path: PathBuf,
        #[source]
        source: Box<ids_pki::pfx::PfxError>,
    },
    #[error("IdentityServer:ValidationKeys: {reason}")]
    ValidationKey { reason: String },
    #[error("IdentityServer:ClientCertificateAuthorities: {source}")]
    Authority {
        #[source]
        source: Box<ids_pki::cert::CertError>,
    },
    #[error("IdentityServer:ClientCertificateAuthorities ({}): no certificate in the file", .path.display())]
    NoAuthority { path: PathBuf },
    #[error("IdentityServer:ClientCertificateAuthorities ({}): `{subject}` is an X.509 v{version} certificate: it has no basicConstraints, so it cannot be a CA; make the CA with `ids-keytool ca` (or `openssl req -x509 -new`, which writes a v3 CA certificate)", .path.display())]
    AuthorityNotV3 {
        path: PathBuf,
        subject: String,
        version: u32,
    },
    #[error("IdentityServer:ClientCertificateAuthorities ({}): the CA `{subject}` expired on {}", .path.display(), format_time(*.not_after))]
    AuthorityExpired {
        path: PathBuf,
        subject: String,
        not_after: i64,
    },
    /// `IdentityServer:SigningAlgorithm` does not fit the signing key.
    #[error("IdentityServer:SigningAlgorithm: {source} (in {})", .path.display())]
    SigningAlgorithm {
        path: PathBuf,
        #[source]
        source: ids_pki::keys::KeyError,
    },
    #[error("TLS: {0}")]
    TlsProtocols(rustls::Error),
    #[error("{setting} ({}): unusable for TLS: {source}", .path.display())]
    TlsUnusable {
        setting: String,
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{setting} ({}): cannot encrypt deliveries with this certificate: {source}", .path.display())]
    Encryption {
        setting: String,
        path: PathBuf,
        #[source]
        source: Box<ids_seal::encrypted_file::FileError>,
    },
}

/// The server's loaded key material: the third stage of the settings pipeline.
#[derive(Debug)]
pub struct ServerKeys {
    /// The signing key of `IdentityServer:X509KeyFilePath`; `None` with `KeyManagement Automatic`
    /// until the key manager opened its key (`crate::serve`).
    pub signing: Option<std::sync::Arc<Signing>>,
    /// `IdentityServer:ValidationKeys` certificates (published, never used to sign).
    pub validation: Vec<Certificate>,
    /// TLS configuration, built at load time so that `check` finds TLS problems too.
    pub tls: Arc<rustls::ServerConfig>,
    /// `IdentityServer:ClientCertificateAuthorities`: CAs whose client certificates `tls_client_auth`
    /// accepts.
    pub client_authorities: Vec<Certificate>,
    /// The TLS certificate (leaf), for expiry warnings.
    pub tls_certificate: Certificate,
}

impl ServerKeys {
    /// Loads the signing PFX and the validation certificates; every problem is reported.
    pub fn load(
        settings: &Settings,
        now: i64,
        warnings: &mut Vec<String>,
    ) -> Result<ServerKeys, Vec<KeyError>> {
        let mut errors = Vec::new();
        let managed = is_managed(settings);
        // With managed keys the PFX signs nothing (it may serve TLS: loaded there).
        let loaded = (!managed).then(|| load_signing(settings, now, warnings));
        let signing = match loaded {
            None => None,
            Some(Ok(pfx)) => Some(pfx),
            Some(Err((pfx, e))) => {
                errors.push(e);
                pfx.map(|p| *p)
            }
        };
        let validation = load_validation(settings, now, warnings).unwrap_or_else(|es| {
            errors.extend(es);
            Vec::new()
        });
        let client_authorities =
            load_client_authorities(settings, now, warnings).unwrap_or_else(|es| {
                errors.extend(es);
                Vec::new()
            });
        let tls = match load_tls(
            settings,
            signing.as_ref(),
            &client_authorities,
            now,
            warnings,
        ) {
            Ok(t) => Some(t),
            Err(es) => {
                errors.extend(es);
                None
            }
        };
        let signing = match signing {
            Some(pfx) => {
                let nonce_key = crate::oauth::dpop::NonceKey::derive(&pfx.key_pkcs8);
                match signer(settings, pfx.key, &pfx.certificate) {
                    Ok(signer) => Some(Arc::new(Signing {
                        signer,
                        certificate: pfx.certificate,
                        nonce_key,
                    })),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
            None => None,
        };
        match (signing, tls) {
            (signing, Some((tls, tls_certificate)))
                if errors.is_empty() && (signing.is_some() || managed) =>
            {
                Ok(ServerKeys {
                    tls_certificate,
                    signing,
                    validation,
                    tls: Arc::new(tls),
                    client_authorities,
                })
            }
            _ => Err(errors),
        }
    }

    /// The JWKS document: the signing key first (none yet with managed keys), then each distinct
    /// validation key.
    pub fn jwks_json(&self) -> String {
        let mut keys: Vec<Jwk> = self
            .signing
            .iter()
            .map(|s| Jwk::from_certificate(&s.certificate))
            .collect();
        for cert in &self.validation {
            let jwk = Jwk::from_certificate(cert);
            if !keys.iter().any(|k| k.kid == jwk.kid) {
                keys.push(jwk);
            }
        }
        serde_json::json!({ "keys": keys }).to_string()
    }
}

/// The token signer of the signing PFX's key, with `IdentityServer:SigningAlgorithm` (PS256 turns an
/// RSA key to RSASSA-PSS; any other must be the key's own algorithm).
pub fn signer(
    settings: &Settings,
    key: ids_pki::SigningKey,
    certificate: &Certificate,
) -> Result<TokenSigner, KeyError> {
    let key = match settings.oauth.signing_algorithm {
        Some(algorithm) => {
            key.with_algorithm(algorithm)
                .map_err(|source| KeyError::SigningAlgorithm {
                    path: settings.signing.path.clone(),
                    source,
                })?
        }
        None => key,
    };
    Ok(TokenSigner::new(key, certificate))
}

/// The signing PFX (`IdentityServer:X509KeyFilePath`), checked for validity at `now` (an expired one
/// is a warning with `DangerAcceptExpiredCertificate`). A PFX that opens but is not valid comes back
/// with its error (TLS may still be served from it).
pub fn load_signing(
    settings: &Settings,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<Pfx, (Option<Box<Pfx>>, KeyError)> {
    match settings.signing.open() {
        Ok(pfx) => {
            if let Err(e) = pfx.check_validity(now) {
                if settings.danger_accept_expired_certificate {
                    warnings.push(format!(
                        "DANGER: {e}; accepted because IdentityServer:DangerAcceptExpiredCertificate is true"
                    ));
                } else {
                    let error = KeyError::SigningValidity {
                        setting: settings.signing.setting.to_string(),
                        path: settings.signing.path.clone(),
                        source: Box::new(e),
                    };
                    return Err((Some(Box::new(pfx)), error));
                }
            }
            Ok(pfx)
        }
        Err(source) => Err((
            None,
            KeyError::Certificate {
                setting: settings.signing.setting.to_string(),
                source: Box::new(source),
            },
        )),
    }
}

/// `IdentityServer:ValidationKeys`: certificates published in the JWKS, never used to sign.
pub fn load_validation(
    settings: &Settings,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<Vec<Certificate>, Vec<KeyError>> {
    let mut errors = Vec::new();
    let mut validation = Vec::new();
    for path in &settings.validation_keys {
        match pfx::public_certificate_from_file(
            path,
            settings.signing.password.expose(),
            "IdentityServer:X509KeyFilePassword",
        ) {
            Ok(cert) => {
                if cert.validity_at(now) == Validity::Expired {
                    warnings.push(format!(
                        "{}: validation certificate `{}` expired on {}",
                        path.display(),
                        cert.subject(),
                        format_time(cert.not_after())
                    ));
                }
                validation.push(cert);
            }
            Err(e) => errors.push(KeyError::ValidationKey {
                reason: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(validation)
    } else {
        Err(errors)
    }
}

/// `IdentityServer:ClientCertificateAuthorities`: the CAs of `tls_client_auth`.
pub fn load_client_authorities(
    settings: &Settings,
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<Vec<Certificate>, Vec<KeyError>> {
    let mut errors = Vec::new();
    let mut client_authorities = Vec::new();
    for path in &settings.client_certificate_authorities {
        match ids_pki::cert::trusted_certificates_from_file(path) {
            Ok(found) if found.is_empty() => {
                errors.push(KeyError::NoAuthority { path: path.clone() })
            }
            Ok(found) => {
                for t in found {
                    match Certificate::from_der(&path.display().to_string(), &t.der) {
                        Ok(cert) if cert.version() < 3 => errors.push(KeyError::AuthorityNotV3 {
                            path: path.clone(),
                            subject: cert.subject().to_string(),
                            version: cert.version(),
                        }),
                        Ok(cert) => {
                            if !t.is_ca {
                                warnings.push(format!(
                                    "IdentityServer:ClientCertificateAuthorities ({}): `{}` is not a CA certificate (basicConstraints CA:FALSE); to allow one client certificate, put its thumbprint in the client's Thumbprints instead",
                                    path.display(),
                                    cert.subject()
                                ));
                            }
                            if cert.validity_at(now) == Validity::Expired {
                                errors.push(KeyError::AuthorityExpired {
                                    path: path.clone(),
                                    subject: cert.subject().to_string(),
                                    not_after: cert.not_after(),
                                });
                            }
                            client_authorities.push(cert);
                        }
                        Err(source) => errors.push(KeyError::Authority {
                            source: Box::new(source),
                        }),
                    }
                }
            }
            Err(source) => errors.push(KeyError::Authority {
                source: Box::new(source),
            }),
        }
    }
    if errors.is_empty() {
        Ok(client_authorities)
    } else {
        Err(errors)
    }
}

/// Whether the server makes and rotates its signing keys (`IdentityServer:KeyManagement Automatic`).
pub fn is_managed(settings: &Settings) -> bool {
    matches!(
        settings.oauth.key_management,
        crate::settings::oauth::KeyManagement::Automatic(_)
    )
}

/// Whether the TLS certificate is the signing PFX itself (same file, same password). Never with
/// managed keys: then the PFX only serves TLS.
pub fn tls_is_signing(settings: &Settings) -> bool {
    !is_managed(settings)
        && settings.tls.path == settings.signing.path
        && settings.tls.password.expose() == settings.signing.password.expose()
}

/// The TLS configuration and its leaf certificate: from `signing` when the TLS certificate is the
/// signing PFX ([`tls_is_signing`]), else from `Kestrel:Certificates:Default`; client certificates
/// are asked for (and checked against `client_authorities`) unless `ClientCertificates` is `Off`.
pub fn load_tls(
    settings: &Settings,
    signing: Option<&Pfx>,
    client_authorities: &[Certificate],
    now: i64,
    warnings: &mut Vec<String>,
) -> Result<(rustls::ServerConfig, Certificate), Vec<KeyError>> {
    let client_auth = match settings.client_certificates {
        crate::settings::ClientCertificates::Off => None,
        crate::settings::ClientCertificates::Optional => Some(client_authorities),
    };
    if tls_is_signing(settings) {
        // The signing PFX's own problem is reported once, as the signing certificate's.
        let Some(pfx) = signing else {
            return Err(Vec::new());
        };
        if pfx.check_validity(now).is_err() {
            warnings.push(format!(
                "{}: the expired certificate also serves TLS; clients will refuse the connection",
                settings.tls.setting
            ));
        }
        return tls_config(pfx, &settings.tls, client_auth)
            .map(|c| (c, pfx.certificate.clone()))
            .map_err(|e| vec![e]);
    }
    match settings.tls.open() {
        Ok(pfx) => {
            let mut errors = Vec::new();
            if let Err(source) = pfx.check_validity(now) {
                errors.push(KeyError::Certificate {
                    setting: settings.tls.setting.to_string(),
                    source: Box::new(source),
                });
            }
            match tls_config(&pfx, &settings.tls, client_auth) {
                Ok(c) if errors.is_empty() => Ok((c, pfx.certificate.clone())),
                Ok(_) => Err(errors),
                Err(e) => {
                    errors.push(e);
                    Err(errors)
                }
            }
        }
        Err(source) => Err(vec![KeyError::Certificate {
            setting: settings.tls.setting.to_string(),
            source: Box::new(source),
        }]),
    }
}

/// The `EncryptionCertificate`: deliveries are encrypted for its certificate and read back with its key.
#[derive(Debug)]
pub struct EncryptionKeys {
    pub certificate: Certificate,
    pub recipient: Recipient,
    pub key: DecryptionKey,
}

impl EncryptionKeys {
    /// Loads `EncryptionCertificate` (File, Password). An unreadable file or a wrong password is an
    /// error (the configuration is wrong); a certificate that is not configured, or expired when
    /// `require_valid` (encrypting for it), only turns deliveries off: the inner `Err` says why (its
    /// text is fit for clients), and the details go to `warnings`.
    pub fn load(
        settings: &Settings,
        now: i64,
        warnings: &mut Vec<String>,
        require_valid: bool,
    ) -> Result<Result<EncryptionKeys, DeliveriesOff>, KeyError> {
        let Some(file) = &settings.encryption_certificate else {
            return Ok(Err(DeliveriesOff::NoEncryptionCertificate));
        };
        let pfx = file.open().map_err(|source| KeyError::Certificate {
            setting: file.setting.to_string(),
            source: Box::new(source),
        })?;
        if let (Err(e), true) = (pfx.check_validity(now), require_valid) {
            if settings.danger_accept_expired_certificate {
                warnings.push(format!(
                    "DANGER: {e}; accepted because IdentityServer:DangerAcceptExpiredCertificate is true"
                ));
            } else {
                warnings.push(format!(
                    "{} ({}): {e}; deliveries are turned off until it is renewed",
                    file.setting,
                    file.path.display()
                ));
                return Ok(Err(DeliveriesOff::EncryptionCertificateNotValid));
            }
        }
        let unusable = |source| KeyError::Encryption {
            setting: file.setting.to_string(),
            path: file.path.clone(),
            source: Box::new(source),
        };
        let recipient = Recipient::from_certificate(&pfx.certificate).map_err(unusable)?;
        let key = DecryptionKey::from_pfx(&pfx).map_err(unusable)?;
        Ok(Ok(EncryptionKeys {
            certificate: pfx.certificate,
            recipient,
            key,
        }))
    }
}

/// The server's metadata, as two documents: OpenID Connect Discovery 1.0
/// (`/.well-known/openid-configuration`) and RFC 8414 (`/.well-known/oauth-authorization-server`).
#[derive(Debug, Clone)]
pub struct Discovery {
    pub openid_configuration: String,
    pub oauth_authorization_server: String,
}

/// The metadata documents ([`ProviderMetadata`], whose fields are in alphabetical order: the JSON
/// keys come out sorted, as they always have). This server has no authorization endpoint (client credentials only;
/// `/connect/authorize` only answers that interactive authorization is not supported):
/// - RFC 8414 section 2 makes `authorization_endpoint` required only for servers that support a
///   grant using it, so the RFC 8414 document omits it (Authlib's metadata validation and
///   openid-client accept it without);
/// - OpenID Connect Discovery 1.0 section 3 lists it as REQUIRED, and the Rust `openidconnect` crate
///   (4.x) refuses a document without it (`CoreProviderMetadata::discover_async` fails with "missing
///   field `authorization_endpoint`"), so the OpenID Connect document keeps advertising it.
pub fn discovery_documents(context: &PublishContext, alg: Algorithm) -> Discovery {
    let (issuer, scopes, mutual_tls) = (&context.issuer, &context.scopes, context.mutual_tls);
    let mut methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    if mutual_tls {
        methods.extend(["tls_client_auth", "self_signed_tls_client_auth"]);
    }
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut metadata = ProviderMetadata {
        authorization_endpoint: None,
        claims_supported: strings(&[
            "iss",
            "sub",
            "client_id",
            "aud",
            "scope",
            "profile",
            "jti",
            "iat",
            "nbf",
            "exp",
            "cnf",
        ]),
        dpop_signing_alg_values_supported: context
            .dpop_algorithms
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        grant_types_supported: strings(&["client_credentials"]),
        id_token_signing_alg_values_supported: strings(&[alg.as_str()]),
        introspection_endpoint: Some(format!("{issuer}{}", paths::INTROSPECT)),
        introspection_endpoint_auth_methods_supported: strings(&methods),
        introspection_signing_alg_values_supported: strings(&[alg.as_str()]),
        issuer: Some(issuer.to_string()),
        jwks_uri: Some(format!("{issuer}{}", paths::JWKS)),
        response_types_supported: Vec::new(),
        revocation_endpoint: Some(format!("{issuer}{}", paths::REVOCATION)),
        revocation_endpoint_auth_methods_supported: strings(&methods),
        scopes_supported: scopes.to_vec(),
        subject_types_supported: strings(&["public"]),
        tls_client_certificate_bound_access_tokens: mutual_tls,
        token_endpoint: Some(format!("{issuer}{}", paths::TOKEN)),
        token_endpoint_auth_methods_supported: strings(&methods),
        token_endpoint_auth_signing_alg_values_supported: Algorithm::ALL
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
    };
    let oauth_authorization_server = to_json(&metadata);
    metadata.authorization_endpoint = Some(format!("{issuer}{}", paths::AUTHORIZE));
    Discovery {
        openid_configuration: to_json(&metadata),
        oauth_authorization_server,
    }
}

/// A metadata document as JSON (its fields are strings, lists of strings and a boolean, which always
/// serialize).
fn to_json(metadata: &ProviderMetadata) -> String {
    serde_json::to_string(metadata).unwrap_or_default()
}

/// rustls configuration from the TLS PFX (leaf + chain), with the process's aws-lc-rs provider
/// ([`ids_runtime::tls::provider`]) set explicitly (two providers in the dependency tree would make
/// rustls' default selection panic).
///
/// With `client_auth`, the handshake asks for a client certificate (never requires one) and names
/// those CAs as hints; any readable certificate whose key the client proves is accepted at this layer
/// (X.509 v1 leaves included, self-signed v1 certificates excepted: see [`crate::tls`]), and the
/// token endpoint decides what it is worth (RFC 8705: a CA-issued certificate mapped to the client,
/// or a self-signed one whose thumbprint is registered).
fn tls_config(
    pfx: &Pfx,
    file: &CertificateFile,
    client_auth: Option<&[Certificate]>,
) -> Result<rustls::ServerConfig, KeyError> {
    let mut chain = vec![CertificateDer::from(pfx.certificate.der().to_vec())];
    chain.extend(
        pfx.chain
            .iter()
            .map(|der| CertificateDer::from(der.clone())),
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pfx.key_pkcs8.to_vec()));
    let builder = rustls::ServerConfig::builder_with_provider(ids_runtime::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(KeyError::TlsProtocols)?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            builder.with_client_cert_verifier(Arc::new(crate::tls::AnyClientCertificate::new(cas)))
        }
    };
    let mut config =
        builder
            .with_single_cert(chain, key)
            .map_err(|source| KeyError::TlsUnusable {
                setting: file.setting.to_string(),
                path: file.path.clone(),
                source,
            })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The documents as they were written before `ProviderMetadata` (a `serde_json::json!` map,
    /// keys sorted): the same bytes (with the members issue 18 added).
    #[test]
    fn discovery_documents_keep_their_bytes() {
        for mutual_tls in [false, true] {
            let scopes = vec!["api".to_string(), "read".to_string()];
            let issuer = "https://ids.example:5001";
            let context = PublishContext {
                issuer: issuer.into(),
                audience: issuer.into(),
                scopes: scopes.clone(),
                mutual_tls,
                signing_algorithm: None,
                dpop_algorithms: vec![Algorithm::ES256, Algorithm::EdDSA],
            };
            let d = discovery_documents(&context, Algorithm::ES256);
            let mut methods = vec![
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ];
            if mutual_tls {
                methods.extend(["tls_client_auth", "self_signed_tls_client_auth"]);
            }
            let mut before = serde_json::json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/.well-known/openid-configuration/jwks"),
                "token_endpoint": format!("{issuer}/connect/token"),
                "scopes_supported": scopes,
                "claims_supported": ["iss", "sub", "client_id", "aud", "scope", "profile", "jti", "iat", "nbf", "exp", "cnf"],
                "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
                "introspection_endpoint": format!("{issuer}/connect/introspect"),
                "introspection_endpoint_auth_methods_supported": methods,
                "introspection_signing_alg_values_supported": ["ES256"],
                "revocation_endpoint": format!("{issuer}/connect/revocation"),
                "revocation_endpoint_auth_methods_supported": methods,
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": [],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": methods,
                "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
                "tls_client_certificate_bound_access_tokens": mutual_tls,
            });
            assert_eq!(d.oauth_authorization_server, before.to_string());
            before["authorization_endpoint"] = format!("{issuer}/connect/authorize").into();
            assert_eq!(d.openid_configuration, before.to_string());
        }
    }
}
