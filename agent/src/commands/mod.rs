//! The `agent` command line: one module per subcommand, each with its clap `Args` and an `exec` that
//! calls into the library (the layout of cargo's `src/bin/cargo/commands/`). `main.rs` only parses
//! the [`Cli`] and dispatches.
//!
//! # How a command ends
//! `exec` returns the [`ExitStatus`] of a command that ran (a report with errors, some files of
//! several failed, ...) or the [`Error`] that stopped it. [`finish`] prints an error and maps it to
//! its status through [`crate::exit`], the one place where errors become exit codes. A command that
//! writes the log file ([`session::Session`]) finishes its errors itself before the file is closed,
//! so that they are in the log too; errors before that reach `main`.
//!
//! # Layout
//! - [`token`], [`verify`], [`check`], [`trust`]: tokens, the configuration report, the pinned keys.
//! - [`push`], [`run`]: deliveries, one-off and the outbox service.
//! - [`protect`], [`encrypt`], [`decrypt`]: protected settings and the agent's file format.
//! - [`session`]: what the commands that run with the settings start with (settings, vault, log file).

pub mod check;
pub mod decrypt;
pub mod encrypt;
pub mod protect;
pub mod push;
pub mod run;
pub mod session;
pub mod token;
pub mod trust;
pub mod verify;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use ids_config::ConfigError;
use ids_config::password::PasswordError;
use ids_config::protected::{ProtectArgs, ProtectError};

use crate::delivery::PushError;
use crate::error::AgentError;
use crate::exit::ExitStatus;
use crate::files::VaultError;
use crate::tls::known_servers::PinStoreError;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Agent of the identity server: client-credentials tokens over HTTPS, verified with the server's public key",
    after_help = ExitStatus::help()
)]
pub struct Cli {
    /// Folder holding appsettings.json and appsettings.agent.json.
    #[arg(long, global = true, default_value = ".", env = "AGENT_CONFIG_DIR")]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; their doc comments are the `--help` text, shown as written (`<WorkFolderPath>` is
/// not HTML).
#[allow(rustdoc::invalid_html_tags)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Get an access token and print it (verified with the server's public key first).
    Token(token::Args),
    /// Verify a token (argument, or `-` for standard input) and print its claims, or why it is rejected.
    Verify(verify::Args),
    /// Validate the configuration and certificates; unless --offline, also that the server is reachable,
    /// trusted, and accepts each client's credentials.
    Check(check::Args),
    /// List the servers whose key is pinned (Tls:ServerPinning First, in <WorkFolderPath>/known_servers),
    /// or forget one.
    Trust(trust::Args),
    /// Deliver files to the server: each is decrypted as a stream (when encrypted with the agent's
    /// certificate) and sent over HTTPS with the agent's token; the server stores it encrypted with
    /// its own certificate. Delivering the same file again stores nothing new.
    Push(push::Args),
    /// Deliver every file dropped into <WorkFolderPath>/outbox, exactly once, retrying while the server
    /// is away, until SIGTERM or Ctrl-C.
    Run(run::Args),
    /// Protect a password or secret setting (or every value of a JSON file) with the agent's
    /// EncryptionCertificate, into appsettings.encrypted.agent.json, so that it need not sit in clear JSON.
    Protect(ProtectArgs),
    /// Encrypt files for the agent's certificate (EncryptionCertificate) or the given ones: FILE ->
    /// FILE.enc (FILE.p7m with --format cms). The original is left in place.
    Encrypt(encrypt::Args),
    /// Decrypt files (the agent's format or CMS) with the agent's private key or the given PFX:
    /// FILE.enc -> FILE.
    Decrypt(decrypt::Args),
    /// Write man pages and shell completions (for packages).
    #[command(hide = true)]
    GenerateAssets(ids_runtime::assets::GenerateAssets),
}

/// Why a command stopped. Rendered by [`finish`]; mapped to an exit code in [`crate::exit`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Agent(Box<AgentError>),
    #[error(transparent)]
    Files(#[from] VaultError),
    /// A file `agent push` did not deliver.
    #[error("{}: {source}", file.display())]
    Deliver {
        file: PathBuf,
        source: Box<PushError>,
    },
    /// The settings do not load: one error per problem found.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Settings(Vec<ConfigError>),
    /// `decrypt --key`: the PFX or its password.
    #[error(transparent)]
    Key(#[from] decrypt::KeyError),
    /// The pins of `Tls:ServerPinning First`.
    #[error(transparent)]
    Pins(#[from] PinStoreError),
    #[error(transparent)]
    Protect(#[from] ProtectError),
    #[error("{} does not pin {authority} (`agent trust` lists the pinned servers)", store.display())]
    NotPinned { store: PathBuf, authority: String },
    #[error("cannot read the token from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("--id and --name apply to one file; push the files one by one")]
    OneFileOnly,
    /// `Metrics:Urls`: the address cannot be listened on.
    #[error("Metrics:Urls: cannot listen on {address}: {source}")]
    Metrics {
        address: String,
        source: std::io::Error,
    },
    /// `OpenId:DPoP`: the agent's DPoP key.
    #[error(transparent)]
    Dpop(#[from] crate::client::dpop::DpopKeyError),
    /// The blocking task reading a file did not complete.
    #[error("{}: {source}", file.display())]
    Task {
        file: PathBuf,
        source: tokio::task::JoinError,
    },
}

impl From<AgentError> for Error {
    fn from(e: AgentError) -> Self {
        Error::Agent(Box::new(e))
    }
}

impl From<PasswordError> for Error {
    fn from(e: PasswordError) -> Self {
        Error::Key(e.into())
    }
}

/// The status a command ends with: its own, or its error's, printed on standard error (and in the
/// log file while one is open).
pub fn finish(result: Result<ExitStatus, Error>) -> ExitStatus {
    match result {
        Ok(status) => status,
        Err(error) => {
            report(&error);
            ExitStatus::from(&error)
        }
    }
}

fn report(error: &Error) {
    match error {
        // Through the log: also in the log file when the command has one.
        Error::Agent(_)
        | Error::Files(_)
        | Error::Deliver { .. }
        | Error::Key(_)
        | Error::Dpop(_)
        | Error::Metrics { .. } => {
            tracing::error!("{error}")
        }
        Error::Settings(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
        }
        Error::Pins(_)
        | Error::Protect(_)
        | Error::NotPinned { .. }
        | Error::Stdin(_)
        | Error::OneFileOnly
        | Error::Task { .. } => eprintln!("error: {error}"),
    }
}

/// Prints a line on standard output; a closed pipe (`agent token | head`) is not an error.
pub(crate) fn print_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Runs `each` on every file with its progress bar. Every file is tried; the status is the first
/// failure's.
pub(crate) fn each_file(
    files: &[PathBuf],
    mut each: impl FnMut(&Path, &mut dyn FnMut(u64)) -> Result<ExitStatus, Error>,
) -> ExitStatus {
    let mut status = ExitStatus::Success;
    for input in files {
        let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        let bar = crate::progress::bar(input, size);
        let result = each(input, &mut |n| bar.inc(n));
        bar.finish_and_clear();
        status = status.or(finish(result));
    }
    status
}

/// Creates `--output-dir` if it does not exist yet.
pub(crate) fn output_folder(dir: Option<&Path>) -> Result<(), Error> {
    match dir {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            Error::Files(VaultError::Io {
                file: dir.display().to_string(),
                what: "cannot create the output folder",
                source: e,
            })
        }),
        None => Ok(()),
    }
}
