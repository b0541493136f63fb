//! `agent run`: the outbox service ([`crate::delivery::outbox`]) until SIGTERM or Ctrl-C, or until the
//! outbox is empty with `--once`.

use std::path::Path;
use std::sync::Arc;

use super::session::Session;
use super::{Error, finish};
use crate::exit::ExitStatus;
use ids_runtime::shutdown;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop once the outbox is empty (for a scheduled job).
    #[arg(long)]
    once: bool,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    let session = Session::start(dir)?;
    Ok(finish(run(&session, args.once).await))
}

async fn run(session: &Session, once: bool) -> Result<ExitStatus, Error> {
    let agent = session.agent()?;
    let delivery = session.settings.delivery.clone();
    let summary = crate::delivery::outbox::run(
        Arc::new(agent),
        session.vault.clone(),
        delivery,
        once,
        async {
            shutdown::signal().await;
            tracing::info!("stop requested");
        },
    )
    .await?;
    Ok(if once && summary.left > 0 {
        // Only when stopped by a signal before the outbox was empty.
        ExitStatus::Unreachable
    } else if once && summary.unclaimable > 0 {
        ExitStatus::FileUnusable
    } else {
        ExitStatus::Success
    })
}
