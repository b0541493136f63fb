//! Why an encrypted file could not be written or read.
//!
//! Errors never name a file (the caller knows it and prefixes it) and never contain key material.
//! [`FileError::kind`] sorts them into what an operator does next: use another key, restore the file
//! from a copy, or fix the disk.

use std::fmt::Write as _;

use super::thumbprint::Thumbprint;

/// What an operator does about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The file was encrypted for other certificates: decrypt it with one of those.
    NotForThisKey,
    /// The file is damaged, truncated or was modified: restore it from a copy.
    Damaged,
    /// Not an encrypted file, or a format or key this build does not support.
    Unsupported,
    /// Reading or writing failed (disk, permissions, a closed pipe).
    Io,
}

/// A certificate a file is encrypted for, or one whose key is at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName {
    pub thumbprint: Thumbprint,
    /// The certificate subject when known (keys at hand), empty for recipients read from a header.
    pub subject: String,
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.subject.is_empty() {
            write!(f, "x5t#S256 {}", self.thumbprint)
        } else {
            write!(f, "`{}` (x5t#S256 {})", self.subject, self.thumbprint)
        }
    }
}

/// Where a file without its final chunk ends: after chunk N-1, or right after the header.
fn after_chunk(chunks_read: u64) -> String {
    match chunks_read {
        0 => "right after the header, before any chunk".into(),
        n => format!("after chunk {}", n - 1),
    }
}

fn list(names: &[KeyName]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}");
    }
    out
}

/// Why an encrypted file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "not an encrypted file: it does not start with the `IDSENC` signature of the agent's format \
         (nor is it CMS)"
    )]
    NotEncrypted,
    #[error(
        "encrypted-file format version {found} is not supported by this build (it reads version 1); \
         use a newer agent"
    )]
    UnsupportedVersion { found: u8 },
    #[error(
        "the header is damaged: {detail}; the file cannot be decrypted, restore it from a copy"
    )]
    HeaderDamaged { detail: String },
    #[error(
        "the header was modified after encryption ({detail}); the file cannot be trusted, restore it \
         from a copy"
    )]
    HeaderTampered { detail: String },
    #[error(
        "the file was encrypted for a different certificate: it is for {}, and the key at hand is for {}",
        list(.recipients), list(.keys)
    )]
    NotForThisKey {
        recipients: Vec<KeyName>,
        keys: Vec<KeyName>,
    },
    #[error(
        "chunk {chunk} (at byte {offset}) failed authentication: the file was modified, chunks were \
         reordered, or it was spliced from another file; nothing from this chunk on was output"
    )]
    Tampered { chunk: u64, offset: u64 },
    #[error(
        "the file is truncated: it ends {} (byte {offset}) without its final chunk; the \
         {authentic_bytes} bytes before are authentic (`decrypt --recover` outputs them)",
        after_chunk(*.chunk)
    )]
    TruncatedAtChunk {
        chunk: u64,
        offset: u64,
        authentic_bytes: u64,
    },
    #[error(
        "the file is truncated: it ends inside chunk {chunk} (which starts at byte {offset}, {missing} \
         bytes missing), or that chunk's length field is damaged; the {authentic_bytes} bytes before \
         are authentic (`decrypt --recover` outputs them)"
    )]
    TruncatedInChunk {
        chunk: u64,
        offset: u64,
        missing: u64,
        authentic_bytes: u64,
    },
    #[error("chunk {chunk} (at byte {offset}) is damaged: {detail}")]
    ChunkDamaged {
        chunk: u64,
        offset: u64,
        detail: String,
    },
    #[error(
        "{extra} unexpected bytes follow the final chunk at byte {offset}: data was appended to the \
         file; the content before is authentic"
    )]
    TrailingData { offset: u64, extra: u64 },
    #[error("cannot encrypt for this certificate: {detail}")]
    UnsupportedRecipient { detail: String },
    #[error("invalid encryption parameters: {detail}")]
    InvalidParameters { detail: String },
    #[error("cannot read the input: {source}")]
    Read { source: std::io::Error },
    #[error("cannot write the output: {source}")]
    Write { source: std::io::Error },
    #[error("cryptographic operation failed: {what}")]
    Crypto { what: &'static str },
}

impl FileError {
    /// What the operator does next.
    pub fn kind(&self) -> FailureKind {
        match self {
            FileError::NotForThisKey { .. } => FailureKind::NotForThisKey,
            FileError::HeaderDamaged { .. }
            | FileError::HeaderTampered { .. }
            | FileError::Tampered { .. }
            | FileError::TruncatedAtChunk { .. }
            | FileError::TruncatedInChunk { .. }
            | FileError::ChunkDamaged { .. }
            | FileError::TrailingData { .. } => FailureKind::Damaged,
            FileError::NotEncrypted
            | FileError::UnsupportedVersion { .. }
            | FileError::UnsupportedRecipient { .. }
            | FileError::InvalidParameters { .. }
            | FileError::Crypto { .. } => FailureKind::Unsupported,
            FileError::Read { .. } | FileError::Write { .. } => FailureKind::Io,
        }
    }

    pub(crate) fn header(detail: impl Into<String>) -> Self {
        FileError::HeaderDamaged {
            detail: detail.into(),
        }
    }
}
