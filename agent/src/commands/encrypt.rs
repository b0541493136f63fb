//! `agent encrypt`: encrypts files for the agent's certificate or the given ones
//! ([`crate::files::crypt`]).

use std::path::{Path, PathBuf};

use ids_pki::pfx::public_certificate_from_file;

use super::session::Session;
use super::{Error, each_file, finish, output_folder};
use crate::exit::ExitStatus;
use crate::files::FilesSetup;
use crate::files::crypt::{self, Format};
use crate::files::{Vault, VaultError};
use crate::logging;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Folder for the encrypted files (default: beside each file).
    #[arg(short = 'o', long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Certificate to encrypt for (PEM, DER, or PFX without a password); repeat for several
    /// recipients. Replaces the agent's own certificate.
    #[arg(long = "recipient", value_name = "CERT")]
    recipients: Vec<PathBuf>,
    /// `native` (streaming, any size) or `cms` (readable by `openssl cms -decrypt`, up to 1 GiB).
    #[arg(long, value_enum, default_value = "native")]
    format: Format,
    /// Replace existing output files.
    #[arg(long)]
    force: bool,
}

pub fn exec(dir: &Path, args: Args) -> Result<ExitStatus, Error> {
    if args.recipients.is_empty() {
        let session = Session::start(dir)?;
        // Checked once for all the files, rather than the same error for each.
        let result = crypt::can_encrypt(&session.vault)
            .map_err(Error::from)
            .and_then(|()| encrypt_all(&session.vault, &args));
        Ok(finish(result))
    } else {
        logging::init_stderr();
        let vault = recipients(&args.recipients)?;
        encrypt_all(&vault, &args)
    }
}

/// A vault that encrypts for the `--recipient` certificates.
fn recipients(files: &[PathBuf]) -> Result<Vault, Error> {
    let mut certs = Vec::new();
    for path in files {
        let cert = public_certificate_from_file(path, "", "a password").map_err(|detail| {
            VaultError::Setup(FilesSetup::RecipientFile {
                origin: "--recipient",
                detail,
            })
        })?;
        certs.push(cert);
    }
    Ok(Vault::with(None, certs, true)?)
}

fn encrypt_all(vault: &Vault, args: &Args) -> Result<ExitStatus, Error> {
    output_folder(args.output_dir.as_deref())?;
    Ok(each_file(&args.files, |input, progress| {
        let output = crypt::encrypted_name(input, args.output_dir.as_deref(), args.format);
        let bytes = crypt::encrypt_file(vault, input, &output, args.format, args.force, progress)?;
        tracing::info!(input = %input.display(), output = %output.display(), bytes, "file encrypted");
        eprintln!(
            "encrypted {} -> {} ({bytes} bytes, for {})",
            input.display(),
            output.display(),
            describe_recipients(vault)
        );
        Ok(ExitStatus::Success)
    }))
}

fn describe_recipients(vault: &Vault) -> String {
    vault
        .recipients()
        .iter()
        .map(|r| r.name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
