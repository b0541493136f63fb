//! `identity-server serve`: loads and binds ([`Bound::load_and_bind`]), prints where it listens and
//! the issuer, and serves until SIGINT or SIGTERM
//! ([`ids_runtime::shutdown::signal`]).

use std::io::Write as _;
use std::path::Path;

use identity_server::{Bound, Error};

#[derive(clap::Args)]
pub struct Args {
    /// Listen URL, overriding `Urls` (e.g. https://127.0.0.1:0 for any free port).
    #[arg(long)]
    urls: Option<String>,
}

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    let bound = Bound::load_and_bind(config_dir, args.urls.as_deref(), None)?;
    print_listening(&bound);
    bound.serve(async {
        ids_runtime::shutdown::signal().await;
        tracing::info!("shutting down");
    })
}

/// `listening on URL` for each socket, then `issuer URL`: what scripts and tests wait for.
pub fn print_listening(bound: &Bound) {
    let mut out = std::io::stdout();
    for (address, https) in &bound.addresses {
        let scheme = if *https { "https" } else { "http" };
        let _ = writeln!(out, "listening on {scheme}://{address}");
    }
    for listener in &bound.metrics {
        if let Ok(address) = listener.local_addr() {
            let _ = writeln!(out, "metrics on http://{address}/metrics");
        }
    }
    let _ = writeln!(out, "issuer {}", bound.issuer);
    let _ = out.flush();
}
