//! The access-control XML folder -> the clients the token endpoint knows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_lc_rs::digest;
use ids_secret::SecretHash;
use ids_xml::{AccessControl, XmlError};

/// A client allowed to ask for tokens.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    pub identifier: ids_proto::ClientId,
    /// `HashedSecret`; `None` for a client that authenticates with a key or certificate only.
    pub hash: Option<SecretHash>,
    /// SHA-256 of the `HashedSecret` text: cached verifications are only valid for this value.
    pub hash_fingerprint: [u8; 32],
    pub profile: Option<String>,
    pub display_name: Option<String>,
    /// Unix seconds after which the client is refused.
    pub expires_at: Option<i64>,
    /// `Thumbprints`: keys and certificates registered for `private_key_jwt` and
    /// `self_signed_tls_client_auth` (base64url SHA-256 values, or upper-case SHA-1 hex).
    pub thumbprints: Vec<String>,
    /// `TlsClientAuthSubjectDn`: the subject a CA-issued client certificate must have.
    pub tls_subject_dn: Option<String>,
    /// `TlsClientAuthSan`: a subject alternative name a CA-issued client certificate must have.
    pub tls_san: Option<String>,
    /// `Audiences`: what `resource` may name (RFC 8707); `None`: `IdentityServer:Audiences`.
    pub audiences: Option<Vec<String>>,
    /// `RequireDPoP`: tokens only with a DPoP proof (RFC 9449 section 5).
    pub require_dpop: bool,
}

/// How clients may be declared: whether a client without `HashedSecret` and `Thumbprints` is valid
/// (its keys come from the authorized-clients folder, or its certificate from a client CA).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientRules {
    pub keys_elsewhere: bool,
    /// Whether `tls_client_auth` can work (client CAs configured, client certificates asked for).
    pub client_cas: bool,
}

/// A registered thumbprint in canonical form ([`ids_pki::jwk::canonical_thumbprint`]): base64url
/// SHA-256 (RFC 7638 key thumbprint or certificate `x5t#S256`), or upper-case SHA-1 hex. `None` for
/// anything else, a SHA-256 in hex included (the server compares SHA-256 values in base64url).
pub fn canonical_thumbprint(text: &str) -> Option<String> {
    ids_pki::jwk::canonical_thumbprint(text).filter(|t| t.len() != 64)
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

/// One problem of the XML folder. Positions are `file:line:column`.
#[derive(Debug, thiserror::Error)]
pub enum AccessControlError {
    #[error("{}: cannot read the access-control folder (AccessControl:ConfigurationPath): {source}", .folder.display())]
    Folder {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no *.xml file found; the OpenIdClient entries are read from there (AccessControl:ConfigurationPath)", .folder.display())]
    NoXmlFile { folder: PathBuf },
    #[error("{file}: cannot read: {source}")]
    File {
        file: String,
        source: std::io::Error,
    },
    /// `valid_up_to`: the byte where the UTF-8 text stops.
    #[error("{file}: not UTF-8 text (byte {valid_up_to}); save the file as UTF-8")]
    NotUtf8 { file: String, valid_up_to: usize },
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// `value`: the first 80 characters of what `Thumbprints` lists.
    #[error(
        "{at}: OpenIdClient `{client}`: Thumbprints: `{value}` is not a thumbprint (expected the 43-character RFC 7638 key thumbprint or certificate x5t#S256 that `ids-keytool thumbprint` prints, or a 40-digit SHA-1 hex certificate thumbprint)"
    )]
    Thumbprint {
        at: String,
        client: String,
        value: String,
    },
    #[error("{at}: OpenIdClient `{client}`: Audiences: {message}")]
    Audience {
        at: String,
        client: String,
        message: String,
    },
    /// `notes`: the element's unknown-attribute warnings, which probably explain it.
    #[error("{at}: OpenIdClient `{client}`: HashedSecret is unusable: {source}{notes}")]
    HashedSecret {
        at: String,
        client: String,
        source: ids_secret::HashError,
        notes: String,
    },
    #[error(
        "{at}: OpenIdClient `{client}` has no HashedSecret and no Thumbprints: hash a secret with `new-openid-secret`, or register the client's key (Thumbprints=\"<what `ids-keytool thumbprint` prints>\", or its public key in AccessControl:AuthorizedClientsPath){notes}"
    )]
    NoCredentials {
        at: String,
        client: String,
        notes: String,
    },
}

/// Problems found in the XML folder (every one of them), one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.problems().join("\n"))]
pub struct AccessControlErrors(pub Vec<AccessControlError>);

impl AccessControlErrors {
    /// One message per problem.
    pub fn problems(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl Clients {
    /// Reads every `*.xml` under `folder` (sub-folders included, sorted by path).
    pub fn load(
        folder: &Path,
        rules: ClientRules,
    ) -> Result<(Clients, Vec<String>), AccessControlErrors> {
        Self::read(folder, rules).map_err(|(errors, _)| errors)
    }

    /// [`Clients::load`]; an error also says whether an I/O error (rather than the content) made it.
    fn read(
        folder: &Path,
        rules: ClientRules,
    ) -> Result<(Clients, Vec<String>), (AccessControlErrors, bool)> {
        // One walk of the folder: the snapshot (taken before reading, so a change made while reading
        // triggers the next reload) also lists the files, sorted.
        let before = snapshot(folder).map_err(|e| {
            let errors = AccessControlErrors(vec![AccessControlError::Folder {
                folder: folder.to_path_buf(),
                source: e,
            }]);
            (errors, true)
        })?;
        let files: Vec<PathBuf> = before.iter().map(|(path, _, _)| path.clone()).collect();
        if files.is_empty() {
            return Err((
                AccessControlErrors(vec![AccessControlError::NoXmlFile {
                    folder: folder.to_path_buf(),
                }]),
                false,
            ));
        }
        let mut io_failed = false;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut documents = Vec::new();
        for file in &files {
            let name = file.display().to_string();
            match std::fs::read(file) {
                Err(e) => {
                    io_failed = true;
                    errors.push(AccessControlError::File {
                        file: name,
                        source: e,
                    });
                }
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(e) => errors.push(AccessControlError::NotUtf8 {
                        file: name,
                        valid_up_to: e.utf8_error().valid_up_to(),
                    }),
                    Ok(text) => match ids_xml::parse_document(&name, &text) {
                        Ok(doc) => {
                            warnings.extend(doc.warnings.iter().cloned());
                            documents.push(doc);
                        }
                        Err(e) => errors.push(e.into()),
                    },
                },
            }
        }
        if !errors.is_empty() {
            return Err((AccessControlErrors(errors), io_failed));
        }
        // Hashes first, so that hash problems and cross-reference problems are reported together.
        let mut by_id = HashMap::new();
        for c in documents.iter().flat_map(|d| d.clients.iter()) {
            let at = format!("{}:{}:{}", c.file, c.position.line, c.position.column);
            let mut thumbprints = Vec::new();
            for t in &c.thumbprints {
                match canonical_thumbprint(t) {
                    Some(t) => thumbprints.push(t),
                    None => errors.push(AccessControlError::Thumbprint {
                        at: at.clone(),
                        client: c.identifier.clone(),
                        value: t.chars().take(80).collect(),
                    }),
                }
            }
            let audiences = c.audiences.as_ref().map(|list| {
                list.iter()
                    .filter_map(|a| match crate::settings::oauth::resource_uri(a) {
                        Ok(uri) => Some(uri.to_string()),
                        Err(message) => {
                            errors.push(AccessControlError::Audience {
                                at: at.clone(),
                                client: c.identifier.clone(),
                                message,
                            });
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let hash = match c.hashed_secret.as_deref() {
                None => None,
                Some(text) => match SecretHash::parse(text) {
                    Ok(hash) => Some(hash),
                    Err(e) => {
                        errors.push(AccessControlError::HashedSecret {
                            notes: typo_notes(&warnings, &at, &c.identifier),
                            at,
                            client: c.identifier.clone(),
                            source: e,
                        });
                        continue;
                    }
                },
            };
            let has_tls_mapping =
                c.tls_client_auth_subject_dn.is_some() || c.tls_client_auth_san.is_some();
            if has_tls_mapping && !rules.client_cas {
                warnings.push(format!(
                    "{at}: OpenIdClient `{}` has TlsClientAuthSan/TlsClientAuthSubjectDn, but no CA certificate can authenticate it: set IdentityServer:ClientCertificateAuthorities (and keep IdentityServer:ClientCertificates Optional)",
                    c.identifier
                ));
            }
            if hash.is_none()
                && c.thumbprints.is_empty()
                && !has_tls_mapping
                && !rules.keys_elsewhere
            {
                errors.push(AccessControlError::NoCredentials {
                    notes: typo_notes(&warnings, &at, &c.identifier),
                    at,
                    client: c.identifier.clone(),
                });
                continue;
            }
            let mut fingerprint = [0u8; 32];
            fingerprint.copy_from_slice(
                digest::digest(
                    &digest::SHA256,
                    c.hashed_secret
                        .as_deref()
                        .unwrap_or_default()
                        .trim()
                        .as_bytes(),
                )
                .as_ref(),
            );
            by_id.insert(
                c.identifier.clone(),
                RegisteredClient {
                    identifier: c.identifier.clone().into(),
                    hash,
                    hash_fingerprint: fingerprint,
                    profile: c.profile.clone(),
                    display_name: c.display_names.get(&1).cloned(),
                    expires_at: c.expiration_date.map(|d| d.unix_timestamp()),
                    thumbprints,
                    tls_subject_dn: c.tls_client_auth_subject_dn.clone(),
                    tls_san: c.tls_client_auth_san.clone(),
                    audiences,
                    require_dpop: c.require_dpop,
                },
            );
        }
        let model = match AccessControl::build(documents) {
            Ok(model) => model,
            Err(es) => {
                errors.extend(es.into_iter().map(AccessControlError::Xml));
                AccessControl::default()
            }
        };
        if !errors.is_empty() {
            return Err((AccessControlErrors(errors), false));
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

/// The unknown-attribute warnings of the element at `at` (`file:line:column`), as a note for the error
/// they probably cause: `HashedSecrte="..."` is why the client "has no HashedSecret".
fn typo_notes(warnings: &[String], at: &str, identifier: &str) -> String {
    let prefix = format!("{at}: OpenIdClient `{identifier}`: ");
    warnings
        .iter()
        .filter_map(|w| w.strip_prefix(&prefix))
        .filter(|w| w.starts_with("unknown attribute"))
        .map(|w| format!("; note: {w}"))
        .collect()
}

/// What identifies the state of the XML folder: each file's path, size and modification time.
pub type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The folder's current [`Snapshot`]. An error below `folder` names the path that failed.
pub fn snapshot(folder: &Path) -> std::io::Result<Snapshot> {
    let mut files = Vec::new();
    collect_xml(folder, folder, &mut files)?;
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).map_err(|e| naming(&path, e))?;
            Ok((path, meta.len(), meta.modified().ok()))
        })
        .collect()
}

/// `e`, with `path` in its message.
fn naming(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The clients in force, replaced as a whole when the XML folder is reloaded. Requests take a cheap
/// `Arc` of the current set, so a reload never changes the clients under a request.
#[derive(Debug)]
pub struct LiveClients {
    current: RwLock<Arc<Clients>>,
    folder: PathBuf,
    rules: ClientRules,
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
    /// The new files are invalid, or could not be read (an I/O error): the previous clients stay in
    /// force.
    Rejected(AccessControlErrors),
}

impl LiveClients {
    pub fn new(clients: Clients, folder: PathBuf, rules: ClientRules) -> Self {
        let seen = clients.snapshot.clone();
        LiveClients {
            current: RwLock::new(Arc::new(clients)),
            folder,
            rules,
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
        match Clients::read(&self.folder, self.rules) {
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
            Err((e, io_failed)) => {
                // Files that could not be read are read again at the next check, changed or not.
                if io_failed && let Ok(mut seen) = self.seen.write() {
                    *seen = None;
                }
                Reload::Rejected(e)
            }
        }
    }
}

fn collect_xml(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    // The root's own errors are reported with the root already named.
    let named = |e| if dir == root { e } else { naming(dir, e) };
    for entry in std::fs::read_dir(dir).map_err(named)? {
        let entry = entry.map_err(named)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| naming(&path, e))?;
        if kind.is_dir() {
            collect_xml(root, &path, out)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const XML: &str = r#"<C><OpenIdClient Identifier="Job" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="/></C>"#;

    /// A file that cannot be listed or read (tests run as root, so permissions would not stop them: a
    /// dangling link, a link to a folder) keeps the clients in force, is reported with its path and the
    /// OS error, and is read again at the next check even if nothing changed.
    #[test]
    fn an_unreadable_file_keeps_the_clients() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.xml"), XML).unwrap();
        let (clients, _) = Clients::load(dir.path(), ClientRules::default()).unwrap();
        let live = LiveClients::new(clients, dir.path().to_path_buf(), ClientRules::default());

        let dangling = dir.path().join("b.xml");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        match live.reload(false) {
            Reload::Rejected(errors) => {
                let text = errors.to_string();
                assert!(
                    text.contains(&dangling.display().to_string()) && text.contains("os error 2"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(live.current().by_id.contains_key("Job"));
        std::fs::remove_file(&dangling).unwrap();

        // Listed, but reading it fails.
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        symlink(&sub, dir.path().join("c.xml")).unwrap();
        match live.reload(false) {
            Reload::Rejected(errors) => {
                let text = errors.to_string();
                assert!(
                    text.contains("c.xml: cannot read") && text.contains("os error 21"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(live.current().by_id.contains_key("Job"));
        // Not changed since, but read again (and still failing).
        assert!(matches!(live.reload(false), Reload::Rejected(_)));
        // A file that does not parse is rejected once, and not read again until it changes.
        std::fs::remove_file(dir.path().join("c.xml")).unwrap();
        std::fs::write(dir.path().join("d.xml"), "<C><OpenIdClient").unwrap();
        assert!(matches!(live.reload(false), Reload::Rejected(_)));
        assert!(matches!(live.reload(false), Reload::Unchanged));
        std::fs::remove_file(dir.path().join("d.xml")).unwrap();
        assert!(matches!(
            live.reload(false),
            Reload::Reloaded { clients: 1, .. }
        ));
    }
}
