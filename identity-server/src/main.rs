//! `identity-server`: serve, check the configuration, or start a development quick start.
//!
//! Exit codes (the same convention as `agent`, `new-openid-secret` and `ids-keytool`): 0 success, 1 a
//! failure at run time (a port in use, a file that cannot be written...), 2 the command line or the
//! configuration is wrong (every problem is listed, each naming its file and key).

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use identity_server::{Settings, quickstart};

#[derive(Parser)]
#[command(
    version,
    about = "OpenID Connect identity server: client-credentials tokens signed with a PFX certificate",
    after_help = "Exit codes: 0 success, 1 failure at run time, 2 usage or configuration error."
)]
struct Cli {
    /// Folder holding appsettings.json (relative paths in it resolve against this folder); accepted
    /// before or after the subcommand. Default: the current folder (quickstart: ids-quickstart).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTPS with the configuration in --config-dir.
    Serve {
        /// Listen URL, overriding `Urls` (e.g. https://127.0.0.1:0 for any free port).
        #[arg(long)]
        urls: Option<String>,
    },
    /// Validate settings, certificates and the access-control XML; print a summary or every problem.
    Check {
        /// Warn about certificates that expire within this many days (default:
        /// IdentityServer:ExpiryWarningDays, 30).
        #[arg(long, value_name = "DAYS")]
        expiry_days: Option<u64>,
    },
    /// Protect a password or secret setting (or every value of a JSON file) with the
    /// EncryptionCertificate, into appsettings.encrypted.json, so that it need not sit in clear JSON.
    Protect(ids_config::protected::ProtectArgs),
    /// What agents delivered: list, or export (decrypted with EncryptionCertificate).
    Deliveries {
        #[command(subcommand)]
        command: DeliveriesCommand,
    },
    /// Generate development certificates, settings and a demo client (never overwriting), then serve.
    Quickstart {
        /// Old spelling of --config-dir (the folder to create or reuse, default ids-quickstart).
        #[arg(long, value_name = "DIR", conflicts_with = "config_dir")]
        dir: Option<PathBuf>,
        /// Listen URL (default https://localhost:5001); written to a new appsettings.json, and overriding
        /// `Urls` of an existing one.
        #[arg(long)]
        urls: Option<String>,
    },
}

#[derive(Subcommand)]
enum DeliveriesCommand {
    /// List the deliveries in Deliveries:DataFolder, oldest first.
    List {
        /// One JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decrypt one delivery (checking its SHA-256) to a file or to standard output.
    Export {
        /// The delivery id (see `deliveries list`).
        id: String,
        /// The client that delivered it (ids are per client: needed when several used this id).
        #[arg(long, value_name = "CLIENT")]
        client: Option<String>,
        /// Output file, or folder for the delivered name (default: the delivered name here; a hidden
        /// or disguised name is made safe, and said so).
        #[arg(short, long, conflicts_with = "stdout")]
        output: Option<PathBuf>,
        /// Write the content to standard output.
        #[arg(long)]
        stdout: bool,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
}

/// Why a command failed, and the exit code that says which kind of failure it is.
struct Failure {
    code: u8,
    problems: Vec<String>,
}

/// The command line or the configuration is wrong: exit code 2.
const EXIT_CONFIG: u8 = 2;

impl Failure {
    fn config(problems: Vec<String>) -> Self {
        Failure {
            code: EXIT_CONFIG,
            problems,
        }
    }
}

/// Anything else (I/O, a busy port, the runtime): exit code 1.
impl From<Vec<String>> for Failure {
    fn from(problems: Vec<String>) -> Self {
        Failure { code: 1, problems }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Control characters in an event are escaped (a client's value cannot forge a line), so
        // colour codes would be too: no ANSI colours.
        .with_writer(|| ids_config::log_escape::EscapeControls::new(std::io::stderr()))
        .with_ansi(false)
        .init();
    let given = cli.config_dir;
    let config_dir = given.clone().unwrap_or_else(|| PathBuf::from("."));
    let result = match cli.command {
        Command::Serve { urls } => serve(&config_dir, urls.as_deref(), None, None),
        Command::Check { expiry_days } => check(&config_dir, expiry_days),
        Command::Quickstart { dir, urls } => {
            let dir = dir
                .or(given)
                .unwrap_or_else(|| PathBuf::from("ids-quickstart"));
            quickstart(&dir, urls.as_deref())
        }
        Command::Deliveries { command } => deliveries(&config_dir, command),
        Command::Protect(args) => protect(&config_dir, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            for p in failure.problems {
                eprintln!("error: {p}");
            }
            ExitCode::from(failure.code)
        }
    }
}

fn settings(dir: &Path, urls: Option<&str>) -> Result<Settings, Failure> {
    Settings::load(dir, urls)
        .map_err(|es| Failure::config(es.iter().map(ToString::to_string).collect()))
}

/// Certificates and the access-control XML: problems there are configuration errors too.
fn load(settings: &Settings) -> Result<identity_server::Loaded, Failure> {
    identity_server::load(settings, identity_server::unix_now()).map_err(Failure::config)
}

/// `protect`: encrypts settings for the EncryptionCertificate into appsettings.encrypted.json.
fn protect(dir: &Path, args: ids_config::protected::ProtectArgs) -> Result<(), Failure> {
    use ids_config::protected::{self, ProtectError};
    let schema = identity_server::settings::schema();
    match protected::run_in(
        dir,
        &[("appsettings", true)],
        &schema,
        args,
        "appsettings.encrypted.json",
    ) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(ProtectError::Input(m)) => Err(Failure::config(vec![m])),
        Err(ProtectError::Io(m)) => Err(vec![m].into()),
    }
}

/// `quickstart`: bind first (a busy port must not cost the freshly generated secret), write the files, serve.
fn quickstart(dir: &Path, urls: Option<&str>) -> Result<(), Failure> {
    let url = urls.unwrap_or("https://localhost:5001");
    let listen = quickstart::parse_urls(url).map_err(|e| Failure::config(vec![e.to_string()]))?;
    let listener = match listen.first() {
        Some(first) if !dir.join("appsettings.json").exists() => Some(bind(&first.bind_address())?),
        _ => None,
    };
    let bound_port = match &listener {
        Some(l) => Some(l.local_addr().map_err(|e| vec![e.to_string()])?.port()),
        None => None,
    };
    let q = quickstart::prepare(dir, url, bound_port).map_err(|e| match e {
        quickstart::QuickstartError::Exists(_) => Failure::config(vec![e.to_string()]),
        other => vec![other.to_string()].into(),
    })?;
    let result = serve(dir, urls, Some(&q), listener);
    if let (Err(_), Some(secret)) = (&result, &q.new_secret) {
        println!(
            "The demo client `{}` was created in {}; its secret, shown only this once: {}",
            quickstart::DEMO_CLIENT,
            q.dir.display(),
            secret.expose()
        );
    }
    result
}

fn bind(address: &str) -> Result<TcpListener, Vec<String>> {
    TcpListener::bind(address).map_err(|e| vec![format!("cannot listen on {address} (Urls): {e}")])
}

fn serve(
    dir: &Path,
    urls: Option<&str>,
    quick: Option<&quickstart::Quickstart>,
    listener: Option<TcpListener>,
) -> Result<(), Failure> {
    let settings = settings(dir, urls)?;
    // Load and validate before binding so that configuration errors come first and alone.
    let loaded = load(&settings)?;
    // The first URL may come pre-bound (quickstart); bind the others.
    let mut listeners: Vec<TcpListener> = listener.into_iter().collect();
    for url in settings.urls.iter().skip(listeners.len()) {
        listeners.push(bind(&url.bind_address())?);
    }
    let mut out = std::io::stdout();
    let mut first = None;
    for (l, url) in listeners.iter().zip(&settings.urls) {
        let bound = l.local_addr().map_err(|e| vec![e.to_string()])?;
        first.get_or_insert(bound);
        let scheme = if url.https { "https" } else { "http" };
        let _ = writeln!(out, "listening on {scheme}://{bound}");
    }
    let first = first.ok_or_else(|| vec!["no listen URL".to_string()])?;
    let issuer = identity_server::issuer(&settings, first);
    let _ = writeln!(out, "issuer {issuer}");
    if let Some(q) = quick {
        let agent_file = q.dir.join(quickstart::AGENT_DIR).join("appsettings.json");
        match quickstart::sync_agent(&q.dir, &issuer, &loaded.keys.tls_certificate) {
            Ok(quickstart::AgentSync::Unchanged) => {}
            Ok(quickstart::AgentSync::Updated { from }) => {
                let _ = writeln!(
                    out,
                    "{}: ApplicationUri is now {issuer} (was {from})",
                    agent_file.display()
                );
            }
            Ok(quickstart::AgentSync::Kept { reason }) => {
                eprintln!(
                    "warning: {}: ApplicationUri left as it was: {reason}",
                    agent_file.display()
                );
            }
            Err(e) => eprintln!("warning: {e}"),
        }
        let ca = q.ca_file.display();
        match &q.new_secret {
            Some(secret) => {
                let _ = writeln!(
                    out,
                    "\nDemo client `{}` created in {}.\nIts secret is shown only this once: {}\n",
                    quickstart::DEMO_CLIENT,
                    q.dir.display(),
                    secret.expose()
                );
                let _ = writeln!(
                    out,
                    "Ask for a token:\n  curl --cacert {ca} -u '{}:{}' -d grant_type=client_credentials {issuer}/connect/token\n",
                    quickstart::DEMO_CLIENT,
                    secret.expose()
                );
                let _ = writeln!(
                    out,
                    "Or with the agent, configured for it in {agent} (secret in appsettings.agent.json, mode 0600):\n  cargo run -p agent -- --config-dir {agent} check\n",
                    agent = q.dir.join(quickstart::AGENT_DIR).display()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "\nUsing the existing configuration in {} (the demo secret was shown when it was created).\nAsk for a token:\n  curl --cacert {ca} -u '{}:<secret>' -d grant_type=client_credentials {issuer}/connect/token\n",
                    q.dir.display(),
                    quickstart::DEMO_CLIENT
                );
            }
        }
    }
    let _ = out.flush();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| vec![format!("cannot start the async runtime: {e}")])?;
    runtime
        .block_on(identity_server::run_loaded(
            settings,
            loaded,
            listeners,
            shutdown_signal(),
        ))
        .map_err(|e| vec![e.to_string()].into())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

fn check(dir: &Path, expiry_days: Option<u64>) -> Result<(), Failure> {
    let settings = settings(dir, None)?;
    let now = identity_server::unix_now();
    let loaded = load(&settings)?;
    let mut out = std::io::stdout();
    let cert = &loaded.keys.signing_certificate;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let _ = writeln!(
        out,
        "configuration: {} (environment {})",
        dir.display(),
        ids_config::environment_name(&vars)
    );
    if let Some(line) = ids_config::describe_ignored(&settings.ignored_sections, "server") {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "signing key: {} {} `{}` kid {} valid until {}",
        loaded.keys.signer.algorithm().as_str(),
        cert.public_key().describe(),
        cert.subject(),
        loaded.keys.signer.kid(),
        ids_pki::cert::format_time(cert.not_after())
    );
    for v in &loaded.keys.validation {
        let _ = writeln!(
            out,
            "validation key: {} `{}` valid until {}",
            v.public_key().describe(),
            v.subject(),
            ids_pki::cert::format_time(v.not_after())
        );
    }
    let _ = writeln!(out, "TLS certificate: {}", settings.tls.path.display());
    let d = &settings.deliveries;
    match &loaded.encryption {
        Ok(e) => {
            let _ = writeln!(
                out,
                "deliveries: stored in {} encrypted for `{}` (valid until {}); deliver: {}; read over HTTPS: {}; at most {} MiB each; {} uploads at once, {} per client, at least {} B/s over {} s",
                d.data_folder.join("deliveries").display(),
                e.certificate.subject(),
                ids_pki::cert::format_time(e.certificate.not_after()),
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
            );
            let declared: Vec<&str> = loaded
                .clients
                .model
                .profiles
                .iter()
                .map(|p| p.identifier.as_str())
                .collect();
            // The default list names `Agent` whether or not it exists: only configured lists are checked.
            let default = d.deliver_profiles.iter().map(String::as_str).eq(
                identity_server::settings::DEFAULT_DELIVER_PROFILES
                    .iter()
                    .copied(),
            );
            let deliver = d.deliver_profiles.iter().filter(|_| !default);
            for p in deliver.chain(&d.read_profiles) {
                if !declared.is_empty() && p != "*" && !declared.contains(&p.as_str()) {
                    let _ = writeln!(
                        out,
                        "note: Deliveries names profile `{p}`, which no <Profile> in the access-control XML declares"
                    );
                }
            }
        }
        Err(reason) => {
            let _ = writeln!(
                out,
                "deliveries: disabled: this server stores none: {reason}"
            );
        }
    }
    for url in &settings.urls {
        let scheme = if url.https { "https" } else { "http" };
        let _ = writeln!(out, "listen URL: {scheme}://{}:{}", url.host, url.port);
    }
    let _ = writeln!(
        out,
        "access control: {} ({} files)",
        settings.access_control_path.display(),
        loaded.clients.files.len()
    );
    let authorized = match &settings.authorized_clients_path {
        Some(folder) => {
            let (keys, problems) =
                identity_server::authorized_clients::AuthorizedKeys::load(folder);
            let count: usize = keys.by_client.values().map(Vec::len).sum();
            let _ = writeln!(
                out,
                "authorized clients: {} ({count} key(s))",
                folder.display()
            );
            for p in problems {
                let _ = writeln!(out, "warning: {p}");
            }
            keys
        }
        None => Default::default(),
    };
    let _ = writeln!(
        out,
        "client certificates (mutual TLS): {}",
        match settings.client_certificates {
            identity_server::settings::ClientCertificates::Off => "off".to_string(),
            identity_server::settings::ClientCertificates::Optional => format!(
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
    );
    let mut clients: Vec<_> = loaded.clients.by_id.values().collect();
    clients.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    let _ = writeln!(out, "clients: {}", clients.len());
    for c in clients {
        let mut methods = Vec::new();
        match c.hash {
            Some(ids_secret::SecretHash::Argon2id(_)) => {
                methods.push("secret argon2id".to_string())
            }
            Some(ids_secret::SecretHash::Sha256(_)) => {
                methods.push("secret legacy SHA-256".to_string())
            }
            Some(ids_secret::SecretHash::Sha512(_)) => {
                methods.push("secret legacy SHA-512".to_string())
            }
            None => {}
        }
        let folder_keys = authorized.of(&c.identifier).len();
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
            Some(t) if t <= now => format!(", EXPIRED {}", ids_pki::cert::format_time(t)),
            Some(t) => format!(", expires {}", ids_pki::cert::format_time(t)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} (profile {}, {kind}{expiry})",
            c.identifier,
            c.profile.as_deref().unwrap_or("-")
        );
    }
    for w in &loaded.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let days = expiry_days.unwrap_or(settings.expiry_warning_days);
    for w in identity_server::expiry_warnings(&settings, &loaded, &authorized, now, days) {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "OK");
    Ok(())
}

/// The deliveries service over the stored files, for operator commands (no clean-up: a running server
/// may be receiving).
fn stored_deliveries(dir: &Path) -> Result<identity_server::deliveries::Deliveries, Failure> {
    let settings = settings(dir, None)?;
    let mut warnings = Vec::new();
    // Reading back needs the key, not a valid certificate: an expired one still decrypts.
    let encryption = identity_server::keys::EncryptionKeys::load(
        &settings,
        identity_server::unix_now(),
        &mut warnings,
        false,
    )
    .map_err(|e| Failure::config(vec![e.to_string()]))?
    .map_err(|_| {
        Failure::config(vec![format!(
            "{}: no EncryptionCertificate (File, Password): deliveries are stored encrypted for it, and read back with its key",
            dir.join("appsettings.json").display()
        )])
    })?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    identity_server::open_deliveries(&settings, encryption, false)
        .map(|(service, _)| service)
        .map_err(|e| vec![e].into())
}

fn deliveries(config_dir: &Path, command: DeliveriesCommand) -> Result<(), Failure> {
    use identity_server::deliveries::names::shown;
    use identity_server::deliveries::{DeliveryId, DeliveryKey, export_name};
    match command {
        DeliveriesCommand::List { json } => {
            let records = stored_deliveries(config_dir)?
                .list()
                .map_err(|e| vec![e.to_string()])?;
            let mut out = std::io::stdout().lock();
            if json {
                let text =
                    serde_json::to_string_pretty(&serde_json::json!({ "deliveries": records }))
                        .map_err(|e| vec![e.to_string()])?;
                let _ = writeln!(out, "{text}");
                return Ok(());
            }
            let _ = writeln!(
                out,
                "{:<25} {:<36} {:>12} {:<12} {:<16} {:<16} NAME",
                "RECEIVED", "ID", "SIZE", "SHA-256", "CLIENT", "AGENT"
            );
            for r in &records {
                let _ = writeln!(
                    out,
                    "{:<25} {:<36} {:>12} {:<12} {:<16} {:<16} {}",
                    r.received_at.get(..19).unwrap_or(&r.received_at),
                    r.id,
                    r.size,
                    r.sha256.get(..12).unwrap_or(&r.sha256),
                    r.client_id,
                    r.agent.as_deref().unwrap_or("-"),
                    r.name.escape_debug()
                );
            }
            let total: u64 = records.iter().map(|r| r.size).sum();
            let _ = writeln!(out, "{} deliveries, {} bytes", records.len(), total);
            Ok(())
        }
        DeliveriesCommand::Export {
            id,
            client,
            output,
            stdout,
            force,
        } => {
            let service = stored_deliveries(config_dir)?;
            let id = DeliveryId::parse(&id).map_err(|e| Failure::config(vec![e.to_string()]))?;
            let record =
                service
                    .find_any(&id, client.as_deref())
                    .map_err(|e| match client.as_deref() {
                        Some(c) => vec![format!("delivery `{}` of client `{c}`: {e}", id.as_str())],
                        None => vec![format!("delivery `{}`: {e}", id.as_str())],
                    })?;
            let key = DeliveryKey::new(&record.client_id, &id);
            if stdout {
                let mut out = std::io::stdout().lock();
                service
                    .export(&key, &mut out)
                    .map_err(|e| vec![format!("standard output: {e}")])?;
                return Ok(());
            }
            // The delivered name, made safe: never a hidden or disguised file name.
            let named = |folder: &Path| {
                let (name, changed) = export_name(&record.name, &record.id);
                if let Some(changed) = changed {
                    eprintln!(
                        "renamed: the delivered name `{}` is written as `{name}` ({changed})",
                        shown(&record.name)
                    );
                }
                folder.join(name)
            };
            let target = match output {
                Some(path) if path.is_dir() => named(&path),
                Some(path) => path,
                None => named(Path::new("")),
            };
            let mut file = ids_seal::atomic::AtomicFile::create(&target, force).map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (another delivery of that name? choose the file with -o FILE)"
                } else {
                    ""
                };
                vec![format!("{}: cannot create: {e}{hint}", target.display())]
            })?;
            service
                .export(&key, &mut file)
                .map_err(|e| vec![format!("{}: {e}", target.display())])?;
            file.commit()
                .map_err(|e| vec![format!("{}: cannot write: {e}", target.display())])?;
            eprintln!(
                "exported delivery {} of client {} ({} bytes, SHA-256 {}) to {}",
                record.id,
                record.client_id,
                record.size,
                record.sha256,
                target.display()
            );
            Ok(())
        }
    }
}
