//! Protected settings: passwords and secrets kept out of clear JSON (`docs/protected-settings.md`).
//!
//! Three ways, all layered into the same [`Config`]:
//! - **encrypted settings files**, as the vendor's `Protect-X509JsonValue` / `Protect-X509JsonFile` make
//!   them: `appsettings.encrypted.json` (and, for the agent, `appsettings.encrypted.agent.json`), the same
//!   layout as the plain files, each value `ids-protected:v1:<base64>`: the value encrypted for the
//!   application's own `EncryptionCertificate` (the `IDSENC` format of `docs/encrypted-file-format.md`),
//!   bound to its key so that it cannot be moved to another setting. Each is layered right after its plain
//!   file. `identity-server protect` and `agent protect` write them ([`run`]).
//! - **`...File` settings**: every password or secret setting `X` may instead be `XFile`, the path of a
//!   file holding the value (`IdentityServer:X509KeyFilePasswordFile`,
//!   `EncryptionCertificate:PasswordFile`); the agent reads its client secrets from files with its own
//!   `OpenId:OpenIdClientSecretFiles:<id>`.
//! - **systemd credentials**: each file of `$CREDENTIALS_DIRECTORY` named after a setting of the
//!   application (`IdentityServer__X509KeyFilePassword`, as an environment variable would be) is that
//!   setting (.NET's key-per-file provider), layered last.
//!
//! The bootstrap: the `EncryptionCertificate` password opens the key that decrypts the protected values,
//! so it cannot be one of them. It comes from the plain file, the environment
//! (`EncryptionCertificate__Password`), `EncryptionCertificate:PasswordFile` or a credential.
//!
//! # Layout
//! - this module: protected values ([`protect_value`], [`unprotect_value`]) and their decryption while
//!   the configuration loads.
//! - [`secret_files`]: `...File` settings and the secret-file reader.
//! - `credentials`: systemd credentials.
//! - [`command`]: the `protect` command (re-exported here: [`ProtectArgs`], [`run`], [`run_in`]).

pub mod command;
mod credentials;
pub mod secret_files;

use std::path::{Path, PathBuf};

use ids_pki::pfx::Pfx;
use ids_seal::encrypted_file::{DecryptionKey, FileError, Mode, Recipient};
use zeroize::Zeroizing;

use crate::{Config, ConfigError, Origin};

pub use command::{
    Protect, ProtectArgs, ProtectError, ProtectInputError, ProtectIoError, ProtectRequest,
    ValueSource, run, run_in,
};
pub use secret_files::SecretFileError;
pub(crate) use secret_files::secret_file_target;

/// What starts a protected value.
pub const PREFIX: &str = "ids-protected:v1:";

/// The settings section whose certificate protects the others (and so cannot be protected itself).
pub(crate) const CERTIFICATE_SECTION: &str = "EncryptionCertificate";

/// Why the `EncryptionCertificate`'s own settings cannot be protected.
pub(crate) const CERTIFICATE_NOT_PROTECTABLE: &str = "cannot be protected: the EncryptionCertificate opens the key that decrypts protected values; give its password by environment variable (EncryptionCertificate__Password), EncryptionCertificate:PasswordFile or a systemd credential";

/// Whether `value` is a protected value.
pub fn is_protected(value: &str) -> bool {
    value.trim_start().starts_with(PREFIX)
}

/// Why a protected value cannot be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum UnprotectError {
    #[error("not a protected value: `{PREFIX}` must be followed by base64")]
    NotBase64,
    #[error(transparent)]
    Decrypt(#[from] FileError),
    /// It decrypts, but not to the `{"key": ..., "value": ...}` object [`protect_value`] seals.
    #[error("the protected value decrypts to something unexpected")]
    Unexpected,
    /// It was sealed for the setting `bound`, not for `key` (a value moved to another setting).
    #[error(
        "it was protected for the setting `{bound}`, not this one (protect it again with --key {key})"
    )]
    OtherSetting { bound: String, key: String },
}

/// Encrypts `value` of the setting `key` for `recipient`.
pub fn protect_value(recipient: &Recipient, key: &str, value: &str) -> Result<String, FileError> {
    let plain = Zeroizing::new(
        serde_json::json!({ "key": key.to_lowercase(), "value": value }).to_string(),
    );
    let (_, sealed) = ids_seal::encrypted_file::encrypt_stream(
        &mut plain.as_bytes(),
        Vec::new(),
        std::slice::from_ref(recipient),
        |_| {},
    )?;
    Ok(format!("{PREFIX}{}", ids_pki::b64::std(&sealed)))
}

/// Decrypts the protected `text` of the setting `key` with `keys`.
pub fn unprotect_value(
    keys: &[DecryptionKey],
    key: &str,
    text: &str,
) -> Result<Zeroizing<String>, UnprotectError> {
    let body = text.trim().strip_prefix(PREFIX).unwrap_or_default();
    let sealed = ids_pki::b64::std_decode(body).ok_or(UnprotectError::NotBase64)?;
    let mut plain = Zeroizing::new(Vec::new());
    ids_seal::encrypted_file::decrypt_stream(
        sealed.as_slice(),
        &mut *plain,
        keys,
        Mode::Strict,
        |_| {},
    )?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&plain).map_err(|_| UnprotectError::Unexpected)?;
    let bound = parsed["key"].as_str().unwrap_or_default();
    if !bound.eq_ignore_ascii_case(key) {
        return Err(UnprotectError::OtherSetting {
            bound: bound.to_string(),
            key: key.to_string(),
        });
    }
    let value = parsed["value"].as_str().ok_or(UnprotectError::Unexpected)?;
    Ok(Zeroizing::new(value.to_string()))
}

/// The application's `EncryptionCertificate`: file and password, read from the unprotected layers.
pub(crate) fn certificate_setting(
    config: &Config,
) -> Result<(PathBuf, Zeroizing<String>), ConfigError> {
    let file = config
        .path("EncryptionCertificate:File")
        .ok_or_else(|| ConfigError::Missing {
            path: "EncryptionCertificate:File".into(),
            message: "protected values (ids-protected:v1:...) are decrypted with the EncryptionCertificate's private key: set EncryptionCertificate:File and its password (environment variable EncryptionCertificate__Password, EncryptionCertificate:PasswordFile or a systemd credential)".into(),
        })?;
    Ok((file, certificate_password(config)))
}

/// `EncryptionCertificate:Password` (empty when unset).
pub(crate) fn certificate_password(config: &Config) -> Zeroizing<String> {
    Zeroizing::new(
        config
            .get("EncryptionCertificate:Password")
            .map(|s| s.value.clone())
            .unwrap_or_default(),
    )
}

impl Config {
    /// The values the encrypted settings file `file` (the layer just added) holds that are not protected
    /// ones: each an error naming the file and the key. The vendor's own encrypted files (made by
    /// `Protect-X509JsonFile`) land here: their format is not public, so their values are refused rather
    /// than taken as clear text.
    pub(crate) fn clear_values_from(&self, file: &Path) -> Vec<ConfigError> {
        self.settings
            .values()
            .filter(|s| matches!(&s.origin, Origin::File(f) if f == file) && !is_protected(&s.value))
            .map(|s| ConfigError::Invalid {
                path: s.path.clone(),
                origin: file.display().to_string(),
                message: format!(
                    "not a protected value (`{PREFIX}...`): every value of an encrypted settings file must be one (the vendor's Protect-X509JsonValue format cannot be read); protect the clear value again with `protect --key {}`, or move it to the plain settings file",
                    s.path
                ),
            })
            .collect()
    }

    /// Decrypts every protected value with the `EncryptionCertificate`'s key. Settings of the
    /// `EncryptionCertificate` section itself cannot be protected (they open that key).
    pub(crate) fn unprotect(&mut self) -> Vec<ConfigError> {
        let protected: Vec<String> = self
            .settings
            .iter()
            .filter(|(_, s)| is_protected(&s.value))
            .map(|(k, _)| k.clone())
            .collect();
        if protected.is_empty() {
            return Vec::new();
        }
        let mut errors = Vec::new();
        for k in &protected {
            if let Some(s) = self.settings.get(k)
                && s.path
                    .split(':')
                    .next()
                    .is_some_and(|first| first.eq_ignore_ascii_case(CERTIFICATE_SECTION))
            {
                errors.push(ConfigError::Invalid {
                    path: s.path.clone(),
                    origin: s.origin.to_string(),
                    message: CERTIFICATE_NOT_PROTECTABLE.into(),
                });
            }
        }
        if !errors.is_empty() {
            return errors;
        }
        let key = match certificate_setting(self).and_then(|(file, password)| {
            let pfx = Pfx::from_file(&file, &password).map_err(|e| ConfigError::Invalid {
                path: "EncryptionCertificate:File".into(),
                origin: file.display().to_string(),
                message: format!("cannot open it to decrypt the protected settings: {e}"),
            })?;
            DecryptionKey::from_pfx(&pfx).map_err(|e| ConfigError::Invalid {
                path: "EncryptionCertificate:File".into(),
                origin: file.display().to_string(),
                message: format!("its key cannot decrypt the protected settings: {e}"),
            })
        }) {
            Ok(key) => key,
            Err(e) => return vec![e],
        };
        for k in protected {
            let Some(setting) = self.settings.get_mut(&k) else {
                continue;
            };
            match unprotect_value(std::slice::from_ref(&key), &setting.path, &setting.value) {
                Ok(value) => {
                    setting.value = value.to_string();
                    setting.protected = true;
                }
                Err(message) => errors.push(ConfigError::Invalid {
                    path: setting.path.clone(),
                    origin: setting.origin.to_string(),
                    message: format!("the protected value cannot be decrypted: {message}"),
                }),
            }
        }
        errors
    }
}
