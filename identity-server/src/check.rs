//! `identity-server check`: validates the settings, the certificates and the access-control XML, and
//! describes what the server would serve, as a [`Report`] the binary prints (the agent's `check` is a
//! library report too). A configuration that does not load is an [`Error`], with every problem; what
//! loads but deserves attention (certificates about to expire, unreadable authorized-client keys,
//! profiles no `<Profile>` declares) is a [`Severity::Warning`] or a [`Severity::Note`].

use std::path::Path;

use ids_pki::cert::format_time;
use ids_secret::SecretHash;

use crate::authorized_clients::AuthorizedKeys;
use crate::settings::{self, ClientCertificates, Settings};
use crate::{Error, Loaded, expiry_warnings, load};

/// How a finding is printed: as it is, after `note: `, or after `warning: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// What the server would use (keys, folders, clients).
    Info,
    /// Neither a success nor a problem.
    Note,
    /// Loads, but deserves attention.
    Warning,
}

/// One finding of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub text: String,
}

/// What `check` found, in the order it is printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    fn info(&mut self, text: String) {
        self.push(Severity::Info, text);
    }
    fn note(&mut self, text: String) {
        self.push(Severity::Note, text);
    }
    fn warn(&mut self, text: String) {
        self.push(Severity::Warning, text);
    }
    fn push(&mut self, severity: Severity, text: String) {
        self.findings.push(Finding { severity, text });
    }
}

/// Checks the configuration in `dir` with the environment `vars` at `now`; `expiry_days` overrides
/// `IdentityServer:ExpiryWarningDays`.
pub fn run(
    dir: &Path,
    vars: &[(String, String)],
    expiry_days: Option<u64>,
    now: i64,
) -> Result<Report, Error> {
    let settings = Settings::load_with(dir, vars, None).map_err(Error::Settings)?;
    let loaded = load(&settings, now).map_err(Error::Load)?;
    let mut report = Report::default();
    report.info(format!(
        "configuration: {} (environment {})",
        dir.display(),
        ids_config::environment_name(vars)
    ));
    if let Some(line) = ids_config::describe_ignored(&settings.ignored_sections, "server") {
        report.info(line);
    }
    match &loaded.keys.signing {
        Some(signing) => {
            let cert = &signing.certificate;
            report.info(format!(
                "signing key: {} {} `{}` kid {} valid until {}",
                signing.signer.algorithm().as_str(),
                cert.public_key().describe(),
                cert.subject(),
                signing.signer.kid(),
                format_time(cert.not_after())
            ));
        }
        None => managed_keys(&mut report, &settings, &loaded, now)?,
    }
    for v in &loaded.keys.validation {
        report.info(format!(
            "validation key: {} `{}` valid until {}",
            v.public_key().describe(),
            v.subject(),
            format_time(v.not_after())
        ));
    }
    report.info(format!("JWKS kids: {}", jwks_kids(&loaded).join(", ")));
    report.info(format!("TLS certificate: {}", settings.tls.path.display()));
    deliveries(&mut report, &settings, &loaded);
    store(&mut report, &settings, &loaded)?;
    for url in &settings.urls {
        let scheme = if url.https { "https" } else { "http" };
        report.info(format!("listen URL: {scheme}://{}:{}", url.host, url.port));
    }
    report.info(format!(
        "access control: {} ({} files)",
        settings.access_control_path.display(),
        loaded.clients.files.len()
    ));
    let authorized = match &settings.authorized_clients_path {
        Some(folder) => {
            let (keys, problems) = AuthorizedKeys::load(folder);
            let count: usize = keys.by_client.values().map(Vec::len).sum();
            report.info(format!(
                "authorized clients: {} ({count} key(s))",
                folder.display()
            ));
            for p in problems {
                report.warn(p.to_string());
            }
            keys
        }
        None => AuthorizedKeys::default(),
    };
    report.info(format!(
        "client certificates (mutual TLS): {}",
        match settings.client_certificates {
            ClientCertificates::Off => "off".to_string(),
            ClientCertificates::Optional => format!(
                "asked for; CAs for tls_client_auth: {}",
                if loaded.keys.client_authorities.is_empty() {
                    "none (self-signed, registered by thumbprint, only)".to_string()
                } else {
                    loaded
                        .keys
                        .client_authorities
                        .iter()
                        .map(|c| format!("`{}`", c.subject()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        }
    ));
    clients(&mut report, &loaded, &authorized, now);
    for w in &loaded.warnings {
        report.warn(w.clone());
    }
    let days = expiry_days.unwrap_or(settings.expiry_warning_days);
    for w in expiry_warnings(&settings, &loaded, &authorized, now, days) {
        report.warn(w);
    }
    Ok(report)
}

/// `KeyManagement Automatic`: the key schedule as the store has it (nothing is made or changed).
fn managed_keys(
    report: &mut Report,
    settings: &Settings,
    loaded: &Loaded,
    now: i64,
) -> Result<(), Error> {
    let Some(manager) = crate::startup::key_manager(settings, loaded.store.as_ref(), now)
        .map_err(|e| Error::Load(e.into()))?
    else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let policy = manager.policy();
    report.info(format!(
        "signing keys: managed by the server (KeyManagement Automatic) in {}: a new key is published {} days before it signs, signs {} days, stays published {} days after",
        manager.store().describe(),
        policy.propagation / 86_400,
        policy.rotation / 86_400,
        policy.retention / 86_400
    ));
    // With PostgreSQL, read over a connection of its own (the store is not marked up here).
    let read = match &loaded.store {
        Some(pg) => runtime.block_on(async {
            let keys = crate::store::postgres::keys::read_for_check(pg).await?;
            Ok(crate::keys::managed::schedule_of(&keys, policy, now))
        }),
        None => runtime.block_on(manager.schedule(now)),
    };
    match read {
        Ok((schedule, plan)) => {
            for k in &schedule {
                report.info(format!(
                    "signing key {}: {} {}, made {}, signs from {} to {}, published until {}",
                    k.kid,
                    k.state.as_str(),
                    k.algorithm.as_str(),
                    format_time(k.created),
                    format_time(k.activates),
                    format_time(k.retires),
                    format_time(k.unpublished_at)
                ));
            }
            match plan.create {
                Some(t) if schedule.is_empty() => report.note(format!(
                    "no signing key yet: the server makes one when it starts (signing from {})",
                    format_time(t)
                )),
                Some(t) => report.note(format!(
                    "the next signing key is due: the server makes it when it runs (signing from {})",
                    format_time(t)
                )),
                None => {}
            }
        }
        Err(e) => report.warn(format!("the managed signing keys cannot be read: {e}")),
    }
    Ok(())
}

/// The `kid`s the JWKS publishes, in its order: operators compare them across servers behind a load
/// balancer (every server must publish the same keys, or a token signed by one fails on another's
/// JWKS).
fn jwks_kids(loaded: &Loaded) -> Vec<String> {
    let jwks: serde_json::Value =
        serde_json::from_str(&loaded.keys.jwks_json()).unwrap_or_default();
    jwks["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Where the shared state lives; for PostgreSQL, connects and checks the schema. An unreachable or
/// unusable database is an error (the server would start, but answer 503 for what needs it).
fn store(report: &mut Report, settings: &Settings, loaded: &Loaded) -> Result<(), Error> {
    let Some(store) = &loaded.store else {
        report.info(format!(
            "store: embedded (replay journal and deliveries in {}; one server)",
            settings.deliveries.data_folder.display()
        ));
        return Ok(());
    };
    let pg = store.settings();
    if !pg.ssl_mode.verifies() && pg.ssl_mode != crate::store::settings::SslMode::Disable {
        let unix_only = pg
            .config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        if !unix_only && pg.ca_file.is_none() {
            report.warn(format!(
                "Store:ConnectionString: sslmode={} encrypts the link to PostgreSQL but does not authenticate the database server: use sslmode=verify-full with Store:CaFile",
                pg.ssl_mode.as_str()
            ));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let status = runtime.block_on(store.status())?;
    match status.check() {
        Ok(()) => report.info(format!(
            "store: PostgreSQL {} (sslmode={}, pool {}): schema version {} (this binary's)",
            store.describe(),
            pg.ssl_mode.as_str(),
            pg.pool_size,
            status.current
        )),
        Err(crate::store::postgres::PgError::SchemaOlder { found, latest })
            if pg.apply_migrations =>
        {
            report.info(format!(
                "store: PostgreSQL {} (sslmode={}, pool {}): schema version {found}; the server applies migrations up to {latest} when it starts",
                store.describe(),
                pg.ssl_mode.as_str(),
                pg.pool_size,
            ))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Where deliveries go and who may send and read them, or why there are none.
fn deliveries(report: &mut Report, settings: &Settings, loaded: &Loaded) {
    let d = &settings.deliveries;
    let e = match &loaded.encryption {
        Ok(e) => e,
        Err(reason) => {
            report.info(format!(
                "deliveries: disabled: this server stores none: {reason}"
            ));
            return;
        }
    };
    report.info(format!(
        "deliveries: stored in {} encrypted for `{}` (valid until {}); deliver: {}; read over HTTPS: {}; at most {} MiB each; {} uploads at once, {} per client, at least {} B/s over {} s",
        d.data_folder.join("deliveries").display(),
        e.certificate.subject(),
        format_time(e.certificate.not_after()),
        d.deliver_profiles.join(", "),
        if d.read_profiles.is_empty() {
            "nobody".to_string()
        } else {
            d.read_profiles.join(", ")
        },
        d.max_size / (1024 * 1024),
        d.max_uploads,
        d.max_uploads_per_client,
        d.min_upload_rate.bytes_per_second,
        d.min_upload_rate.window.as_secs()
    ));
    let declared: Vec<&str> = loaded
        .clients
        .model
        .profiles
        .iter()
        .map(|p| p.identifier.as_str())
        .collect();
    // The default list names `Agent` whether or not it exists: only configured lists are checked.
    let default = d
        .deliver_profiles
        .iter()
        .map(String::as_str)
        .eq(settings::DEFAULT_DELIVER_PROFILES.iter().copied());
    let deliver = d.deliver_profiles.iter().filter(|_| !default);
    for p in deliver.chain(&d.read_profiles) {
        if !declared.is_empty() && p != "*" && !declared.contains(&p.as_str()) {
            report.note(format!(
                "Deliveries names profile `{p}`, which no <Profile> in the access-control XML declares"
            ));
        }
    }
}

/// One line per registered client: its profile, how it authenticates, when it expires.
fn clients(report: &mut Report, loaded: &Loaded, authorized: &AuthorizedKeys, now: i64) {
    let mut clients: Vec<_> = loaded.clients.by_id.values().collect();
    clients.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    report.info(format!("clients: {}", clients.len()));
    for c in clients {
        let mut methods = Vec::new();
        match c.hash {
            Some(SecretHash::Argon2id(_)) => methods.push("secret argon2id".to_string()),
            Some(SecretHash::Sha256(_)) => methods.push("secret legacy SHA-256".to_string()),
            Some(SecretHash::Sha512(_)) => methods.push("secret legacy SHA-512".to_string()),
            None => {}
        }
        let folder_keys = authorized.of(c.identifier.as_str()).len();
        if !c.thumbprints.is_empty() || folder_keys > 0 {
            methods.push(format!(
                "{} key(s)/certificate(s)",
                c.thumbprints.len() + folder_keys
            ));
        }
        if c.tls_subject_dn.is_some() || c.tls_san.is_some() {
            methods.push("mapped CA certificate".into());
        }
        if methods.is_empty() {
            methods.push("no credentials yet".into());
        }
        let kind = methods.join(", ");
        let expiry = match c.expires_at {
            Some(t) if t <= now => format!(", EXPIRED {}", format_time(t)),
            Some(t) => format!(", expires {}", format_time(t)),
            None => String::new(),
        };
        report.info(format!(
            "  {} (profile {}, {kind}{expiry})",
            c.identifier,
            c.profile.as_deref().unwrap_or("-")
        ));
    }
}
