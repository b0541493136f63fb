//! The embedded store of managed keys: one JSON file per key in `<Deliveries:DataFolder>/signing-keys/`
//! (folder 0700, files 0600, written atomically), the private key sealed for the
//! `EncryptionCertificate` (IDSENC, base64). One server uses a data folder; its refreshes take turns
//! on a lock.
//!
//! File: `{"kid", "alg", "created", "activates", "certificate" (base64 DER), "sealed" (base64)}`,
//! named `<kid>.json`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ids_pki::{Algorithm, b64};
use serde::{Deserialize, Serialize};

use super::{Decide, KeyStore, KeyStoreError, StoreFuture, StoredKey};

/// The folder's name in the data folder.
pub const FOLDER: &str = "signing-keys";

#[derive(Debug)]
pub struct FolderKeyStore {
    folder: PathBuf,
    /// Refreshes take turns: one decides and writes at a time.
    lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    alg: String,
    created: i64,
    activates: i64,
    certificate: String,
    sealed: String,
}

impl FolderKeyStore {
    pub fn new(folder: PathBuf) -> FolderKeyStore {
        FolderKeyStore {
            folder,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> KeyStoreError {
        KeyStoreError::Store(format!("{}: {what}: {e}", self.folder.display()))
    }

    fn read_all(&self) -> Result<Vec<StoredKey>, KeyStoreError> {
        let entries = match std::fs::read_dir(&self.folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.failed("cannot read the folder", e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| self.failed("cannot read the folder", e))?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // One unreadable file does not stop the others (the signing key may be fine).
            match read_key(&path) {
                Ok(key) => keys.push(key),
                Err(e) => tracing::error!("{e}; the file is skipped"),
            }
        }
        keys.sort_by(|a, b| {
            (a.activates, a.created, &a.kid).cmp(&(b.activates, b.created, &b.kid))
        });
        Ok(keys)
    }

    fn write(&self, key: &StoredKey) -> Result<(), KeyStoreError> {
        ids_seal::atomic::create_private_folder(&self.folder)
            .map_err(|e| self.failed("cannot create the folder", e))?;
        let file = KeyFile {
            kid: key.kid.clone(),
            alg: key.algorithm.as_str().to_string(),
            created: key.created,
            activates: key.activates,
            certificate: b64::std(&key.certificate),
            sealed: b64::std(&key.sealed),
        };
        let json =
            serde_json::to_vec_pretty(&file).map_err(|e| self.failed("cannot encode a key", e))?;
        let path = self.folder.join(format!("{}.json", key.kid));
        let mut out = ids_seal::atomic::AtomicFile::create(&path, false)
            .map_err(|e| self.failed("cannot write a key", e))?;
        out.file()
            .write_all(&json)
            .map_err(|e| self.failed("cannot write a key", e))?;
        out.commit()
            .map_err(|e| self.failed("cannot write a key", e))
    }
}

fn read_key(path: &Path) -> Result<StoredKey, KeyStoreError> {
    let bad = |reason: String| KeyStoreError::Store(format!("{}: {reason}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let file: KeyFile =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a managed key file: {e}")))?;
    let algorithm = Algorithm::from_name(&file.alg)
        .ok_or_else(|| bad(format!("unknown algorithm `{}`", file.alg)))?;
    let decode = |field: &str, value: &str| {
        b64::std_decode(value).ok_or_else(|| bad(format!("\"{field}\" is not base64")))
    };
    Ok(StoredKey {
        certificate: decode("certificate", &file.certificate)?,
        sealed: decode("sealed", &file.sealed)?,
        kid: file.kid,
        algorithm,
        created: file.created,
        activates: file.activates,
    })
}

impl KeyStore for FolderKeyStore {
    fn load(&self) -> StoreFuture<'_, Vec<StoredKey>> {
        Box::pin(async move {
            let _turn = self.lock.lock().await;
            self.read_all()
        })
    }

    fn add_if<'a>(&'a self, decide: Decide<'a>) -> StoreFuture<'a, Vec<StoredKey>> {
        Box::pin(async move {
            let _turn = self.lock.lock().await;
            let keys = self.read_all()?;
            if let Some(key) = decide(&keys)? {
                self.write(&key)?;
                return self.read_all();
            }
            Ok(keys)
        })
    }

    fn delete<'a>(&'a self, kids: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _turn = self.lock.lock().await;
            for kid in kids {
                let path = self.folder.join(format!("{kid}.json"));
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(%kid, "managed signing key deleted: its retention ended")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.failed("cannot delete a key", e)),
                }
            }
            Ok(())
        })
    }

    fn describe(&self) -> String {
        self.folder.display().to_string()
    }
}
