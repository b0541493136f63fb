//! `agent trust`: lists the servers whose key is pinned (`Tls:ServerPinning First`), or forgets one.

use std::path::Path;

use super::{Error, finish, print_line};
use crate::exit::ExitStatus;
use crate::settings::ServerPinning;
use crate::tls::known_servers;
use crate::{Clock as _, Settings, SystemClock, logging};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove the pin of AUTHORITY (`host:port` as listed, or the server's URL), e.g. after its key
    /// was changed on purpose: the next connection pins the key it presents then.
    #[arg(long, value_name = "AUTHORITY")]
    forget: Option<String>,
    /// List the pinned servers (what the command does without --forget).
    #[arg(long)]
    show: bool,
}

pub fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    logging::init_stderr();
    let settings = Settings::load(dir, SystemClock.now())
        .map_err(Error::Settings)?
        .settings;
    let store = known_servers::path(&settings.work_folder);
    if !matches!(settings.server_pinning, ServerPinning::First { .. }) {
        eprintln!(
            "warning: Tls:ServerPinning is not First: the pins in {} are not used",
            store.display()
        );
    }
    let mut status = ExitStatus::Success;
    if let Some(given) = &args.forget {
        let authority =
            crate::tls::authority(given).unwrap_or_else(|| given.trim().to_ascii_lowercase());
        match known_servers::forget(&store, &authority)? {
            Some(pin) => print_line(&format!(
                "forgot {} (key thumbprint {}, pinned on {}): the next connection pins the key the server presents then",
                pin.authority, pin.thumbprint, pin.first_seen
            )),
            None => {
                // Reported now; the list below is still shown with --show.
                status = finish(Err(Error::NotPinned {
                    store: store.clone(),
                    authority,
                }));
            }
        }
    }
    if args.show || args.forget.is_none() {
        let pins = known_servers::load(&store)?;
        if pins.is_empty() {
            print_line(&format!("no server pinned in {}", store.display()));
        }
        for p in pins {
            print_line(&format!(
                "{} key thumbprint {} pinned on {} ({} line {})",
                p.authority,
                p.thumbprint,
                p.first_seen,
                store.display(),
                p.line
            ));
        }
    }
    Ok(status)
}
