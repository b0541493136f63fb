//! `AccessControl:AuthorizedClientsPath`: client public keys, one per file, as sqlite_rx keeps them in
//! `~/.curve/authorized_clients` and Gorgone in `authorized_clients`.
//!
//! - `<folder>/<client id>.<ext>`: one key for the client (the name up to the last dot);
//! - `<folder>/<client id>/<any name>`: several keys for one client (rotation).
//!
//! A file holds a PEM or DER certificate, a PEM public key (SPKI or PKCS#1), or a JWK. Private keys are
//! refused (copy only the public half to the server). The folder is reloaded when it changes, so adding
//! a file authorises a key without a restart; a file that cannot be used is reported and skipped, the
//! other keys stay in force.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ids_crypto::keyfile::{self, KeyFileKind};
use ids_crypto::{Certificate, PublicKey};

/// One authorised key.
#[derive(Clone, Debug)]
pub struct AuthorizedKey {
    pub public_key: PublicKey,
    /// RFC 7638 thumbprint of the key.
    pub thumbprint: String,
    /// The certificate, when the file held one (its `x5t#S256` and SHA-1 also identify it).
    pub certificate: Option<Certificate>,
    /// The file it came from.
    pub file: PathBuf,
}

impl AuthorizedKey {
    /// Whether `thumbprint` (canonical form, see [`crate::access_control::canonical_thumbprint`]) names
    /// this key or its certificate.
    pub fn answers_to(&self, thumbprint: &str) -> bool {
        self.thumbprint == thumbprint
            || self
                .certificate
                .as_ref()
                .is_some_and(|c| c.x5t_s256() == thumbprint || c.sha1_hex() == thumbprint)
    }
}

/// The keys of the folder, by client id.
#[derive(Clone, Debug, Default)]
pub struct AuthorizedKeys {
    pub by_client: HashMap<String, Vec<AuthorizedKey>>,
}

impl AuthorizedKeys {
    /// The keys registered for `client_id` (none when the folder has none).
    pub fn of(&self, client_id: &str) -> &[AuthorizedKey] {
        self.by_client.get(client_id).map_or(&[], Vec::as_slice)
    }

    /// Reads the folder. Returns the keys and the problems (each names its file); a missing folder is
    /// one problem and no keys.
    pub fn load(folder: &Path) -> (AuthorizedKeys, Vec<String>) {
        let mut problems = Vec::new();
        let mut keys = AuthorizedKeys::default();
        let files = match list(folder) {
            Ok(files) => files,
            Err(e) => {
                problems.push(format!(
                    "{}: cannot read the authorized-clients folder (AccessControl:AuthorizedClientsPath): {e}",
                    folder.display()
                ));
                return (keys, problems);
            }
        };
        for (client_id, path) in files {
            match keyfile::read_public(&path, None) {
                Ok(found) if matches!(found.kind, KeyFileKind::PrivateKey | KeyFileKind::Pfx) => {
                    problems.push(format!(
                        "{}: holds a PRIVATE key; the server needs only the public key or certificate (ids-keytool writes it as <name>.pub / <name>.crt); file ignored",
                        path.display()
                    ));
                }
                Ok(found) => {
                    let thumbprint = found.jwk_thumbprint();
                    keys.by_client
                        .entry(client_id)
                        .or_default()
                        .push(AuthorizedKey {
                            public_key: found.public_key,
                            thumbprint,
                            certificate: found.certificate,
                            file: path,
                        });
                }
                Err(e) => problems.push(format!("{e}; file ignored")),
            }
        }
        (keys, problems)
    }
}

/// The files of the folder with the client id each belongs to, sorted. Hidden files are skipped.
fn list(folder: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?;
                let inner_name = inner.file_name();
                if inner.file_type()?.is_file() && !inner_name.to_string_lossy().starts_with('.') {
                    out.push((name.clone(), inner.path()));
                }
            }
        } else {
            let client_id = match name.rsplit_once('.') {
                Some((stem, _)) if !stem.is_empty() => stem.to_string(),
                _ => name,
            };
            out.push((client_id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// What identifies the folder's state: each file's path, size and modification time.
type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn snapshot(folder: &Path) -> Option<Snapshot> {
    let files = list(folder).ok()?;
    Some(
        files
            .into_iter()
            .map(|(_, path)| {
                let meta = std::fs::metadata(&path).ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                let modified = meta.and_then(|m| m.modified().ok());
                (path, size, modified)
            })
            .collect(),
    )
}

/// The keys in force, replaced as a whole when the folder changes.
#[derive(Debug)]
pub struct LiveKeys {
    folder: PathBuf,
    current: RwLock<Arc<AuthorizedKeys>>,
    seen: RwLock<Option<Snapshot>>,
}

impl LiveKeys {
    /// Loads the folder; the problems are returned for the log.
    pub fn open(folder: PathBuf) -> (LiveKeys, Vec<String>) {
        let seen = snapshot(&folder);
        let (keys, problems) = AuthorizedKeys::load(&folder);
        (
            LiveKeys {
                folder,
                current: RwLock::new(Arc::new(keys)),
                seen: RwLock::new(seen),
            },
            problems,
        )
    }

    /// No folder configured: no keys.
    pub fn empty() -> LiveKeys {
        LiveKeys {
            folder: PathBuf::new(),
            current: RwLock::new(Arc::new(AuthorizedKeys::default())),
            seen: RwLock::new(None),
        }
    }

    pub fn folder(&self) -> Option<&Path> {
        (!self.folder.as_os_str().is_empty()).then_some(self.folder.as_path())
    }

    pub fn current(&self) -> Arc<AuthorizedKeys> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when the folder changed (or when `force`). Returns `None` when nothing changed, else the
    /// number of keys and the problems. Blocking I/O: call it from a blocking thread.
    pub fn reload(&self, force: bool) -> Option<(usize, Vec<String>)> {
        let folder = self.folder()?;
        let now = snapshot(folder);
        let unchanged = self.seen.read().map(|seen| *seen == now).unwrap_or(false);
        if unchanged && !force {
            return None;
        }
        if let Ok(mut seen) = self.seen.write() {
            *seen = now;
        }
        let (keys, problems) = AuthorizedKeys::load(folder);
        let count = keys.by_client.values().map(Vec::len).sum();
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(keys);
        }
        Some((count, problems))
    }
}
