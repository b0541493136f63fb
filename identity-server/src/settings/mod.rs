//! Server settings: `appsettings.json` keys (DESIGN.md section 4) -> a validated [`Settings`].
//!
//! One pipeline, three stages (DESIGN.md section 7 item 5):
//! 1. raw layered input: [`ids_config::Config`] (files, environment, `--urls`, each value with its origin);
//! 2. validated plain data: [`Settings`], built by [`Settings::from_config`] without reading any other
//!    file and without key material (certificate files are paths and passwords);
//! 3. loaded keys: [`crate::keys::ServerKeys`] (signing, validation, TLS) and
//!    [`crate::keys::EncryptionKeys`], read from disk by `identity_server::load`.
//!
//! # Layout
//! - `schema`: every key, declared once (path, default, range, meaning); the schema is built from it.
//! - `listen`: listen URLs.
//! - here: [`Settings`] and its sections, and [`Settings::for_test`] for unit tests.

mod listen;
pub mod oauth;
pub mod operations;
pub mod schema;

pub use listen::{ListenUrl, ListenUrlError};
pub use oauth::{DpopSettings, OAuthSettings};
pub use operations::{ForwardedSettings, Operations};
use schema::{self as key, MIB};
pub use schema::{KEYS, schema};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ids_runtime::{Clock, SystemClock};

use ids_config::appsettings::{
    ENCRYPT_FILE, ENCRYPTION_FILE, ENCRYPTION_PASSWORD, aliased, base_url, file_with_password,
    reject_windows_store, take,
};
use ids_config::keys::{flag, number};
use ids_config::{Config, ConfigError, Key, Origin, invalid};
pub use ids_pki::pfx::CertificateFile;

/// Validated server settings: no `Option` where a default exists.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_dir: PathBuf,
    /// Token-signing certificate with private key.
    pub signing: CertificateFile,
    /// Extra certificates published in the JWKS (key rotation).
    pub validation_keys: Vec<PathBuf>,
    /// TLS certificate; the signing certificate when `Kestrel:Certificates:Default` is not set.
    pub tls: CertificateFile,
    /// Listen URLs (`https://host:port`; port 0 picks a free port), at least one. The first one names the
    /// issuer when `ApplicationUri` is not set.
    pub urls: Vec<ListenUrl>,
    /// `ApplicationUri`: the issuer. When unset, derived from the bound address.
    pub application_uri: Option<String>,
    /// `aud` claim; the issuer when unset.
    pub audience: Option<String>,
    /// Scopes a client may request; all of them are granted when none is requested.
    pub scopes: Vec<String>,
    pub access_token_lifetime: Duration,
    /// Folder of access-control XML files.
    pub access_control_path: PathBuf,
    /// How often the XML folder is checked for changes (zero: only on SIGHUP).
    pub access_control_reload: Duration,
    pub danger_accept_expired_certificate: bool,
    pub secret_cache_ttl: Duration,
    pub secret_cache_size: usize,
    /// How many argon2 verifications may run at once.
    pub hash_concurrency: usize,
    /// Failed authentications per minute allowed per client and per source address before 429.
    pub failed_authentications_per_minute: u32,
    /// `IdentityServer:MaxClientAssertionLifetimeSeconds`: the longest `exp - now` of a `private_key_jwt`
    /// assertion, exactly (default 3660: the hour Authlib and Okta-style clients sign for by default,
    /// plus a minute for a client clock ahead of the server's).
    pub max_client_assertion_lifetime: Duration,
    /// The server's time source (the system clock; tests inject one).
    pub clock: Arc<dyn Clock>,
    /// `EncryptionCertificate`: deliveries are stored encrypted for it (no certificate, no deliveries).
    pub encryption_certificate: Option<CertificateFile>,
    /// `EncryptionCertificate:EncryptFile` as set (deliveries are encrypted either way).
    pub encrypt_file: bool,
    /// The `Deliveries` section.
    pub deliveries: DeliverySettings,
    /// The `Limits` section: what one connection may hold.
    pub limits: Limits,
    /// `AccessControl:AuthorizedClientsPath`: a folder of client public keys, certificates or JWKs
    /// (`<client id>.<ext>`, or several in `<client id>/`), reloaded when it changes.
    pub authorized_clients_path: Option<PathBuf>,
    /// `IdentityServer:ClientCertificates`: whether the TLS handshake asks clients for a certificate.
    pub client_certificates: ClientCertificates,
    /// `IdentityServer:ClientCertificateAuthorities`: CA certificates for `tls_client_auth`.
    pub client_certificate_authorities: Vec<PathBuf>,
    /// `IdentityServer:ExpiryWarningDays`: `check` and start-up warn about certificates expiring sooner.
    pub expiry_warning_days: u64,
    /// Top-level sections of other software in the same files (`Connections`, `License`...), listed
    /// once at start-up and by `check` as not used by this server.
    pub ignored_sections: Vec<ids_config::IgnoredSection>,
    /// The `Store` section: where the replay cache, failure budgets and deliveries are shared.
    pub store: crate::store::StoreSettings,
    /// Metrics, audit trail, log format and reverse proxies (`Metrics`, `Audit`, `Logging:Format`,
    /// `ForwardedHeaders`).
    pub operations: Operations,
    /// Signing algorithm, resource indicators, introspection, DPoP.
    pub oauth: OAuthSettings,
}

/// Whether the server asks for TLS client certificates (RFC 8705).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Asked for, never required: clients without one authenticate otherwise.
    Optional,
    /// Not asked for: mutual TLS is off.
    Off,
}

/// Where and what agents may deliver.
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// `Deliveries:DataFolder` (default `data` beside appsettings.json); deliveries go to its
    /// `deliveries` sub-folder.
    pub data_folder: PathBuf,
    /// `Deliveries:MaxFileSizeMiB` (default 4096), in bytes.
    pub max_size: u64,
    /// `Deliveries:DeliverProfiles` (default `Administrator`, `Agent`).
    pub deliver_profiles: Vec<String>,
    /// `Deliveries:ReadProfiles` (default none: read on the server with `identity-server deliveries`).
    pub read_profiles: Vec<String>,
    /// `Deliveries:QuotaMiB` (default 0: none), in bytes.
    pub quota: Option<u64>,
    /// `Deliveries:MinFreeSpaceMiB` (default 256), in bytes.
    pub min_free: u64,
    /// `Deliveries:MaxConcurrentUploads` (default 32).
    pub max_uploads: usize,
    /// `Deliveries:MaxConcurrentUploadsPerClient` (default a quarter of `max_uploads`, at least 1; at
    /// most `max_uploads`).
    pub max_uploads_per_client: usize,
    /// `Deliveries:MinUploadBytesPerSecond` (default 240; 0: none) over
    /// `Deliveries:MinUploadRateWindowSeconds` (default 10).
    pub min_upload_rate: crate::deliveries::MinUploadRate,
    /// `Deliveries:DigestTrailers` (default true): the server says, in its answers to
    /// `GET /api/deliveries/{id}`, that it reads the SHA-256 after the body, so agents read their file
    /// once. False behind a proxy that drops request trailers: agents then send the digest first.
    pub digest_trailers: bool,
}

/// What a connection may hold (`Limits` section; see `connections`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// `Limits:MaxConnections`: connections open at once; over it new ones are closed at once. When
    /// unset, derived from the open-file limit at start-up (`connections::derived_max_connections`).
    pub max_connections: Option<usize>,
    /// `Limits:IdleTimeoutSeconds` (default 60): a connection without a request in flight for this
    /// long is closed (HTTP/1.1 keep-alive, HTTP/2, connections that never send a request); so is one
    /// whose client reads nothing of a response for this long.
    pub idle_timeout: Duration,
    /// `Limits:TlsHandshakeTimeoutSeconds` (default 10).
    pub tls_handshake_timeout: Duration,
    /// `Limits:RequestHeadersTimeoutSeconds` (default 10): the time to send a request's headers.
    pub request_headers_timeout: Duration,
    /// `Limits:TokenRequestTimeoutSeconds` (default 10): the time to send a whole token request
    /// body; then 408.
    pub token_request_timeout: Duration,
}

/// The default `Deliveries:DeliverProfiles`: the profile the product's documentation gives agents
/// (`Administrator`) and a dedicated one (`Agent`).
pub const DEFAULT_DELIVER_PROFILES: &[&str] = &["Administrator", "Agent"];

impl Settings {
    /// Loads `appsettings.json` layers from `dir` with the process environment, then applies `--urls`.
    pub fn load(dir: &Path, urls: Option<&str>) -> Result<Settings, Vec<ConfigError>> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(dir, &vars, urls)
    }

    /// [`Settings::load`] with explicit environment variables (tests).
    pub fn load_with(
        dir: &Path,
        vars: &[(String, String)],
        urls: Option<&str>,
    ) -> Result<Settings, Vec<ConfigError>> {
        let schema = schema();
        let mut config = Config::load(dir, "appsettings", true, vars, &schema)?;
        if let Some(urls) = urls {
            config.set(
                "Urls".into(),
                urls.into(),
                Origin::CommandLine("--urls".into()),
            );
        }
        let mut settings = Self::from_config(&config)?;
        // libpq's PGPASSWORD, the last resort (a password in the settings comes first).
        if let crate::store::StoreSettings::PostgreSql(pg) = &mut settings.store
            && pg.config.get_password().is_none()
            && let Some((_, password)) = vars.iter().find(|(k, _)| k == "PGPASSWORD")
        {
            pg.config.password(password.as_bytes());
        }
        Ok(settings)
    }

    /// Valid settings for unit tests, read from no file: every default, with the signing (and TLS)
    /// certificate `signing.pfx` in a configuration folder that need not exist. Nothing is opened
    /// until the keys are loaded ([`crate::keys::ServerKeys::load`]).
    pub fn for_test() -> Settings {
        let dir = std::env::temp_dir().join("identity-server-for-test");
        let mut config = Config::empty(&dir);
        config.set(
            key::SIGNING_FILE.path.into(),
            "signing.pfx".into(),
            Origin::Default,
        );
        match Self::from_config(&config) {
            Ok(settings) => settings,
            // The defaults are valid: `tests::for_test_is_valid_defaults` shows it.
            Err(errors) => unreachable!("Settings::for_test: {errors:?}"),
        }
    }

    /// Validates a merged configuration, reporting every problem.
    pub fn from_config(config: &Config) -> Result<Settings, Vec<ConfigError>> {
        let schema = schema();
        let mut errors = config.check_unknown(&schema);

        errors.extend(reject_windows_store(
            config,
            "IdentityServer",
            "X509KeyFilePath and X509KeyFilePassword with a PFX file",
        ));
        errors.extend(reject_windows_store(
            config,
            "EncryptionCertificate",
            "EncryptionCertificate:File and EncryptionCertificate:Password",
        ));
        for store_key in [key::TLS_SUBJECT, key::TLS_STORE, key::TLS_LOCATION] {
            if let Some(s) = config.get(store_key.path) {
                errors.push(ConfigError::Invalid {
                    path: s.path.clone(),
                    origin: s.origin.to_string(),
                    message: "Windows certificate stores are not supported on this platform, use Kestrel:Certificates:Default:Path and Password with a PFX file".into(),
                });
            }
        }

        if let Some(s) = config
            .get(key::KESTREL_ENDPOINTS.path)
            .or_else(|| config.first_below(key::KESTREL_ENDPOINTS.path))
        {
            errors.push(ConfigError::Invalid {
                path: s.path.clone(),
                origin: s.origin.to_string(),
                message: "Kestrel:Endpoints is not supported: set the listen URL with Urls (or --urls) and the TLS certificate with Kestrel:Certificates:Default:Path and Password".into(),
            });
        }

        let signing_path = aliased(
            config,
            key::SIGNING_FILE.path,
            key::SIGNING_FILE_ALIAS.path,
            &mut errors,
        );
        let oauth = oauth::oauth(config, &mut errors);
        let automatic = matches!(oauth.key_management, oauth::KeyManagement::Automatic(_));
        let tls_file = file_with_password(config, key::TLS_FILE.path, key::TLS_PASSWORD.path)
            .map(|(path, password)| CertificateFile::new(path, password, key::TLS_FILE.path));
        let signing = match signing_path {
            // With managed keys the signing PFX signs nothing; the TLS certificate stands for it.
            None if automatic => match &tls_file {
                Some(tls) => Some(tls.clone()),
                None => {
                    errors.push(ConfigError::Missing {
                        path: key::TLS_FILE.path.into(),
                        message: "the TLS certificate (a PFX, with Kestrel:Certificates:Default:Password): with IdentityServer:KeyManagement Automatic there is no signing PFX to serve TLS with".into(),
                    });
                    None
                }
            },
            Some(s) => Some(CertificateFile {
                path: config.resolve(s.value.trim()),
                password: ids_proto::Password::new(
                    config
                        .string(key::SIGNING_PASSWORD.path)
                        .unwrap_or_default(),
                ),
                setting: s.path.clone(),
            }),
            None => {
                errors.push(ConfigError::Missing {
                    path: "IdentityServer:X509KeyFilePath".into(),
                    message: "the PFX file whose private key signs tokens (with IdentityServer:X509KeyFilePassword)".into(),
                });
                None
            }
        };
        let tls = tls_file.or_else(|| signing.clone());
        let encryption_certificate =
            file_with_password(config, ENCRYPTION_FILE.path, ENCRYPTION_PASSWORD.path)
                .map(|(path, password)| CertificateFile::new(path, password, ENCRYPTION_FILE.path));
        let encrypt_file = take(&mut errors, config.flag_or(&ENCRYPT_FILE, true)).unwrap_or(true);
        let deliveries = delivery_settings(config, &mut errors);
        let limits = limits(config, &mut errors);

        let url_setting = config
            .get(key::URLS.path)
            .or_else(|| config.get(key::ASPNETCORE_URLS.path));
        let urls: Vec<ListenUrl> = match url_setting {
            None => vec![ListenUrl {
                https: true,
                host: "localhost".into(),
                port: 5001,
            }],
            Some(s) => s
                .value
                .split(';')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .filter_map(|u| {
                    take(
                        &mut errors,
                        ListenUrl::parse(u).map_err(|m| invalid(s, &m.to_string())),
                    )
                })
                .collect(),
        };
        if let (true, Some(s)) = (urls.is_empty(), url_setting) {
            errors.push(invalid(
                s,
                "expected at least one listen URL, e.g. https://localhost:5001",
            ));
        }
        let insecure = flag(config, &key::DANGER_INSECURE_HTTP, &mut errors);
        if let Some(s) = url_setting.filter(|_| !insecure && urls.iter().any(|u| !u.https)) {
            errors.push(invalid(
                s,
                "plain HTTP is refused: use https://, or set IdentityServer:DangerAllowInsecureHttp to true for local development only",
            ));
        }

        let application_uri = match config.get(key::APPLICATION_URI.path) {
            Some(s) if !s.value.trim().is_empty() => take(&mut errors, base_url(s, insecure)),
            _ => None,
        };
        let lifetime = number(config, &key::ACCESS_TOKEN_LIFETIME, &mut errors);
        let scopes: Vec<String> = {
            let list = config.list(key::SCOPES.path);
            if list.is_empty() {
                vec!["api".to_string()]
            } else {
                list.iter()
                    .filter_map(|s| {
                        let v = s.value.trim();
                        if crate::oauth::request::is_scope_token(v) {
                            Some(v.to_string())
                        } else {
                            errors.push(invalid(s, "a scope is one word of printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"));
                            None
                        }
                    })
                    .collect()
            }
        };
        let access_control_path = config
            .path(key::ACCESS_CONTROL_PATH.path)
            .unwrap_or_else(|| config.dir().join("Conf"));
        let reload = number(config, &key::ACCESS_CONTROL_RELOAD, &mut errors);
        let danger_expired = flag(config, &key::DANGER_ACCEPT_EXPIRED, &mut errors);
        let cache_ttl = number(config, &key::SECRET_CACHE_SECONDS, &mut errors);
        let cache_size = number(config, &key::SECRET_CACHE_SIZE, &mut errors);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let concurrency =
            take(&mut errors, config.number_or(&key::HASH_CONCURRENCY, cpus)).unwrap_or(cpus);
        let failed = number(config, &key::FAILED_AUTHENTICATIONS_PER_MINUTE, &mut errors);

        let max_assertion_lifetime =
            number(config, &key::MAX_CLIENT_ASSERTION_LIFETIME, &mut errors);

        let authorized_clients_path = config
            .path(key::AUTHORIZED_CLIENTS_PATH.path)
            .filter(|p| !p.as_os_str().is_empty());
        let client_certificates = match config.get(key::CLIENT_CERTIFICATES.path) {
            None => ClientCertificates::Optional,
            Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
                "" | "optional" => ClientCertificates::Optional,
                "off" => ClientCertificates::Off,
                _ => {
                    errors.push(invalid(
                        s,
                        "expected `Optional` (ask TLS clients for a certificate, never require one) or `Off`",
                    ));
                    ClientCertificates::Off
                }
            },
        };
        let client_certificate_authorities: Vec<PathBuf> = config
            .list(key::CLIENT_CERTIFICATE_AUTHORITIES.path)
            .iter()
            .map(|s| config.resolve(s.value.trim()))
            .collect();
        if client_certificates == ClientCertificates::Off
            && !client_certificate_authorities.is_empty()
            && let Some(s) = config.get(key::CLIENT_CERTIFICATES.path)
        {
            errors.push(invalid(
                    s,
                    "is Off, but IdentityServer:ClientCertificateAuthorities is set: tls_client_auth needs client certificates (set Optional, or remove the authorities)",
                ));
        }
        let expiry_warning_days = number(config, &key::EXPIRY_WARNING_DAYS, &mut errors);
        let store = crate::store::settings::store_settings(config, None, &mut errors);
        let operations = operations::operations(config, &mut errors);

        if let oauth::KeyManagement::Automatic(m) = oauth.key_management
            && m.retention_secs < lifetime as i64 + 60
            && let Some(s) = config.get(key::KEY_RETENTION_DAYS.path)
        {
            errors.push(invalid(
                s,
                "is shorter than IdentityServer:AccessTokenLifetime: a key would leave the JWKS while tokens it signed are still valid",
            ));
        }
        if automatic && encryption_certificate.is_none() {
            errors.push(ConfigError::Missing {
                path: ENCRYPTION_FILE.path.into(),
                message: "IdentityServer:KeyManagement Automatic keeps the signing keys it makes encrypted for EncryptionCertificate: set EncryptionCertificate:File and Password (a PFX)".into(),
            });
        }
        let (Some(signing), Some(tls)) = (signing, tls) else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            config_dir: config.dir().to_path_buf(),
            signing,
            validation_keys: config
                .list(key::VALIDATION_KEYS.path)
                .iter()
                .map(|s| config.resolve(s.value.trim()))
                .collect(),
            tls,
            urls,
            application_uri,
            audience: config.string(key::AUDIENCE.path),
            scopes,
            access_token_lifetime: Duration::from_secs(lifetime),
            access_control_path,
            access_control_reload: Duration::from_secs(reload),
            danger_accept_expired_certificate: danger_expired,
            secret_cache_ttl: Duration::from_secs(cache_ttl),
            secret_cache_size: cache_size as usize,
            hash_concurrency: concurrency as usize,
            failed_authentications_per_minute: failed as u32,
            max_client_assertion_lifetime: Duration::from_secs(max_assertion_lifetime),
            clock: Arc::new(SystemClock),
            encryption_certificate,
            encrypt_file,
            deliveries,
            limits,
            authorized_clients_path,
            client_certificates,
            client_certificate_authorities,
            expiry_warning_days,
            ignored_sections: config.ignored_sections(&schema),
            store,
            operations,
            oauth,
        })
    }
}

fn limits(config: &Config, errors: &mut Vec<ConfigError>) -> Limits {
    let mut seconds = |key: &Key| Duration::from_secs(number(config, key, errors));
    let idle_timeout = seconds(&key::IDLE_TIMEOUT);
    let tls_handshake_timeout = seconds(&key::TLS_HANDSHAKE_TIMEOUT);
    let request_headers_timeout = seconds(&key::REQUEST_HEADERS_TIMEOUT);
    let token_request_timeout = seconds(&key::TOKEN_REQUEST_TIMEOUT);
    let max_connections = config
        .get(key::MAX_CONNECTIONS.path)
        .and_then(|_| take(errors, config.number_or(&key::MAX_CONNECTIONS, 0)).map(|n| n as usize));
    Limits {
        max_connections,
        idle_timeout,
        tls_handshake_timeout,
        request_headers_timeout,
        token_request_timeout,
    }
}

fn delivery_settings(config: &Config, errors: &mut Vec<ConfigError>) -> DeliverySettings {
    let profiles = |key: &str, default: &[&str], errors: &mut Vec<ConfigError>| -> Vec<String> {
        let list = config.list(key);
        if list.is_empty() {
            return default.iter().map(|p| p.to_string()).collect();
        }
        list.iter()
            .filter_map(|s| {
                let v = s.value.trim();
                if v.is_empty() {
                    errors.push(invalid(s, "a profile identifier (or `*` for any profile)"));
                    None
                } else {
                    Some(v.to_string())
                }
            })
            .collect()
    };
    let max_mib = number(config, &key::MAX_FILE_SIZE_MIB, errors);
    let quota_mib = number(config, &key::QUOTA_MIB, errors);
    let min_free_mib = number(config, &key::MIN_FREE_SPACE_MIB, errors);
    let max_uploads = number(config, &key::MAX_CONCURRENT_UPLOADS, errors) as usize;
    let per_client_default = (max_uploads / 4).max(1);
    let max_uploads_per_client = take(
        errors,
        config.number_or(
            &key::MAX_CONCURRENT_UPLOADS_PER_CLIENT,
            per_client_default as u64,
        ),
    )
    .map_or(per_client_default, |n| n as usize);
    if max_uploads_per_client > max_uploads
        && let Some(s) = config.get(key::MAX_CONCURRENT_UPLOADS_PER_CLIENT.path)
    {
        errors.push(invalid(
            s,
            &format!(
                "at most Deliveries:MaxConcurrentUploads ({max_uploads}), the upload slots all clients share; keep it lower so that one client cannot take them all"
            ),
        ));
    }
    let min_rate = number(config, &key::MIN_UPLOAD_BYTES_PER_SECOND, errors);
    let rate_window = number(config, &key::MIN_UPLOAD_RATE_WINDOW, errors);
    DeliverySettings {
        digest_trailers: flag(config, &key::DIGEST_TRAILERS, errors),
        max_uploads,
        max_uploads_per_client: max_uploads_per_client.min(max_uploads),
        min_upload_rate: crate::deliveries::MinUploadRate {
            bytes_per_second: min_rate,
            window: Duration::from_secs(rate_window),
        },
        data_folder: config
            .path(key::DATA_FOLDER.path)
            .unwrap_or_else(|| config.dir().join("data")),
        max_size: max_mib * MIB,
        deliver_profiles: profiles(key::DELIVER_PROFILES.path, DEFAULT_DELIVER_PROFILES, errors),
        read_profiles: profiles(key::READ_PROFILES.path, &[], errors),
        quota: (quota_mib > 0).then_some(quota_mib * MIB),
        min_free: min_free_mib * MIB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_test_is_valid_defaults() {
        let s = Settings::for_test();
        assert_eq!(s.access_token_lifetime, Duration::from_secs(3600));
        assert_eq!(
            s.urls,
            vec![ListenUrl::parse("https://localhost:5001").expect("url")]
        );
        assert_eq!(s.tls.path, s.signing.path);
        assert_eq!(s.deliveries.max_uploads_per_client, 8);
        assert_eq!(s.limits.max_connections, None);
        assert!(s.ignored_sections.is_empty());
    }

    #[test]
    fn listen_url_errors_are_typed() {
        assert_eq!(
            ListenUrl::parse("localhost:5001"),
            Err(ListenUrlError::NotAUrl)
        );
        assert_eq!(
            ListenUrl::parse("https://h:99999"),
            Err(ListenUrlError::Port("99999".into()))
        );
        assert_eq!(
            ListenUrl::parse("https://h:1/x"),
            Err(ListenUrlError::Port("1/x".into()))
        );
        assert_eq!(ListenUrl::parse("https:///x"), Err(ListenUrlError::Path));
    }
}
