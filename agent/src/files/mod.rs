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
pub enum FilesError {
    /// Settings or certificates (a usage error).
    #[error("{0}")]
    Setup(String),
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

impl FilesError {
    pub(crate) fn format(file: &std::path::Path, source: FileError) -> Self {
        FilesError::Format {
            file: file.display().to_string(),
            source,
        }
    }

    pub(crate) fn io(file: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        FilesError::Io {
            file: file.display().to_string(),
            what,
            source,
        }
    }
}
