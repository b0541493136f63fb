//! Every key the server knows, declared once: the schema `check_unknown` checks against is built from
//! this table, and the settings code reads through the same constants, so the two cannot drift apart
//! (the unit test below shows that each key is read, save the documented exceptions).
//!
//! The order is the schema's: when two known keys are equally close to a misspelt one, the first is
//! suggested.

use ids_config::{Key, Schema};

/// One mebibyte: the `...MiB` settings are stored in bytes.
pub const MIB: u64 = 1024 * 1024;

ids_config::keys! {
    /// Every key the server reads, in schema order. Sections owned by other software are accepted and
    /// ignored (`Section` keys).
    pub const KEYS;
    URLS = text("Urls", "listen URLs, `;`-separated (https://host:port; port 0 picks a free port)");
    APPLICATION_URI = text("ApplicationUri", "the issuer: the server's public base URL");
    ALLOWED_HOSTS = text("AllowedHosts", "ASP.NET host filtering: accepted, not used");
    LOGGING_FORMAT = text("Logging:Format", "standard error's log format: `Text` (default) or `Json` (one object per line)");
    LOGGING = section("Logging", ".NET logging: accepted, not used");
    SERILOG = section("Serilog", "Serilog: accepted, not used");
    SIGNING_FILE = text("IdentityServer:X509KeyFilePath", "the PFX whose private key signs tokens");
    SIGNING_FILE_ALIAS = text("IdentityServer:X509File", "alias of IdentityServer:X509KeyFilePath");
    SIGNING_PASSWORD = text("IdentityServer:X509KeyFilePassword", "the password of the signing PFX");
    VALIDATION_KEYS = list("IdentityServer:ValidationKeys", "extra certificates published in the JWKS (key rotation)");
    ACCESS_TOKEN_LIFETIME = number("IdentityServer:AccessTokenLifetime", 3600, 1..=86_400 * 7, "lifetime of access tokens, in seconds");
    AUDIENCE = text("IdentityServer:Audience", "the `aud` claim; the issuer when unset");
    SCOPES = list("IdentityServer:Scopes", "scopes a client may request (default `api`)");
    DANGER_ACCEPT_EXPIRED = flag("IdentityServer:DangerAcceptExpiredCertificate", false, "start with an expired signing or encryption certificate");
    DANGER_INSECURE_HTTP = flag("IdentityServer:DangerAllowInsecureHttp", false, "allow http:// listen URLs (local development only)");
    SECRET_CACHE_SECONDS = number("IdentityServer:SecretCacheSeconds", 3600, 0..=86_400, "how long a verified client secret is remembered");
    SECRET_CACHE_SIZE = number("IdentityServer:SecretCacheSize", 10_000, 0..=10_000_000, "how many verified client secrets are remembered");
    HASH_CONCURRENCY = computed_number("IdentityServer:HashConcurrency", 1..=1024, "argon2 verifications at once (default: the CPU count)");
    FAILED_AUTHENTICATIONS_PER_MINUTE = number("IdentityServer:FailedAuthenticationsPerMinute", 30, 1..=1_000_000, "failed authentications per client and address before 429");
    MAX_CLIENT_ASSERTION_LIFETIME = number("IdentityServer:MaxClientAssertionLifetimeSeconds", ids_jose::assertion::DEFAULT_MAX_ASSERTION_LIFETIME_SECS as u64, 1..=86_400, "the longest `exp - now` of a private_key_jwt assertion");
    TLS_FILE = text("Kestrel:Certificates:Default:Path", "the TLS PFX; the signing PFX when unset");
    TLS_PASSWORD = text("Kestrel:Certificates:Default:Password", "the password of the TLS PFX");
    TLS_SUBJECT = text("Kestrel:Certificates:Default:Subject", "Windows certificate store: refused, use Path");
    TLS_STORE = text("Kestrel:Certificates:Default:Store", "Windows certificate store: refused, use Path");
    TLS_LOCATION = text("Kestrel:Certificates:Default:Location", "Windows certificate store: refused, use Path");
    TLS_ALLOW_INVALID = text("Kestrel:Certificates:Default:AllowInvalid", "Kestrel's switch: accepted, not used");
    KESTREL_ENDPOINTS = section("Kestrel:Endpoints", "Kestrel endpoints: refused, use Urls");
    ACCESS_CONTROL_PATH = text("AccessControl:ConfigurationPath", "folder of access-control XML files (default `Conf`)");
    ACCESS_CONTROL_RELOAD = number("AccessControl:ReloadIntervalSeconds", 5, 0..=86_400, "how often the XML folder is checked (0: on SIGHUP only)");
    AUTHORIZED_CLIENTS_PATH = text("AccessControl:AuthorizedClientsPath", "folder of client public keys, certificates or JWKs");
    CLIENT_CERTIFICATES = text("IdentityServer:ClientCertificates", "`Optional` (ask TLS clients for a certificate) or `Off`");
    CLIENT_CERTIFICATE_AUTHORITIES = list("IdentityServer:ClientCertificateAuthorities", "CA certificates for tls_client_auth");
    EXPIRY_WARNING_DAYS = number("IdentityServer:ExpiryWarningDays", 30, 0..=3650, "warn about certificates expiring sooner than this");
    ASPNETCORE_URLS = text("ASPNETCORE_URLS", "listen URLs when Urls is unset");
    DATA_FOLDER = text("Deliveries:DataFolder", "where deliveries are stored (default `data`)");
    MAX_FILE_SIZE_MIB = number("Deliveries:MaxFileSizeMiB", 4096, 1..=16 * 1024 * 1024, "the largest delivery, in MiB");
    DELIVER_PROFILES = list("Deliveries:DeliverProfiles", "profiles that may deliver (default Administrator, Agent)");
    READ_PROFILES = list("Deliveries:ReadProfiles", "profiles that may read deliveries over HTTP (default none)");
    QUOTA_MIB = number("Deliveries:QuotaMiB", 0, 0..=u64::MAX / MIB, "all deliveries together, in MiB (0: no quota)");
    MIN_FREE_SPACE_MIB = number("Deliveries:MinFreeSpaceMiB", 256, 0..=u64::MAX / MIB, "free space kept on the data folder's disk, in MiB");
    MAX_CONCURRENT_UPLOADS = number("Deliveries:MaxConcurrentUploads", 32, 1..=4096, "uploads at once, all clients together");
    MAX_CONNECTIONS = computed_number("Limits:MaxConnections", 1..=10_000_000, "connections open at once (default: from the open-file limit)");
    IDLE_TIMEOUT = number("Limits:IdleTimeoutSeconds", 60, 1..=86_400, "a connection without a request in flight is closed after this");
    TLS_HANDSHAKE_TIMEOUT = number("Limits:TlsHandshakeTimeoutSeconds", 10, 1..=300, "the time a TLS handshake may take");
    REQUEST_HEADERS_TIMEOUT = number("Limits:RequestHeadersTimeoutSeconds", 10, 1..=300, "the time to send a request's headers");
    TOKEN_REQUEST_TIMEOUT = number("Limits:TokenRequestTimeoutSeconds", 10, 1..=300, "the time to send a whole token request (then 408)");
    MAX_CONCURRENT_UPLOADS_PER_CLIENT = computed_number("Deliveries:MaxConcurrentUploadsPerClient", 1..=4096, "uploads at once per client (default a quarter of the total)");
    MIN_UPLOAD_BYTES_PER_SECOND = number("Deliveries:MinUploadBytesPerSecond", 240, 0..=1024 * 1024 * 1024, "slower uploads are cut off (0: none)");
    MIN_UPLOAD_RATE_WINDOW = number("Deliveries:MinUploadRateWindowSeconds", 10, 1..=300, "the window the upload rate is measured over");
    DIGEST_TRAILERS = flag("Deliveries:DigestTrailers", true, "tell agents to send the SHA-256 after the body (one pass over the file); false behind a proxy that drops request trailers");
    STORE_PROVIDER = text("Store:Provider", "`Embedded` (the data folder, one server; default) or `PostgreSql` (shared by several servers)");
    STORE_CONNECTION_STRING = text("Store:ConnectionString", "the PostgreSQL database: libpq `key=value` string or postgresql:// URL");
    STORE_PASSWORD_FILE = text("Store:PasswordFile", "a file whose first line is the PostgreSQL password");
    STORE_PASSWORD = text("Store:Password", "the PostgreSQL password (meant for the environment: Store__Password)");
    STORE_CA_FILE = text("Store:CaFile", "CA certificates the PostgreSQL server's certificate must chain to");
    STORE_POOL_SIZE = number("Store:PoolSize", 16, 1..=1000, "PostgreSQL connections one server keeps at most");
    STORE_CONNECT_TIMEOUT = number("Store:ConnectTimeoutSeconds", 5, 1..=300, "connecting to PostgreSQL, and waiting for a free connection");
    STORE_STATEMENT_TIMEOUT = number("Store:StatementTimeoutSeconds", 30, 1..=3600, "the longest PostgreSQL statement");
    METRICS_URLS = text("Metrics:Urls", "where Prometheus metrics are served: `;`-separated http://host:port (off when unset)");
    AUDIT_PATH = text("Audit:Path", "folder of the audit trail (JSON lines, one file per day); off when unset");
    AUDIT_OUTPUT = text("Audit:Output", "`File` (Audit:Path; default) or `Stdout`");
    AUDIT_RETENTION_DAYS = number("Audit:RetentionDays", 365, 0..=36_500, "days audit files are kept (0: forever)");
    FORWARDED_KNOWN_PROXIES = list("ForwardedHeaders:KnownProxies", "addresses of the reverse proxies whose Forwarded / X-Forwarded-For headers are believed");
    FORWARDED_KNOWN_NETWORKS = list("ForwardedHeaders:KnownNetworks", "networks (CIDR) of the reverse proxies whose forwarding headers are believed");
    FORWARDED_HEADER = text("ForwardedHeaders:ForwardedForHeader", "the header the proxies give the client address in: `X-Forwarded-For` (default) or `Forwarded` (RFC 7239)");
    FORWARD_LIMIT = number("ForwardedHeaders:ForwardLimit", 1, 1..=16, "how many proxies in a row add to that header (entries read from the right)");
    FORWARDED_CLIENT_CERTIFICATE_HEADER = text("ForwardedHeaders:ClientCertificateHeader", "the header a known proxy puts the client certificate in (`Client-Cert`, RFC 9440, or nginx's `X-SSL-Client-Cert`)");
    SIGNING_ALGORITHM = text("IdentityServer:SigningAlgorithm", "the token signing algorithm: RS256 (default) or PS256 for an RSA key; ES256, ES384 and EdDSA follow the key");
    AUDIENCES = list("IdentityServer:Audiences", "audiences every client may ask for with `resource` (RFC 8707) besides the default one; a client's Audiences attribute replaces them");
    INTROSPECTION_PROFILES = list("IdentityServer:IntrospectionProfiles", "profiles whose clients may introspect any token (RFC 7662); other clients only their own tokens");
    DPOP_ALGORITHMS = list("IdentityServer:DPoPSigningAlgorithms", "algorithms DPoP proofs may be signed with (default ES256, ES384, EdDSA, PS256, RS256)");
    DPOP_PROOF_LIFETIME = number("IdentityServer:DPoPProofLifetimeSeconds", 60, 1..=600, "how old a DPoP proof (its iat) may be, in seconds");
    DPOP_NONCE = flag("IdentityServer:DPoPNonce", false, "require server-provided nonces in DPoP proofs (RFC 9449 section 8)");
    KEY_MANAGEMENT = text("IdentityServer:KeyManagement", "`Certificate` (sign with IdentityServer:X509KeyFilePath; default) or `Automatic` (the server makes, stores and rotates its signing keys)");
    KEY_PROPAGATION_DAYS = number("IdentityServer:PropagationDays", 14, 1..=365, "Automatic keys: days a new key is published before it signs");
    KEY_ROTATION_DAYS = number("IdentityServer:RotationDays", 90, 1..=3650, "Automatic keys: days a key signs");
    KEY_RETENTION_DAYS = number("IdentityServer:RetentionDays", 14, 1..=3650, "Automatic keys: days a key stays published after it stopped signing");
    STORE_APPLY_MIGRATIONS = flag("Store:ApplyMigrations", true, "apply the PostgreSQL schema at start-up (else: identity-server store migrate)");
}

/// Keys the server accepts and does not read: they belong to the ASP.NET host an `appsettings.json`
/// may have been written for. (`Logging` is .NET's too, but `Logging:Format` in it is read.)
pub const NOT_READ: &[Key] = &[ALLOWED_HOSTS, SERILOG, TLS_ALLOW_INVALID];

/// The server's schema: [`KEYS`] and the certificate keys both apps share.
pub fn schema() -> Schema {
    ids_config::appsettings::schema(KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ids_config::Config;
    use ids_config::appsettings::CERTIFICATE_KEYS;
    use ids_config::keys::ReadAudit;

    /// The schema is exactly the declarations, in the order of the key list the server had before
    /// the declarations (so "did you mean" picks the same key among equally close ones).
    #[test]
    fn every_declared_key_is_in_the_schema() {
        assert_eq!(
            schema().unknown_keys(KEYS.iter().chain(CERTIFICATE_KEYS)),
            Vec::<&str>::new()
        );
    }

    /// Every declared key is read by `Settings::from_config` (on a configuration that takes each
    /// branch), save the documented exceptions: no key is accepted and forgotten.
    #[test]
    fn every_declared_key_is_read() {
        let mut reads = std::collections::BTreeSet::new();
        // Valid files (the whole success path), then the branches taken only for some values.
        let files = [
            ("IdentityServer:X509KeyFilePath", "signing.pfx"),
            ("Kestrel:Certificates:Default:Path", "tls.pfx"),
            ("EncryptionCertificate:File", "encryption.pfx"),
        ];
        let branches = [
            ("IdentityServer:ClientCertificates", "Off"),
            ("IdentityServer:ClientCertificateAuthorities", "ca.crt"),
            ("Limits:MaxConnections", "10"),
            ("Deliveries:MaxConcurrentUploadsPerClient", "100"),
            ("Store:Provider", "PostgreSql"),
            (
                "Store:ConnectionString",
                "host=db user=u dbname=d sslrootcert=ca.pem",
            ),
            ("Store:PasswordFile", "pw"),
            ("Store:Password", "p"),
            ("IdentityServer:KeyManagement", "Automatic"),
        ];
        for values in [&files[..], &branches[..]] {
            let config = Config::with_values(values);
            let _ = super::super::Settings::from_config(&config);
            reads.extend(config.reads());
        }
        assert_eq!(
            ReadAudit::new(KEYS.iter().chain(CERTIFICATE_KEYS), NOT_READ, &reads),
            ReadAudit::default()
        );
    }
}
