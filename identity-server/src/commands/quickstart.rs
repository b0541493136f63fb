//! `identity-server quickstart`: binds first (a busy port must not cost the freshly generated secret),
//! writes the development files ([`quickstart::prepare`]), prints how to ask for a token, and serves.

use std::io::Write as _;
use std::path::PathBuf;

use identity_server::{Bound, Error, quickstart};

use super::serve::print_listening;

#[derive(clap::Args)]
pub struct Args {
    /// Old spelling of --config-dir (the folder to create or reuse, default ids-quickstart).
    #[arg(long, value_name = "DIR", conflicts_with = "config_dir")]
    dir: Option<PathBuf>,
    /// Listen URL (default https://localhost:5001); written to a new appsettings.json, and overriding
    /// `Urls` of an existing one.
    #[arg(long)]
    urls: Option<String>,
}

/// The folder quickstart creates or reuses when none is given.
pub const DEFAULT_DIR: &str = "ids-quickstart";

impl Args {
    /// `--dir` (the old spelling of `--config-dir`), when given.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }
}

/// `config_dir`: `--config-dir` when given.
pub fn exec(config_dir: Option<PathBuf>, args: Args) -> Result<(), Error> {
    let dir = args
        .dir
        .or(config_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let urls = args.urls.as_deref();
    let url = urls.unwrap_or("https://localhost:5001");
    let listen = quickstart::parse_urls(url)?;
    let listener = match listen.first() {
        Some(first) if !dir.join("appsettings.json").exists() => {
            Some(identity_server::serve::bind(&first.bind_address())?)
        }
        _ => None,
    };
    let bound_port = match &listener {
        Some(l) => Some(l.local_addr().map_err(Error::Socket)?.port()),
        None => None,
    };
    let q = quickstart::prepare(&dir, url, bound_port)?;
    let result = Bound::load_and_bind(&dir, urls, listener).and_then(|bound| {
        print_listening(&bound);
        banner(&q, &bound);
        bound.serve(async {
            ids_runtime::shutdown::signal().await;
            tracing::info!("shutting down");
        })
    });
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

/// Points the agent's settings at this server and says how to ask for a token.
fn banner(q: &quickstart::Quickstart, bound: &Bound) {
    let issuer = &bound.issuer;
    let mut out = std::io::stdout();
    let agent_file = q.dir.join(quickstart::AGENT_DIR).join("appsettings.json");
    match quickstart::sync_agent(&q.dir, issuer, &bound.loaded.keys.tls_certificate) {
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
    let _ = out.flush();
}
