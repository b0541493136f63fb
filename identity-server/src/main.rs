//! `identity-server`: serve, check the configuration, or start a development quick start.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use identity_server::{Settings, quickstart};

#[derive(Parser)]
#[command(
    version,
    about = "OpenID Connect identity server: client-credentials tokens signed with a PFX certificate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTPS with the configuration in --config-dir.
    Serve {
        /// Folder holding appsettings.json (relative paths in it resolve against this folder).
        #[arg(long, default_value = ".")]
        config_dir: PathBuf,
        /// Listen URL, overriding `Urls` (e.g. https://127.0.0.1:0 for any free port).
        #[arg(long)]
        urls: Option<String>,
    },
    /// Validate settings, certificates and the access-control XML; print a summary or every problem.
    Check {
        #[arg(long, default_value = ".")]
        config_dir: PathBuf,
    },
    /// Generate development certificates, settings and a demo client (never overwriting), then serve.
    Quickstart {
        #[arg(long, default_value = "ids-quickstart")]
        dir: PathBuf,
        /// Listen URL (default https://localhost:5001); written to a new appsettings.json, and overriding
        /// `Urls` of an existing one.
        #[arg(long)]
        urls: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve { config_dir, urls } => serve(&config_dir, urls.as_deref(), None, None),
        Command::Check { config_dir } => check(&config_dir),
        Command::Quickstart { dir, urls } => quickstart(&dir, urls.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

fn settings(dir: &Path, urls: Option<&str>) -> Result<Settings, Vec<String>> {
    Settings::load(dir, urls).map_err(|es| es.iter().map(ToString::to_string).collect())
}

/// `quickstart`: bind first (a busy port must not cost the freshly generated secret), write the files, serve.
fn quickstart(dir: &Path, urls: Option<&str>) -> Result<(), Vec<String>> {
    let url = urls.unwrap_or("https://localhost:5001");
    let listen = quickstart::parse_urls(url).map_err(|e| vec![e.to_string()])?;
    let listener = match listen.first() {
        Some(first) if !dir.join("appsettings.json").exists() => Some(bind(&first.bind_address())?),
        _ => None,
    };
    let q = quickstart::prepare(dir, url).map_err(|e| vec![e.to_string()])?;
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
) -> Result<(), Vec<String>> {
    let settings = settings(dir, urls)?;
    // Load and validate before binding so that configuration errors come first and alone.
    let loaded = identity_server::load(&settings, identity_server::unix_now())?;
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
        .map_err(|e| vec![e.to_string()])
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

fn check(dir: &Path) -> Result<(), Vec<String>> {
    let settings = settings(dir, None)?;
    let now = identity_server::unix_now();
    let loaded = identity_server::load(&settings, now)?;
    let mut out = std::io::stdout();
    let cert = &loaded.keys.signing_certificate;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let _ = writeln!(
        out,
        "configuration: {} (environment {})",
        dir.display(),
        ids_config::environment_name(&vars)
    );
    let _ = writeln!(
        out,
        "signing key: {} {} `{}` kid {} valid until {}",
        loaded.keys.signer.algorithm().as_str(),
        cert.public_key().describe(),
        cert.subject(),
        loaded.keys.signer.kid(),
        ids_crypto::cert::format_time(cert.not_after())
    );
    for v in &loaded.keys.validation {
        let _ = writeln!(
            out,
            "validation key: {} `{}` valid until {}",
            v.public_key().describe(),
            v.subject(),
            ids_crypto::cert::format_time(v.not_after())
        );
    }
    let _ = writeln!(out, "TLS certificate: {}", settings.tls.path.display());
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
    let mut clients: Vec<_> = loaded.clients.by_id.values().collect();
    clients.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    let _ = writeln!(out, "clients: {}", clients.len());
    for c in clients {
        let kind = match c.hash {
            ids_crypto::SecretHash::Argon2id(_) => "argon2id",
            ids_crypto::SecretHash::Sha256(_) => "legacy SHA-256",
            ids_crypto::SecretHash::Sha512(_) => "legacy SHA-512",
        };
        let expiry = match c.expires_at {
            Some(t) if t <= now => format!(", EXPIRED {}", ids_crypto::cert::format_time(t)),
            Some(t) => format!(", expires {}", ids_crypto::cert::format_time(t)),
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
    let _ = writeln!(out, "OK");
    Ok(())
}
