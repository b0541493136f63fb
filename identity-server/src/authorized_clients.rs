//! `AccessControl:AuthorizedClientsPath`: client public keys, one per file, as sqlite_rx keeps them in
//! `~/.curve/authorized_clients` and Gorgone in `authorized_clients`.
//!
//! - `<folder>/<client id>.<ext>`: one key for the client (the name up to the last dot);
//! - `<folder>/<client id>/<name>.<ext>`: several keys for one client (rotation).
//!
//! `<ext>` is one of [`KEY_EXTENSIONS`]; other files (`Poller2.pem.old`, `Poller2.revoked`, editor
//! backups) are reported and ignored, so renaming a file revokes its key.
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
            Ok((files, ignored)) => {
                for path in ignored {
                    problems.push(format!(
                        "{}: ignored: a key file name ends with one of .{} (the name before it is the client id)",
                        path.display(),
                        KEY_EXTENSIONS.join(", .")
                    ));
                }
                files
            }
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

/// The extensions of key files.
pub const KEY_EXTENSIONS: &[&str] = &["pem", "crt", "cer", "der", "pub", "jwk", "json"];

fn is_key_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| KEY_EXTENSIONS.iter().any(|k| k.eq_ignore_ascii_case(e)))
}

/// Files found in the folder: the key files with the client id each belongs to (sorted), and the
/// other files (ignored). Hidden files are skipped; symbolic links are followed.
type Listing = (Vec<(String, PathBuf)>, Vec<PathBuf>);

fn list(folder: &Path) -> std::io::Result<Listing> {
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    let visible = |name: &std::ffi::OsStr| !name.to_string_lossy().starts_with('.');
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        if !visible(&entry.file_name()) {
            continue;
        }
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            let Some(client_id) = entry.file_name().to_str().map(str::to_string) else {
                ignored.push(path);
                continue;
            };
            for inner in std::fs::read_dir(&path)? {
                let inner = inner?;
                let inner_path = inner.path();
                if !visible(&inner.file_name()) || !std::fs::metadata(&inner_path)?.is_file() {
                    continue;
                }
                if is_key_file(&inner_path) {
                    out.push((client_id.clone(), inner_path));
                } else {
                    ignored.push(inner_path);
                }
            }
        } else if meta.is_file() {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string);
            match stem {
                Some(client_id) if is_key_file(&path) && !client_id.is_empty() => {
                    out.push((client_id, path));
                }
                _ => ignored.push(path),
            }
        }
    }
    out.sort();
    ignored.sort();
    Ok((out, ignored))
}

/// What identifies the folder's state: each file's path, size and modification time.
type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn snapshot(folder: &Path) -> Option<Snapshot> {
    let (files, _) = list(folder).ok()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_crypto::devcerts::{Ca, KeyKind};

    #[test]
    fn key_files_by_client_and_renamed_files_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test", 1).unwrap();
        let pem = |cn: &str| ca.issue_client(cn, KeyKind::EcP256, 1).unwrap().cert_pem;
        std::fs::write(dir.path().join("Poller2.pem"), pem("Poller2")).unwrap();
        std::fs::write(dir.path().join("Poller2.pem.old"), pem("old")).unwrap();
        std::fs::write(dir.path().join(".hidden.pem"), pem("hidden")).unwrap();
        std::fs::create_dir(dir.path().join("Hot")).unwrap();
        std::fs::write(dir.path().join("Hot/a.crt"), pem("a")).unwrap();
        std::fs::write(dir.path().join("Hot/b.crt"), pem("b")).unwrap();
        std::fs::write(dir.path().join("Hot/notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join("Bad.pem"), "not a key").unwrap();
        let (keys, problems) = AuthorizedKeys::load(dir.path());
        assert_eq!(keys.of("Poller2").len(), 1);
        assert_eq!(keys.of("Hot").len(), 2);
        assert!(keys.of("Poller2.pem").is_empty() && keys.of("Bad").is_empty());
        let text = problems.join("\n");
        assert!(text.contains("Poller2.pem.old: ignored"), "{text}");
        assert!(text.contains("notes.txt: ignored"), "{text}");
        assert!(text.contains("Bad.pem"), "{text}");
        assert_eq!(problems.len(), 3, "{text}");
        let key = &keys.of("Poller2")[0];
        assert!(key.answers_to(&key.thumbprint));
        let cert = key.certificate.as_ref().unwrap();
        assert!(key.answers_to(&cert.x5t_s256()) && key.answers_to(&cert.sha1_hex()));
    }
}
