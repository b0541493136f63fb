//! systemd credentials: each file of `$CREDENTIALS_DIRECTORY` named after a setting of the application
//! (`IdentityServer__X509KeyFilePassword`, as an environment variable would be) is that setting, as
//! .NET's key-per-file provider reads them, layered last. `LoadCredential=` then hands the service its
//! passwords without an environment variable any process of the user could read.

use std::path::PathBuf;

use super::secret_files::read_secret_file;
use crate::{Config, ConfigError, Origin, Schema};

impl Config {
    /// Each file of `$CREDENTIALS_DIRECTORY` named after a setting in one of the application's sections
    /// (`IdentityServer__X509KeyFilePassword`): that setting, as systemd's `LoadCredential=` passes it.
    pub(crate) fn add_credentials(
        &mut self,
        vars: &[(String, String)],
        schema: &Schema,
    ) -> Vec<ConfigError> {
        let Some((_, dir)) = vars
            .iter()
            .find(|(k, v)| k == "CREDENTIALS_DIRECTORY" && !v.trim().is_empty())
        else {
            return Vec::new();
        };
        let dir = PathBuf::from(dir.trim());
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                return vec![ConfigError::Io {
                    file: format!("{} ($CREDENTIALS_DIRECTORY)", dir.display()),
                    reason: e.to_string(),
                }];
            }
        };
        let mut names: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .collect();
        names.sort();
        let mut errors = Vec::new();
        for (name, file) in names {
            let key = name.replace("__", ":");
            if !schema.has_section(key.split(':').next().unwrap_or_default()) {
                continue;
            }
            match read_secret_file(&file) {
                Ok(value) => self.settings.insert(
                    key.to_lowercase(),
                    crate::Setting {
                        path: key,
                        value: value.to_string(),
                        origin: Origin::Credential(file),
                        protected: true,
                    },
                ),
                Err(reason) => {
                    errors.push(ConfigError::Io {
                        file: file.display().to_string(),
                        reason: reason.to_string(),
                    });
                    continue;
                }
            };
        }
        errors
    }
}
