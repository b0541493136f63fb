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
//!
//! A failed read never removes a key: when the folder, a sub-folder or a listed file cannot be read (an
//! I/O error, such as no file handle left), the error is reported and the keys loaded from it before
//! stay in force until it can be read again; only a file that is no longer listed loses its key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ids_pki::keyfile::{self, KeyFileKind};
use ids_pki::{Certificate, PublicKey};

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

    /// Reads the folder. Returns the keys and the problems (each names its file); a folder that cannot
    /// be read is one problem and no keys.
    pub fn load(folder: &Path) -> (AuthorizedKeys, Vec<String>) {
        let read = FolderRead::read(folder);
        let problems = read.all_problems();
        (read.keys, problems)
    }
}

/// A listed file or sub-folder that could not be read (an I/O error, e.g. no file handle left): the
/// keys loaded from it before stay in force.
#[derive(Debug)]
struct Unreadable {
    path: PathBuf,
    /// `<path>: cannot read ...: <OS error>`.
    message: String,
}

/// One reading of the folder.
#[derive(Debug, Default)]
struct FolderRead {
    keys: AuthorizedKeys,
    /// Files that were read but hold no usable key, and names that are not key files.
    problems: Vec<String>,
    /// Listed entries that could not be read.
    unreadable: Vec<Unreadable>,
    /// The folder itself could not be read: nothing else was.
    folder_error: Option<String>,
    /// The folder's state, when it could be listed.
    snapshot: Option<Snapshot>,
}

impl FolderRead {
    fn read(folder: &Path) -> FolderRead {
        let mut read = FolderRead::default();
        let listing = match list(folder) {
            Ok(listing) => listing,
            Err(e) => {
                read.folder_error = Some(format!(
                    "{}: cannot read the authorized-clients folder (AccessControl:AuthorizedClientsPath): {e}",
                    folder.display()
                ));
                return read;
            }
        };
        for path in &listing.ignored {
            read.problems.push(format!(
                "{}: ignored: a key file name ends with one of .{} (the name before it is the client id)",
                path.display(),
                KEY_EXTENSIONS.join(", .")
            ));
        }
        read.snapshot = Some(snapshot_of(&listing));
        read.unreadable = listing
            .unreadable
            .into_iter()
            .map(|(path, e)| Unreadable {
                message: format!("{}: cannot read: {e}", path.display()),
                path,
            })
            .collect();
        for (client_id, path) in listing.files {
            match keyfile::read_public(&path, None) {
                Ok(found) if matches!(found.kind, KeyFileKind::PrivateKey | KeyFileKind::Pfx) => {
                    read.problems.push(format!(
                        "{}: holds a PRIVATE key; the server needs only the public key or certificate (ids-keytool writes it as <name>.pub / <name>.crt); file ignored",
                        path.display()
                    ));
                }
                Ok(found) => {
                    let thumbprint = found.jwk_thumbprint();
                    read.keys
                        .by_client
                        .entry(client_id)
                        .or_default()
                        .push(AuthorizedKey {
                            public_key: found.public_key,
                            thumbprint,
                            certificate: found.certificate,
                            file: path,
                        });
                }
                // Listed but not readable (no file handle left, removed since the listing, a
                // dangling link): not a verdict on the key.
                Err(e @ keyfile::KeyFileError::Io { .. }) => read.unreadable.push(Unreadable {
                    message: e.to_string(),
                    path,
                }),
                Err(e) => read.problems.push(format!("{e}; file ignored")),
            }
        }
        read
    }

    /// Every problem of this reading, for the log: the folder's, the unreadable entries', the files'.
    fn all_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.folder_error.iter().cloned().collect();
        problems.extend(self.unreadable.iter().map(|u| u.message.clone()));
        problems.extend(self.problems.iter().cloned());
        problems
    }

    /// Whether an I/O error kept part of the folder from being read.
    fn incomplete(&self) -> bool {
        self.folder_error.is_some() || !self.unreadable.is_empty()
    }

    /// The keys to put in force after this reading, with `previous` in force before it: what was read,
    /// plus the previous keys of every entry that could not be read (all of them when the folder could
    /// not be read). A file no longer listed loses its key. Returns the keys and how many were kept
    /// from `previous`.
    fn merged_with(mut self, previous: &AuthorizedKeys) -> (AuthorizedKeys, usize, Vec<String>) {
        if self.folder_error.is_some() {
            let kept = previous.by_client.values().map(Vec::len).sum();
            let messages = self.folder_error.into_iter().collect();
            return (previous.clone(), kept, messages);
        }
        let read_now: std::collections::HashSet<PathBuf> = self
            .keys
            .by_client
            .values()
            .flatten()
            .map(|k| k.file.clone())
            .collect();
        let mut kept = 0;
        for (client_id, keys) in &previous.by_client {
            for key in keys {
                if !read_now.contains(&key.file)
                    && self
                        .unreadable
                        .iter()
                        .any(|u| key.file == u.path || key.file.starts_with(&u.path))
                {
                    self.keys
                        .by_client
                        .entry(client_id.clone())
                        .or_default()
                        .push(key.clone());
                    kept += 1;
                }
            }
        }
        let messages = self
            .unreadable
            .into_iter()
            .map(|u| {
                let from_before = previous
                    .by_client
                    .values()
                    .flatten()
                    .filter(|k| k.file == u.path || k.file.starts_with(&u.path))
                    .count();
                if from_before == 0 {
                    format!("{}; no key from it until it can be read", u.message)
                } else {
                    format!(
                        "{}; its {from_before} key(s) in force are kept until it can be read",
                        u.message
                    )
                }
            })
            .collect();
        (self.keys, kept, messages)
    }
}

/// The extensions of key files.
pub const KEY_EXTENSIONS: &[&str] = &["pem", "crt", "cer", "der", "pub", "jwk", "json"];

fn is_key_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| KEY_EXTENSIONS.iter().any(|k| k.eq_ignore_ascii_case(e)))
}

/// What the folder lists.
#[derive(Debug, Default)]
struct Listing {
    /// The key files with the client id each belongs to, sorted.
    files: Vec<(String, PathBuf)>,
    /// Other files (ignored), sorted.
    ignored: Vec<PathBuf>,
    /// Entries whose type could not be read, and sub-folders that could not be listed.
    unreadable: Vec<(PathBuf, std::io::Error)>,
}

/// Lists the folder. Hidden files are skipped; symbolic links are followed. Only a failure to list the
/// folder itself is an error: an entry that cannot be read is listed as unreadable.
fn list(folder: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    let visible = |name: &std::ffi::OsStr| !name.to_string_lossy().starts_with('.');
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let path = entry.path();
        if !visible(&entry.file_name()) {
            continue;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                listing.unreadable.push((path, e));
                continue;
            }
        };
        if meta.is_dir() {
            let Some(client_id) = entry.file_name().to_str().map(str::to_string) else {
                listing.ignored.push(path);
                continue;
            };
            if let Err(e) = list_client_folder(&path, &client_id, &mut listing) {
                listing.unreadable.push((path, e));
            }
        } else if meta.is_file() {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string);
            match stem {
                Some(client_id) if is_key_file(&path) && !client_id.is_empty() => {
                    listing.files.push((client_id, path));
                }
                _ => listing.ignored.push(path),
            }
        }
    }
    listing.files.sort();
    listing.ignored.sort();
    Ok(listing)
}

/// `<folder>/<client id>/`: several keys of one client.
fn list_client_folder(dir: &Path, client_id: &str, listing: &mut Listing) -> std::io::Result<()> {
    for inner in std::fs::read_dir(dir)? {
        let inner = inner?;
        let path = inner.path();
        if inner.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match std::fs::metadata(&path) {
            Err(e) => listing.unreadable.push((path, e)),
            Ok(meta) if !meta.is_file() => {}
            Ok(_) if is_key_file(&path) => listing.files.push((client_id.to_string(), path)),
            Ok(_) => listing.ignored.push(path),
        }
    }
    Ok(())
}

/// What identifies the folder's state: each file's path, size and modification time.
type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The folder's state without reading the files: `None` when it cannot be listed.
fn snapshot(folder: &Path) -> Option<Snapshot> {
    list(folder).ok().map(|listing| snapshot_of(&listing))
}

/// The state of what `listing` lists: each key file's size and modification time, and the entries
/// that could not be read (so that their becoming readable is a change).
fn snapshot_of(listing: &Listing) -> Snapshot {
    let mut snapshot: Snapshot = listing
        .unreadable
        .iter()
        .map(|(path, _)| (path.clone(), 0, None))
        .collect();
    snapshot.extend(listing.files.iter().map(|(_, path)| {
        let meta = std::fs::metadata(path).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta.and_then(|m| m.modified().ok());
        (path.clone(), size, modified)
    }));
    snapshot.sort_by(|a, b| a.0.cmp(&b.0));
    snapshot
}

/// What a reload did.
#[derive(Debug)]
pub struct KeysReload {
    /// The keys in force now.
    pub keys: usize,
    /// Of them, how many were kept from before because their file (or the folder) could not be read.
    pub kept: usize,
    /// I/O errors (each names its path and the OS error, and what was kept).
    pub errors: Vec<String>,
    /// The folder itself could not be read: the keys in force are all the previous ones.
    pub folder_unreadable: bool,
    /// Files that hold no usable key, and names that are not key files.
    pub problems: Vec<String>,
}

/// The keys in force, replaced as a whole when the folder changes. A failed read never removes a key:
/// the keys of a file (or of the whole folder) that cannot be read stay in force until it can be.
#[derive(Debug)]
pub struct LiveKeys {
    folder: PathBuf,
    current: RwLock<Arc<AuthorizedKeys>>,
    seen: RwLock<Seen>,
}

/// The folder's state when it was last read, and whether that read was complete: after an I/O error
/// the next check reads the folder again, changed or not (and reports the error again).
#[derive(Debug, Default)]
struct Seen {
    snapshot: Option<Snapshot>,
    complete: bool,
}

impl LiveKeys {
    /// Loads the folder; the problems are returned for the log.
    pub fn open(folder: PathBuf) -> (LiveKeys, Vec<String>) {
        let read = FolderRead::read(&folder);
        let seen = Seen {
            snapshot: read.snapshot.clone(),
            complete: !read.incomplete(),
        };
        let problems = read.all_problems();
        (
            LiveKeys {
                folder,
                current: RwLock::new(Arc::new(read.keys)),
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
            seen: RwLock::new(Seen::default()),
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

    /// Reloads when the folder changed (or when `force`). Returns `None` when nothing changed. Blocking
    /// I/O: call it from a blocking thread.
    pub fn reload(&self, force: bool) -> Option<KeysReload> {
        let folder = self.folder()?;
        let now = snapshot(folder);
        let unchanged = self
            .seen
            .read()
            .map(|seen| seen.complete && seen.snapshot == now)
            .unwrap_or(false);
        if unchanged && !force {
            return None;
        }
        let mut read = FolderRead::read(folder);
        let folder_unreadable = read.folder_error.is_some();
        let seen = Seen {
            snapshot: read.snapshot.clone(),
            complete: !read.incomplete(),
        };
        let problems = std::mem::take(&mut read.problems);
        let previous = self.current();
        let (keys, kept, errors) = read.merged_with(&previous);
        let count = keys.by_client.values().map(Vec::len).sum();
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(keys);
        }
        if let Ok(mut s) = self.seen.write() {
            *s = seen;
        }
        Some(KeysReload {
            keys: count,
            kept,
            errors,
            folder_unreadable,
            problems,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ids_devpki::{Ca, KeyKind};

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod reload_tests {
    use super::*;
    use ids_devpki::{Ca, KeyKind};
    use std::os::unix::fs::symlink;

    fn pem(ca: &Ca, cn: &str) -> String {
        ca.issue_client(cn, KeyKind::EcP256, 1).unwrap().cert_pem
    }

    fn files_of(live: &LiveKeys, client: &str) -> Vec<PathBuf> {
        live.current()
            .of(client)
            .iter()
            .map(|k| k.file.clone())
            .collect()
    }

    /// A listed file that cannot be read (a dangling link; tests run as root, so permissions would not
    /// stop them) keeps its key; the error names the file and the OS error. Once readable it is read
    /// again without a change of its own; once gone (not listed) its key goes.
    #[test]
    fn an_unreadable_key_file_keeps_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test", 1).unwrap();
        let poller = dir.path().join("Poller2.pem");
        std::fs::write(&poller, pem(&ca, "Poller2")).unwrap();
        std::fs::write(dir.path().join("Other.pem"), pem(&ca, "Other")).unwrap();
        std::fs::create_dir(dir.path().join("Hot")).unwrap();
        std::fs::write(dir.path().join("Hot/a.crt"), pem(&ca, "a")).unwrap();
        std::fs::write(dir.path().join("Hot/b.crt"), pem(&ca, "b")).unwrap();
        let (live, problems) = LiveKeys::open(dir.path().to_path_buf());
        assert!(problems.is_empty(), "{problems:?}");
        let before = live.current();
        assert_eq!(before.of("Poller2").len(), 1);

        // Poller2.pem becomes a dangling link, Hot/b.crt too, Other.pem is removed.
        let kept = std::fs::read(&poller).unwrap();
        std::fs::remove_file(&poller).unwrap();
        symlink(dir.path().join("nowhere.pem"), &poller).unwrap();
        std::fs::remove_file(dir.path().join("Hot/b.crt")).unwrap();
        symlink(dir.path().join("nowhere.crt"), dir.path().join("Hot/b.crt")).unwrap();
        std::fs::remove_file(dir.path().join("Other.pem")).unwrap();
        let r = live.reload(false).expect("changed");
        assert!(!r.folder_unreadable);
        assert_eq!((r.keys, r.kept), (3, 2), "{r:?}");
        let errors = r.errors.join("\n");
        assert!(
            errors.contains(&format!("{}: cannot read", poller.display()))
                && errors.contains("os error 2")
                && errors.contains("Hot/b.crt")
                && errors.contains("kept"),
            "{errors}"
        );
        assert_eq!(files_of(&live, "Poller2"), vec![poller.clone()]);
        assert_eq!(live.current().of("Hot").len(), 2);
        assert!(
            live.current().of("Other").is_empty(),
            "a removed file loses its key"
        );
        // The same key object (not a re-read): the thumbprint is the one loaded before.
        assert_eq!(
            live.current().of("Poller2")[0].thumbprint,
            before.of("Poller2")[0].thumbprint
        );

        // The next check reads the folder again although nothing changed (the last read failed).
        let again = live.reload(false).expect("read again after an I/O error");
        assert_eq!(again.keys, 3);
        // Fixed: read normally; then unchanged.
        std::fs::remove_file(&poller).unwrap();
        std::fs::write(&poller, kept).unwrap();
        let fixed = live.reload(false).expect("read again");
        assert!(fixed.errors.is_empty() || fixed.errors.iter().all(|e| e.contains("b.crt")));
        // Gone for good: not listed any more, so its key goes.
        std::fs::remove_file(&poller).unwrap();
        std::fs::remove_file(dir.path().join("Hot/b.crt")).unwrap();
        let gone = live.reload(false).expect("changed");
        assert!(gone.errors.is_empty(), "{:?}", gone.errors);
        assert!(live.current().of("Poller2").is_empty());
        assert_eq!(live.current().of("Hot").len(), 1);
        assert!(live.reload(false).is_none(), "read completely: unchanged");
    }

    /// A sub-folder that cannot be listed (a link loop) keeps its client's keys; a folder that cannot
    /// be read at all keeps every key; a file that does not parse is reported and loses its key.
    #[test]
    fn an_unreadable_folder_keeps_its_keys() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("authorized");
        std::fs::create_dir(&dir).unwrap();
        let ca = Ca::new("test", 1).unwrap();
        std::fs::write(dir.join("Poller2.pem"), pem(&ca, "Poller2")).unwrap();
        std::fs::write(dir.join("Bad.pem"), pem(&ca, "Bad")).unwrap();
        std::fs::create_dir(dir.join("Hot")).unwrap();
        std::fs::write(dir.join("Hot/a.crt"), pem(&ca, "a")).unwrap();
        let (live, _) = LiveKeys::open(dir.clone());
        assert_eq!(live.current().by_client.len(), 3);

        std::fs::rename(dir.join("Hot"), root.path().join("Hot.moved")).unwrap();
        symlink(dir.join("Hot"), dir.join("Hot")).unwrap();
        std::fs::write(dir.join("Bad.pem"), "not a key any more").unwrap();
        let r = live.reload(true).expect("forced");
        assert_eq!((r.keys, r.kept), (2, 1), "{r:?}");
        assert!(
            r.errors
                .iter()
                .any(|e| e.contains("Hot") && e.contains("os error 40")),
            "{:?}",
            r.errors
        );
        assert!(r.problems.iter().any(|p| p.contains("Bad.pem")), "{r:?}");
        assert!(live.current().of("Bad").is_empty());
        assert_eq!(live.current().of("Hot").len(), 1);

        // The folder itself unreadable (here: not a folder any more): every key stays.
        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        std::fs::write(&dir, "a file").unwrap();
        let r = live.reload(false).expect("changed");
        assert!(r.folder_unreadable);
        assert_eq!((r.keys, r.kept), (2, 2), "{r:?}");
        assert!(
            r.errors[0].contains(&dir.display().to_string()) && r.errors[0].contains("os error 20"),
            "{:?}",
            r.errors
        );
        assert_eq!(live.current().of("Poller2").len(), 1);
        let again = live
            .reload(false)
            .expect("still unreadable: read and reported again");
        assert!(again.folder_unreadable && again.keys == 2, "{again:?}");
    }
}
