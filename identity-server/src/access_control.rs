//! The access-control XML folder -> the clients the token endpoint knows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::digest;
use ids_crypto::SecretHash;
use ids_xml::{AccessControl, XmlError};

/// A client allowed to ask for tokens.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    pub identifier: String,
    pub hash: SecretHash,
    /// SHA-256 of the `HashedSecret` text: cached verifications are only valid for this value.
    pub hash_fingerprint: [u8; 32],
    pub profile: Option<String>,
    pub display_name: Option<String>,
    /// Unix seconds after which the client is refused.
    pub expires_at: Option<i64>,
}

/// The clients, profiles and agents read from the XML folder.
#[derive(Clone, Debug, Default)]
pub struct Clients {
    pub by_id: HashMap<String, RegisteredClient>,
    pub model: AccessControl,
    pub files: Vec<PathBuf>,
    /// The folder's state just before it was read: a change after this point triggers a reload.
    pub snapshot: Option<Snapshot>,
}

/// Problems found in the XML folder (every one of them).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct AccessControlErrors(pub Vec<String>);

impl Clients {
    /// Reads every `*.xml` under `folder` (sub-folders included, sorted by path).
    pub fn load(folder: &Path) -> Result<(Clients, Vec<String>), AccessControlErrors> {
        // One walk of the folder: the snapshot (taken before reading, so a change made while reading
        // triggers the next reload) also lists the files, sorted.
        let before = snapshot(folder).map_err(|e| {
            AccessControlErrors(vec![format!(
                "{}: cannot read the access-control folder (AccessControl:ConfigurationPath): {e}",
                folder.display()
            )])
        })?;
        let files: Vec<PathBuf> = before.iter().map(|(path, _, _)| path.clone()).collect();
        if files.is_empty() {
            return Err(AccessControlErrors(vec![format!(
                "{}: no *.xml file found; the OpenIdClient entries are read from there (AccessControl:ConfigurationPath)",
                folder.display()
            )]));
        }
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut documents = Vec::new();
        for file in &files {
            let name = file.display().to_string();
            match std::fs::read(file) {
                Err(e) => errors.push(format!("{name}: cannot read: {e}")),
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(e) => errors.push(format!(
                        "{name}: not UTF-8 text (byte {}); save the file as UTF-8",
                        e.utf8_error().valid_up_to()
                    )),
                    Ok(text) => match ids_xml::parse_document(&name, &text) {
                        Ok(doc) => {
                            warnings.extend(doc.warnings.iter().cloned());
                            documents.push(doc);
                        }
                        Err(e) => errors.push(e.to_string()),
                    },
                },
            }
        }
        if !errors.is_empty() {
            return Err(AccessControlErrors(errors));
        }
        // Hashes first, so that hash problems and cross-reference problems are reported together.
        let mut by_id = HashMap::new();
        for c in documents.iter().flat_map(|d| d.clients.iter()) {
            let at = format!("{}:{}:{}", c.file, c.position.line, c.position.column);
            let Some(text) = c.hashed_secret.as_deref() else {
                errors.push(format!(
                    "{at}: OpenIdClient `{}` has no HashedSecret (hash a secret with `new-openid-secret`)",
                    c.identifier
                ));
                continue;
            };
            match SecretHash::parse(text) {
                Ok(hash) => {
                    let mut fingerprint = [0u8; 32];
                    fingerprint.copy_from_slice(
                        digest::digest(&digest::SHA256, text.trim().as_bytes()).as_ref(),
                    );
                    by_id.insert(
                        c.identifier.clone(),
                        RegisteredClient {
                            identifier: c.identifier.clone(),
                            hash,
                            hash_fingerprint: fingerprint,
                            profile: c.profile.clone(),
                            display_name: c.display_names.get(&1).cloned(),
                            expires_at: c.expiration_date.map(|d| d.unix_timestamp()),
                        },
                    );
                }
                Err(e) => errors.push(format!(
                    "{at}: OpenIdClient `{}`: HashedSecret is unusable: {e}",
                    c.identifier
                )),
            }
        }
        let model = match AccessControl::build(documents) {
            Ok(model) => model,
            Err(es) => {
                errors.extend(es.iter().map(XmlError::to_string));
                AccessControl::default()
            }
        };
        if !errors.is_empty() {
            return Err(AccessControlErrors(errors));
        }
        Ok((
            Clients {
                by_id,
                model,
                files,
                snapshot: Some(before),
            },
            warnings,
        ))
    }
}

/// What identifies the state of the XML folder: each file's path, size and modification time.
pub type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The folder's current [`Snapshot`].
pub fn snapshot(folder: &Path) -> std::io::Result<Snapshot> {
    let mut files = Vec::new();
    collect_xml(folder, &mut files)?;
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path)?;
            Ok((path, meta.len(), meta.modified().ok()))
        })
        .collect()
}

/// The clients in force, replaced as a whole when the XML folder is reloaded. Requests take a cheap
/// `Arc` of the current set, so a reload never changes the clients under a request.
#[derive(Debug)]
pub struct LiveClients {
    current: RwLock<Arc<Clients>>,
    folder: PathBuf,
    seen: RwLock<Option<Snapshot>>,
}

/// What a reload did.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded {
        clients: usize,
        warnings: Vec<String>,
    },
    /// The new files are invalid: the previous clients stay in force.
    Rejected(Vec<String>),
}

impl LiveClients {
    pub fn new(clients: Clients, folder: PathBuf) -> Self {
        let seen = clients.snapshot.clone();
        LiveClients {
            current: RwLock::new(Arc::new(clients)),
            folder,
            seen: RwLock::new(seen),
        }
    }

    /// The clients in force.
    pub fn current(&self) -> Arc<Clients> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when the folder changed since the last look (or always, when `force`). Blocking I/O:
    /// call it from a blocking thread.
    pub fn reload(&self, force: bool) -> Reload {
        let now = snapshot(&self.folder).ok();
        let unchanged = self.seen.read().map(|seen| *seen == now).unwrap_or(false);
        if unchanged && !force {
            return Reload::Unchanged;
        }
        if let Ok(mut seen) = self.seen.write() {
            *seen = now;
        }
        match Clients::load(&self.folder) {
            Ok((clients, warnings)) => {
                let count = clients.by_id.len();
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(clients);
                }
                Reload::Reloaded {
                    clients: count,
                    warnings,
                }
            }
            Err(e) => Reload::Rejected(e.0),
        }
    }
}

fn collect_xml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_xml(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            out.push(path);
        }
    }
    Ok(())
}
