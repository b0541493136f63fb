//! The agent's files: everything it writes to disk goes through the [`vault`] (encrypted with its own
//! certificate when `EncryptionCertificate:EncryptFile` is true), its logs are written by [`logs`], and
//! [`crypt`] encrypts and decrypts one file for `agent encrypt` / `agent decrypt`.
//!
//! The format itself lives in `ids_seal::encrypted_file` (and `ids_seal::cms` for CMS interop).

pub mod crypt;
pub mod logs;
pub mod vault;

use ids_seal::cms::CmsError;
use ids_seal::encrypted_file::FileError;

pub use vault::{Vault, VaultWriter};

/// Why a file operation failed, with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Settings or certificates (a usage error).
    #[error(transparent)]
    Setup(#[from] FilesSetup),
    #[error("{file}: {source}")]
    Format { file: String, source: FileError },
    #[error("{file}: {source}")]
    Cms { file: String, source: CmsError },
    #[error("{file}: {what}: {source}")]
    Io {
        file: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Settings or certificates that do not let the agent read or write its files.
#[derive(Debug, thiserror::Error)]
pub enum FilesSetup {
    /// The agent's PFX (`EncryptionCertificate:File`, named by `setting`) cannot be opened.
    #[error("{setting}: {source}")]
    OwnCertificate {
        setting: String,
        source: ids_pki::pfx::PfxError,
    },
    /// The agent's certificate is outside its validity and files are to be encrypted for it.
    #[error("{setting}: {source}; files cannot be encrypted for it: renew the certificate")]
    OwnCertificateValidity {
        setting: String,
        source: ids_pki::pfx::PfxError,
    },
    /// A certificate to encrypt for, named by `origin` (`EncryptionCertificate:AdditionalRecipients`,
    /// `--recipient`), cannot be read; `detail` is the reader's message.
    #[error("{origin}: {detail}")]
    RecipientFile {
        origin: &'static str,
        detail: ids_pki::pfx::PublicCertificateError,
    },
    /// A certificate that cannot be encrypted for (its key type).
    #[error("certificate `{subject}`: {source}")]
    Recipient { subject: String, source: FileError },
    /// The log file's certificate cannot be encrypted for.
    #[error("log file certificate: {0}")]
    LogRecipient(FileError),
    /// The agent's own key cannot decrypt (its key type).
    #[error("{0}")]
    DecryptionKey(FileError),
    #[error(
        "no certificate to encrypt for: configure EncryptionCertificate (File, Password) in the settings or give --recipient CERT"
    )]
    NoRecipient,
    #[error(
        "no private key to decrypt with: configure EncryptionCertificate (File, Password) or give --key"
    )]
    NoKey,
    #[error(
        "CMS files need the private key of a PFX: configure EncryptionCertificate or give --key"
    )]
    NoPfxForCms,
    #[error(
        "{}: the file is encrypted and no EncryptionCertificate (File, Password) is configured to read it",
        file.display()
    )]
    NoKeyForFile { file: std::path::PathBuf },
    #[error("the system random generator failed")]
    Random,
}

impl VaultError {
    pub(crate) fn format(file: &std::path::Path, source: FileError) -> Self {
        VaultError::Format {
            file: file.display().to_string(),
            source,
        }
    }

    pub(crate) fn io(file: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        VaultError::Io {
            file: file.display().to_string(),
            what,
            source,
        }
    }
}
