//! Agent settings: `appsettings.json` + `appsettings.agent.json` (DESIGN.md section 4) -> [`Settings`].
//!
//! Layering as on the server: `appsettings.json`, `appsettings.agent.json`, their
//! `.{Environment}.json` variants, then environment variables (`OpenId__OpenIdClients__Job=...`).
//! Sections the agent does not own (`Connections`, `Databases`, ...) are ignored, as the vendor's agent
//! ignores them; unknown keys inside the sections it owns are errors with a "did you mean".
//!
//! # Layout
//! - [`schema`](mod@schema): every key, declared once (path, default, range, meaning); the schema is built from it.
//! - `keys`: where the key material is (plain data in [`Settings`]) and [`AgentKeys`], what is read
//!   from those files (server certificates, trusted certificates, the agent's key, client secret
//!   files), each with its own error; [`AgentKeys::load`] reads them again for validated settings.
//! - `openid`: clients, secrets, the default client and how the agent authenticates.
//! - here: [`Settings`], [`Settings::from_config`] and [`Settings::for_test`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use ids_config::appsettings::{
    ENCRYPT_FILE, ENCRYPTION_FILE, ENCRYPTION_PASSWORD, base_url, file_with_password,
    reject_windows_store, take,
};
use ids_config::keys::{flag, number};
use ids_config::{Config, ConfigError, Key, invalid};
use ids_pki::pfx::CertificateFile;
use ids_proto::ClientId;

mod keys;
mod openid;
pub mod schema;

pub use keys::{
    AgentKeys, ClientKey, ClientKeyFiles, LoadedKeys, PinnedCertificate, SecretFileError,
    ServerCertificateFiles, TlsTrust, TokenValidation, TrustedFile,
};
pub use openid::{ClientAuth, ClientCredentials};
use schema as key;
pub use schema::{KEYS, schema};

/// The file, in the work folder, where `Tls:ServerPinning` `First` keeps the keys it pinned.
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

/// A `Tls:ServerThumbprints` value in the form it is compared in: base64url without padding for a
/// SHA-256 value in base64 (the RFC 7638 JWK thumbprint of the key, or the certificate's x5t#S256),
/// upper-case hex for a certificate's SHA-1 or SHA-256 thumbprint in hex (separators and the invisible
/// marks Windows' certificate dialog copies are dropped).
pub fn normalize_thumbprint(value: &str) -> Result<String, InvalidThumbprint> {
    ids_pki::jwk::canonical_thumbprint(value).ok_or(InvalidThumbprint)
}

/// A `Tls:ServerThumbprints` value that is no thumbprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected the RFC 7638 JWK thumbprint of the server's key or its certificate's x5t#S256 (43 base64url characters), or the certificate's SHA-1 (40 hex digits) or SHA-256 (64 hex digits) thumbprint"
)]
pub struct InvalidThumbprint;

/// The agent's settings files, in order (each followed by its `appsettings.encrypted*.json` counterpart).
pub const LAYERS: &[(&str, bool)] = &[("appsettings", true), ("appsettings.agent", false)];

/// `Tls:ServerPinning`: what the agent requires of the server's key, on top of the usual validation
/// of its certificate ([`TlsTrust`]), which always applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPinning {
    /// No pin (the default).
    Always,
    /// Trust on first use, as ssh's known_hosts: the key of each server is recorded in `store`
    /// (`<work folder>/known_servers`) at the first connection and required afterwards.
    First { store: PathBuf },
    /// The key or the certificate must match one of `Tls:ServerThumbprints`, normalized by
    /// [`normalize_thumbprint`].
    Strict { thumbprints: Vec<String> },
}

/// HTTP timeouts and the retry policy for connection failures, 5xx and 429.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff delay; doubled each retry, with jitter.
    pub retry_delay: Duration,
    /// Longest single wait, including a server's `Retry-After`.
    pub max_retry_delay: Duration,
}

/// Validated agent settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_dir: PathBuf,
    /// The files that were read, in order.
    pub files: Vec<PathBuf>,
    /// `ApplicationUri`: the server's base URL, without a trailing slash.
    pub application_uri: String,
    pub allow_insecure_http: bool,
    /// Expected `iss`: `IdentityServer:Issuer`, or `ApplicationUri`.
    pub issuer: String,
    /// Expected `aud`: `IdentityServer:Audience`, or the issuer (the server's default).
    pub audience: String,
    pub clock_skew: Duration,
    pub token_validation: TokenValidation,
    pub tls: TlsTrust,
    /// `Tls:ServerPinning`: what the server's key must be, on top of the usual validation.
    pub server_pinning: ServerPinning,
    pub http: HttpPolicy,
    pub agent_identifier: Option<String>,
    /// `OpenId:DPoP`: tokens bound to the agent's key (RFC 9449).
    pub dpop: bool,
    pub clients: Vec<ClientCredentials>,
    /// `ClientCertificate`: where the agent's key for `private_key_jwt` and mutual TLS is (read into
    /// [`AgentKeys::client_key`]).
    pub client_key: Option<ClientKeyFiles>,
    pub default_client: ClientId,
    /// The agent's own certificate for its files (used by the file-encryption feature).
    pub encryption_certificate: Option<CertificateFile>,
    pub encrypt_files: bool,
    /// Certificates every file the agent writes is also encrypted for (an escrow or the server), from
    /// `EncryptionCertificate:AdditionalRecipients`.
    pub additional_recipients: Vec<PathBuf>,
    pub work_folder: PathBuf,
    pub temp_folder: PathBuf,
    /// Top-level sections of other software in the same files (`Connections`, `License`...): not
    /// errors, listed once by `check` and in the log as not used by the agent.
    pub ignored_sections: Vec<ids_config::IgnoredSection>,
    /// `LogFolderPath`, default `<work folder>/logs`.
    pub log_folder: PathBuf,
    /// Log files older than this are deleted at start-up (`LogRetentionDays`, default 14).
    pub log_retention_days: u64,
    /// Level of the log files: .NET's `Logging:LogLevel:Default` mapped to a tracing filter (`info`).
    pub log_level: String,
    /// The `Delivery` section (`agent run`).
    pub delivery: DeliverySettings,
    /// `Metrics:Urls`: `host:port` addresses `agent run` serves `/metrics` on (none: off).
    pub metrics: Vec<String>,
    /// `Logging:Format`: standard error's format.
    pub log_format: ids_runtime::logging::StderrFormat,
}

/// How `agent run` works its outbox.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `Delivery:KeepSentFiles` (default true): move delivered files to `sent/` rather than delete them.
    pub keep_sent: bool,
    /// `Delivery:SentRetentionDays` (default 14; 0 keeps them).
    pub sent_retention_days: u64,
    /// `Delivery:PollIntervalSeconds` (default 2): how often the outbox is looked at.
    pub poll_interval: Duration,
    /// `Delivery:SettleSeconds` (default 2): a file modified more recently is left for later.
    pub settle: Duration,
    /// `Delivery:MaxRetryDelaySeconds` (default 300): the longest wait between attempts.
    pub max_retry_delay: Duration,
    /// `Delivery:ShutdownGraceSeconds` (default 10): how long a delivery under way may finish at stop.
    pub shutdown_grace: Duration,
}

/// Settings, the keys they name, and what deserves a warning.
#[derive(Debug)]
pub struct LoadedSettings {
    pub settings: Settings,
    pub keys: AgentKeys,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Loads from `dir` with the process environment, checking certificates at `now` (Unix seconds).
    pub fn load(dir: &Path, now: i64) -> Result<LoadedSettings, Vec<ConfigError>> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(dir, &vars, now)
    }

    /// [`Settings::load`] with explicit environment variables (tests).
    pub fn load_with(
        dir: &Path,
        vars: &[(String, String)],
        now: i64,
    ) -> Result<LoadedSettings, Vec<ConfigError>> {
        let schema = schema();
        let config = Config::load_layers(dir, LAYERS, vars, &schema)?;
        Self::from_config(&config, now)
    }

    /// Valid settings for unit tests, read from no file: every default, tokens verified with the
    /// server's JWKS (so no certificate is needed), and one client `Job` with a secret, in a
    /// configuration folder that need not exist.
    pub fn for_test() -> Settings {
        let dir = std::env::temp_dir().join("agent-for-test");
        let mut config = Config::empty(&dir);
        for (key, value) in [
            (key::APPLICATION_URI.path, "https://ids.example.com"),
            (key::TOKEN_VALIDATION.path, "Jwks"),
            ("OpenId:OpenIdClients:Job", "for-test-secret"),
        ] {
            config.set(key.into(), value.into(), ids_config::Origin::Default);
        }
        match Self::from_config(&config, 0) {
            // Jwks, no TLS list, no key, an inline secret: there are no keys to keep.
            Ok(loaded) => loaded.settings,
            // Jwks mode and an inline secret read no file: `tests::for_test_is_valid_defaults`.
            Err(errors) => unreachable!("Settings::for_test: {errors:?}"),
        }
    }

    /// The credentials of `client_id`, or of the default client.
    pub fn client(&self, client_id: Option<&str>) -> Option<&ClientCredentials> {
        let id = client_id.unwrap_or(self.default_client.as_str());
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// Validates a merged configuration and reads the keys it names ([`AgentKeys`]), reporting every
    /// problem in the order of the sections.
    ///
    /// The files are read during the pass, each where its section is validated, rather than by
    /// [`AgentKeys::load`] after it: the errors would otherwise come in another order, and the
    /// `OpenId` checks depend on what was read (a client whose secret file cannot be read does not
    /// exist; the key makes `PrivateKeyJwt` implicit; `TlsClientAuth` needs a certificate in it).
    pub fn from_config(config: &Config, now: i64) -> Result<LoadedSettings, Vec<ConfigError>> {
        let schema = schema();
        // Unknown keys are errors only inside the sections the agent owns; other software's sections
        // (the vendor's `Connections`, `License`...) are listed once as ignored (`ignored_sections`).
        let mut warnings = Vec::new();
        let mut errors: Vec<ConfigError> = config.check_unknown(&schema);
        errors.extend(reject_windows_store(
            config,
            "IdentityServer",
            "IdentityServer:X509KeyFilePath with the server's certificate (PEM, DER or PFX)",
        ));
        errors.extend(reject_windows_store(
            config,
            "EncryptionCertificate",
            "EncryptionCertificate:File and EncryptionCertificate:Password",
        ));

        let insecure = flag(config, &key::DANGER_INSECURE_HTTP, &mut errors);
        if insecure {
            warnings.push("IdentityServer:DangerAllowInsecureHttp is true: plain HTTP is allowed, tokens and secrets may travel in clear (local development only)".into());
        }
        let application_uri = match config.get(key::APPLICATION_URI.path) {
            Some(s) if !s.value.trim().is_empty() => take(&mut errors, base_url(s, insecure)),
            _ => {
                errors.push(ConfigError::Missing {
                    path: "ApplicationUri".into(),
                    message: "the identity server's base URL, e.g. https://ids.example.com (in appsettings.json)".into(),
                });
                None
            }
        };
        let issuer = config
            .string(key::ISSUER.path)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| application_uri.clone())
            .unwrap_or_default();
        let audience = config
            .string(key::AUDIENCE.path)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| issuer.clone());
        let clock_skew = number(config, &key::CLOCK_SKEW, &mut errors);

        let mut loaded = AgentKeys::default();
        let token_validation = keys::token_validation(config, &mut errors, &mut warnings);
        if let Some(TokenValidation::Pinned(files)) = &token_validation {
            loaded.pinned = keys::load_pinned(files, now, &mut errors, &mut warnings);
        }
        let tls = keys::tls_trust(config);
        if let TlsTrust::Only { files } = &tls {
            loaded.trusted = keys::load_trusted(files, now, &mut errors, &mut warnings);
        }
        let http = http_policy(config, &mut errors);
        let client_key = keys::client_key(config);
        loaded.client_key = client_key
            .as_ref()
            .and_then(|files| keys::load_client_key(files, now, &mut errors, &mut warnings));
        let (clients, default_client, agent_identifier) = openid::openid(
            config,
            loaded.client_key.as_ref(),
            &mut loaded.secrets,
            &mut errors,
            &mut warnings,
        );

        let encryption_certificate =
            file_with_password(config, ENCRYPTION_FILE.path, ENCRYPTION_PASSWORD.path)
                .map(|(path, password)| CertificateFile::new(path, password, ENCRYPTION_FILE.path));
        let encrypt_files =
            take(&mut errors, config.flag_or(&ENCRYPT_FILE, false)).unwrap_or(false);
        if encrypt_files && encryption_certificate.is_none() {
            errors.push(ConfigError::Missing {
                path: "EncryptionCertificate:File".into(),
                message: "EncryptionCertificate:EncryptFile is true, so the agent needs its own PFX certificate (with EncryptionCertificate:Password)".into(),
            });
        }
        let work_folder = config
            .path(key::WORK_FOLDER.path)
            .unwrap_or_else(|| config.dir().join("work"));
        let temp_folder = config
            .path(key::TEMP_FOLDER.path)
            .unwrap_or_else(|| work_folder.join("temp"));
        let log_folder = config
            .path(key::LOG_FOLDER.path)
            .unwrap_or_else(|| work_folder.join("logs"));
        let log_retention_days = number(config, &key::LOG_RETENTION_DAYS, &mut errors);
        let log_level = log_level(config, &mut warnings);
        let metrics = match config.get(key::METRICS_URLS.path) {
            Some(s) if !s.value.trim().is_empty() => {
                match ids_runtime::metrics::parse_urls(&s.value) {
                    Ok(addresses) => addresses,
                    Err(message) => {
                        errors.push(invalid(s, &message));
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        let log_format = log_format(config, &mut errors);
        let dpop = flag(config, &key::DPOP, &mut errors);
        let server_pinning = server_pinning(config, &work_folder, &mut errors, &mut warnings);
        let delivery = delivery_settings(config, &mut errors);
        let additional_recipients = config
            .list(key::ADDITIONAL_RECIPIENTS.path)
            .iter()
            .map(|s| config.resolve(&s.value))
            .collect();

        let (Some(application_uri), Some(token_validation), Some(default_client)) =
            (application_uri, token_validation, default_client)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(LoadedSettings {
            settings: Settings {
                config_dir: config.dir().to_path_buf(),
                files: config.files().to_vec(),
                application_uri,
                allow_insecure_http: insecure,
                issuer,
                audience,
                clock_skew: Duration::from_secs(clock_skew),
                token_validation,
                tls,
                server_pinning,
                http,
                agent_identifier,
                dpop,
                clients,
                client_key,
                default_client,
                ignored_sections: config.ignored_sections(&schema),
                encryption_certificate,
                encrypt_files,
                additional_recipients,
                work_folder,
                temp_folder,
                log_folder,
                log_retention_days,
                log_level,
                delivery,
                metrics,
                log_format,
            },
            keys: loaded,
            warnings,
        })
    }
}

fn delivery_settings(config: &Config, errors: &mut Vec<ConfigError>) -> DeliverySettings {
    let mut seconds = |key: &Key| Duration::from_secs(number(config, key, errors));
    let poll_interval = seconds(&key::POLL_INTERVAL);
    let settle = seconds(&key::SETTLE);
    let max_retry_delay = seconds(&key::DELIVERY_MAX_RETRY_DELAY);
    let shutdown_grace = seconds(&key::SHUTDOWN_GRACE);
    DeliverySettings {
        keep_sent: flag(config, &key::KEEP_SENT, errors),
        sent_retention_days: number(config, &key::SENT_RETENTION_DAYS, errors),
        poll_interval,
        settle,
        max_retry_delay,
        shutdown_grace,
    }
}

/// `Logging:Format`: `Text` (the agent's terse lines) or `Json`.
pub fn log_format(
    config: &Config,
    errors: &mut Vec<ConfigError>,
) -> ids_runtime::logging::StderrFormat {
    use ids_runtime::logging::StderrFormat;
    match config.get(key::LOG_FORMAT.path) {
        Some(s) => StderrFormat::parse(&s.value, StderrFormat::Terse).unwrap_or_else(|m| {
            errors.push(invalid(s, &m));
            StderrFormat::Terse
        }),
        None => StderrFormat::Terse,
    }
}

/// .NET's `Logging:LogLevel:Default` (a section the agent shares with .NET tooling, so only this key is
/// read) as a tracing level.
fn log_level(config: &Config, warnings: &mut Vec<String>) -> String {
    let Some(setting) = config.get(key::LOG_LEVEL.path) else {
        return "info".into();
    };
    let level = match setting.value.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "information" | "info" => "info",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        "none" | "off" => "off",
        _ => {
            warnings.push(format!(
                "{}: `{}` is not a log level (Trace, Debug, Information, Warning, Error, Critical, None); using Information",
                setting.path, setting.value
            ));
            "info"
        }
    };
    level.into()
}

/// `Tls:ServerPinning` (`Always` by default, `First`, `Strict`; any case) and `Tls:ServerThumbprints`.
fn server_pinning(
    config: &Config,
    work_folder: &Path,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> ServerPinning {
    let setting = config.get(key::SERVER_PINNING.path);
    let listed = config.list(key::SERVER_THUMBPRINTS.path);
    let mode = match setting
        .map(|s| s.value.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "always") => ServerPinning::Always,
        Some("first") => ServerPinning::First {
            store: work_folder.join(KNOWN_SERVERS_FILE),
        },
        Some("strict") => ServerPinning::Strict {
            thumbprints: Vec::new(),
        },
        Some(_) => {
            if let Some(s) = setting {
                errors.push(invalid(
                    s,
                    "expected `Always` (the usual certificate validation only), `First` (also pin the server's key at the first connection, in known_servers in the work folder) or `Strict` (also require a key or certificate listed in Tls:ServerThumbprints)",
                ));
            }
            return ServerPinning::Always;
        }
    };
    let ServerPinning::Strict { .. } = mode else {
        if let Some(first) = listed.first() {
            warnings.push(format!(
                "{} (in {}) is not used: Tls:ServerPinning is {}; set it to Strict to require these thumbprints",
                first.path,
                first.origin,
                if matches!(mode, ServerPinning::First { .. }) {
                    "First"
                } else {
                    "Always"
                }
            ));
        }
        return mode;
    };
    if listed.is_empty() {
        errors.push(ConfigError::Missing {
            path: "Tls:ServerThumbprints".into(),
            message: "Tls:ServerPinning is Strict, so the agent needs the thumbprints the server's key or certificate must match, e.g. \"Tls\": { \"ServerPinning\": \"Strict\", \"ServerThumbprints\": [\"<RFC 7638 JWK thumbprint of its key>\"] } (a refused connection names the values the server presents)".into(),
        });
        return mode;
    }
    let mut thumbprints = Vec::new();
    for s in &listed {
        match normalize_thumbprint(&s.value) {
            Ok(t) => thumbprints.push(t),
            Err(e) => errors.push(invalid(s, &e.to_string())),
        }
    }
    ServerPinning::Strict { thumbprints }
}

fn http_policy(config: &Config, errors: &mut Vec<ConfigError>) -> HttpPolicy {
    let mut secs = |key: &Key| number(config, key, errors);
    HttpPolicy {
        timeout: Duration::from_secs(secs(&key::HTTP_TIMEOUT)),
        connect_timeout: Duration::from_secs(secs(&key::HTTP_CONNECT_TIMEOUT)),
        retries: secs(&key::HTTP_RETRIES) as u32,
        retry_delay: Duration::from_millis(secs(&key::HTTP_RETRY_DELAY)),
        max_retry_delay: Duration::from_secs(secs(&key::HTTP_MAX_RETRY_DELAY)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Writes a CA certificate and a secret file in `dir`, and returns a configuration naming them.
    fn with_files(dir: &Path) -> Config {
        let ca = ids_devpki::Ca::new("keys test CA", 2).unwrap();
        std::fs::write(dir.join("ca.crt"), &ca.cert.cert_pem).unwrap();
        std::fs::write(dir.join("job.secret"), "from-a-file\n").unwrap();
        naming_files(dir)
    }

    /// A configuration naming `ca.crt` and `job.secret` in `dir`.
    fn naming_files(dir: &Path) -> Config {
        let mut config = Config::empty(dir);
        for (key, value) in [
            (key::APPLICATION_URI.path, "https://ids.example.com"),
            (key::TOKEN_VALIDATION.path, "Jwks"),
            ("Tls:TrustedCertificates:0", "ca.crt"),
            ("OpenId:OpenIdClientSecretFiles:Job", "job.secret"),
        ] {
            config.set(key.into(), value.into(), ids_config::Origin::Default);
        }
        config
    }

    #[test]
    fn keys_are_read_once_in_the_pass_and_again_by_agent_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = Settings::from_config(&with_files(dir.path()), 0).unwrap();
        let TlsTrust::Only { files } = &loaded.settings.tls else {
            panic!("{:?}", loaded.settings.tls);
        };
        assert_eq!(files.len(), 1);
        let client = loaded.settings.client(None).unwrap();
        assert!(
            client.secret().is_none(),
            "a file secret is not in the settings"
        );
        assert!(!format!("{:?}", loaded.settings).contains("from-a-file"));
        assert_eq!(loaded.keys.trusted.len(), 1);
        assert_eq!(
            loaded.keys.secret(client).map(|s| s.expose()),
            Some("from-a-file")
        );

        let again = AgentKeys::load(&loaded.settings, 0).unwrap();
        assert_eq!(again.keys.trusted.len(), 1);
        assert_eq!(again.keys.trusted[0].der, loaded.keys.trusted[0].der);
        assert_eq!(
            again.keys.secret(client).map(|s| s.expose()),
            Some("from-a-file")
        );

        // A file gone since: the same error as the settings pass gives.
        std::fs::remove_file(dir.path().join("job.secret")).unwrap();
        let errors = AgentKeys::load(&loaded.settings, 0).unwrap_err();
        let in_pass = Settings::from_config(&naming_files(dir.path()), 0).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].to_string(), in_pass[0].to_string());
    }

    #[test]
    fn for_test_is_valid_defaults() {
        let s = Settings::for_test();
        assert_eq!(s.application_uri, "https://ids.example.com");
        assert_eq!(s.default_client, "Job");
        assert_eq!(s.clock_skew, Duration::from_secs(30));
        assert_eq!(s.http.retries, 4);
        assert!(matches!(s.tls, TlsTrust::System));
        assert_eq!(s.server_pinning, ServerPinning::Always);
        assert_eq!(s.log_level, "info");
    }
}
