//! Why a command of the `identity-server` binary failed: one enum, with the data of each failure, so
//! that the exit code is decided in one place ([`crate::exit`]) and the text is rendered at the edge
//! (`main.rs` prints each of [`Error::problems`] as `error: ...`).

use std::path::PathBuf;

use ids_config::ConfigError;
use ids_config::protected::ProtectError;

use crate::ServerError;
use crate::deliveries::{DeliveryError, ExportError, InvalidDeliveryId};
use crate::quickstart::QuickstartError;
use crate::startup::{DataFolderError, LoadErrors};

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings (`appsettings*.json`, the environment, `--urls`) do not validate: every problem,
    /// each naming its file and key.
    #[error("{}", join(.0))]
    Settings(Vec<ConfigError>),
    /// Certificates or the access-control XML named by valid settings cannot be used: every problem.
    #[error("{0}")]
    Load(LoadErrors),
    /// `protect`: bad input (a setting, the value, the configuration) or a file that cannot be written.
    #[error("{0}")]
    Protect(#[from] ProtectError),
    /// `quickstart`: a listen URL that does not parse, a file in the way, or one that cannot be written.
    #[error("{0}")]
    Quickstart(#[from] QuickstartError),
    /// A listen address cannot be bound (in use, not this machine's).
    #[error("cannot listen on {address} (Urls): {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    /// A bound socket cannot say its address.
    #[error("{0}")]
    Socket(std::io::Error),
    /// Nothing to listen on.
    #[error("no listen URL")]
    NoListenUrl,
    /// The async runtime cannot start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The server stopped on an error.
    #[error("{0}")]
    Server(#[from] ServerError),
    /// `deliveries`: no `EncryptionCertificate` to read the stored deliveries back with.
    #[error(
        "{}: no EncryptionCertificate (File, Password): deliveries are stored encrypted for it, and read back with its key",
        .settings_file.display()
    )]
    NoEncryptionCertificate { settings_file: PathBuf },
    /// The shared PostgreSQL store cannot be reached or used (`check`, `store`, `deliveries`).
    #[error("{0}")]
    Store(#[from] crate::store::postgres::PgError),
    /// `store`: the command needs `Store:Provider PostgreSql`.
    #[error(
        "{}: Store:Provider is Embedded (the data folder): `store {command}` works on a PostgreSQL store; set Store:Provider to PostgreSql and Store:ConnectionString",
        .settings_file.display()
    )]
    NotPostgres {
        settings_file: PathBuf,
        command: &'static str,
    },
    /// `store import`: the folder (or the database) cannot be read.
    #[error("store import from {}: {source}", .folder.display())]
    Import {
        folder: PathBuf,
        source: crate::deliveries::StoreError,
    },
    /// `store import`: some deliveries were not copied (each is listed above the counts).
    #[error(
        "store import: {conflicts} deliveries conflict with what PostgreSQL holds and {failed} could not be copied (listed above); nothing was overwritten"
    )]
    ImportIncomplete { conflicts: usize, failed: usize },
    /// `deliveries`: the delivery folder cannot be opened.
    #[error("{0}")]
    DataFolder(#[from] DataFolderError),
    /// `deliveries list`: the stored records cannot be read.
    #[error("{0}")]
    List(DeliveryError),
    /// `deliveries list --json`: the records cannot be written as JSON.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// `deliveries export`: the id given on the command line is not a delivery id.
    #[error("{0}")]
    DeliveryId(InvalidDeliveryId),
    /// `deliveries export`: no such delivery (of that client, when given).
    #[error("delivery `{id}`{}: {source}", .client.as_ref().map(|c| format!(" of client `{c}`")).unwrap_or_default())]
    NotFound {
        id: String,
        client: Option<String>,
        source: DeliveryError,
    },
    /// `deliveries export`: reading the delivery or writing it to `target` (a file, or standard output).
    #[error("{target}: {source}")]
    Export { target: String, source: ExportError },
    /// `deliveries export`: the output file cannot be created.
    #[error("{}: cannot create: {source}{}", .path.display(), create_hint(.source))]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `deliveries export`: the output file cannot be put in place.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// One message per problem (the settings and the loaded files may have several), each printed
    /// as one `error:` line.
    pub fn problems(&self) -> Vec<String> {
        match self {
            Error::Settings(errors) => errors.iter().map(ToString::to_string).collect(),
            Error::Load(errors) => errors.problems(),
            other => vec![other.to_string()],
        }
    }
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What to do when the output file exists: the likely cause is two deliveries of the same name.
fn create_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        " (another delivery of that name? choose the file with -o FILE)"
    } else {
        ""
    }
}
