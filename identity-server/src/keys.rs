//! The server's certificates: the token-signing key, the keys published for verification (JWKS), the
//! discovery document and the TLS configuration.

use std::sync::Arc;

use ids_crypto::cert::{Validity, format_time};
use ids_crypto::encrypted_file::{DecryptionKey, Recipient};
use ids_crypto::pfx;
use ids_crypto::{Algorithm, Certificate, Jwk, Pfx, TokenSigner};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::settings::{CertificateFile, Settings};

/// Loaded key material.
#[derive(Debug)]
pub struct Keys {
    pub signer: TokenSigner,
    pub signing_certificate: Certificate,
    /// `IdentityServer:ValidationKeys` certificates (published, never used to sign).
    pub validation: Vec<Certificate>,
    /// TLS configuration, built at load time so that `check` finds TLS problems too.
    pub tls: Arc<rustls::ServerConfig>,
}

impl Keys {
    /// Loads the signing PFX and the validation certificates; every problem is reported.
    pub fn load(
        settings: &Settings,
        now: i64,
        warnings: &mut Vec<String>,
    ) -> Result<Keys, Vec<String>> {
        let mut errors = Vec::new();
        let signing = match settings.signing.open() {
            Ok(pfx) => {
                if let Err(e) = pfx.check_validity(now) {
                    if settings.danger_accept_expired_certificate {
                        warnings.push(format!(
                            "DANGER: {e}; accepted because IdentityServer:DangerAcceptExpiredCertificate is true"
                        ));
                    } else {
                        errors.push(format!(
                            "{} ({}): {e}; renew it, or set IdentityServer:DangerAcceptExpiredCertificate to true to start anyway",
                            settings.signing.setting,
                            settings.signing.path.display()
                        ));
                    }
                }
                Some(pfx)
            }
            Err(e) => {
                errors.push(format!("{}: {e}", settings.signing.setting));
                None
            }
        };
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
                Err(e) => errors.push(format!("IdentityServer:ValidationKeys: {e}")),
            }
        }
        // TLS: the signing PFX itself when the same file is configured with the same password.
        let shared = settings.tls.path == settings.signing.path
            && settings.tls.password.expose() == settings.signing.password.expose();
        let tls = if shared {
            signing.as_ref().and_then(|pfx| {
                if pfx.check_validity(now).is_err() {
                    warnings.push(format!(
                        "{}: the expired certificate also serves TLS; clients will refuse the connection",
                        settings.tls.setting
                    ));
                }
                tls_config(pfx, &settings.tls).map_err(|e| errors.push(e)).ok()
            })
        } else {
            match settings.tls.open() {
                Ok(pfx) => {
                    if let Err(e) = pfx.check_validity(now) {
                        errors.push(format!("{}: {e}", settings.tls.setting));
                    }
                    tls_config(&pfx, &settings.tls)
                        .map_err(|e| errors.push(e))
                        .ok()
                }
                Err(e) => {
                    errors.push(format!("{}: {e}", settings.tls.setting));
                    None
                }
            }
        };
        match (signing, tls) {
            (Some(pfx), Some(tls)) if errors.is_empty() => Ok(Keys {
                signer: TokenSigner::new(pfx.key, &pfx.certificate),
                signing_certificate: pfx.certificate,
                validation,
                tls: Arc::new(tls),
            }),
            _ => Err(errors),
        }
    }

    /// The JWKS document: the signing key first, then each distinct validation key.
    pub fn jwks_json(&self) -> String {
        let mut keys = vec![Jwk::from_certificate(&self.signing_certificate)];
        for cert in &self.validation {
            let jwk = Jwk::from_certificate(cert);
            if !keys.iter().any(|k| k.kid == jwk.kid) {
                keys.push(jwk);
            }
        }
        serde_json::json!({ "keys": keys }).to_string()
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
    /// `require_valid` (encrypting for it), only turns deliveries off: the inner `Err` says why, in
    /// words fit for clients, and the details go to `warnings`.
    pub fn load(
        settings: &Settings,
        now: i64,
        warnings: &mut Vec<String>,
        require_valid: bool,
    ) -> Result<Result<EncryptionKeys, String>, Vec<String>> {
        let Some(file) = &settings.encryption_certificate else {
            return Ok(Err(
                "it has no EncryptionCertificate (File, Password) to encrypt them for".into(),
            ));
        };
        let pfx = file
            .open()
            .map_err(|e| vec![format!("{}: {e}", file.setting)])?;
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
                return Ok(Err(
                    "its EncryptionCertificate is expired or not yet valid".into()
                ));
            }
        }
        let unusable = |e: ids_crypto::encrypted_file::FileError| {
            vec![format!(
                "{} ({}): cannot encrypt deliveries with this certificate: {e}",
                file.setting,
                file.path.display()
            )]
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

/// OpenID Connect Discovery 1.0 / RFC 8414 metadata.
pub fn discovery_document(issuer: &str, alg: Algorithm, scopes: &[String]) -> String {
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/openid-configuration/jwks"),
        "authorization_endpoint": format!("{issuer}/connect/authorize"),
        "token_endpoint": format!("{issuer}/connect/token"),
        "scopes_supported": scopes,
        "claims_supported": ["iss", "sub", "client_id", "aud", "scope", "profile", "jti", "iat", "nbf", "exp"],
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg.as_str()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })
    .to_string()
}

/// rustls configuration from the TLS PFX (leaf + chain), with the aws-lc-rs provider set explicitly
/// (two providers in the dependency tree would make rustls' default selection panic).
fn tls_config(pfx: &Pfx, file: &CertificateFile) -> Result<rustls::ServerConfig, String> {
    let mut chain = vec![CertificateDer::from(pfx.certificate.der().to_vec())];
    chain.extend(
        pfx.chain
            .iter()
            .map(|der| CertificateDer::from(der.clone())),
    );
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pfx.key_pkcs8.to_vec()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "{} ({}): unusable for TLS: {e}",
                file.setting,
                file.path.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
