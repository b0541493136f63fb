//! The one place the agent writes its files (exports, outbox, temporary files): encrypted with its own
//! certificate (and any `EncryptionCertificate:AdditionalRecipients`) when
//! `EncryptionCertificate:EncryptFile` is true, always atomically (temporary name, fsync, rename).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ids_pki::Certificate;
use ids_pki::pfx::{Pfx, check_validity, public_certificate_from_file};
use ids_seal::atomic::AtomicFile;
use ids_seal::encrypted_file::format::{MAGIC, read_up_to};
use ids_seal::encrypted_file::{DecryptionKey, Decryptor, Encryptor, Layout, Recipient, layout};

use super::VaultError;
use crate::Settings;
use crate::files::FilesSetup;

/// The agent's certificates for its files: whom new files are encrypted for, and the private key that
/// reads them back.
#[derive(Debug)]
pub struct Vault {
    certificates: Vec<Certificate>,
    recipients: Vec<Recipient>,
    own: Option<Pfx>,
    keys: Vec<DecryptionKey>,
    encrypt: bool,
    temp_folder: PathBuf,
}

impl Vault {
    /// The vault the settings describe. The agent's PFX is opened (wrong password, damaged file: a
    /// setup error naming `EncryptionCertificate:File`); an expired certificate is refused when files
    /// are to be encrypted for it, and accepted for reading old files.
    pub fn from_settings(settings: &Settings, now: i64) -> Result<Self, VaultError> {
        let own = match &settings.encryption_certificate {
            Some(file) => {
                let pfx = file.open().map_err(|source| FilesSetup::OwnCertificate {
                    setting: file.setting.clone(),
                    source,
                })?;
                if settings.encrypt_files {
                    check_validity(&pfx.file, &pfx.certificate, now).map_err(|source| {
                        FilesSetup::OwnCertificateValidity {
                            setting: file.setting.clone(),
                            source,
                        }
                    })?;
                }
                Some(pfx)
            }
            None => None,
        };
        let mut additional = Vec::new();
        for path in &settings.additional_recipients {
            let cert = public_certificate_from_file(path, "", "a password").map_err(|detail| {
                FilesSetup::RecipientFile {
                    origin: "EncryptionCertificate:AdditionalRecipients",
                    detail,
                }
            })?;
            additional.push(cert);
        }
        let mut vault = Vault::with(own, additional, settings.encrypt_files)?;
        vault.temp_folder = settings.temp_folder.clone();
        Ok(vault)
    }

    /// Encrypts for `own`'s certificate (if any) and `additional`; reads with `own`'s key.
    pub fn with(
        own: Option<Pfx>,
        additional: Vec<Certificate>,
        encrypt: bool,
    ) -> Result<Self, VaultError> {
        let mut certificates: Vec<Certificate> =
            own.iter().map(|p| p.certificate.clone()).collect();
        certificates.extend(additional);
        let recipients = certificates
            .iter()
            .map(|c| {
                Recipient::from_certificate(c).map_err(|source| FilesSetup::Recipient {
                    subject: c.subject().to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let keys = match &own {
            Some(pfx) => {
                vec![DecryptionKey::from_pfx(pfx).map_err(FilesSetup::DecryptionKey)?]
            }
            None => Vec::new(),
        };
        Ok(Vault {
            certificates,
            recipients,
            own,
            keys,
            encrypt,
            temp_folder: std::env::temp_dir(),
        })
    }

    /// True when files are written encrypted.
    pub fn encrypts(&self) -> bool {
        self.encrypt && !self.recipients.is_empty()
    }

    /// The certificates new files are encrypted for.
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// The private keys at hand for reading.
    pub fn keys(&self) -> &[DecryptionKey] {
        &self.keys
    }

    /// The agent's own PFX (certificate and private key), for CMS files.
    pub fn own(&self) -> Option<&Pfx> {
        self.own.as_ref()
    }

    /// Starts writing `path`: encrypted when the vault encrypts, visible only after
    /// [`VaultWriter::commit`].
    pub fn create(&self, path: &Path, overwrite: bool) -> Result<VaultWriter, VaultError> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_folder(folder)?;
        }
        let file = AtomicFile::create(path, overwrite)
            .map_err(|e| VaultError::io(path, "cannot create the file", e))?;
        let inner = if self.encrypts() {
            Inner::Encrypted(
                Encryptor::new(file, &self.recipients).map_err(|e| VaultError::format(path, e))?,
            )
        } else {
            Inner::Plain(file)
        };
        Ok(VaultWriter {
            path: path.to_path_buf(),
            inner,
        })
    }

    /// A temporary file `name` in the agent's temp folder (`TempFolderPath`), written as [`create`].
    ///
    /// [`create`]: Vault::create
    pub fn create_temp(&self, name: &str) -> Result<VaultWriter, VaultError> {
        self.create(&self.temp_folder.join(name), true)
    }

    /// Opens a file the agent wrote, decrypting it if it is encrypted; the flag says whether it was.
    /// Chunks are authenticated as they are read: a damaged file fails the read with the reason.
    pub fn open(&self, path: &Path) -> Result<(Box<dyn Read + Send>, bool), VaultError> {
        let mut file =
            File::open(path).map_err(|e| VaultError::io(path, "cannot open the file", e))?;
        let mut magic = [0u8; 6];
        let n = read_up_to(&mut file, &mut magic)
            .map_err(|e| VaultError::io(path, "cannot read the file", e))?;
        let prefix = std::io::Cursor::new(magic[..n].to_vec());
        let reader = prefix.chain(file);
        if &magic[..n] != MAGIC {
            return Ok((Box::new(reader), false));
        }
        if self.keys.is_empty() {
            return Err(FilesSetup::NoKeyForFile {
                file: path.to_path_buf(),
            }
            .into());
        }
        let decryptor =
            Decryptor::new(reader, &self.keys).map_err(|e| VaultError::format(path, e))?;
        Ok((Box::new(decryptor), true))
    }
}

impl Vault {
    /// For an encrypted file, its plaintext size and header checksum, read from the header and the
    /// chunk framing without decrypting the content (`None` for a plain file). The header is opened
    /// with the agent's key first: a file for another key, or a damaged header, fails here. The chunks
    /// are not authenticated: a file damaged further in fails when it is read through [`Vault::open`].
    pub fn layout(&self, path: &Path) -> Result<Option<Layout>, VaultError> {
        let (reader, encrypted) = self.open(path)?;
        drop(reader);
        if !encrypted {
            return Ok(None);
        }
        let file = File::open(path).map_err(|e| VaultError::io(path, "cannot open the file", e))?;
        layout(std::io::BufReader::with_capacity(64, file))
            .map(Some)
            .map_err(|e| VaultError::format(path, e))
    }
}

/// A file being written through the vault.
#[derive(Debug)]
pub struct VaultWriter {
    path: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Plain(AtomicFile),
    Encrypted(Encryptor<AtomicFile>),
}

impl VaultWriter {
    /// Finishes the file (final chunk), fsyncs it and renames it into place.
    pub fn commit(self) -> Result<(), VaultError> {
        let file = match self.inner {
            Inner::Plain(file) => file,
            Inner::Encrypted(enc) => enc
                .finish()
                .map_err(|e| VaultError::format(&self.path, e))?,
        };
        file.commit()
            .map_err(|e| VaultError::io(&self.path, "cannot save the file", e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for VaultWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(f) => f.write(buf),
            Inner::Encrypted(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Inner::Plain(f) => f.flush(),
            Inner::Encrypted(e) => e.flush(),
        }
    }
}

/// Creates `folder` (and parents) readable by the agent's user only.
pub fn create_private_folder(folder: &Path) -> Result<(), VaultError> {
    ids_seal::atomic::create_private_folder(folder)
        .map_err(|e| VaultError::io(folder, "cannot create the folder", e))
}
