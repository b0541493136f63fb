//! `agent push`: delivers files to the server now, retrying while it is away (`Http:Retries`).

use std::path::{Path, PathBuf};

use super::session::Session;
use super::{Error, finish, print_line};
use crate::Agent;
use crate::delivery;
use crate::exit::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Delivery id (one file only). Default: derived from the agent identifier, the name and the
    /// content, so that a repeated push is recognised.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Name recorded on the server (one file only). Default: the file name, without `.enc` for an
    /// encrypted file.
    #[arg(long)]
    name: Option<String>,
}

pub async fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    if args.files.len() > 1 && (args.id.is_some() || args.name.is_some()) {
        return Err(Error::OneFileOnly);
    }
    let session = Session::start(dir)?;
    Ok(finish(push(&session, &args).await))
}

async fn push(session: &Session, args: &Args) -> Result<ExitStatus, Error> {
    let agent = session.agent()?;
    let mut status = ExitStatus::Success;
    for file in &args.files {
        let result = push_one(
            session,
            &agent,
            file,
            args.id.as_deref(),
            args.name.as_deref(),
        )
        .await;
        status = status.or(finish(result));
    }
    Ok(status)
}

async fn push_one(
    session: &Session,
    agent: &Agent,
    file: &Path,
    id: Option<&str>,
    name: Option<&str>,
) -> Result<ExitStatus, Error> {
    let name = name.map(str::to_string).unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let prepared = {
        let (vault, path) = (session.vault.clone(), file.to_path_buf());
        tokio::task::spawn_blocking(move || delivery::prepare(&vault, &path, &name)).await
    };
    let prepared = prepared.map_err(|source| Error::Task {
        file: file.to_path_buf(),
        source,
    })??;
    let settings = &session.settings;
    let id = id.map(str::to_string).unwrap_or_else(|| {
        delivery::content_id(
            settings.default_client.as_str(),
            settings.agent_identifier.as_deref(),
            &prepared,
        )
    });
    let done = delivery::deliver_retrying(agent, &session.vault, &prepared, &id)
        .await
        .map_err(|source| Error::Deliver {
            file: file.to_path_buf(),
            source: Box::new(source),
        })?;
    let r = &done.receipt;
    let what = if done.already {
        "already delivered"
    } else {
        "delivered"
    };
    tracing::info!(file = %file.display(), id = %r.id, size = r.size, sha256 = %r.sha256, already = done.already, "file delivered");
    print_line(&format!(
        "{}: {what} as `{}` ({} bytes, SHA-256 {}, received {})",
        file.display(),
        r.id,
        r.size,
        r.sha256,
        r.received_at
    ));
    Ok(ExitStatus::Success)
}
