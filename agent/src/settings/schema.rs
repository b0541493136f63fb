//! Every key the agent knows, declared once: the schema `check_unknown` checks against is built from
//! this table, and the settings code reads through the same constants (the unit test below shows that
//! each key is read, save the documented exceptions).
//!
//! The order is the schema's: when two known keys are equally close to a misspelt one, the first is
//! suggested.

use ids_config::{Key, Schema};

ids_config::keys! {
    /// Every key the agent reads, in schema order. Top-level sections not listed here belong to other
    /// software.
    pub const KEYS;
    APPLICATION_URI = text("ApplicationUri", "the identity server's base URL");
    WORK_FOLDER = text("WorkFolderPath", "the agent's work folder (default `work`)");
    TEMP_FOLDER = text("TempFolderPath", "temporary files (default `<work>/temp`)");
    LOG_FOLDER = text("LogFolderPath", "log files (default `<work>/logs`)");
    LOG_RETENTION_DAYS = number("LogRetentionDays", 14, 1..=36_500, "log files older than this are deleted at start-up");
    ADDITIONAL_RECIPIENTS = list("EncryptionCertificate:AdditionalRecipients", "certificates every file is also encrypted for");
    SERVER_CERTIFICATE = text("IdentityServer:X509KeyFilePath", "the server's certificate tokens are verified with");
    SERVER_CERTIFICATE_ALIAS = text("IdentityServer:X509File", "alias of IdentityServer:X509KeyFilePath");
    SERVER_CERTIFICATE_PASSWORD = text("IdentityServer:X509KeyFilePassword", "the password when the certificate is a PFX");
    VALIDATION_KEYS = list("IdentityServer:ValidationKeys", "more server certificates tokens may be signed with");
    TOKEN_VALIDATION = text("IdentityServer:TokenValidation", "`Certificate` (pinned) or `Jwks` (the keys the server publishes)");
    ISSUER = text("IdentityServer:Issuer", "the expected `iss` (default ApplicationUri)");
    AUDIENCE = text("IdentityServer:Audience", "the expected `aud` (default the issuer)");
    CLOCK_SKEW = number("IdentityServer:ClockSkewSeconds", 30, 0..=ids_jose::MAX_LEEWAY_SECS, "leeway on token times, in seconds");
    JWKS_REFRESH = number("IdentityServer:JwksRefreshSeconds", 60, 1..=86_400, "the shortest interval between two JWKS fetches");
    DANGER_INSECURE_HTTP = flag("IdentityServer:DangerAllowInsecureHttp", false, "allow http:// (local development only)");
    DANGER_ACCEPT_EXPIRED = flag("IdentityServer:DangerAcceptExpiredCertificate", false, "accept an expired server certificate");
    TRUSTED_CERTIFICATES = list("Tls:TrustedCertificates", "CA or server certificates HTTPS trusts (default the system store)");
    SERVER_PINNING = text("Tls:ServerPinning", "`Always`, `First` (trust on first use) or `Strict`");
    SERVER_THUMBPRINTS = list("Tls:ServerThumbprints", "the thumbprints Strict pinning requires");
    HTTP_TIMEOUT = number("Http:TimeoutSeconds", 30, 1..=3600, "the time one HTTP request may take");
    HTTP_CONNECT_TIMEOUT = number("Http:ConnectTimeoutSeconds", 10, 1..=600, "the time to connect");
    HTTP_RETRIES = number("Http:Retries", 4, 0..=100, "retries after the first attempt");
    HTTP_RETRY_DELAY = number("Http:RetryDelayMilliseconds", 500, 1..=600_000, "the first backoff delay, doubled each retry");
    HTTP_MAX_RETRY_DELAY = number("Http:MaxRetryDelaySeconds", 30, 1..=3600, "the longest single wait, Retry-After included");
    KEEP_SENT = flag("Delivery:KeepSentFiles", true, "move delivered files to `sent/` rather than delete them");
    SENT_RETENTION_DAYS = number("Delivery:SentRetentionDays", 14, 0..=36_500, "sent files older than this are deleted (0 keeps them)");
    POLL_INTERVAL = number("Delivery:PollIntervalSeconds", 2, 1..=3600, "how often the outbox is looked at");
    SETTLE = number("Delivery:SettleSeconds", 2, 0..=3600, "a file modified more recently is left for later");
    DELIVERY_MAX_RETRY_DELAY = number("Delivery:MaxRetryDelaySeconds", 300, 1..=86_400, "the longest wait between delivery attempts");
    METRICS_URLS = text("Metrics:Urls", "where `agent run` serves Prometheus metrics: `;`-separated http://host:port (off when unset)");
    SHUTDOWN_GRACE = number("Delivery:ShutdownGraceSeconds", 10, 0..=3600, "how long a delivery under way may finish at stop");
    AGENT_IDENTIFIER = text("OpenId:AgentIdentifier", "this agent's name, sent with its deliveries");
    DEFAULT_CLIENT = text("OpenId:DefaultOpenIdClient", "the client used when none is named");
    DPOP = flag("OpenId:DPoP", false, "bind tokens to the agent's key with DPoP (RFC 9449): ClientCertificate's key, or one kept in the work folder");
    CLIENT_AUTHENTICATION = text("OpenId:ClientAuthentication", "`ClientSecret`, `PrivateKeyJwt` or `TlsClientAuth`");
    CLIENT_KEY_FILE = text("ClientCertificate:File", "the agent's key (PFX or PEM) for private_key_jwt and mutual TLS");
    CLIENT_KEY_PASSWORD = text("ClientCertificate:Password", "the PFX password or PEM passphrase");
    CLIENT_KEY_CERTIFICATE = text("ClientCertificate:CertificateFile", "the certificate, when the key file has none");
    CLIENTS = map("OpenId:OpenIdClients", "client id to client secret");
    CLIENT_SECRET_FILES = map("OpenId:OpenIdClientSecretFiles", "client id to a file holding its secret");
    // The server's own `IdentityServer` keys, found when an appsettings.json is shared or copied from
    // the server: accepted and not used by the agent ([`NOT_READ`]).
    SERVER_ACCESS_TOKEN_LIFETIME = text("IdentityServer:AccessTokenLifetime", "the server's: accepted, not used");
    SERVER_SCOPES = list("IdentityServer:Scopes", "the server's: accepted, not used");
    SERVER_SECRET_CACHE_SECONDS = text("IdentityServer:SecretCacheSeconds", "the server's: accepted, not used");
    SERVER_SECRET_CACHE_SIZE = text("IdentityServer:SecretCacheSize", "the server's: accepted, not used");
    SERVER_HASH_CONCURRENCY = text("IdentityServer:HashConcurrency", "the server's: accepted, not used");
    SERVER_FAILED_AUTHENTICATIONS = text("IdentityServer:FailedAuthenticationsPerMinute", "the server's: accepted, not used");
    // Placements some documents show without the `OpenId` wrapper: read, with a warning.
    UNWRAPPED_CLIENTS = map("OpenIdClients", "OpenId:OpenIdClients without the wrapper (warned)");
    UNWRAPPED_DEFAULT_CLIENT = text("DefaultOpenIdClient", "OpenId:DefaultOpenIdClient without the wrapper (warned)");
    UNWRAPPED_AGENT_IDENTIFIER = text("AgentIdentifier", "OpenId:AgentIdentifier without the wrapper (warned)");
}

ids_config::keys! {
    /// Keys the agent reads in sections other software owns: not in its schema, so the rest of
    /// those sections is ignored rather than refused.
    pub const FOREIGN;
    LOG_LEVEL = text("Logging:LogLevel:Default", ".NET's log level, for the agent's log files");
    LOG_FORMAT = text("Logging:Format", "standard error's format: `Text` (default) or `Json` (one object per line)");
}

/// Keys the agent accepts and does not read: the server's, in a shared or copied appsettings.json.
pub const NOT_READ: &[Key] = &[
    SERVER_ACCESS_TOKEN_LIFETIME,
    SERVER_SCOPES,
    SERVER_SECRET_CACHE_SECONDS,
    SERVER_SECRET_CACHE_SIZE,
    SERVER_HASH_CONCURRENCY,
    SERVER_FAILED_AUTHENTICATIONS,
];

/// The agent's schema: [`KEYS`] and the certificate keys both apps share.
pub fn schema() -> Schema {
    ids_config::appsettings::schema(KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids_config::Config;
    use ids_config::appsettings::CERTIFICATE_KEYS;
    use ids_config::keys::ReadAudit;

    #[test]
    fn every_declared_key_is_in_the_schema_and_foreign_keys_are_not() {
        let schema = schema();
        assert_eq!(
            schema.unknown_keys(KEYS.iter().chain(CERTIFICATE_KEYS)),
            Vec::<&str>::new()
        );
        for key in FOREIGN {
            assert!(!schema.has_section(key.path.split(':').next().unwrap_or_default()));
        }
    }

    /// Every declared key is read by `Settings::from_config` (on configurations that take each
    /// branch), save the documented exceptions: no key is accepted and forgotten.
    #[test]
    fn every_declared_key_is_read() {
        let runs: [&[(&str, &str)]; 3] = [
            &[
                ("ApplicationUri", "https://ids.example.com"),
                ("IdentityServer:X509KeyFilePath", "server.crt"),
                ("IdentityServer:ValidationKeys:0", "old.crt"),
                ("OpenId:OpenIdClients:Job", "secret"),
                ("ClientCertificate:File", "agent.key"),
                ("ClientCertificate:CertificateFile", "agent.crt"),
                ("EncryptionCertificate:File", "agent.pfx"),
                ("Tls:ServerPinning", "Strict"),
            ],
            &[
                ("ApplicationUri", "https://ids.example.com"),
                ("IdentityServer:TokenValidation", "Jwks"),
                ("OpenId:OpenIdClientSecretFiles:Job", "job.txt"),
                ("Logging:LogLevel:Default", "Debug"),
            ],
            &[],
        ];
        let mut reads = std::collections::BTreeSet::new();
        for values in runs {
            let config = Config::with_values(values);
            let _ = super::super::Settings::from_config(&config, 0);
            reads.extend(config.reads());
        }
        let declared = KEYS
            .iter()
            .chain(CERTIFICATE_KEYS)
            .chain(FOREIGN)
            // Read only once ClientCertificate:File has been opened (the end-to-end tests in
            // client_keys.rs take that branch): this test reads no file.
            .filter(|k| **k != CLIENT_KEY_CERTIFICATE);
        assert_eq!(
            ReadAudit::new(declared, NOT_READ, &reads),
            ReadAudit::default()
        );
    }
}
