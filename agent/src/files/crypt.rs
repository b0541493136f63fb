//! Encrypting and decrypting one file (`agent encrypt`, `agent decrypt`): streamed (constant memory)
//! in the agent's format, whole-file in CMS; output written atomically next to the input or into a
//! chosen folder.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ids_seal::atomic::AtomicFile;
use ids_seal::cms;
use ids_seal::encrypted_file::format::{MAGIC, read_up_to};
use ids_seal::encrypted_file::{Encryptor, FileError, Mode, decrypt_stream};

use super::{Vault, VaultError};
use crate::files::FilesSetup;

/// Output format of `agent encrypt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The agent's streaming format (`docs/encrypted-file-format.md`), `.enc`.
    Native,
    /// CMS AuthEnvelopedData (RFC 5083, AES-256-GCM), readable by `openssl cms -decrypt`, `.p7m`.
    Cms,
}

/// Where decrypted content goes.
#[derive(Debug)]
pub enum Target {
    /// An atomically written file (refused if it exists unless `overwrite`).
    File { path: PathBuf, overwrite: bool },
    /// Standard output: authenticated chunks are written as they are verified.
    Stdout,
}

/// What a decryption produced.
#[derive(Debug)]
pub struct Decrypted {
    /// Plaintext bytes output.
    pub bytes: u64,
    /// `IDSENC v1` or the CMS content cipher.
    pub format: String,
    /// False for CMS EnvelopedData (AES-CBC): its content is not authenticated.
    pub authenticated: bool,
    /// With `--recover`: why decryption stopped before the end, and whether that was damage (a
    /// modified chunk, appended data) rather than a file cut short.
    pub stopped: Option<(FileError, bool)>,
}

/// `FILE` -> `FILE.enc` (`FILE.p7m` for CMS), in `out_dir` if given.
pub fn encrypted_name(input: &Path, out_dir: Option<&Path>, format: Format) -> PathBuf {
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(match format {
        Format::Native => ".enc",
        Format::Cms => ".p7m",
    });
    beside(input, out_dir, name)
}

/// `FILE.enc` / `.p7m` / `.cms` -> `FILE`; any other name gets `.decrypted` appended.
pub fn decrypted_name(input: &Path, out_dir: Option<&Path>) -> PathBuf {
    let name = input.file_name().unwrap_or_default();
    let text = name.to_string_lossy();
    let stripped = [".enc", ".p7m", ".cms"]
        .iter()
        .find_map(|ext| text.strip_suffix(ext).filter(|s| !s.is_empty()));
    let out = match stripped {
        Some(stem) => std::ffi::OsString::from(stem),
        None => {
            let mut n = name.to_os_string();
            n.push(".decrypted");
            n
        }
    };
    beside(input, out_dir, out)
}

fn beside(input: &Path, out_dir: Option<&Path>, name: std::ffi::OsString) -> PathBuf {
    match out_dir {
        Some(dir) => dir.join(name),
        None => input.with_file_name(name),
    }
}

/// Refuses a vault with no certificate to encrypt for (no `EncryptionCertificate` and no `--recipient`).
pub fn can_encrypt(vault: &Vault) -> Result<(), VaultError> {
    if vault.recipients().is_empty() {
        return Err(FilesSetup::NoRecipient.into());
    }
    Ok(())
}

/// Encrypts `input` into `output` for the vault's certificates; returns the plaintext length.
/// `progress` gets plaintext bytes as they are read.
pub fn encrypt_file(
    vault: &Vault,
    input: &Path,
    output: &Path,
    format: Format,
    overwrite: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, VaultError> {
    can_encrypt(vault)?;
    let mut source =
        File::open(input).map_err(|e| VaultError::io(input, "cannot open the file", e))?;
    let mut out = AtomicFile::create(output, overwrite)
        .map_err(|e| VaultError::io(output, "cannot create the output", e))?;
    let length = match format {
        Format::Native => {
            let mut encryptor = Encryptor::new(&mut out, vault.recipients())
                .map_err(|e| VaultError::format(output, e))?;
            let length = encryptor
                .copy_from(&mut source, progress)
                .map_err(|e| located(input, output, e))?;
            encryptor
                .finish()
                .map_err(|e| VaultError::format(output, e))?;
            length
        }
        Format::Cms => {
            let plain = read_limited(&mut source, input, cms::MAX_CMS_PLAINTEXT)?;
            progress(plain.len() as u64);
            let der =
                cms::encrypt(vault.certificates(), &plain).map_err(|source| VaultError::Cms {
                    file: output.display().to_string(),
                    source,
                })?;
            out.write_all(&der)
                .map_err(|e| VaultError::io(output, "cannot write the output", e))?;
            plain.len() as u64
        }
    };
    out.commit()
        .map_err(|e| VaultError::io(output, "cannot save the output", e))?;
    Ok(length)
}

/// Decrypts `input` (the agent's format or CMS, recognised by content) with the vault's key.
/// `progress` gets encrypted bytes as they are consumed. In [`Mode::Recover`] the authentic part of a
/// damaged file is output and the reason it stopped is returned; otherwise a damaged file gives an
/// error and, for a file target, no output file.
pub fn decrypt_file(
    vault: &Vault,
    input: &Path,
    target: &Target,
    mode: Mode,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted, VaultError> {
    let mut source =
        File::open(input).map_err(|e| VaultError::io(input, "cannot open the file", e))?;
    let mut prefix = [0u8; 64];
    let n = read_up_to(&mut source, &mut prefix)
        .map_err(|e| VaultError::io(input, "cannot read the file", e))?;
    let prefix = &prefix[..n];
    let is_native = prefix.starts_with(MAGIC);
    // CMS as PEM or S/MIME text goes to the CMS reader, which says how to convert it to DER.
    let cms_text = [
        &b"-----BEGIN CMS"[..],
        b"-----BEGIN PKCS7",
        b"MIME-Version:",
    ]
    .iter()
    .any(|start| prefix.starts_with(start));
    if !is_native && !cms_text && !cms::looks_like_cms(prefix) {
        return Err(VaultError::format(input, FileError::NotEncrypted));
    }
    if vault.keys().is_empty() {
        return Err(FilesSetup::NoKey.into());
    }
    let stream = std::io::Cursor::new(prefix.to_vec()).chain(source);
    let mut sink = Sink::open(target)?;
    let result = if is_native {
        decrypt_native(vault, input, stream, &mut sink, mode, progress)
    } else {
        decrypt_cms(vault, input, stream, &mut sink, progress)
    }?;
    sink.commit()?;
    Ok(result)
}

fn decrypt_native(
    vault: &Vault,
    input: &Path,
    stream: impl Read,
    sink: &mut Sink,
    mode: Mode,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted, VaultError> {
    let outcome =
        decrypt_stream(stream, sink, vault.keys(), mode, progress).map_err(|e| match e {
            FileError::Write { source } => {
                VaultError::io(sink.path(), "cannot write the output", source)
            }
            other => VaultError::format(input, other),
        })?;
    Ok(Decrypted {
        bytes: outcome.bytes,
        format: "IDSENC v1".into(),
        authenticated: true,
        stopped: outcome.stopped.map(|e| {
            let damage = !matches!(
                e,
                FileError::TruncatedAtChunk { .. } | FileError::TruncatedInChunk { .. }
            );
            (e, damage)
        }),
    })
}

fn decrypt_cms(
    vault: &Vault,
    input: &Path,
    mut stream: impl Read,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u64),
) -> Result<Decrypted, VaultError> {
    let Some(pfx) = vault.own() else {
        return Err(FilesSetup::NoPfxForCms.into());
    };
    // CMS overhead (recipients, parameters) is small; allow 1 MiB above the plaintext limit.
    let der = read_limited(&mut stream, input, cms::MAX_CMS_PLAINTEXT + (1 << 20))?;
    progress(der.len() as u64);
    let decrypted =
        cms::decrypt(&der, &pfx.certificate, &pfx.key_pkcs8).map_err(|source| VaultError::Cms {
            file: input.display().to_string(),
            source,
        })?;
    sink.write_all(&decrypted.plaintext)
        .map_err(|e| VaultError::io(sink.path(), "cannot write the output", e))?;
    Ok(Decrypted {
        bytes: decrypted.plaintext.len() as u64,
        format: format!("CMS {}", decrypted.content_cipher),
        authenticated: decrypted.authenticated,
        stopped: None,
    })
}

/// A read failure names the input, a write failure the output.
fn located(input: &Path, output: &Path, e: FileError) -> VaultError {
    match e {
        FileError::Read { source } => VaultError::io(input, "cannot read the file", source),
        FileError::Write { source } => VaultError::io(output, "cannot write the output", source),
        other => VaultError::format(output, other),
    }
}

/// The decryption output: an atomic file, or standard output.
enum Sink {
    File(AtomicFile, PathBuf),
    Stdout(std::io::StdoutLock<'static>),
}

impl Sink {
    fn open(target: &Target) -> Result<Self, VaultError> {
        Ok(match target {
            Target::File { path, overwrite } => Sink::File(
                AtomicFile::create(path, *overwrite)
                    .map_err(|e| VaultError::io(path, "cannot create the output", e))?,
                path.clone(),
            ),
            Target::Stdout => Sink::Stdout(std::io::stdout().lock()),
        })
    }

    fn path(&self) -> &Path {
        match self {
            Sink::File(_, path) => path,
            Sink::Stdout(_) => Path::new("standard output"),
        }
    }

    fn commit(self) -> Result<(), VaultError> {
        match self {
            Sink::File(file, path) => file
                .commit()
                .map_err(|e| VaultError::io(&path, "cannot save the output", e)),
            Sink::Stdout(mut out) => out
                .flush()
                .map_err(|e| VaultError::io(Path::new("standard output"), "cannot write", e)),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::File(f, _) => f.write(buf),
            Sink::Stdout(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f, _) => f.flush(),
            Sink::Stdout(s) => s.flush(),
        }
    }
}

/// Reads a whole file for CMS, refusing more than `limit` bytes.
fn read_limited(source: &mut impl Read, file: &Path, limit: u64) -> Result<Vec<u8>, VaultError> {
    let mut data = Vec::new();
    source
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| VaultError::io(file, "cannot read the file", e))?;
    if data.len() as u64 > limit {
        return Err(VaultError::Cms {
            file: file.display().to_string(),
            source: cms::CmsError::TooLarge {
                size: data.len() as u64,
            },
        });
    }
    Ok(data)
}
