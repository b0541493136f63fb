//! Start-up: everything read from disk before the server accepts a connection (certificates, the
//! access-control XML, the delivery store, the replay journal), the warnings about it (certificates
//! about to expire), and the shared state the handlers serve from. Loading collects every problem so
//! that an operator fixes them in one pass.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::access_control::{self, Clients};
use crate::deliveries::DeliveriesOff;
use crate::keys::{self, KeyError, ServerKeys};
use crate::oauth::client_auth::{AuthConfig, Authenticator};
use crate::oauth::{self, TokenIssuer, TokenService};
use crate::settings::{self, Settings};
use crate::store::postgres::deliveries::PgDeliveryStore;
use ids_runtime::{Clock as _, SystemClock};

use crate::{Error, authorized_clients, deliveries, http};

/// Everything loaded from disk, validated before the server accepts a connection.
#[derive(Debug)]
pub struct Loaded {
    pub keys: ServerKeys,
    pub clients: Clients,
    /// `EncryptionCertificate` (deliveries are stored encrypted for it), or why deliveries are off.
    pub encryption: Result<keys::EncryptionKeys, DeliveriesOff>,
    /// Non-fatal findings (unknown XML attributes, expired certificate accepted on request...).
    pub warnings: Vec<String>,
    /// The shared PostgreSQL store (`Store:Provider PostgreSql`), not connected yet; `None`: embedded.
    pub store: Option<Arc<crate::store::postgres::PgStore>>,
}

/// One problem that keeps the server from starting, with its data; [`LoadErrors`] renders each as one
/// line (what `check` and `serve` print after `error:`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A certificate or key file named by the settings.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// One problem of the access-control XML folder.
    #[error(transparent)]
    AccessControl(#[from] access_control::AccessControlError),
    /// Verifying the server's own tokens with its certificates.
    #[error(transparent)]
    TokenKeys(#[from] ids_jose::KeySetError),
    /// The client CAs cannot make a verifier.
    #[error(transparent)]
    ClientAuthorities(#[from] oauth::client_keys::ClientAuthoritiesError),
    /// The client authenticator cannot start (no random key).
    #[error("{0}")]
    Authenticator(#[source] oauth::OAuthError),
    /// The audit trail cannot be written.
    #[error(transparent)]
    Audit(#[from] crate::telemetry::audit::AuditError),
    #[error("no listening socket")]
    NoListener,
    /// The shared store cannot be set up (its CA file, TLS) or its schema is newer than this binary.
    #[error("{0}")]
    Store(#[from] crate::store::postgres::PgError),
    /// `KeyManagement Automatic`: the keys could not be read or made.
    #[error("IdentityServer:KeyManagement Automatic: {0}")]
    ManagedKeys(#[from] keys::managed::KeyStoreError),
    #[error("no token-signing key")]
    NoSigningKey,
}

/// Every problem found while loading (an operator fixes them in one pass): displayed one per line.
#[derive(Debug, Default, thiserror::Error)]
#[error("{}", self.problems().join("\n"))]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// One message per problem.
    pub fn problems(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl<E: Into<LoadError>> From<E> for LoadErrors {
    fn from(e: E) -> Self {
        LoadErrors(vec![e.into()])
    }
}

/// Loads certificates and the access-control XML, collecting every problem.
pub fn load(settings: &Settings, now: i64) -> Result<Loaded, LoadErrors> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let keys = match ServerKeys::load(settings, now, &mut warnings) {
        Ok(k) => Some(k),
        Err(es) => {
            errors.extend(es.into_iter().map(LoadError::Key));
            None
        }
    };
    let encryption = match keys::EncryptionKeys::load(settings, now, &mut warnings, true) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(LoadError::Key(e));
            None
        }
    };
    let clients = match Clients::load(&settings.access_control_path, client_rules(settings)) {
        Ok((c, w)) => {
            warnings.extend(w);
            Some(c)
        }
        Err(e) => {
            errors.extend(e.0.into_iter().map(LoadError::AccessControl));
            None
        }
    };
    let store = match settings.store.postgres() {
        None => None,
        Some(pg) => match crate::store::postgres::PgStore::new(pg) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                errors.push(LoadError::Store(e));
                None
            }
        },
    };
    match (keys, clients, encryption) {
        (Some(keys), Some(clients), Some(encryption)) if errors.is_empty() => Ok(Loaded {
            keys,
            clients,
            encryption,
            warnings,
            store,
        }),
        _ => Err(LoadErrors(errors)),
    }
}

/// Clients without `HashedSecret` or `Thumbprints` are valid when their keys or certificates can be
/// registered elsewhere: the authorized-clients folder, or a client CA.
pub fn client_rules(settings: &Settings) -> access_control::ClientRules {
    access_control::ClientRules {
        keys_elsewhere: settings.authorized_clients_path.is_some()
            || !settings.client_certificate_authorities.is_empty(),
        client_cas: !settings.client_certificate_authorities.is_empty()
            && settings.client_certificates == settings::ClientCertificates::Optional,
    }
}

/// Certificates that expire within `days` of `now` (or have expired), one message each: the signing,
/// validation, TLS and encryption certificates, the client CAs and the certificates of the
/// authorized-clients folder (`authorized`, as loaded).
pub fn expiry_warnings(
    settings: &Settings,
    loaded: &Loaded,
    authorized: &authorized_clients::AuthorizedKeys,
    now: i64,
    days: u64,
) -> Vec<String> {
    let mut certs: Vec<(String, &ids_pki::Certificate)> = vec![(
        settings.tls.setting.to_string(),
        &loaded.keys.tls_certificate,
    )];
    // A managed key's certificate is only its key's wrapper: its dates mean nothing to operators.
    if let Some(signing) = loaded
        .keys
        .signing
        .as_ref()
        .filter(|_| !keys::is_managed(settings))
    {
        certs.insert(
            0,
            (
                "IdentityServer:X509KeyFilePath".into(),
                &signing.certificate,
            ),
        );
    }
    certs.extend(
        loaded
            .keys
            .validation
            .iter()
            .map(|c| ("IdentityServer:ValidationKeys".to_string(), c)),
    );
    certs.extend(
        loaded
            .keys
            .client_authorities
            .iter()
            .map(|c| ("IdentityServer:ClientCertificateAuthorities".to_string(), c)),
    );
    if let Ok(e) = &loaded.encryption {
        certs.push(("EncryptionCertificate:File".into(), &e.certificate));
    }
    certs.extend(authorized.by_client.values().flatten().filter_map(|k| {
        k.certificate.as_ref().map(|c| {
            (
                format!("AccessControl:AuthorizedClientsPath ({})", k.file.display()),
                c,
            )
        })
    }));
    expiring(&certs, now, days)
}

/// The `role` label of the authorized-clients folder's certificates.
pub const AUTHORIZED_CLIENT_ROLE: &str = "authorized_client";

/// `(subject, notAfter)` of the certificates in the authorized-clients folder.
pub fn authorized_certificates(
    authorized: &authorized_clients::AuthorizedKeys,
) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = authorized
        .by_client
        .values()
        .flatten()
        .filter_map(|k| {
            k.certificate
                .as_ref()
                .map(|c| (c.subject().to_string(), c.not_after()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One message per certificate of `certs` that expires within `days` of `now`.
pub fn expiring(certs: &[(String, &ids_pki::Certificate)], now: i64, days: u64) -> Vec<String> {
    let horizon = now.saturating_add(
        i64::try_from(days)
            .unwrap_or(i64::MAX)
            .saturating_mul(86_400),
    );
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (setting, cert) in certs {
        if cert.not_after() > horizon || !seen.insert((setting.clone(), cert.x5t_s256())) {
            continue;
        }
        let when = ids_pki::cert::format_time(cert.not_after());
        if cert.not_after() <= now {
            out.push(format!(
                "{setting}: the certificate `{}` EXPIRED on {when}",
                cert.subject()
            ));
        } else {
            let left = (cert.not_after() - now) / 86_400;
            out.push(format!(
                "{setting}: the certificate `{}` expires on {when}, in {left} day(s); renew it before then",
                cert.subject()
            ));
        }
    }
    out
}

/// Logs what was loaded (ignored sections, warnings, the signing key, the clients, certificates about
/// to expire) and opens the authorized-clients folder, whose problems are logged too: a bad key file
/// there refuses that key, not the server.
pub(crate) fn announce(settings: &Settings, loaded: &Loaded) -> authorized_clients::LiveKeys {
    if let Some(line) = ids_config::describe_ignored(&settings.ignored_sections, "server") {
        tracing::info!("{line}");
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let authorized_keys = match &settings.authorized_clients_path {
        None => authorized_clients::LiveKeys::empty(),
        Some(folder) => {
            let (live, problems) = authorized_clients::LiveKeys::open(folder.clone());
            for p in problems {
                tracing::error!("{p}");
            }
            let count: usize = live.current().by_client.values().map(Vec::len).sum();
            tracing::info!(keys = count, folder = %folder.display(), "authorized clients loaded");
            live
        }
    };
    let authorized = authorized_keys.current();
    for w in expiry_warnings(
        settings,
        loaded,
        &authorized,
        SystemClock.now(),
        settings.expiry_warning_days,
    ) {
        tracing::warn!("{w}");
    }
    if let Some(signing) = &loaded.keys.signing {
        let cert = &signing.certificate;
        tracing::info!(
            alg = signing.signer.algorithm().as_str(),
            kid = signing.signer.kid(),
            subject = cert.subject(),
            not_after = %ids_pki::cert::format_time(cert.not_after()),
            validation_keys = loaded.keys.validation.len(),
            managed = keys::is_managed(settings),
            "token signing key loaded"
        );
    }
    tracing::info!(
        clients = loaded.clients.by_id.len(),
        files = loaded.clients.files.len(),
        folder = %settings.access_control_path.display(),
        "access control loaded"
    );
    authorized_keys
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn app_state(
    settings: &Settings,
    loaded: Loaded,
    managed_others: Vec<(ids_pki::Certificate, ids_pki::Algorithm)>,
    authorized_keys: authorized_clients::LiveKeys,
    issuer: &str,
    bound: &[SocketAddr],
    runtime: tokio::runtime::Handle,
    telemetry: crate::telemetry::Telemetry,
) -> Result<http::AppState, LoadError> {
    // The other roles' expiry is reported by the certificate reloader (reload::certificates),
    // which follows them while serving.
    telemetry.certificates(
        AUTHORIZED_CLIENT_ROLE,
        &authorized_certificates(&authorized_keys.current()),
    );
    if let Some(m) = &telemetry.metrics {
        m.clients_loaded.set(loaded.clients.by_id.len() as i64);
        m.last_reload_success.set(1);
        m.last_reload_time.set(settings.clock.now());
        m.store_up.set(1);
    }
    let Loaded {
        keys,
        clients,
        encryption,
        store,
        ..
    } = loaded;
    let audience = settings
        .audience
        .clone()
        .unwrap_or_else(|| issuer.to_string());
    // With PostgreSQL, deliveries are kept in the database (the data folder is not used for them).
    let shared = store
        .as_ref()
        .map(|pg| PgDeliveryStore::for_server(pg.clone(), runtime, settings.deliveries.quota));
    let deliveries = match encryption {
        Ok(encryption) => {
            let subject = encryption.certificate.subject().to_string();
            let kept_in = match &store {
                Some(pg) => format!("PostgreSQL {}", pg.describe()),
                None => settings
                    .deliveries
                    .data_folder
                    .join("deliveries")
                    .display()
                    .to_string(),
            };
            match open_deliveries(settings, encryption, true, shared) {
                Ok((service, opened)) => {
                    for path in &opened.removed {
                        tracing::info!(path = %path.display(), "removed what an interrupted delivery left");
                    }
                    if !settings.encrypt_file {
                        tracing::warn!(
                            "EncryptionCertificate:EncryptFile is false, but deliveries are always stored encrypted"
                        );
                    }
                    let d = &settings.deliveries;
                    // The folder is counted when it is opened; the database is not asked here.
                    let (count, stored_mib) = match &store {
                        Some(_) => ("-".to_string(), "-".to_string()),
                        None => (
                            opened.deliveries.to_string(),
                            (opened.stored_bytes / (1024 * 1024)).to_string(),
                        ),
                    };
                    tracing::info!(
                        store = %kept_in,
                        deliveries = %count,
                        stored_mib = %stored_mib,
                        encrypted_for = %subject,
                        deliver_profiles = %d.deliver_profiles.join(","),
                        read_profiles = %d.read_profiles.join(","),
                        max_file_size_mib = d.max_size / (1024 * 1024),
                        max_uploads = d.max_uploads,
                        max_uploads_per_client = d.max_uploads_per_client,
                        min_upload_bytes_per_second = d.min_upload_rate.bytes_per_second,
                        min_upload_rate_window_seconds = d.min_upload_rate.window.as_secs(),
                        digest_trailers = d.digest_trailers,
                        "deliveries enabled"
                    );
                    Ok(Arc::new(service))
                }
                Err(e) => {
                    // Tokens are still issued; deliveries answer 503 until this is fixed.
                    tracing::error!("deliveries disabled: {e}");
                    Err(DeliveriesOff::FolderUnusable)
                }
            }
        }
        Err(reason) => {
            tracing::info!("deliveries disabled: {reason}");
            Err(reason)
        }
    };
    let client_authorities = if keys.client_authorities.is_empty() {
        None
    } else {
        Some(oauth::client_keys::ClientAuthorities::new(
            &keys.client_authorities,
        )?)
    };
    let publish = publish_context(settings, issuer);
    let signing = keys.signing.ok_or(LoadError::NoSigningKey)?;
    let others = keys::in_force::Others {
        reloaded: keys.validation.clone(),
        managed: managed_others,
    };
    let published =
        keys::Published::with_algorithms(&signing, &others.all(), &publish, &others.algorithms())?;
    let in_force = Arc::new(keys::InForce::from_arc(
        signing,
        published,
        client_authorities,
        others,
    ));
    // `client_id` may be suffixed with any spelling of this server's authority.
    let mut authorities = vec![ids_runtime::url::authority(issuer).to_string()];
    for (i, addr) in bound.iter().enumerate() {
        if let Some(url) = settings.urls.get(i) {
            authorities.push(format!("{}:{}", url.host, addr.port()));
        }
        authorities.push(format!("localhost:{}", addr.port()));
        authorities.push(addr.to_string());
    }
    authorities.sort();
    authorities.dedup();
    // A client assertion's `aud`: the token endpoint (as any authority spells it) or the issuer.
    let mut assertion_audiences = vec![
        issuer.trim_end_matches('/').to_string(),
        format!(
            "{}{}",
            issuer.trim_end_matches('/'),
            ids_proto::paths::TOKEN
        ),
    ];
    for a in &authorities {
        assertion_audiences.push(format!("https://{a}{}", ids_proto::paths::TOKEN));
    }
    assertion_audiences.dedup();
    // The memory bound (docs/performance.md, "Replay cache"): at most 1,000,000 live assertions
    // (~86 MiB: 2^21 buckets of 41 bytes), 100,000 of one client. An entry lives until its assertion's
    // exp + 30 s, at most MaxClientAssertionLifetimeSeconds + 30 s: one client may authenticate
    // 100,000 / (lifetime + 30) times a second (~1,100/s with the agent's 60 s assertions, ~27/s with
    // 1-hour ones) and all clients together 10 times that; beyond, the client gets
    // temporarily_unavailable, never a replay accepted.
    let memory = oauth::client_keys::MemoryReplayCache::new(1_000_000, 100_000);
    let replay: Arc<dyn oauth::client_keys::ReplayCache> = match &store {
        // Shared by every server through PostgreSQL; the memory cache keeps this server's shares
        // (crate::store::postgres::replay). The data folder's journal is not used.
        Some(store) => Arc::new(crate::store::postgres::PgReplayCache::new(
            store.clone(),
            memory,
        )),
        // Kept across restarts in <Deliveries:DataFolder>/replay (oauth::replay_journal), which adds
        // a bounded queue.
        None => {
            let (replay, opened) = oauth::replay_journal::JournaledReplayCache::open(
                &settings.deliveries.data_folder.join("replay"),
                memory,
                settings.clock.clone(),
                oauth::replay_journal::Limits::default(),
            );
            opened.log();
            Arc::new(replay)
        }
    };
    let revoked: Arc<dyn oauth::revocation::RevokedTokens> = match &store {
        Some(store) => Arc::new(crate::store::postgres::PgRevocations::new(store.clone())),
        None => {
            let (revoked, problem) = oauth::revocation::FileRevocations::open(
                &settings.deliveries.data_folder.join("revoked"),
                settings.clock.now(),
            );
            if let Some(problem) = problem {
                tracing::error!("revocations: {problem}");
            }
            Arc::new(revoked)
        }
    };
    // The URLs of this server a DPoP proof's `htu` may use: the issuer (`ApplicationUri`, the public
    // URL clients are given); without one, also the addresses it listens on as clients spell them.
    let mut origins = vec![issuer.trim_end_matches('/').to_string()];
    if settings.application_uri.is_none() {
        for a in &authorities {
            origins.push(format!("https://{a}"));
        }
    }
    origins.dedup();
    let token_urls = origins
        .iter()
        .map(|o| ids_jose::dpop::normalize_htu(&format!("{o}{}", ids_proto::paths::TOKEN)))
        .collect();
    let dpop = oauth::dpop::DpopService {
        token_urls,
        policy: ids_jose::DpopPolicy {
            algorithms: settings.oauth.dpop.algorithms.clone(),
            max_age_secs: settings.oauth.dpop.proof_lifetime_secs,
            leeway_secs: 30,
        },
        require_nonce: settings.oauth.dpop.require_nonce,
        replay: replay.clone(),
        origins,
        keys: in_force.clone(),
        proof_keys: ids_jose::dpop::ProofKeyCache::new(oauth::dpop::PROOF_KEY_CACHE),
    };
    let authenticator = Authenticator::new(AuthConfig {
        cache_ttl: settings.secret_cache_ttl,
        cache_size: settings.secret_cache_size,
        hash_concurrency: settings.hash_concurrency,
        hash_wait: Duration::from_secs(5),
        failures_per_minute: settings.failed_authentications_per_minute,
    })
    .map_err(LoadError::Authenticator)?
    .with_telemetry(telemetry.clone());
    let authenticator = match &store {
        Some(store) => authenticator.with_shared_budget(store.clone()),
        None => authenticator,
    };
    Ok(http::AppState {
        clock: settings.clock.clone(),
        token_request_timeout: settings.limits.token_request_timeout,
        tokens: TokenService {
            clients: Arc::new(access_control::LiveClients::new(
                clients,
                settings.access_control_path.clone(),
                client_rules(settings),
            )),
            authenticator,
            issuer: TokenIssuer {
                keys: in_force.clone(),
                accept_expired: settings.danger_accept_expired_certificate,
                issuer: issuer.to_string(),
                audience,
                lifetime_secs: settings.access_token_lifetime.as_secs(),
            },
            scopes: settings.scopes.clone(),
            authorities,
            keys: Arc::new(authorized_keys),
            replay,
            max_assertion_lifetime: settings.max_client_assertion_lifetime.as_secs() as i64,
            assertion_audiences,
            telemetry: telemetry.clone(),
            audiences: settings.oauth.audiences.clone(),
            introspection_profiles: settings.oauth.introspection_profiles.clone(),
            revoked,
            dpop,
        },
        telemetry,
        forwarded: settings.operations.forwarded.clone(),
        keys: in_force,
        deliveries,
        store,
    })
}

/// What publishing the keys needs besides them: the issuer, the audience, the scopes, whether mutual
/// TLS is offered.
pub fn publish_context(settings: &Settings, issuer: &str) -> keys::PublishContext {
    keys::PublishContext {
        issuer: issuer.to_string(),
        audience: settings
            .audience
            .clone()
            .unwrap_or_else(|| issuer.to_string()),
        scopes: settings.scopes.clone(),
        mutual_tls: settings.client_certificates == settings::ClientCertificates::Optional,
        signing_algorithm: settings.oauth.signing_algorithm,
        dpop_algorithms: settings.oauth.dpop.algorithms.clone(),
    }
}

/// What operator commands need to read stored deliveries back: the settings, the encryption key,
/// and warnings about it (an expired certificate still decrypts: only its key is needed).
#[derive(Debug)]
pub struct ReadBack {
    pub settings: Settings,
    pub encryption: keys::EncryptionKeys,
    pub warnings: Vec<String>,
}

impl ReadBack {
    /// Loads the settings of `dir` and the `EncryptionCertificate` key.
    pub fn load(dir: &Path) -> Result<ReadBack, Error> {
        let settings = Settings::load(dir, None).map_err(Error::Settings)?;
        let mut warnings = Vec::new();
        let encryption =
            keys::EncryptionKeys::load(&settings, SystemClock.now(), &mut warnings, false)
                .map_err(|e| Error::Load(e.into()))?
                .map_err(|_| Error::NoEncryptionCertificate {
                    settings_file: dir.join("appsettings.json"),
                })?;
        Ok(ReadBack {
            settings,
            encryption,
            warnings,
        })
    }

    /// The deliveries service over the stored files (no clean-up: a running server may be receiving),
    /// in the data folder or in PostgreSQL, as the settings' `Store` section says.
    pub fn open(self) -> Result<deliveries::Deliveries, Error> {
        let shared = match self.settings.store.postgres() {
            Some(pg) => Some(operator_store(pg, false)?),
            None => None,
        };
        let (service, _) = open_deliveries(&self.settings, self.encryption, false, shared)?;
        Ok(service)
    }
}

/// The PostgreSQL deliveries of an operator command (`deliveries`, `store import`): its own runtime,
/// connections that wait, and the schema checked first (so an old or new schema is said plainly).
/// With `migrate` (a command that writes, when `Store:ApplyMigrations` allows), the schema is brought
/// up to date first, as a server starting would.
pub fn operator_store(
    pg: &crate::store::settings::PgSettings,
    migrate: bool,
) -> Result<PgDeliveryStore, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let store = Arc::new(crate::store::postgres::PgStore::new(pg)?);
    if migrate && pg.apply_migrations {
        runtime.block_on(store.migrate())?;
    }
    runtime.block_on(store.status())?.check()?;
    Ok(PgDeliveryStore::for_operator(store, Arc::new(runtime)))
}

/// The delivery folder (`Deliveries:DataFolder`) cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("Deliveries:DataFolder: {0}")]
pub struct DataFolderError(#[from] pub deliveries::store::StoreError);

/// Opens the delivery store and the service over it: `shared` (PostgreSQL), or the data folder, where
/// `clean_up` (the server at start-up only) removes what interrupted deliveries left. (PostgreSQL's
/// leftovers are swept by every server's maintenance instead.)
pub fn open_deliveries(
    settings: &Settings,
    encryption: keys::EncryptionKeys,
    clean_up: bool,
    shared: Option<PgDeliveryStore>,
) -> Result<(deliveries::Deliveries, deliveries::folder::Opened), DataFolderError> {
    let d = &settings.deliveries;
    let (store, opened): (Arc<dyn deliveries::DeliveryStore>, _) = match shared {
        Some(pg) => (Arc::new(pg), deliveries::folder::Opened::default()),
        None => {
            let (store, opened) = deliveries::folder::FolderStore::open(
                &d.data_folder,
                d.quota,
                d.min_free,
                clean_up,
            )?;
            (Arc::new(store), opened)
        }
    };
    let service = deliveries::Deliveries::new(
        store,
        encryption.recipient,
        encryption.key,
        deliveries::Policy {
            deliver_profiles: d.deliver_profiles.clone(),
            read_profiles: d.read_profiles.clone(),
            max_size: d.max_size,
            max_uploads: d.max_uploads,
            max_uploads_per_client: d.max_uploads_per_client,
            min_upload_rate: d.min_upload_rate,
            digest_trailers: d.digest_trailers,
        },
    );
    Ok((service, opened))
}

/// The key manager of `KeyManagement Automatic` (None otherwise): its keys in the PostgreSQL store
/// when there is one, else in `<Deliveries:DataFolder>/signing-keys`, sealed for the
/// `EncryptionCertificate`.
pub fn key_manager(
    settings: &Settings,
    store: Option<&Arc<crate::store::postgres::PgStore>>,
    now: i64,
) -> Result<Option<Arc<keys::managed::KeyManager>>, LoadError> {
    let settings::oauth::KeyManagement::Automatic(managed) = settings.oauth.key_management else {
        return Ok(None);
    };
    let mut warnings = Vec::new();
    // An expired certificate still opens the keys sealed for it (and seals new ones: only its key
    // matters here).
    let encryption = match keys::EncryptionKeys::load(settings, now, &mut warnings, false)? {
        Ok(e) => e,
        Err(off) => {
            return Err(LoadError::ManagedKeys(keys::managed::KeyStoreError::Store(
                format!(
                    "the keys are sealed for EncryptionCertificate, which is not usable: {off}"
                ),
            )));
        }
    };
    let key_store: Arc<dyn keys::managed::KeyStore> = match store {
        Some(pg) => Arc::new(crate::store::postgres::PgKeyStore::new(pg.clone())),
        None => Arc::new(keys::managed::folder::FolderKeyStore::new(
            settings
                .deliveries
                .data_folder
                .join(keys::managed::folder::FOLDER),
        )),
    };
    Ok(Some(Arc::new(keys::managed::KeyManager::new(
        key_store,
        managed,
        encryption.recipient,
        encryption.key,
        settings.clock.clone(),
    ))))
}
