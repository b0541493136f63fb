//! Certificate hot reload: the signing PFX, `IdentityServer:ValidationKeys`, the TLS certificate,
//! `IdentityServer:ClientCertificateAuthorities` and the `EncryptionCertificate` are read again when
//! their files change (checked with the access-control XML) and on SIGHUP, without a restart and
//! without dropping a connection:
//! - a new signing key signs the next token; the previous public key stays in the JWKS (and is
//!   accepted by the server's own API) for one `AccessTokenLifetime`, so that tokens it signed keep
//!   verifying until they expire;
//! - a new TLS certificate (or new client CAs) serves the next handshakes; connections already open
//!   keep theirs;
//! - a new encryption certificate encrypts the next deliveries; those stored before are read with
//!   the key they were encrypted for (kept while the process runs).
//!
//! A file that does not load keeps the one in force, and is reported once per change of the file:
//! the log, the audit trail (`certificate_reloaded`, `failed`) and `ids_certificate_reloads_total`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ids_jose::TokenSigner;
use ids_pki::Certificate;

use crate::deliveries::Deliveries;
use crate::keys::{self, InForce, PublishContext, Published, Signing};
use crate::oauth::client_keys::ClientAuthorities;
use crate::settings::Settings;
use crate::telemetry::Telemetry;

/// What a file looked like when it was last read: a change of any of these is a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    seen: Option<(u64, std::time::SystemTime, u64)>,
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths
        .iter()
        .map(|path| Stamp {
            path: path.clone(),
            seen: std::fs::metadata(path).ok().map(|m| {
                #[cfg(unix)]
                let inode = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let inode = 0;
                (
                    m.len(),
                    m.modified().unwrap_or(std::time::UNIX_EPOCH),
                    inode,
                )
            }),
        })
        .collect()
}

/// The certificates as loaded at start-up, for the reloader to compare against.
#[derive(Debug, Clone)]
pub struct Initial {
    pub validation: Vec<Certificate>,
    pub client_authorities: Vec<Certificate>,
    pub tls_certificate: Certificate,
    pub encryption_certificate: Option<Certificate>,
}

/// Watches the certificate files and replaces what is in force.
#[derive(Debug)]
pub struct CertificateReloader {
    settings: Settings,
    publish: PublishContext,
    keys: Arc<InForce>,
    deliveries: Option<Arc<Deliveries>>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    telemetry: Telemetry,
    /// `AccessTokenLifetime`: how long a previous signing key stays published.
    lifetime: i64,
    stamps: HashMap<&'static str, Vec<Stamp>>,
    validation: Vec<Certificate>,
    client_authorities: Vec<Certificate>,
    tls_certificate: Certificate,
    encryption_certificate: Option<Certificate>,
    /// Previous signing certificates, published until the time given.
    retained: Vec<(Certificate, i64)>,
}

/// The roles and the files each is read from.
fn files(settings: &Settings) -> Vec<(&'static str, Vec<PathBuf>)> {
    vec![
        ("signing", vec![settings.signing.path.clone()]),
        ("validation", settings.validation_keys.clone()),
        ("tls", vec![settings.tls.path.clone()]),
        ("client_ca", settings.client_certificate_authorities.clone()),
        (
            "encryption",
            settings
                .encryption_certificate
                .iter()
                .map(|c| c.path.clone())
                .collect(),
        ),
    ]
}

impl CertificateReloader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: &Settings,
        publish: PublishContext,
        keys: Arc<InForce>,
        deliveries: Option<Arc<Deliveries>>,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
        telemetry: Telemetry,
        initial: Initial,
    ) -> CertificateReloader {
        let stamps = files(settings)
            .into_iter()
            .map(|(role, paths)| (role, stamps(&paths)))
            .collect();
        CertificateReloader {
            lifetime: settings.access_token_lifetime.as_secs() as i64,
            settings: settings.clone(),
            publish,
            keys,
            deliveries,
            tls,
            telemetry,
            stamps,
            validation: initial.validation,
            client_authorities: initial.client_authorities,
            tls_certificate: initial.tls_certificate,
            encryption_certificate: initial.encryption_certificate,
            retained: Vec::new(),
        }
    }

    /// Which roles' files changed since they were last read (all of them with `force`), their
    /// stamps updated.
    fn changed(&mut self, force: bool) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (role, paths) in files(&self.settings) {
            let now = stamps(&paths);
            if force || self.stamps.get(role) != Some(&now) {
                out.push(role);
                self.stamps.insert(role, now);
            }
        }
        out
    }

    /// Reads the changed files again (every file with `force`, on SIGHUP) at `now`.
    pub fn reload(&mut self, force: bool, now: i64) {
        let changed = self.changed(force);
        let mut republish = false;
        let before = self.retained.len();
        self.retained.retain(|(_, until)| *until > now);
        if self.retained.len() != before {
            tracing::info!(
                "previous signing key(s) no longer published: the tokens they signed have expired"
            );
            republish = true;
        }
        if changed.is_empty() && !republish {
            return;
        }
        let mut warnings = Vec::new();
        let is = |role: &str| changed.contains(&role);
        let mut rebuild_tls = is("tls") || (is("signing") && keys::tls_is_signing(&self.settings));

        if is("signing") {
            match keys::load_signing(&self.settings, now, &mut warnings) {
                Ok(pfx) => {
                    let current = self.keys.signing();
                    if pfx.certificate.x5t_s256() != current.certificate.x5t_s256() {
                        let certificate = pfx.certificate.clone();
                        let signer = TokenSigner::new(pfx.key, &pfx.certificate);
                        let kid = signer.kid().to_string();
                        self.retained
                            .push((current.certificate.clone(), now + self.lifetime));
                        self.keys.set_signing(Signing {
                            signer,
                            certificate: certificate.clone(),
                        });
                        republish = true;
                        tracing::info!(
                            subject = %certificate.subject(),
                            %kid,
                            previous_kid = %current.signer.kid(),
                            "signing certificate reloaded: new tokens are signed with it; the previous key stays published for {} s (AccessTokenLifetime)",
                            self.lifetime
                        );
                        self.reloaded("signing", &certificate, now);
                    }
                }
                Err((_, e)) => {
                    self.failed("signing", &e.to_string(), now);
                    rebuild_tls = is("tls");
                }
            }
        }
        if is("validation") {
            match keys::load_validation(&self.settings, now, &mut warnings) {
                Ok(validation) => {
                    let thumbprints =
                        |c: &[Certificate]| c.iter().map(Certificate::x5t_s256).collect::<Vec<_>>();
                    if thumbprints(&validation) != thumbprints(&self.validation) {
                        for cert in &validation {
                            self.reloaded("validation", cert, now);
                        }
                        self.validation = validation;
                        republish = true;
                    }
                }
                Err(errors) => self.failed("validation", &joined(&errors), now),
            }
        }
        if is("client_ca") {
            match keys::load_client_authorities(&self.settings, now, &mut warnings) {
                Ok(cas) => {
                    let same = cas.len() == self.client_authorities.len()
                        && cas
                            .iter()
                            .zip(&self.client_authorities)
                            .all(|(a, b)| a.x5t_s256() == b.x5t_s256());
                    if !same {
                        let authorities = if cas.is_empty() {
                            Ok(None)
                        } else {
                            ClientAuthorities::new(&cas).map(Some)
                        };
                        match authorities {
                            Ok(authorities) => {
                                self.keys.set_client_authorities(authorities);
                                for cert in &cas {
                                    self.reloaded("client_ca", cert, now);
                                }
                                self.client_authorities = cas;
                                rebuild_tls = true;
                            }
                            Err(e) => self.failed("client_ca", &e.to_string(), now),
                        }
                    }
                }
                Err(errors) => self.failed("client_ca", &joined(&errors), now),
            }
        }
        if rebuild_tls && let Some(tls) = self.tls.clone() {
            let signing = if keys::tls_is_signing(&self.settings) {
                keys::load_signing(&self.settings, now, &mut warnings)
                    .map_or_else(|(pfx, _)| pfx.map(|p| *p), Some)
            } else {
                None
            };
            match keys::load_tls(
                &self.settings,
                signing.as_ref(),
                &self.client_authorities,
                now,
                &mut warnings,
            ) {
                Ok((config, leaf)) => {
                    tls.reload_from_config(Arc::new(config));
                    if leaf.x5t_s256() != self.tls_certificate.x5t_s256() {
                        tracing::info!(
                            subject = %leaf.subject(),
                            not_after = %ids_pki::cert::format_time(leaf.not_after()),
                            "TLS certificate reloaded: new connections get it, open ones keep theirs"
                        );
                        self.reloaded("tls", &leaf, now);
                        self.tls_certificate = leaf;
                    }
                }
                Err(errors) if errors.is_empty() => {
                    self.failed("tls", "the signing PFX it shares does not load", now)
                }
                Err(errors) => self.failed("tls", &joined(&errors), now),
            }
        }
        if is("encryption") {
            self.reload_encryption(now, &mut warnings);
        }
        if republish {
            let mut others = self.validation.clone();
            others.extend(self.retained.iter().map(|(c, _)| c.clone()));
            match Published::new(&self.keys.signing(), &others, &self.publish) {
                Ok(published) => self.keys.set_published(published),
                Err(e) => tracing::error!(
                    "the JWKS could not be rebuilt after a certificate reload: {e}; the keys published before stay"
                ),
            }
        }
        for w in warnings {
            tracing::warn!("{w}");
        }
        self.report_expiry();
        if force && changed.len() == files(&self.settings).len() {
            tracing::info!("certificates checked (SIGHUP)");
        }
    }

    fn reload_encryption(&mut self, now: i64, warnings: &mut Vec<String>) {
        let Some(deliveries) = self.deliveries.clone() else {
            if self.settings.encryption_certificate.is_some() {
                self.failed(
                    "encryption",
                    "deliveries were off when the server started; restart it to turn them on",
                    now,
                );
            }
            return;
        };
        match keys::EncryptionKeys::load(&self.settings, now, warnings, true) {
            Ok(Ok(encryption)) => {
                let changed = self
                    .encryption_certificate
                    .as_ref()
                    .is_none_or(|c| c.x5t_s256() != encryption.certificate.x5t_s256());
                if !changed {
                    return;
                }
                let key_of = |c: &Certificate| ids_pki::Jwk::from_certificate(c).kid;
                let same_key = self
                    .encryption_certificate
                    .as_ref()
                    .is_some_and(|c| key_of(c) == key_of(&encryption.certificate));
                if !same_key {
                    tracing::warn!(
                        subject = %encryption.certificate.subject(),
                        "EncryptionCertificate reloaded with a NEW key: deliveries stored before are read with the previous key until this server restarts; keep the previous PFX to export them after a restart"
                    );
                }
                let certificate = encryption.certificate.clone();
                deliveries.replace_encryption(encryption.recipient, encryption.key);
                self.reloaded("encryption", &certificate, now);
                self.encryption_certificate = Some(certificate);
            }
            Ok(Err(off)) => self.failed("encryption", &off.to_string(), now),
            Err(e) => self.failed("encryption", &e.to_string(), now),
        }
    }

    fn reloaded(&self, role: &'static str, certificate: &Certificate, now: i64) {
        let thumbprint = certificate.x5t_s256();
        tracing::info!(
            role,
            subject = %certificate.subject(),
            x5t_s256 = %thumbprint,
            not_after = %ids_pki::cert::format_time(certificate.not_after()),
            "certificate reloaded"
        );
        self.telemetry
            .certificate_reloaded(role, Ok((certificate.subject(), &thumbprint)), now);
    }

    fn failed(&self, role: &'static str, error: &str, now: i64) {
        tracing::error!(
            role,
            "certificate NOT reloaded, the one in force stays: {error}"
        );
        self.telemetry.certificate_reloaded(role, Err(error), now);
    }

    /// `ids_certificate_expiry_timestamp_seconds` of every role, as now in force.
    fn report_expiry(&self) {
        let of = |certs: &[&Certificate]| -> Vec<(String, i64)> {
            certs
                .iter()
                .map(|c| (c.subject().to_string(), c.not_after()))
                .collect()
        };
        let signing = self.keys.signing();
        let mut validation: Vec<&Certificate> = self.validation.iter().collect();
        validation.extend(self.retained.iter().map(|(c, _)| c));
        self.telemetry
            .certificates("signing", &of(&[&signing.certificate]));
        self.telemetry.certificates("validation", &of(&validation));
        self.telemetry
            .certificates("tls", &of(&[&self.tls_certificate]));
        self.telemetry.certificates(
            "client_ca",
            &of(&self.client_authorities.iter().collect::<Vec<_>>()),
        );
        self.telemetry.certificates(
            "encryption",
            &of(&self.encryption_certificate.iter().collect::<Vec<_>>()),
        );
    }
}

fn joined(errors: &[keys::KeyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
