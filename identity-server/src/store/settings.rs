//! The `Store` section: which store holds the shared state and, for PostgreSQL, how to reach it.
//!
//! `Store:ConnectionString` is what libpq takes (a `key=value` string or a `postgresql://` URL), so an
//! operator can paste the one their other tools use. tokio-postgres reads it, save the TLS options it
//! does not know (`sslmode` values beyond `disable`/`prefer`/`require`, `sslrootcert`), which are taken
//! out here and honoured with rustls ([`super::postgres::tls`]). The password may be in the string, in
//! `Store:PasswordFile` (first line), in `Store:Password` (meant for the environment,
//! `Store__Password`) or in libpq's `PGPASSWORD`; it is never logged nor shown by `Debug`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ids_config::keys::{flag, number};
use ids_config::{Config, ConfigError, invalid};

use crate::settings::schema as key;

/// `Store:Provider` and what it needs.
#[derive(Clone, Debug, Default)]
pub enum StoreSettings {
    /// The data folder and in-memory caches (one server).
    #[default]
    Embedded,
    /// One PostgreSQL database shared by every server.
    PostgreSql(Box<PgSettings>),
}

impl StoreSettings {
    /// The PostgreSQL settings, when that is the provider.
    pub fn postgres(&self) -> Option<&PgSettings> {
        match self {
            StoreSettings::PostgreSql(pg) => Some(pg),
            StoreSettings::Embedded => None,
        }
    }
}

/// libpq's `sslmode`, all six values (tokio-postgres knows three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// libpq tries without TLS first; here the same as `prefer` (TLS when the server offers it).
    Allow,
    /// TLS when the server offers it (libpq's default); the certificate is checked against the CA
    /// file when one is given, else not at all (a warning says so).
    Prefer,
    /// TLS or no connection; the certificate as for `prefer`.
    Require,
    /// TLS, the certificate chains to the CA file (any host name).
    VerifyCa,
    /// TLS, the certificate chains to the CA file and names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must chain to a trusted CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// How to reach the shared PostgreSQL database. `Debug` shows no password (tokio-postgres's `Config`
/// redacts it).
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// Hosts, ports, user, database and the password, as tokio-postgres connects.
    pub config: tokio_postgres::Config,
    /// `sslmode` (default `prefer`, as libpq).
    pub ssl_mode: SslMode,
    /// `Store:CaFile`, or the connection string's `sslrootcert`: the CA certificates (PEM or DER) the
    /// database's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// `Store:PoolSize` (default 16): connections one server keeps at most.
    pub pool_size: usize,
    /// `Store:ConnectTimeoutSeconds` (default 5): connecting, and waiting for a free connection.
    pub connect_timeout: Duration,
    /// `Store:StatementTimeoutSeconds` (default 30): the longest statement (PostgreSQL's
    /// `statement_timeout`), so a stuck query never holds a request forever.
    pub statement_timeout: Duration,
    /// `Store:ApplyMigrations` (default true): apply the schema at start-up (under an advisory lock).
    /// Off: `identity-server store migrate` does it, and a server finding an older schema waits.
    pub apply_migrations: bool,
    /// Where the connection string came from (for messages).
    pub origin: String,
}

impl PgSettings {
    /// `user@host:port/database`, for logs and `check` (never the password).
    pub fn describe(&self) -> String {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = c
                    .get_ports()
                    .get(i)
                    .or_else(|| c.get_ports().first())
                    .copied()
                    .unwrap_or(5432);
                match h {
                    tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                    tokio_postgres::config::Host::Unix(path) => {
                        format!("{}/.s.PGSQL.{port}", path.display())
                    }
                }
            })
            .collect();
        format!(
            "{}@{}/{}",
            c.get_user().unwrap_or("?"),
            if hosts.is_empty() {
                "localhost:5432".to_string()
            } else {
                hosts.join(",")
            },
            c.get_dbname().unwrap_or("?")
        )
    }
}

/// Reads the `Store` section. `env_password` is libpq's `PGPASSWORD`, when set.
pub fn store_settings(
    config: &Config,
    env_password: Option<&str>,
    errors: &mut Vec<ConfigError>,
) -> StoreSettings {
    let provider = config.get(key::STORE_PROVIDER.path);
    let postgres = match provider {
        None => false,
        Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
            "" | "embedded" => false,
            "postgresql" | "postgres" => true,
            _ => {
                errors.push(invalid(s, "`Embedded` (the data folder, one server) or `PostgreSql` (a database shared by several servers)"));
                false
            }
        },
    };
    let pool_size = number(config, &key::STORE_POOL_SIZE, errors);
    let connect_timeout = number(config, &key::STORE_CONNECT_TIMEOUT, errors);
    let statement_timeout = number(config, &key::STORE_STATEMENT_TIMEOUT, errors);
    let apply_migrations = flag(config, &key::STORE_APPLY_MIGRATIONS, errors);
    let ca_setting = config.get(key::STORE_CA_FILE.path);
    let password_file = config.get(key::STORE_PASSWORD_FILE.path);
    let password_setting = config.get(key::STORE_PASSWORD.path);
    let Some(connection) = config.get(key::STORE_CONNECTION_STRING.path) else {
        if postgres {
            errors.push(ConfigError::Missing {
                path: key::STORE_CONNECTION_STRING.path.into(),
                message: "the PostgreSQL database every server shares, e.g. `host=db.example.com dbname=identity user=identity sslmode=verify-full` or `postgresql://identity@db.example.com/identity?sslmode=verify-full`".into(),
            });
        }
        return StoreSettings::Embedded;
    };
    if !postgres {
        errors.push(invalid(
            connection,
            "a connection string is only used with Store:Provider PostgreSql (set it, or remove the connection string)",
        ));
        return StoreSettings::Embedded;
    }
    let parsed = match split_tls_options(&connection.value) {
        Ok(p) => p,
        Err(e) => {
            errors.push(invalid(connection, &e.to_string()));
            return StoreSettings::Embedded;
        }
    };
    let mut pg_config = match tokio_postgres::Config::from_str(&parsed.rest) {
        Ok(c) => c,
        Err(e) => {
            // tokio-postgres names the option, never its value (no password in this message).
            errors.push(invalid(
                connection,
                &format!("not a libpq connection string ({e}); expected `key=value` pairs (host, port, dbname, user, sslmode...) or a postgresql:// URL"),
            ));
            return StoreSettings::Embedded;
        }
    };
    if pg_config.get_hosts().is_empty() {
        errors.push(invalid(
            connection,
            "no host: add `host=NAME` (or a Unix socket folder, `host=/var/run/postgresql`)",
        ));
    }
    if pg_config.get_user().is_none() {
        errors.push(invalid(connection, "no user: add `user=NAME`"));
    }
    if pg_config.get_dbname().is_none() {
        errors.push(invalid(connection, "no database: add `dbname=NAME`"));
    }
    let in_string = pg_config.get_password().is_some();
    let mut sources = Vec::new();
    if in_string {
        sources.push("the connection string");
    }
    if let Some(file) = password_file {
        sources.push(key::STORE_PASSWORD_FILE.path);
        let path = config.resolve(file.value.trim());
        match std::fs::read(&path) {
            Ok(bytes) => {
                let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
                let first = first.strip_suffix(b"\r").unwrap_or(first);
                if first.is_empty() {
                    errors.push(invalid(
                        file,
                        &format!(
                            "{} is empty: its first line is the password",
                            path.display()
                        ),
                    ));
                }
                pg_config.password(first);
            }
            Err(e) => errors.push(invalid(
                file,
                &format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
    if let Some(p) = password_setting {
        sources.push(key::STORE_PASSWORD.path);
        pg_config.password(p.value.as_bytes());
    }
    if sources.len() > 1 {
        errors.push(invalid(
            connection,
            &format!(
                "the password is given twice ({}): keep one",
                sources.join(" and ")
            ),
        ));
    }
    if sources.is_empty()
        && let Some(p) = env_password
    {
        pg_config.password(p.as_bytes());
    }
    let ssl_mode = parsed.ssl_mode.unwrap_or(SslMode::Prefer);
    pg_config.ssl_mode(match ssl_mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    let ca_file = match (ca_setting, parsed.root_cert) {
        (Some(s), Some(_)) => {
            errors.push(invalid(
                s,
                "the CA file is given twice (here and as sslrootcert in Store:ConnectionString): keep one",
            ));
            None
        }
        (Some(s), None) => Some(config.resolve(s.value.trim())),
        (None, Some(root)) => Some(config.resolve(&root)),
        (None, None) => None,
    };
    if ssl_mode.verifies() && ca_file.is_none() {
        errors.push(invalid(
            connection,
            &format!(
                "sslmode={} checks the database's certificate against a CA: set Store:CaFile (or sslrootcert) to the CA certificate file",
                ssl_mode.as_str()
            ),
        ));
    }
    let connect_timeout = Duration::from_secs(connect_timeout);
    pg_config.connect_timeout(connect_timeout);
    pg_config.application_name("identity-server");
    StoreSettings::PostgreSql(Box::new(PgSettings {
        config: pg_config,
        ssl_mode,
        ca_file,
        pool_size: usize::try_from(pool_size).unwrap_or(16),
        connect_timeout,
        statement_timeout: Duration::from_secs(statement_timeout),
        apply_migrations,
        origin: connection.origin.to_string(),
    }))
}

/// The connection string without the TLS options tokio-postgres does not take, and those options.
#[derive(Debug, PartialEq, Eq)]
pub struct SplitConnection {
    pub rest: String,
    pub ssl_mode: Option<SslMode>,
    pub root_cert: Option<String>,
}

/// Why a connection string's TLS options cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionStringError {
    #[error("sslmode `{0}` is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("an unterminated quoted value (a `'` without its closing `'`)")]
    Unterminated,
    /// A word without `=value`; which word is not said (it may be part of an unquoted password).
    #[error(
        "a word without `=value` {0}: write each setting as key=value and quote a value that contains spaces ('...')"
    )]
    NoValue(String),
}

/// Takes `sslmode` and `sslrootcert` out of a libpq connection string, either form.
pub fn split_tls_options(s: &str) -> Result<SplitConnection, ConnectionStringError> {
    let trimmed = s.trim();
    if trimmed.starts_with("postgresql://") || trimmed.starts_with("postgres://") {
        return Ok(split_url(trimmed));
    }
    let mut ssl_mode = None;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    let mut rest = trimmed;
    // Where a word without a value is: after the last key read (never the word itself).
    let mut last_key: Option<&str> = None;
    let no_value = |last_key: Option<&str>| {
        ConnectionStringError::NoValue(match last_key {
            Some(k) => format!("after the value of `{k}`"),
            None => "at the start".to_string(),
        })
    };
    while !rest.is_empty() {
        let start = rest;
        let eq = rest.find('=').ok_or_else(|| no_value(last_key))?;
        let name = rest[..eq].trim();
        if name.contains(char::is_whitespace) {
            return Err(no_value(last_key));
        }
        last_key = Some(name);
        let after = rest[eq + 1..].trim_start();
        let (value, remaining) = read_value(after)?;
        let consumed = start.len() - remaining.len();
        match name {
            "sslmode" => {
                ssl_mode = Some(
                    SslMode::parse(&value).ok_or(ConnectionStringError::SslMode(value.clone()))?,
                )
            }
            "sslrootcert" => root_cert = Some(value),
            _ => kept.push(start[..consumed].trim()),
        }
        rest = remaining.trim_start();
    }
    Ok(SplitConnection {
        rest: kept.join(" "),
        ssl_mode,
        root_cert,
    })
}

/// One value of a key/value string: quoted (`'...'`, with `\'` and `\\`) or up to the next space
/// (with backslash escapes); the value and what follows it.
fn read_value(s: &str) -> Result<(String, &str), ConnectionStringError> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    if s.starts_with('\'') {
        chars.next();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(e);
                    }
                }
                '\'' => return Ok((value, &s[i + 1..])),
                c => value.push(c),
            }
        }
        return Err(ConnectionStringError::Unterminated);
    }
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => return Ok((value, &s[i..])),
            '\\' => {
                if let Some((_, e)) = chars.next() {
                    value.push(e);
                }
            }
            c => value.push(c),
        }
    }
    Ok((value, ""))
}

fn split_url(s: &str) -> SplitConnection {
    let (base, query) = match s.split_once('?') {
        Some((b, q)) => (b, q),
        None => (s, ""),
    };
    let mut ssl_mode_raw = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded: String = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "sslmode" => ssl_mode_raw = Some(decoded),
            "sslrootcert" => root_cert = Some(decoded),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    // An unknown sslmode in a URL is reported by the caller through tokio-postgres: keep it there.
    let (ssl_mode, rest) = match ssl_mode_raw {
        None => (None, rest),
        Some(raw) => match SslMode::parse(&raw) {
            Some(m) => (Some(m), rest),
            None => {
                let sep = if rest.contains('?') { '&' } else { '?' };
                (None, format!("{rest}{sep}sslmode={raw}"))
            }
        },
    };
    SplitConnection {
        rest,
        ssl_mode,
        root_cert,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_both_forms() {
        let s = split_tls_options(
            "host=db port=5433 sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem' user=ids password='p w\\'d'",
        )
        .unwrap();
        assert_eq!(s.ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(s.root_cert.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(s.rest, "host=db port=5433 user=ids password='p w\\'d'");
        let c = tokio_postgres::Config::from_str(&s.rest).unwrap();
        assert_eq!(c.get_password(), Some(&b"p w'd"[..]));

        let s = split_tls_options(
            "postgresql://ids@db:5433/identity?sslmode=verify-ca&sslrootcert=%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(s.ssl_mode, Some(SslMode::VerifyCa));
        assert_eq!(s.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(
            s.rest,
            "postgresql://ids@db:5433/identity?connect_timeout=3"
        );

        assert_eq!(
            split_tls_options("host=db sslmode=maybe"),
            Err(ConnectionStringError::SslMode("maybe".into()))
        );
        assert_eq!(
            split_tls_options("host=db password='open"),
            Err(ConnectionStringError::Unterminated)
        );
        assert_eq!(
            split_tls_options("host db"),
            Err(ConnectionStringError::NoValue("at the start".into()))
        );
        // An unquoted password with a space: the error never shows a word of it.
        let e = split_tls_options("host=db password=my secret dbname=x")
            .expect_err("a word without a value");
        assert_eq!(
            e,
            ConnectionStringError::NoValue("after the value of `password`".into())
        );
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(!e.to_string().contains("my"), "{e}");
    }

    #[test]
    fn settings_validate_and_never_show_the_password() {
        let config = Config::with_values(&[
            ("Store:Provider", "PostgreSql"),
            (
                "Store:ConnectionString",
                "host=/run/pg user=ids dbname=identity password=hunter2-secret",
            ),
        ]);
        let mut errors = Vec::new();
        let s = store_settings(&config, None, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let pg = s.postgres().unwrap();
        assert_eq!(pg.ssl_mode, SslMode::Prefer);
        assert_eq!(pg.describe(), "ids@/run/pg/.s.PGSQL.5432/identity");
        assert!(!format!("{s:?}").contains("hunter2"));

        let config = Config::with_values(&[
            ("Store:Provider", "PostgreSql"),
            (
                "Store:ConnectionString",
                "host=db user=ids sslmode=verify-full",
            ),
        ]);
        let mut errors = Vec::new();
        store_settings(&config, None, &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.contains("no database")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("Store:CaFile")), "{text:?}");

        let config = Config::with_values(&[("Store:Provider", "Mongo")]);
        let mut errors = Vec::new();
        store_settings(&config, None, &mut errors);
        assert!(errors[0].to_string().contains("PostgreSql"), "{errors:?}");
    }
}
