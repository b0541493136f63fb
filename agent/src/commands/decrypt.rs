//! `agent decrypt`: decrypts files with the agent's private key or a given PFX
//! ([`crate::files::crypt`]).

use std::path::{Path, PathBuf};

use ids_config::password::{PasswordError, PasswordSource};
use ids_pki::pfx::{Pfx, PfxError};
use ids_seal::encrypted_file::Mode;

use super::session::Session;
use super::{Error, each_file, finish, output_folder};
use crate::exit::ExitStatus;
use crate::files::Vault;
use crate::files::crypt::{self, Decrypted, Target};
use crate::logging;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Folder for the decrypted files (default: beside each file).
    #[arg(short = 'o', long = "output-dir", conflicts_with = "stdout")]
    output_dir: Option<PathBuf>,
    /// Write the plaintext to standard output (chunks are written as they are authenticated).
    #[arg(long)]
    stdout: bool,
    /// Output the authentic part of a damaged or cut-short file (a log written until a crash)
    /// and report where it stops.
    #[arg(long)]
    recover: bool,
    /// PFX file with the private key (default: EncryptionCertificate from the settings).
    #[arg(long, value_name = "PFX")]
    key: Option<PathBuf>,
    /// Environment variable holding the --key password.
    #[arg(
        long,
        value_name = "VAR",
        requires = "key",
        conflicts_with = "password_file"
    )]
    password_env: Option<String>,
    /// File holding the --key password (first line).
    #[arg(long, value_name = "FILE", requires = "key")]
    password_file: Option<PathBuf>,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

/// Why the `--key` PFX cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}", password_message(.0))]
    Password(#[from] PasswordError),
    #[error("--key: {0}")]
    Pfx(#[from] PfxError),
}

/// The agent's own wording of [`PasswordError`], with its flag names (a variable that is not valid
/// UTF-8 reads as not set, as it always has).
fn password_message(e: &PasswordError) -> String {
    match e {
        PasswordError::EnvNotSet { var } | PasswordError::EnvNotUnicode { var } => {
            format!("--password-env: the environment variable `{var}` is not set")
        }
        PasswordError::File { path, source } => {
            format!("--password-file {}: {source}", path.display())
        }
    }
}

pub fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    match &args.key {
        Some(key) => {
            logging::init_stderr();
            let password =
                PasswordSource::from_args(args.password_env.clone(), args.password_file.clone());
            let pfx = Pfx::from_file(key, &password.read()?).map_err(KeyError::from)?;
            let vault = Vault::with(Some(pfx), Vec::new(), false)?;
            decrypt_all(&vault, &args)
        }
        None => {
            let session = Session::start(dir)?;
            Ok(finish(decrypt_all(&session.vault, &args)))
        }
    }
}

fn decrypt_all(vault: &Vault, args: &Args) -> Result<ExitStatus, Error> {
    output_folder(args.output_dir.as_deref())?;
    let mode = if args.recover {
        Mode::Recover
    } else {
        Mode::Strict
    };
    Ok(each_file(&args.files, |input, progress| {
        let target = if args.stdout {
            Target::Stdout
        } else {
            Target::File {
                path: crypt::decrypted_name(input, args.output_dir.as_deref()),
                overwrite: args.force,
            }
        };
        let done = crypt::decrypt_file(vault, input, &target, mode, progress)?;
        Ok(report(input, &target, &done))
    }))
}

/// Prints what a decryption did; with --recover, a file that stopped early because it was cut short
/// is a success (the authentic part was output), one that was modified is not.
fn report(input: &Path, target: &Target, done: &Decrypted) -> ExitStatus {
    let to = match target {
        Target::File { path, .. } => path.display().to_string(),
        Target::Stdout => "standard output".into(),
    };
    tracing::info!(input = %input.display(), output = %to, bytes = done.bytes, "file decrypted");
    if !done.authenticated {
        tracing::warn!(
            "{}: {} is not authenticated encryption: a modified file may decrypt to altered content without an error",
            input.display(),
            done.format
        );
    }
    match &done.stopped {
        None => {
            eprintln!(
                "decrypted {} -> {to} ({} bytes, {})",
                input.display(),
                done.bytes,
                done.format
            );
            ExitStatus::Success
        }
        Some((reason, damaged)) => {
            eprintln!(
                "recovered {} authentic bytes of {} -> {to}; stopped: {reason}",
                done.bytes,
                input.display()
            );
            if *damaged {
                ExitStatus::Damaged
            } else {
                ExitStatus::Success
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_errors_name_the_agent_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = PasswordSource::File(dir.path().join("missing"));
        let e = KeyError::from(missing.read().expect_err("missing"));
        assert!(e.to_string().starts_with("--password-file "), "{e}");
        let unset = PasswordSource::Env("AGENT_TEST_SURELY_UNSET".into());
        let e = KeyError::from(unset.read().expect_err("unset"));
        assert_eq!(
            e.to_string(),
            "--password-env: the environment variable `AGENT_TEST_SURELY_UNSET` is not set"
        );
    }
}
