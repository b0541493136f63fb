//! Server settings: `appsettings.json` keys (DESIGN.md section 4) -> a validated [`Settings`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::{Clock, SystemClock};

use ids_config::appsettings::{aliased, base_url, file_with_password, reject_windows_store, take};
use ids_config::{Config, ConfigError, Origin, Schema, invalid};
pub use ids_pki::pfx::CertificateFile;

/// Every key the server reads. Sections owned by other software are accepted and ignored (`**`).
pub const KEYS: &[&str] = &[
    "Urls",
    "ApplicationUri",
    "AllowedHosts",
    "Logging:**",
    "Serilog:**",
    "IdentityServer:X509KeyFilePath",
    "IdentityServer:X509File",
    "IdentityServer:X509KeyFilePassword",
    "IdentityServer:ValidationKeys",
    "IdentityServer:ValidationKeys:*",
    "IdentityServer:AccessTokenLifetime",
    "IdentityServer:Audience",
    "IdentityServer:Scopes",
    "IdentityServer:Scopes:*",
    "IdentityServer:DangerAcceptExpiredCertificate",
    "IdentityServer:DangerAllowInsecureHttp",
    "IdentityServer:SecretCacheSeconds",
    "IdentityServer:SecretCacheSize",
    "IdentityServer:HashConcurrency",
    "IdentityServer:FailedAuthenticationsPerMinute",
    "IdentityServer:MaxClientAssertionLifetimeSeconds",
    "Kestrel:Certificates:Default:Path",
    "Kestrel:Certificates:Default:Password",
    "Kestrel:Certificates:Default:Subject",
    "Kestrel:Certificates:Default:Store",
    "Kestrel:Certificates:Default:Location",
    "Kestrel:Certificates:Default:AllowInvalid",
    "Kestrel:Endpoints:**",
    "AccessControl:ConfigurationPath",
    "AccessControl:ReloadIntervalSeconds",
    "AccessControl:AuthorizedClientsPath",
    "IdentityServer:ClientCertificates",
    "IdentityServer:ClientCertificateAuthorities",
    "IdentityServer:ClientCertificateAuthorities:*",
    "IdentityServer:ExpiryWarningDays",
    "ASPNETCORE_URLS",
    "Deliveries:DataFolder",
    "Deliveries:MaxFileSizeMiB",
    "Deliveries:DeliverProfiles",
    "Deliveries:DeliverProfiles:*",
    "Deliveries:ReadProfiles",
    "Deliveries:ReadProfiles:*",
    "Deliveries:QuotaMiB",
    "Deliveries:MinFreeSpaceMiB",
    "Deliveries:MaxConcurrentUploads",
    "Limits:MaxConnections",
    "Limits:IdleTimeoutSeconds",
    "Limits:TlsHandshakeTimeoutSeconds",
    "Limits:RequestHeadersTimeoutSeconds",
    "Limits:TokenRequestTimeoutSeconds",
    "Deliveries:MaxConcurrentUploadsPerClient",
    "Deliveries:MinUploadBytesPerSecond",
    "Deliveries:MinUploadRateWindowSeconds",
];

/// The server's schema.
pub fn schema() -> Schema {
    Schema::new(&[KEYS, ids_config::appsettings::CERTIFICATE_KEYS].concat())
}

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

const MIB: u64 = 1024 * 1024;

/// A listen URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl ListenUrl {
    /// The base URL clients use for this listen URL on `port`: wildcard hosts become `localhost`.
    pub fn public_base(&self, port: u16) -> String {
        let host = match self.host.as_str() {
            "*" | "+" | "0.0.0.0" | "::" => "localhost".to_string(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_string(),
        };
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{host}:{port}")
    }

    /// Parses `https://host:port` (also `http://` for the insecure development switch, `*`/`+` hosts).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('/');
        let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("expected a URL like https://localhost:5001".into());
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("port `{p}` is not a number from 0 to 65535"))?,
            ),
            _ => (rest, if https { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err("expected a URL like https://localhost:5001 (no path)".into());
        }
        Ok(ListenUrl {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }

    /// The socket address to bind: `localhost` -> 127.0.0.1, `*`/`+`/`0.0.0.0` -> all interfaces.
    pub fn bind_address(&self) -> String {
        let host = match self.host.as_str() {
            "localhost" => "127.0.0.1",
            "*" | "+" => "0.0.0.0",
            h => h,
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Keeps the value, or records the error.
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
        Self::from_config(&config)
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
        for key in ["Subject", "Store", "Location"] {
            if let Some(s) = config.get(&format!("Kestrel:Certificates:Default:{key}")) {
                errors.push(ConfigError::Invalid {
                    path: s.path.clone(),
                    origin: s.origin.to_string(),
                    message: "Windows certificate stores are not supported on this platform, use Kestrel:Certificates:Default:Path and Password with a PFX file".into(),
                });
            }
        }

        if let Some(s) = config
            .get("Kestrel:Endpoints")
            .or_else(|| config.first_below("Kestrel:Endpoints"))
        {
            errors.push(ConfigError::Invalid {
                path: s.path.clone(),
                origin: s.origin.to_string(),
                message: "Kestrel:Endpoints is not supported: set the listen URL with Urls (or --urls) and the TLS certificate with Kestrel:Certificates:Default:Path and Password".into(),
            });
        }

        let signing_path = aliased(
            config,
            "IdentityServer:X509KeyFilePath",
            "IdentityServer:X509File",
            &mut errors,
        );
        let signing = match signing_path {
            Some(s) => Some(CertificateFile {
                path: config.resolve(s.value.trim()),
                password: ids_proto::Password::new(
                    config
                        .string("IdentityServer:X509KeyFilePassword")
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
        let tls = match file_with_password(
            config,
            "Kestrel:Certificates:Default:Path",
            "Kestrel:Certificates:Default:Password",
        ) {
            Some((path, password)) => Some(CertificateFile::new(
                path,
                password,
                "Kestrel:Certificates:Default:Path",
            )),
            None => signing.clone(),
        };
        let encryption_certificate = file_with_password(
            config,
            "EncryptionCertificate:File",
            "EncryptionCertificate:Password",
        )
        .map(|(path, password)| CertificateFile::new(path, password, "EncryptionCertificate:File"));
        let encrypt_file = take(
            &mut errors,
            config.bool("EncryptionCertificate:EncryptFile", true),
        )
        .unwrap_or(true);
        let deliveries = delivery_settings(config, &mut errors);
        let limits = limits(config, &mut errors);

        let url_setting = config.get("Urls").or_else(|| config.get("ASPNETCORE_URLS"));
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
                .filter_map(|u| take(&mut errors, ListenUrl::parse(u).map_err(|m| invalid(s, &m))))
                .collect(),
        };
        if let (true, Some(s)) = (urls.is_empty(), url_setting) {
            errors.push(invalid(
                s,
                "expected at least one listen URL, e.g. https://localhost:5001",
            ));
        }
        let insecure = take(
            &mut errors,
            config.bool("IdentityServer:DangerAllowInsecureHttp", false),
        )
        .unwrap_or(false);
        if let Some(s) = url_setting.filter(|_| !insecure && urls.iter().any(|u| !u.https)) {
            errors.push(invalid(
                s,
                "plain HTTP is refused: use https://, or set IdentityServer:DangerAllowInsecureHttp to true for local development only",
            ));
        }

        let application_uri = match config.get("ApplicationUri") {
            Some(s) if !s.value.trim().is_empty() => take(&mut errors, base_url(s, insecure)),
            _ => None,
        };
        let lifetime = take(
            &mut errors,
            config.u64_in("IdentityServer:AccessTokenLifetime", 3600, 1, 86_400 * 7),
        )
        .unwrap_or(3600);
        let scopes: Vec<String> = {
            let list = config.list("IdentityServer:Scopes");
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
            .path("AccessControl:ConfigurationPath")
            .unwrap_or_else(|| config.dir().join("Conf"));
        let reload = take(
            &mut errors,
            config.u64_in("AccessControl:ReloadIntervalSeconds", 5, 0, 86_400),
        )
        .unwrap_or(5);
        let danger_expired = take(
            &mut errors,
            config.bool("IdentityServer:DangerAcceptExpiredCertificate", false),
        )
        .unwrap_or(false);
        let cache_ttl = take(
            &mut errors,
            config.u64_in("IdentityServer:SecretCacheSeconds", 3600, 0, 86_400),
        )
        .unwrap_or(3600);
        let cache_size = take(
            &mut errors,
            config.u64_in("IdentityServer:SecretCacheSize", 10_000, 0, 10_000_000),
        )
        .unwrap_or(10_000);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
        let concurrency = take(
            &mut errors,
            config.u64_in("IdentityServer:HashConcurrency", cpus, 1, 1024),
        )
        .unwrap_or(cpus);
        let failed = take(
            &mut errors,
            config.u64_in(
                "IdentityServer:FailedAuthenticationsPerMinute",
                30,
                1,
                1_000_000,
            ),
        )
        .unwrap_or(30);

        let default_lifetime = ids_jose::assertion::DEFAULT_MAX_ASSERTION_LIFETIME_SECS as u64;
        let max_assertion_lifetime = take(
            &mut errors,
            config.u64_in(
                "IdentityServer:MaxClientAssertionLifetimeSeconds",
                default_lifetime,
                1,
                86_400,
            ),
        )
        .unwrap_or(default_lifetime);

        let authorized_clients_path = config
            .path("AccessControl:AuthorizedClientsPath")
            .filter(|p| !p.as_os_str().is_empty());
        let client_certificates = match config.get("IdentityServer:ClientCertificates") {
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
            .list("IdentityServer:ClientCertificateAuthorities")
            .iter()
            .map(|s| config.resolve(s.value.trim()))
            .collect();
        if client_certificates == ClientCertificates::Off
            && !client_certificate_authorities.is_empty()
            && let Some(s) = config.get("IdentityServer:ClientCertificates")
        {
            errors.push(invalid(
                    s,
                    "is Off, but IdentityServer:ClientCertificateAuthorities is set: tls_client_auth needs client certificates (set Optional, or remove the authorities)",
                ));
        }
        let expiry_warning_days = take(
            &mut errors,
            config.u64_in("IdentityServer:ExpiryWarningDays", 30, 0, 3650),
        )
        .unwrap_or(30);

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
                .list("IdentityServer:ValidationKeys")
                .iter()
                .map(|s| config.resolve(s.value.trim()))
                .collect(),
            tls,
            urls,
            application_uri,
            audience: config.string("IdentityServer:Audience"),
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
        })
    }
}

fn limits(config: &Config, errors: &mut Vec<ConfigError>) -> Limits {
    let mut seconds = |key: &str, default: u64, max: u64| {
        Duration::from_secs(take(errors, config.u64_in(key, default, 1, max)).unwrap_or(default))
    };
    let idle_timeout = seconds("Limits:IdleTimeoutSeconds", 60, 86_400);
    let tls_handshake_timeout = seconds("Limits:TlsHandshakeTimeoutSeconds", 10, 300);
    let request_headers_timeout = seconds("Limits:RequestHeadersTimeoutSeconds", 10, 300);
    let token_request_timeout = seconds("Limits:TokenRequestTimeoutSeconds", 10, 300);
    let max_connections = config.get("Limits:MaxConnections").and_then(|_| {
        take(
            errors,
            config.u64_in("Limits:MaxConnections", 0, 1, 10_000_000),
        )
        .map(|n| n as usize)
    });
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
    let max_mib = take(
        errors,
        config.u64_in("Deliveries:MaxFileSizeMiB", 4096, 1, 16 * 1024 * 1024),
    )
    .unwrap_or(4096);
    let quota_mib = take(
        errors,
        config.u64_in("Deliveries:QuotaMiB", 0, 0, u64::MAX / MIB),
    )
    .unwrap_or(0);
    let min_free_mib = take(
        errors,
        config.u64_in("Deliveries:MinFreeSpaceMiB", 256, 0, u64::MAX / MIB),
    )
    .unwrap_or(256);
    let max_uploads = take(
        errors,
        config.u64_in("Deliveries:MaxConcurrentUploads", 32, 1, 4096),
    )
    .unwrap_or(32) as usize;
    let per_client_default = (max_uploads / 4).max(1);
    let max_uploads_per_client = take(
        errors,
        config.u64_in(
            "Deliveries:MaxConcurrentUploadsPerClient",
            per_client_default as u64,
            1,
            4096,
        ),
    )
    .map_or(per_client_default, |n| n as usize);
    if max_uploads_per_client > max_uploads
        && let Some(s) = config.get("Deliveries:MaxConcurrentUploadsPerClient")
    {
        errors.push(invalid(
            s,
            &format!(
                "at most Deliveries:MaxConcurrentUploads ({max_uploads}), the upload slots all clients share; keep it lower so that one client cannot take them all"
            ),
        ));
    }
    let min_rate = take(
        errors,
        config.u64_in(
            "Deliveries:MinUploadBytesPerSecond",
            240,
            0,
            1024 * 1024 * 1024,
        ),
    )
    .unwrap_or(240);
    let rate_window = take(
        errors,
        config.u64_in("Deliveries:MinUploadRateWindowSeconds", 10, 1, 300),
    )
    .unwrap_or(10);
    DeliverySettings {
        max_uploads,
        max_uploads_per_client: max_uploads_per_client.min(max_uploads),
        min_upload_rate: crate::deliveries::MinUploadRate {
            bytes_per_second: min_rate,
            window: Duration::from_secs(rate_window),
        },
        data_folder: config
            .path("Deliveries:DataFolder")
            .unwrap_or_else(|| config.dir().join("data")),
        max_size: max_mib * MIB,
        deliver_profiles: profiles(
            "Deliveries:DeliverProfiles",
            DEFAULT_DELIVER_PROFILES,
            errors,
        ),
        read_profiles: profiles("Deliveries:ReadProfiles", &[], errors),
        quota: (quota_mib > 0).then_some(quota_mib * MIB),
        min_free: min_free_mib * MIB,
    }
}
