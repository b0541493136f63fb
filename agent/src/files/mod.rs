//! The agent's files: everything it writes to disk goes through the [`vault`] (encrypted with its own
//! certificate when `EncryptionCertificate:EncryptFile` is true), its logs are written by [`logs`], and
//! [`commands`] implements `agent encrypt` / `agent decrypt`.
//!
//! The format itself lives in `ids_seal::encrypted_file` (and `ids_seal::cms` for CMS interop).

pub mod commands;
pub mod logs;
pub mod vault;

use ids_seal::cms::CmsError;
use ids_seal::encrypted_file::{FailureKind, FileError};

pub use vault::{Vault, VaultWriter};

/// Why a file operation failed, with the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Settings or certificates (exit code 2).
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

/// Exit code: the file was encrypted for other certificates.
pub const EXIT_NOT_FOR_THIS_KEY: u8 = 7;
/// Exit code: the file is damaged, truncated or was modified.
pub const EXIT_DAMAGED: u8 = 8;
/// Exit code: a file could not be read or written, or is not an encrypted file.
pub const EXIT_FILE: u8 = 9;

impl FilesError {
    /// 2 configuration, 7 not for this key, 8 damaged, 9 file unreadable/unwritable or not encrypted.
    pub fn exit_code(&self) -> u8 {
        match self {
            FilesError::Setup(_) => 2,
            FilesError::Format { source, .. } => match source.kind() {
                FailureKind::NotForThisKey => EXIT_NOT_FOR_THIS_KEY,
                FailureKind::Damaged => EXIT_DAMAGED,
                FailureKind::Unsupported | FailureKind::Io => EXIT_FILE,
            },
            FilesError::Cms { source, .. } => match source {
                CmsError::NotForThisKey { .. } => EXIT_NOT_FOR_THIS_KEY,
                CmsError::Malformed { .. }
                | CmsError::KeyUnwrap
                | CmsError::Tampered
                | CmsError::BadPadding => EXIT_DAMAGED,
                _ => EXIT_FILE,
            },
            FilesError::Io { .. } => EXIT_FILE,
        }
    }

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
