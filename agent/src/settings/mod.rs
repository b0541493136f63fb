//! Agent settings: `appsettings.json` + `appsettings.agent.json` (DESIGN.md section 4) -> [`Settings`].
//!
//! Layering as on the server: `appsettings.json`, `appsettings.agent.json`, their
//! `.{Environment}.json` variants, then environment variables (`OpenId__OpenIdClients__Job=...`).
//! Sections the agent does not own (`Connections`, `Databases`, ...) are ignored, as the vendor's agent
//! ignores them; unknown keys inside the sections it owns are errors with a "did you mean".

use std::path::{Path, PathBuf};
use std::time::Duration;

use ids_config::appsettings::{aliased, base_url, file_with_password, reject_windows_store, take};
use ids_config::{Config, ConfigError, Schema, Setting, invalid};
use ids_pki::Certificate;
use ids_pki::cert::{TrustedCertificate, Validity, format_time, trusted_certificates_from_file};
use ids_pki::pfx::{self, CertificateFile};
use ids_proto::ClientSecret;

/// The agent's settings files, in order (each followed by its `appsettings.encrypted*.json` counterpart).
pub const LAYERS: &[(&str, bool)] = &[("appsettings", true), ("appsettings.agent", false)];

/// Every key the agent reads. Top-level sections not listed here belong to other software.
pub const KEYS: &[&str] = &[
    "ApplicationUri",
    "WorkFolderPath",
    "TempFolderPath",
    "LogFolderPath",
    "LogRetentionDays",
    "EncryptionCertificate:AdditionalRecipients",
    "EncryptionCertificate:AdditionalRecipients:*",
    "IdentityServer:X509KeyFilePath",
    "IdentityServer:X509File",
    "IdentityServer:X509KeyFilePassword",
    "IdentityServer:ValidationKeys",
    "IdentityServer:ValidationKeys:*",
    "IdentityServer:TokenValidation",
    "IdentityServer:Issuer",
    "IdentityServer:Audience",
    "IdentityServer:ClockSkewSeconds",
    "IdentityServer:JwksRefreshSeconds",
    "IdentityServer:DangerAllowInsecureHttp",
    "IdentityServer:DangerAcceptExpiredCertificate",
    "Tls:TrustedCertificates",
    "Tls:TrustedCertificates:*",
    "Tls:ServerPinning",
    "Tls:ServerThumbprints",
    "Tls:ServerThumbprints:*",
    "Http:TimeoutSeconds",
    "Http:ConnectTimeoutSeconds",
    "Http:Retries",
    "Http:RetryDelayMilliseconds",
    "Http:MaxRetryDelaySeconds",
    "Delivery:KeepSentFiles",
    "Delivery:SentRetentionDays",
    "Delivery:PollIntervalSeconds",
    "Delivery:SettleSeconds",
    "Delivery:MaxRetryDelaySeconds",
    "Delivery:ShutdownGraceSeconds",
    "OpenId:AgentIdentifier",
    "OpenId:DefaultOpenIdClient",
    "OpenId:ClientAuthentication",
    "ClientCertificate:File",
    "ClientCertificate:Password",
    "ClientCertificate:CertificateFile",
    "OpenId:OpenIdClients:*",
    "OpenId:OpenIdClientSecretFiles:*",
    // The server's own `IdentityServer` keys, found when an appsettings.json is shared or copied from
    // the server: accepted and not used by the agent.
    "IdentityServer:AccessTokenLifetime",
    "IdentityServer:Scopes",
    "IdentityServer:Scopes:*",
    "IdentityServer:SecretCacheSeconds",
    "IdentityServer:SecretCacheSize",
    "IdentityServer:HashConcurrency",
    "IdentityServer:FailedAuthenticationsPerMinute",
    // Placements some documents show without the `OpenId` wrapper: read, with a warning.
    "OpenIdClients:*",
    "DefaultOpenIdClient",
    "AgentIdentifier",
];

/// Keys that belong under `OpenId` but are found at the top level in some deployments.
const UNWRAPPED: [&str; 3] = ["OpenIdClients", "DefaultOpenIdClient", "AgentIdentifier"];

pub fn schema() -> Schema {
    Schema::new(&[KEYS, ids_config::appsettings::CERTIFICATE_KEYS].concat())
}

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
    /// [`crate::tls::normalize_thumbprint`].
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

/// One OpenID client the agent can authenticate as.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub auth: ClientAuth,
    /// Where the secret or key came from (a setting or a file), never the secret itself.
    pub source: String,
}

impl ClientCredentials {
    /// The client secret, when the client authenticates with one.
    pub fn secret(&self) -> Option<&ClientSecret> {
        match &self.auth {
            ClientAuth::Secret(s) => Some(s),
            _ => None,
        }
    }
}

/// How the agent proves it is the client.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` / `client_secret_post`.
    Secret(ClientSecret),
    /// `private_key_jwt` (RFC 7523) with `ClientCertificate`.
    PrivateKeyJwt,
    /// `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705): the TLS client certificate of
    /// `ClientCertificate` is the credential.
    TlsClientAuth,
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
    pub clients: Vec<ClientCredentials>,
    /// `ClientCertificate`: the agent's key for `private_key_jwt` and mutual TLS.
    pub client_key: Option<ClientKey>,
    pub default_client: String,
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

/// Settings plus what deserves a warning.
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

impl Settings {
    /// Loads from `dir` with the process environment, checking certificates at `now` (Unix seconds).
    pub fn load(dir: &Path, now: i64) -> Result<Loaded, Vec<ConfigError>> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(dir, &vars, now)
    }

    /// [`Settings::load`] with explicit environment variables (tests).
    pub fn load_with(
        dir: &Path,
        vars: &[(String, String)],
        now: i64,
    ) -> Result<Loaded, Vec<ConfigError>> {
        let schema = schema();
        let config = Config::load_layers(dir, LAYERS, vars, &schema)?;
        Self::from_config(&config, now)
    }

    /// The credentials of `client_id`, or of the default client.
    pub fn client(&self, client_id: Option<&str>) -> Option<&ClientCredentials> {
        let id = client_id.unwrap_or(&self.default_client);
        self.clients.iter().find(|c| c.client_id == id)
    }

    /// Validates a merged configuration, reporting every problem.
    pub fn from_config(config: &Config, now: i64) -> Result<Loaded, Vec<ConfigError>> {
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

        let insecure = take(
            &mut errors,
            config.bool("IdentityServer:DangerAllowInsecureHttp", false),
        )
        .unwrap_or(false);
        if insecure {
            warnings.push("IdentityServer:DangerAllowInsecureHttp is true: plain HTTP is allowed, tokens and secrets may travel in clear (local development only)".into());
        }
        let application_uri = match config.get("ApplicationUri") {
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
            .string("IdentityServer:Issuer")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| application_uri.clone())
            .unwrap_or_default();
        let audience = config
            .string("IdentityServer:Audience")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| issuer.clone());
        let clock_skew = take(
            &mut errors,
            config.u64_in(
                "IdentityServer:ClockSkewSeconds",
                30,
                0,
                ids_jose::MAX_LEEWAY_SECS,
            ),
        )
        .unwrap_or(30);

        let token_validation = token_validation(config, now, &mut errors, &mut warnings);
        let tls = tls_trust(config, now, &mut errors, &mut warnings);
        let http = http_policy(config, &mut errors);
        let client_key = client_key(config, now, &mut errors, &mut warnings);
        let (clients, default_client, agent_identifier) =
            openid(config, client_key.as_ref(), &mut errors, &mut warnings);

        let encryption_certificate = file_with_password(
            config,
            "EncryptionCertificate:File",
            "EncryptionCertificate:Password",
        )
        .map(|(path, password)| CertificateFile::new(path, password, "EncryptionCertificate:File"));
        let encrypt_files = take(
            &mut errors,
            config.bool("EncryptionCertificate:EncryptFile", false),
        )
        .unwrap_or(false);
        if encrypt_files && encryption_certificate.is_none() {
            errors.push(ConfigError::Missing {
                path: "EncryptionCertificate:File".into(),
                message: "EncryptionCertificate:EncryptFile is true, so the agent needs its own PFX certificate (with EncryptionCertificate:Password)".into(),
            });
        }
        let work_folder = config
            .path("WorkFolderPath")
            .unwrap_or_else(|| config.dir().join("work"));
        let temp_folder = config
            .path("TempFolderPath")
            .unwrap_or_else(|| work_folder.join("temp"));
        let log_folder = config
            .path("LogFolderPath")
            .unwrap_or_else(|| work_folder.join("logs"));
        let log_retention_days = take(
            &mut errors,
            config.u64_in("LogRetentionDays", 14, 1, 36_500),
        )
        .unwrap_or(14);
        let log_level = log_level(config, &mut warnings);
        let server_pinning = server_pinning(config, &work_folder, &mut errors, &mut warnings);
        let delivery = delivery_settings(config, &mut errors);
        let additional_recipients = config
            .list("EncryptionCertificate:AdditionalRecipients")
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
        Ok(Loaded {
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
            },
            warnings,
        })
    }
}

fn delivery_settings(config: &Config, errors: &mut Vec<ConfigError>) -> DeliverySettings {
    let mut seconds = |key: &str, default: u64, min: u64, max: u64| {
        Duration::from_secs(take(errors, config.u64_in(key, default, min, max)).unwrap_or(default))
    };
    let poll_interval = seconds("Delivery:PollIntervalSeconds", 2, 1, 3600);
    let settle = seconds("Delivery:SettleSeconds", 2, 0, 3600);
    let max_retry_delay = seconds("Delivery:MaxRetryDelaySeconds", 300, 1, 86_400);
    let shutdown_grace = seconds("Delivery:ShutdownGraceSeconds", 10, 0, 3600);
    DeliverySettings {
        keep_sent: take(errors, config.bool("Delivery:KeepSentFiles", true)).unwrap_or(true),
        sent_retention_days: take(
            errors,
            config.u64_in("Delivery:SentRetentionDays", 14, 0, 36_500),
        )
        .unwrap_or(14),
        poll_interval,
        settle,
        max_retry_delay,
        shutdown_grace,
    }
}

/// `IdentityServer:TokenValidation` (`Certificate` by default, or `Jwks`) and the pinned certificates.
fn token_validation(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<TokenValidation> {
    let mode = config.get("IdentityServer:TokenValidation");
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
    let danger_expired = take(
        errors,
        config.bool("IdentityServer:DangerAcceptExpiredCertificate", false),
    )
    .unwrap_or(false);
    let password = config
        .string("IdentityServer:X509KeyFilePassword")
        .unwrap_or_default();
    let main = aliased(
        config,
        "IdentityServer:X509KeyFilePath",
        "IdentityServer:X509File",
        errors,
    );
    if jwks {
        let refresh = take(
            errors,
            config.u64_in("IdentityServer:JwksRefreshSeconds", 60, 1, 86_400),
        )?;
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
            Err(e) => errors.push(invalid(setting, &e)),
        }
    };
    load(main, true);
    for s in config.list("IdentityServer:ValidationKeys") {
        load(&s, false);
    }
    Some(TokenValidation::Pinned(pinned))
}

/// .NET's `Logging:LogLevel:Default` (a section the agent shares with .NET tooling, so only this key is
/// read) as a tracing level.
fn log_level(config: &Config, warnings: &mut Vec<String>) -> String {
    let Some(setting) = config.get("Logging:LogLevel:Default") else {
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

/// `Tls:TrustedCertificates`: CA or server certificates (PEM bundles or DER); the system store if unset.
fn tls_trust(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> TlsTrust {
    let list = config.list("Tls:TrustedCertificates");
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

/// `Tls:ServerPinning` (`Always` by default, `First`, `Strict`; any case) and `Tls:ServerThumbprints`.
fn server_pinning(
    config: &Config,
    work_folder: &Path,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> ServerPinning {
    let setting = config.get("Tls:ServerPinning");
    let listed = config.list("Tls:ServerThumbprints");
    let mode = match setting
        .map(|s| s.value.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "always") => ServerPinning::Always,
        Some("first") => ServerPinning::First {
            store: crate::tls::known_servers::path(work_folder),
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
        match crate::tls::normalize_thumbprint(&s.value) {
            Ok(t) => thumbprints.push(t),
            Err(e) => errors.push(invalid(s, &e)),
        }
    }
    ServerPinning::Strict { thumbprints }
}

fn http_policy(config: &Config, errors: &mut Vec<ConfigError>) -> HttpPolicy {
    let mut secs = |path: &str, default: u64, min: u64, max: u64| {
        take(errors, config.u64_in(path, default, min, max)).unwrap_or(default)
    };
    HttpPolicy {
        timeout: Duration::from_secs(secs("Http:TimeoutSeconds", 30, 1, 3600)),
        connect_timeout: Duration::from_secs(secs("Http:ConnectTimeoutSeconds", 10, 1, 600)),
        retries: secs("Http:Retries", 4, 0, 100) as u32,
        retry_delay: Duration::from_millis(secs("Http:RetryDelayMilliseconds", 500, 1, 600_000)),
        max_retry_delay: Duration::from_secs(secs("Http:MaxRetryDelaySeconds", 30, 1, 3600)),
    }
}

/// The `OpenId` section: clients and their secrets, the default client, the agent identifier.
/// `ClientCertificate:File` (a PFX, or a PEM private key with or without its certificate),
/// `ClientCertificate:Password` (the PFX password or the PEM passphrase) and
/// `ClientCertificate:CertificateFile` (the certificate, when the key file has none).
fn client_key(
    config: &Config,
    now: i64,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Option<ClientKey> {
    let setting = config
        .get("ClientCertificate:File")
        .filter(|s| !s.value.trim().is_empty())?;
    let path = config.resolve(setting.value.trim());
    let password = config.string("ClientCertificate:Password");
    let file = match ids_pki::keyfile::read_private(&path, password.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            errors.push(invalid(setting, &e.to_string()));
            return None;
        }
    };
    let mut certificates: Vec<Certificate> = file.certificate.into_iter().collect();
    if let Some(cert_setting) = config
        .get("ClientCertificate:CertificateFile")
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

fn openid(
    config: &Config,
    client_key: Option<&ClientKey>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> (Vec<ClientCredentials>, Option<String>, Option<String>) {
    let [clients_settings, default, identifier] =
        UNWRAPPED.map(|key| placed(config, key, errors, warnings));
    let mut clients: Vec<ClientCredentials> = Vec::new();
    for s in clients_settings {
        let Some(id) = client_id_of(&s) else {
            errors.push(invalid(
                &s,
                "expected a map of client id to secret, e.g. \"OpenIdClients\": { \"Job\": \"secret\" }",
            ));
            continue;
        };
        if s.value.is_empty() {
            errors.push(invalid(&s, "the client secret is empty"));
            continue;
        }
        clients.push(ClientCredentials {
            client_id: id,
            auth: ClientAuth::Secret(ClientSecret::new(s.value.clone())),
            source: format!("{} (in {})", s.path, s.origin),
        });
    }
    for s in config.below("OpenId:OpenIdClientSecretFiles") {
        let Some(id) = client_id_of(s) else { continue };
        if let Some(other) = clients.iter().find(|c| c.client_id == id) {
            errors.push(invalid(
                s,
                &format!(
                    "client `{id}` already has a secret in {}; keep one of them",
                    other.source
                ),
            ));
            continue;
        }
        let path = config.resolve(s.value.trim());
        match read_secret_file(&path) {
            Ok((secret, warning)) => {
                warnings.extend(warning);
                clients.push(ClientCredentials {
                    client_id: id,
                    auth: ClientAuth::Secret(secret),
                    source: format!("{} (file {})", s.path, path.display()),
                });
            }
            Err(e) => errors.push(invalid(s, &e)),
        }
    }
    for c in &clients {
        if c.client_id.len() > 256 || c.client_id.chars().any(char::is_control) {
            errors.push(ConfigError::Invalid {
                path: format!("OpenId:OpenIdClients:{}", c.client_id.escape_debug()),
                origin: c.source.clone(),
                message: "a client id is at most 256 printable characters".into(),
            });
        }
    }
    let default = default.into_iter().next();
    // `OpenId:ClientAuthentication`: how the client proves itself. Without a secret for the default
    // client and with a ClientCertificate, PrivateKeyJwt.
    let mode = config.get("OpenId:ClientAuthentication");
    let key_auth = match mode.map(|m| m.value.trim().to_ascii_lowercase()) {
        None => None,
        Some(m) if m.is_empty() || m == "clientsecret" => None,
        Some(m) if m == "privatekeyjwt" || m == "private_key_jwt" => {
            Some(ClientAuth::PrivateKeyJwt)
        }
        Some(m)
            if m == "tlsclientauth"
                || m == "tls_client_auth"
                || m == "self_signed_tls_client_auth" =>
        {
            Some(ClientAuth::TlsClientAuth)
        }
        Some(_) => {
            if let Some(m) = mode {
                errors.push(invalid(
                    m,
                    "expected `ClientSecret` (the secret of OpenId:OpenIdClients), `PrivateKeyJwt` (an assertion signed with ClientCertificate) or `TlsClientAuth` (the ClientCertificate presented in the TLS handshake)",
                ));
            }
            None
        }
    };
    let key_auth = key_auth.or_else(|| {
        let default_id = default.as_ref().map(|d| d.value.trim().to_string());
        let has_secret = default_id
            .as_ref()
            .is_some_and(|d| clients.iter().any(|c| &c.client_id == d));
        (client_key.is_some() && default_id.is_some() && !has_secret)
            .then_some(ClientAuth::PrivateKeyJwt)
    });
    if let Some(auth) = key_auth {
        let origin = mode.or(default.as_ref());
        match (client_key, default.as_ref().map(|d| d.value.trim().to_string())) {
            (None, _) => errors.push(ConfigError::Missing {
                path: "ClientCertificate:File".into(),
                message: "OpenId:ClientAuthentication needs the agent's key: ClientCertificate:File (a PFX, or the .key that `ids-keytool keygen --mode agent` wrote) and ClientCertificate:Password".into(),
            }),
            (Some(key), _) if matches!(auth, ClientAuth::TlsClientAuth) && key.certificates.is_empty() => {
                errors.push(ConfigError::Missing {
                    path: "ClientCertificate:CertificateFile".into(),
                    message: format!(
                        "TlsClientAuth presents a certificate, and {} holds a bare key: set ClientCertificate:CertificateFile to its certificate (the .crt beside it)",
                        key.file.display()
                    ),
                });
            }
            (Some(_), None) => errors.push(ConfigError::Missing {
                path: "OpenId:DefaultOpenIdClient".into(),
                message: "the client id the agent authenticates as with its key, e.g. \"OpenId\": { \"DefaultOpenIdClient\": \"Poller2\" }".into(),
            }),
            (Some(key), Some(id)) => {
                let source = format!(
                    "ClientCertificate:File ({}){}",
                    key.file.display(),
                    origin.map_or(String::new(), |o| format!(", {} (in {})", o.path, o.origin))
                );
                clients.retain(|c| c.client_id != id);
                clients.push(ClientCredentials {
                    client_id: id,
                    auth,
                    source,
                });
            }
        }
    }
    let agent_identifier = identifier
        .into_iter()
        .next()
        .map(|s| s.value.trim().to_string())
        .filter(|s| !s.is_empty());
    let ids = || {
        clients
            .iter()
            .map(|c| format!("`{}`", c.client_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let default_client = match (default, clients.len()) {
        (_, 0) => {
            errors.push(ConfigError::Missing {
                path: "OpenId:OpenIdClients".into(),
                message: "the client id and secret the agent authenticates with, e.g. \"OpenId\": { \"OpenIdClients\": { \"Job\": \"<secret>\" } } in appsettings.agent.json (or OpenId__OpenIdClients__Job in the environment, or OpenId:OpenIdClientSecretFiles:Job = a file holding the secret); or, without a secret, OpenId:DefaultOpenIdClient with the agent's key in ClientCertificate:File".into(),
            });
            None
        }
        (Some(d), _) if clients.iter().any(|c| c.client_id == d.value.trim()) => {
            Some(d.value.trim().to_string())
        }
        (Some(d), _) => {
            errors.push(invalid(
                &d,
                &format!(
                    "no client `{}` in OpenId:OpenIdClients (configured: {})",
                    d.value.trim(),
                    ids()
                ),
            ));
            None
        }
        (None, 1) => clients.first().map(|c| c.client_id.clone()),
        (None, _) => {
            errors.push(ConfigError::Missing {
                path: "OpenId:DefaultOpenIdClient".into(),
                message: format!(
                    "several clients are configured ({}); name the one to use by default",
                    ids()
                ),
            });
            None
        }
    };
    (clients, default_client, agent_identifier)
}

/// The settings of `OpenId:{key}`, or of the top-level `{key}` with a warning; both is an error.
fn placed(
    config: &Config,
    key: &str,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<Setting> {
    let collect = |path: &str| -> Vec<Setting> {
        config
            .get(path)
            .into_iter()
            .chain(config.below(path))
            .cloned()
            .collect()
    };
    let inside = collect(&format!("OpenId:{key}"));
    let outside = collect(key);
    match (inside.is_empty(), outside.first()) {
        (_, None) => inside,
        (true, Some(first)) => {
            warnings.push(format!(
                "`{key}` (in {}) belongs under `OpenId` (`OpenId:{key}`); it is read from there this time",
                first.origin
            ));
            outside
        }
        (false, Some(first)) => {
            errors.push(invalid(
                first,
                &format!("`{key}` is also set under `OpenId`; keep only `OpenId:{key}`"),
            ));
            inside
        }
    }
}

/// The client id of `OpenId:OpenIdClients:<id>` (or the unwrapped `OpenIdClients:<id>`), as written.
fn client_id_of(setting: &Setting) -> Option<String> {
    let mut parts = setting.path.splitn(3, ':');
    let first = parts.next()?;
    let (second, third) = (parts.next()?, parts.next());
    match third {
        Some(id) if first.eq_ignore_ascii_case("OpenId") && !id.contains(':') => {
            Some(id.to_string())
        }
        None if !first.eq_ignore_ascii_case("OpenId") => Some(second.to_string()),
        _ => None,
    }
}

/// Reads a secret file: the whole content without the final line break. A file others can read earns
/// a warning, as ssh gives for private keys.
fn read_secret_file(path: &Path) -> Result<(ClientSecret, Option<String>), String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?,
    );
    let secret = text.strip_suffix('\n').unwrap_or(text.as_str());
    let secret = secret.strip_suffix('\r').unwrap_or(secret);
    if secret.is_empty() {
        return Err(format!("the secret file {} is empty", path.display()));
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
