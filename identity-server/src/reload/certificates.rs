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
    /// The certificate settings as the settings files last gave them (None: not read yet).
    from_files: Option<CertificateSettings>,
    /// Why the settings files did not load, last time (reported once per change).
    settings_error: Option<String>,
}

/// The settings the reloader follows in the settings files: the certificate files and passwords
/// (`Debug` shows the paths only).
#[derive(Clone, PartialEq, Eq)]
struct CertificateSettings {
    signing: (PathBuf, String),
    validation: Vec<PathBuf>,
    tls: (PathBuf, String),
    client_authorities: Vec<PathBuf>,
    encryption: Option<(PathBuf, String)>,
}

impl std::fmt::Debug for CertificateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSettings")
            .field("signing", &self.signing.0)
            .field("validation", &self.validation)
            .field("tls", &self.tls.0)
            .field("client_authorities", &self.client_authorities)
            .field("encryption", &self.encryption.as_ref().map(|e| &e.0))
            .finish_non_exhaustive()
    }
}

impl CertificateSettings {
    fn of(settings: &Settings) -> CertificateSettings {
        let file = |c: &crate::settings::CertificateFile| {
            (c.path.clone(), c.password.expose().to_string())
        };
        CertificateSettings {
            signing: file(&settings.signing),
            validation: settings.validation_keys.clone(),
            tls: file(&settings.tls),
            client_authorities: settings.client_certificate_authorities.clone(),
            encryption: settings.encryption_certificate.as_ref().map(file),
        }
    }

    /// The roles whose paths or passwords differ in `other`.
    fn roles_changed(&self, other: &CertificateSettings) -> Vec<&'static str> {
        let mut roles = Vec::new();
        if self.signing != other.signing {
            roles.push("signing");
        }
        if self.validation != other.validation || self.signing.1 != other.signing.1 {
            roles.push("validation");
        }
        if self.tls != other.tls {
            roles.push("tls");
        }
        if self.client_authorities != other.client_authorities {
            roles.push("client_ca");
        }
        if self.encryption != other.encryption {
            roles.push("encryption");
        }
        roles
    }

    /// Puts these paths and passwords into `settings` (the rest stays).
    fn apply(&self, settings: &mut Settings) {
        settings.signing.path = self.signing.0.clone();
        settings.signing.password = ids_proto::Password::new(self.signing.1.clone());
        settings.validation_keys = self.validation.clone();
        settings.tls.path = self.tls.0.clone();
        settings.tls.password = ids_proto::Password::new(self.tls.1.clone());
        settings.client_certificate_authorities = self.client_authorities.clone();
        match (&self.encryption, &mut settings.encryption_certificate) {
            (Some((path, password)), Some(current)) => {
                current.path = path.clone();
                current.password = ids_proto::Password::new(password.clone());
            }
            (Some((path, password)), None) => {
                settings.encryption_certificate = Some(crate::settings::CertificateFile::new(
                    path.clone(),
                    password.clone(),
                    "EncryptionCertificate:File",
                ));
            }
            (None, _) => settings.encryption_certificate = None,
        }
    }
}

fn thumbprints(certificates: &[Certificate]) -> Vec<String> {
    certificates.iter().map(Certificate::x5t_s256).collect()
}

/// The roles and the files each is read from. With managed keys (`KeyManagement Automatic`) there is
/// no signing file: the key manager changes the signing key.
fn files(settings: &Settings) -> Vec<(&'static str, Vec<PathBuf>)> {
    let signing = if keys::is_managed(settings) {
        Vec::new()
    } else {
        vec![settings.signing.path.clone()]
    };
    vec![
        ("signing", signing),
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
        let reloader = CertificateReloader {
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
            // The settings in force are the baseline: what the files say differently is applied.
            from_files: Some(CertificateSettings::of(settings)),
            settings_error: None,
        };
        reloader.report_expiry();
        reloader
    }

    /// Which roles' files changed since they were last read (all of them with `force`), their
    /// stamps updated.
    fn changed(&mut self, force: bool) -> Vec<&'static str> {
        let mut out = Vec::new();
        let managed = keys::is_managed(&self.settings);
        for (role, paths) in files(&self.settings) {
            if managed && role == "signing" {
                continue;
            }
            let now = stamps(&paths);
            if force || self.stamps.get(role) != Some(&now) {
                out.push(role);
                self.stamps.insert(role, now);
            }
        }
        out
    }

    /// The certificate settings (paths, passwords) read again from the settings files: when they
    /// differ from what the files said before, they replace the ones in force (a path that changes
    /// is a changed file for [`Self::changed`]). Settings that no longer load are reported once per
    /// change and the ones in force stay. Other settings need a restart.
    fn refresh_settings(&mut self, now: i64) {
        let fresh = match Settings::load(&self.settings.config_dir, None) {
            Ok(fresh) => {
                if self.settings_error.take().is_some() {
                    tracing::info!("the settings files load again");
                }
                fresh
            }
            Err(errors) => {
                let text = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if self.settings_error.as_deref() != Some(text.as_str()) {
                    tracing::error!(
                        "the settings files cannot be read again, the certificate settings in force stay: {text}"
                    );
                    self.telemetry
                        .configuration_reloaded("settings", Err(&text), now);
                    self.settings_error = Some(text);
                }
                return;
            }
        };
        let read = CertificateSettings::of(&fresh);
        if self.from_files.as_ref() != Some(&read) {
            tracing::info!(
                "certificate settings changed in the settings files: they are used from now on"
            );
            // A role whose path or password changed is read again even if its file did not (a
            // password fixed after the file was replaced).
            if let Some(before) = &self.from_files {
                for role in before.roles_changed(&read) {
                    self.stamps.remove(role);
                }
            }
            read.apply(&mut self.settings);
            self.from_files = Some(read);
        }
    }

    /// Reads the changed files again (every file with `force`, on SIGHUP) at `now`. Everything is
    /// loaded and checked first, then what loaded is put in force: the JWKS with a new signing key
    /// is published before the key signs its first token.
    pub fn reload(&mut self, force: bool, now: i64) {
        self.refresh_settings(now);
        let changed = self.changed(force);
        let mut republish = self.drop_expired(now);
        if changed.is_empty() && !republish {
            return;
        }
        let mut warnings = Vec::new();
        let is = |role: &str| changed.contains(&role);
        let shared = keys::tls_is_signing(&self.settings);
        let current = self.keys.signing();

        // 1. Load what changed.
        // The signing PFX, when it loads and is not the one in force (also the TLS certificate when
        // it is shared); `Err` when it was refused.
        let mut signing_pfx: Option<Result<ids_pki::Pfx, ()>> = None;
        if is("signing") {
            match keys::load_signing(&self.settings, now, &mut warnings) {
                Ok(pfx) => signing_pfx = Some(Ok(pfx)),
                Err((_, e)) => {
                    self.failed("signing", &e.to_string(), now);
                    signing_pfx = Some(Err(()));
                }
            }
        }
        let mut validation = None;
        if is("validation") {
            match keys::load_validation(&self.settings, now, &mut warnings) {
                Ok(loaded) if thumbprints(&loaded) != thumbprints(&self.validation) => {
                    validation = Some(loaded)
                }
                Ok(_) => {}
                Err(errors) => self.failed("validation", &joined(&errors), now),
            }
        }
        let mut client_cas = None;
        if is("client_ca") {
            match keys::load_client_authorities(&self.settings, now, &mut warnings) {
                Ok(cas) if thumbprints(&cas) != thumbprints(&self.client_authorities) => {
                    let authorities = if cas.is_empty() {
                        Ok(None)
                    } else {
                        ClientAuthorities::new(&cas).map(Some)
                    };
                    match authorities {
                        Ok(authorities) => client_cas = Some((cas, authorities)),
                        Err(e) => self.failed("client_ca", &e.to_string(), now),
                    }
                }
                Ok(_) => {}
                Err(errors) => self.failed("client_ca", &joined(&errors), now),
            }
        }
        // The TLS configuration, when its certificate or the client CAs changed. When it is the
        // signing PFX, only one the signing reload accepted serves TLS.
        let mut tls = None;
        let rebuild_tls =
            self.tls.is_some() && (is("tls") || client_cas.is_some() || (shared && is("signing")));
        if rebuild_tls {
            let cas = client_cas
                .as_ref()
                .map_or(&self.client_authorities, |(cas, _)| cas);
            let shared_pfx = match (&signing_pfx, shared) {
                (Some(Ok(pfx)), true) => Some(Ok(pfx)),
                (Some(Err(())), true) => Some(Err(())),
                // Shared, unchanged: the file is read again (the client CAs changed).
                (None, true) => None,
                (_, false) => None,
            };
            let reread;
            let pfx = match shared_pfx {
                Some(Ok(pfx)) => Some(pfx),
                Some(Err(())) => None,
                // Shared, unchanged (the client CAs changed): the PFX read again, also when it has
                // expired meanwhile as long as it is the one TLS serves now.
                None if shared => {
                    let serving = self.tls_certificate.x5t_s256();
                    reread = match keys::load_signing(&self.settings, now, &mut warnings) {
                        Ok(pfx) => Some(pfx),
                        Err((Some(pfx), _)) if pfx.certificate.x5t_s256() == serving => Some(*pfx),
                        Err(_) => None,
                    };
                    reread.as_ref()
                }
                None => None,
            };
            if shared && pfx.is_none() {
                self.failed(
                    "tls",
                    "the signing PFX it shares was not accepted: the TLS certificate in force stays",
                    now,
                );
            } else {
                match keys::load_tls(&self.settings, pfx, cas, now, &mut warnings) {
                    Ok(loaded) => tls = Some(loaded),
                    Err(errors) if errors.is_empty() => {
                        self.failed("tls", "the signing PFX it shares does not load", now)
                    }
                    Err(errors) => self.failed("tls", &joined(&errors), now),
                }
            }
        }
        // The new signing key (the TLS configuration above has its copy of the PFX).
        let new_signing = match signing_pfx {
            Some(Ok(pfx)) if pfx.certificate.x5t_s256() != current.certificate.x5t_s256() => {
                let nonce_key = crate::oauth::dpop::NonceKey::derive(&pfx.key_pkcs8);
                match keys::signer(&self.settings, pfx.key, &pfx.certificate) {
                    Ok(signer) => Some(Signing {
                        signer,
                        certificate: pfx.certificate,
                        nonce_key,
                    }),
                    Err(e) => {
                        self.failed("signing", &e.to_string(), now);
                        None
                    }
                }
            }
            _ => None,
        };

        // 2. Check that the keys can be published together: a validation certificate or a signing
        //    key the verifier does not take is refused, the ones in force stay.
        let retained: Vec<Certificate> = self.retained.iter().map(|(c, _)| c.clone()).collect();
        // The keys the key manager publishes (KeyManagement Automatic) are published with them.
        let managed: Vec<Certificate> = self
            .keys
            .others()
            .managed
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        if let Some(candidate) = &validation {
            let others = [candidate.clone(), retained.clone(), managed.clone()].concat();
            if let Err(e) = Published::new(&current, &others, &self.publish) {
                self.failed("validation", &format!("cannot be published: {e}"), now);
                validation = None;
            }
        }
        let in_force_validation = validation
            .clone()
            .unwrap_or_else(|| self.validation.clone());
        let mut published = None;
        if let Some(signing) = &new_signing {
            let mut others = [in_force_validation.clone(), retained.clone()].concat();
            others.push(current.certificate.clone());
            match Published::new(
                signing,
                &[others.clone(), managed.clone()].concat(),
                &self.publish,
            ) {
                Ok(_) => published = Some(others),
                Err(e) => {
                    self.failed("signing", &format!("cannot be published: {e}"), now);
                }
            }
        }
        if new_signing.is_some() && published.is_none() && shared {
            // A shared PFX the signing reload refused is not served for TLS either.
            tls = None;
        }
        let new_signing = new_signing.filter(|_| published.is_some());
        if rebuild_tls && tls.is_none() && client_cas.is_some() {
            // The handshake would go on naming the old CAs: not put in force, tried again when
            // the files change.
            self.failed(
                "client_ca",
                "not put in force: the TLS configuration could not be rebuilt with them",
                now,
            );
            client_cas = None;
        }

        // 3. Put in force: publish first, then sign with the new key.
        if let Some(validation) = validation {
            for cert in &validation {
                self.reloaded("validation", cert, now);
            }
            self.validation = validation;
            republish = true;
        }
        if let Some(signing) = new_signing {
            self.retained
                .push((current.certificate.clone(), now + self.lifetime));
            let certificate = signing.certificate.clone();
            let kid = signing.signer.kid().to_string();
            let reloaded = published.take().unwrap_or_default();
            if let Err(e) = self
                .keys
                .publish(&self.publish, Some(Arc::new(signing)), |o| {
                    o.reloaded = reloaded
                })
            {
                self.failed("signing", &format!("cannot be published: {e}"), now);
            }
            tracing::info!(
                subject = %certificate.subject(),
                %kid,
                previous_kid = %current.signer.kid(),
                "signing certificate reloaded: new tokens are signed with it; the previous key stays published for {} s (AccessTokenLifetime)",
                self.lifetime
            );
            self.reloaded("signing", &certificate, now);
            // Published with the validation keys as they are now.
            republish = true;
        }
        if let Some((cas, authorities)) = client_cas {
            self.keys.set_client_authorities(authorities);
            for cert in &cas {
                self.reloaded("client_ca", cert, now);
            }
            self.client_authorities = cas;
        }
        if let (Some((config, leaf)), Some(handle)) = (tls, self.tls.clone()) {
            handle.reload_from_config(Arc::new(config));
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
        if is("encryption") {
            self.reload_encryption(now, &mut warnings);
        }
        if republish {
            self.republish();
        }
        for w in warnings {
            tracing::warn!("{w}");
        }
        self.report_expiry();
        if force {
            tracing::info!("certificates checked (SIGHUP)");
        }
    }

    /// Drops the previous signing keys whose tokens have all expired (when files are not polled:
    /// `AccessControl:ReloadIntervalSeconds` 0).
    pub fn expire_retained(&mut self, now: i64) {
        if self.drop_expired(now) {
            self.republish();
            self.report_expiry();
        }
    }

    /// Forgets the previous signing keys whose tokens have all expired at `now`; whether any was.
    fn drop_expired(&mut self, now: i64) -> bool {
        let before = self.retained.len();
        self.retained.retain(|(_, until)| *until > now);
        let dropped = self.retained.len() != before;
        if dropped {
            tracing::info!(
                "previous signing key(s) no longer published: the tokens they signed have expired"
            );
        }
        dropped
    }

    /// Publishes the keys in force: the signing key, the validation keys, the retained previous
    /// signing keys (those published before stay when this fails).
    fn republish(&self) {
        let mut others = self.validation.clone();
        others.extend(self.retained.iter().map(|(c, _)| c.clone()));
        if let Err(e) = self
            .keys
            .publish(&self.publish, None, |o| o.reloaded = others)
        {
            tracing::error!(
                "the JWKS could not be rebuilt after a certificate reload: {e}; the keys published before stay"
            );
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
        // A managed key's certificate is only its key's wrapper (the schedule has its own metrics).
        if !keys::is_managed(&self.settings) {
            self.telemetry
                .certificates("signing", &of(&[&signing.certificate]));
        }
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
