//! `...File` settings: every password or secret setting `X` may instead be `XFile`, the path of a file
//! holding the value (`IdentityServer:X509KeyFilePasswordFile`, `EncryptionCertificate:PasswordFile`),
//! so that the secret sits in a file only its service may read instead of the clear JSON. Also the
//! reader of such files that credentials and `protect --value-file` share.

use std::path::Path;

use zeroize::Zeroizing;

use crate::{Config, ConfigError, Origin, Schema};

/// Why a secret file (an `XFile` setting, a systemd credential, `--value-file`) gave no value.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("not UTF-8 text")]
    NotUtf8,
    #[error("the file is empty")]
    Empty,
}

impl Config {
    /// `XFile` settings (for every password or secret setting `X`): the value is the file's content,
    /// without its final line break. Setting both `X` and `XFile` is an error: one of them would be silently ignored.
    pub(crate) fn read_secret_files(&mut self, schema: &Schema) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let files: Vec<(String, String)> = self
            .settings
            .values()
            .filter_map(|s| secret_file_target(&s.path, schema).map(|t| (s.path.clone(), t)))
            .collect();
        for (file_key, target) in files {
            let Some(setting) = self.get(&file_key).cloned() else {
                continue;
            };
            if let Some(existing) = self.get(&target).filter(|s| !s.value.trim().is_empty()) {
                errors.push(ConfigError::Invalid {
                    path: file_key.clone(),
                    origin: setting.origin.to_string(),
                    message: format!(
                        "`{}` is also set (in {}): keep one of them",
                        existing.path, existing.origin
                    ),
                });
                continue;
            }
            let path = self.resolve(setting.value.trim());
            match read_secret_file(&path) {
                Ok(value) => {
                    self.settings.remove(&file_key.to_lowercase());
                    self.settings.insert(
                        target.to_lowercase(),
                        crate::Setting {
                            path: target,
                            value: value.to_string(),
                            origin: Origin::SecretFile {
                                key: file_key,
                                file: path,
                            },
                            protected: true,
                        },
                    );
                }
                Err(reason) => errors.push(ConfigError::Invalid {
                    path: file_key,
                    origin: setting.origin.to_string(),
                    message: format!("{}: {reason}", path.display()),
                }),
            }
        }
        errors
    }
}

/// The setting an `XFile` key stands for, when `X` is a password or secret setting the schema knows.
pub(crate) fn secret_file_target(path: &str, schema: &Schema) -> Option<String> {
    let segments: Vec<&str> = path.split(':').collect();
    let last = segments.last()?;
    let stem_len = last.len().checked_sub(4)?;
    if !last.get(stem_len..)?.eq_ignore_ascii_case("file") {
        return None;
    }
    let stem = &last[..stem_len];
    let lower = stem.to_lowercase();
    if !(lower.ends_with("password") || lower.ends_with("secret")) {
        return None;
    }
    let mut target: Vec<&str> = segments[..segments.len() - 1].to_vec();
    target.push(stem);
    let target = target.join(":");
    // Literal keys only: under a `*` pattern (`OpenId:OpenIdClients:*`), `ExportSecretFile` is a name,
    // not a file setting.
    schema.knows_literally(&target).then_some(target)
}

/// A secret file's content, without its final line break; refused when empty.
pub(crate) fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(SecretFileError::Read)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretFileError::NotUtf8)?;
    let value = without_final_line_break(text);
    if value.is_empty() {
        return Err(SecretFileError::Empty);
    }
    Ok(Zeroizing::new(value.to_string()))
}

/// `text` without one final `\n` or `\r\n` (what an editor or `echo` adds after a secret).
pub(crate) fn without_final_line_break(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}
