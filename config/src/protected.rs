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

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ids_pki::pfx::Pfx;
use ids_seal::atomic::AtomicFile;
use ids_seal::encrypted_file::{DecryptionKey, Mode, Recipient};
use zeroize::Zeroizing;

use crate::{Config, ConfigError, Origin, Schema};

/// What starts a protected value.
pub const PREFIX: &str = "ids-protected:v1:";

/// The settings section whose certificate protects the others (and so cannot be protected itself).
const CERTIFICATE_SECTION: &str = "EncryptionCertificate";

/// Why the `EncryptionCertificate`'s own settings cannot be protected.
const CERTIFICATE_NOT_PROTECTABLE: &str = "cannot be protected: the EncryptionCertificate opens the key that decrypts protected values; give its password by environment variable (EncryptionCertificate__Password), EncryptionCertificate:PasswordFile or a systemd credential";

/// Whether `value` is a protected value.
pub fn is_protected(value: &str) -> bool {
    value.trim_start().starts_with(PREFIX)
}

/// Encrypts `value` of the setting `key` for `recipient`.
pub fn protect_value(recipient: &Recipient, key: &str, value: &str) -> Result<String, String> {
    let plain = Zeroizing::new(
        serde_json::json!({ "key": key.to_lowercase(), "value": value }).to_string(),
    );
    let (_, sealed) = ids_seal::encrypted_file::encrypt_stream(
        &mut plain.as_bytes(),
        Vec::new(),
        std::slice::from_ref(recipient),
        |_| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(format!("{PREFIX}{}", ids_pki::b64::std(&sealed)))
}

/// Decrypts the protected `text` of the setting `key` with `keys`.
pub fn unprotect_value(
    keys: &[DecryptionKey],
    key: &str,
    text: &str,
) -> Result<Zeroizing<String>, String> {
    let body = text.trim().strip_prefix(PREFIX).unwrap_or_default();
    let sealed = ids_pki::b64::std_decode(body)
        .ok_or_else(|| format!("not a protected value: `{PREFIX}` must be followed by base64"))?;
    let mut plain = Zeroizing::new(Vec::new());
    ids_seal::encrypted_file::decrypt_stream(
        sealed.as_slice(),
        &mut *plain,
        keys,
        Mode::Strict,
        |_| {},
    )
    .map_err(|e| e.to_string())?;
    let parsed: serde_json::Value = serde_json::from_slice(&plain)
        .map_err(|_| "the protected value decrypts to something unexpected".to_string())?;
    let bound = parsed["key"].as_str().unwrap_or_default();
    if !bound.eq_ignore_ascii_case(key) {
        return Err(format!(
            "it was protected for the setting `{bound}`, not this one (protect it again with --key {key})"
        ));
    }
    let value = parsed["value"]
        .as_str()
        .ok_or_else(|| "the protected value decrypts to something unexpected".to_string())?;
    Ok(Zeroizing::new(value.to_string()))
}

/// The application's `EncryptionCertificate`: file and password, read from the unprotected layers.
fn certificate_setting(config: &Config) -> Result<(PathBuf, Zeroizing<String>), ConfigError> {
    let file = config
        .path("EncryptionCertificate:File")
        .ok_or_else(|| ConfigError::Missing {
            path: "EncryptionCertificate:File".into(),
            message: "protected values (ids-protected:v1:...) are decrypted with the EncryptionCertificate's private key: set EncryptionCertificate:File and its password (environment variable EncryptionCertificate__Password, EncryptionCertificate:PasswordFile or a systemd credential)".into(),
        })?;
    Ok((file, certificate_password(config)))
}

/// `EncryptionCertificate:Password` (empty when unset).
fn certificate_password(config: &Config) -> Zeroizing<String> {
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
                        reason,
                    });
                    continue;
                }
            };
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
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let value = without_final_line_break(text);
    if value.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(Zeroizing::new(value.to_string()))
}

/// `text` without one final `\n` or `\r\n` (what an editor or `echo` adds after a secret).
fn without_final_line_break(text: &str) -> &str {
    text.strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text)
}

/// The command line of `identity-server protect` and `agent protect` (one definition for both apps).
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "The value is read from --value-env, --value-file or standard input, never from the command line. \
                  Protected values are decrypted at start-up with the EncryptionCertificate's private key; its \
                  password comes from the plain settings, the environment (EncryptionCertificate__Password), \
                  EncryptionCertificate:PasswordFile or a systemd credential. See docs/protected-settings.md."
)]
pub struct ProtectArgs {
    /// The setting to protect, e.g. IdentityServer:X509KeyFilePassword or OpenId:OpenIdClients:Job.
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "json",
        conflicts_with = "json"
    )]
    pub key: Option<String>,
    /// Environment variable holding the value.
    #[arg(
        long,
        value_name = "VAR",
        requires = "key",
        conflicts_with = "value_file"
    )]
    pub value_env: Option<String>,
    /// File holding the value (without its final line break).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub value_file: Option<PathBuf>,
    /// Print the protected value instead of adding it to the encrypted settings file.
    #[arg(long, requires = "key")]
    pub print: bool,
    /// Protect every value of this plain JSON settings file (e.g. a copy of the secret part of
    /// appsettings.json) and merge them into the encrypted settings file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Certificate to encrypt for (PEM, DER or PFX). Default: EncryptionCertificate:File.
    #[arg(long, value_name = "CERT")]
    pub certificate: Option<PathBuf>,
    /// The encrypted settings file to write (default: appsettings.encrypted.json in the configuration
    /// folder; appsettings.encrypted.agent.json for the agent).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl ProtectArgs {
    /// The request for the configuration folder `config_dir`, writing `default_output` there unless
    /// `--output` says otherwise.
    pub fn request(self, config_dir: &Path, default_output: &str) -> Protect {
        let request = match (self.json, self.key) {
            (Some(file), _) => ProtectRequest::Json { file },
            (None, key) => ProtectRequest::Value {
                key: key.unwrap_or_default(),
                source: match (self.value_env, self.value_file) {
                    (Some(var), _) => ValueSource::Env(var),
                    (None, Some(file)) => ValueSource::File(file),
                    (None, None) => ValueSource::Stdin,
                },
                print: self.print,
            },
        };
        Protect {
            config_dir: config_dir.to_path_buf(),
            request,
            certificate: self.certificate,
            output: self
                .output
                .unwrap_or_else(|| config_dir.join(default_output)),
            vars: std::env::vars().collect(),
        }
    }
}

/// Where the value of `protect` comes from: never the command line (visible to every user in `ps`).
#[derive(Debug, Clone)]
pub enum ValueSource {
    /// An environment variable.
    Env(String),
    /// A file (its content without the final line break).
    File(PathBuf),
    /// Standard input (one line when it is a terminal, else everything without the final line break).
    Stdin,
}

/// What `protect` does.
#[derive(Debug, Clone)]
pub enum ProtectRequest {
    /// Protect one value for `key` and add it to the encrypted settings file (or print it).
    Value {
        key: String,
        source: ValueSource,
        print: bool,
    },
    /// Protect every value of a plain JSON settings file and merge them into the encrypted one.
    Json { file: PathBuf },
}

/// `identity-server protect` / `agent protect`. `Debug` leaves the environment out (it holds passwords).
#[derive(Clone)]
pub struct Protect {
    pub config_dir: PathBuf,
    pub request: ProtectRequest,
    /// The certificate to encrypt for (PEM, DER or PFX); default: the settings' `EncryptionCertificate`.
    pub certificate: Option<PathBuf>,
    /// The encrypted settings file to write (default `appsettings.encrypted.json` of the folder, or
    /// `appsettings.encrypted.agent.json` for the agent).
    pub output: PathBuf,
    /// Process environment (for the value source and the certificate's password).
    pub vars: Vec<(String, String)>,
}

impl std::fmt::Debug for Protect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protect")
            .field("config_dir", &self.config_dir)
            .field("request", &self.request)
            .field("certificate", &self.certificate)
            .field("output", &self.output)
            .field("vars", &format_args!("<{} variables>", self.vars.len()))
            .finish()
    }
}

/// Why `protect` failed: bad input (exit code 2) or a failure to write (1).
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Io(String),
}

/// `protect` as both apps run it: their plain settings layers (`bases`, without the encrypted files, so
/// that a damaged one can be replaced) in `dir`, with the process environment, then [`run`]. A
/// configuration that does not load is bad input.
pub fn run_in(
    dir: &Path,
    bases: &[(&str, bool)],
    schema: &Schema,
    args: ProtectArgs,
    default_output: &str,
) -> Result<String, ProtectError> {
    let request = args.request(dir, default_output);
    let config =
        Config::load_plain_layers(dir, bases, &request.vars, schema).map_err(|errors| {
            ProtectError::Input(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\nerror: "),
            )
        })?;
    run(&request, schema, &config)
}

/// Runs `protect`; returns what to print on standard output.
pub fn run(protect: &Protect, schema: &Schema, config: &Config) -> Result<String, ProtectError> {
    let mut pairs: Vec<(String, Zeroizing<String>)> = Vec::new();
    let print = match &protect.request {
        ProtectRequest::Value { key, source, print } => {
            check_key(key, schema)?;
            pairs.push((key.clone(), read_value(source, &protect.vars)?));
            *print
        }
        ProtectRequest::Json { file } => {
            let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                ProtectError::Input(format!("{}: cannot read: {e}", file.display()))
            })?);
            let mut plain = Config::empty(&protect.config_dir);
            plain
                .add_json(file, &text)
                .map_err(|e| ProtectError::Input(e.to_string()))?;
            for s in plain.settings.values() {
                check_key(&s.path, schema)?;
                pairs.push((s.path.clone(), Zeroizing::new(s.value.clone())));
            }
            if pairs.is_empty() {
                return Err(ProtectError::Input(format!(
                    "{}: no value to protect",
                    file.display()
                )));
            }
            false
        }
    };
    let recipient = recipient(protect, config)?;
    let mut protected = Vec::new();
    for (key, value) in &pairs {
        let sealed = protect_value(&recipient, key, value).map_err(ProtectError::Io)?;
        protected.push((key.clone(), sealed));
    }
    if print {
        return Ok(protected
            .into_iter()
            .map(|(_, v)| format!("{v}\n"))
            .collect());
    }
    let mut document = match std::fs::read_to_string(&protect.output) {
        Ok(text) => {
            let relaxed = crate::relax_json(text.strip_prefix('\u{feff}').unwrap_or(&text));
            match serde_json::from_str::<serde_json::Value>(&relaxed) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => {
                    return Err(ProtectError::Input(format!(
                        "{}: not a JSON object; fix or remove it",
                        protect.output.display()
                    )));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => {
            return Err(ProtectError::Io(format!(
                "{}: cannot read: {e}",
                protect.output.display()
            )));
        }
    };
    let mut keys = Vec::new();
    for (key, sealed) in protected {
        set_path(&mut document, &key, sealed);
        keys.push(key);
    }
    write_private(&protect.output, &document)?;
    let mut report = format!(
        "protected {} in {} (encrypted for `{}`)\n",
        keys.join(", "),
        protect.output.display(),
        recipient.name().subject
    );
    // The point is that the secret no longer sits in clear: say where it still does.
    for key in &keys {
        if let Some(clear) = config.get(key)
            && !is_protected(&clear.value)
            && matches!(clear.origin, Origin::File(_))
        {
            report.push_str(&format!(
                "note: {} still holds `{}` in clear: remove it from there\n",
                clear.origin, clear.path
            ));
        }
    }
    Ok(report)
}

/// A key `protect` accepts: one the application reads (any key of a section it does not own is
/// accepted too: other software may share the file), and not the certificate's own settings.
fn check_key(key: &str, schema: &Schema) -> Result<(), ProtectError> {
    let first = key.split(':').next().unwrap_or_default();
    if key.trim().is_empty() || key.split(':').any(str::is_empty) {
        return Err(ProtectError::Input(format!(
            "--key `{key}`: expected a setting path such as IdentityServer:X509KeyFilePassword"
        )));
    }
    if first.eq_ignore_ascii_case(CERTIFICATE_SECTION) {
        return Err(ProtectError::Input(format!(
            "`{key}` {CERTIFICATE_NOT_PROTECTABLE}"
        )));
    }
    if secret_file_target(key, schema).is_some() {
        return Err(ProtectError::Input(format!(
            "`{key}` names a file: protect the value itself (`{}`) instead",
            &key[..key.len() - 4]
        )));
    }
    if let Some(owned) = schema.near_section(first) {
        return Err(ProtectError::Input(format!(
            "`{key}`: `{first}` is not a section of this application; did you mean the section `{owned}`?"
        )));
    }
    if schema.has_section(first) && !schema.knows(key) {
        let hint = schema
            .suggest(key)
            .map(|p| format!("; did you mean `{p}`?"))
            .unwrap_or_default();
        return Err(ProtectError::Input(format!(
            "`{key}` is not a setting of this application{hint}"
        )));
    }
    Ok(())
}

fn recipient(protect: &Protect, config: &Config) -> Result<Recipient, ProtectError> {
    let input = |m: String| ProtectError::Input(m);
    let cert = match &protect.certificate {
        Some(path) => {
            let password = certificate_password(config);
            ids_pki::pfx::public_certificate_from_file(
                path,
                &password,
                "EncryptionCertificate:Password",
            )
            .map_err(|e| input(format!("--certificate {}: {e}", path.display())))?
        }
        None => {
            let (file, password) = certificate_setting(config).map_err(|e| input(e.to_string()))?;
            ids_pki::pfx::public_certificate_from_file(
                &file,
                &password,
                "EncryptionCertificate:Password",
            )
            .map_err(|e| input(format!("EncryptionCertificate:File: {e}")))?
        }
    };
    Recipient::from_certificate(&cert).map_err(|e| input(format!("`{}`: {e}", cert.subject())))
}

fn read_value(
    source: &ValueSource,
    vars: &[(String, String)],
) -> Result<Zeroizing<String>, ProtectError> {
    let value = match source {
        ValueSource::Env(name) => Zeroizing::new(
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    ProtectError::Input(format!("--value-env {name}: the variable is not set"))
                })?,
        ),
        ValueSource::File(path) => read_secret_file(path)
            .map_err(|e| ProtectError::Input(format!("--value-file {}: {e}", path.display())))?,
        ValueSource::Stdin => {
            use std::io::{BufRead as _, IsTerminal as _, Read as _};
            let stdin = std::io::stdin();
            let mut text = Zeroizing::new(String::new());
            if stdin.is_terminal() {
                eprintln!(
                    "Type the value and press Enter (what you type is shown; --value-env or --value-file avoid that):"
                );
                stdin
                    .lock()
                    .read_line(&mut text)
                    .map_err(|e| ProtectError::Io(format!("standard input: {e}")))?;
            } else {
                stdin
                    .lock()
                    .read_to_string(&mut text)
                    .map_err(|e| ProtectError::Io(format!("standard input: {e}")))?;
            }
            Zeroizing::new(without_final_line_break(&text).to_string())
        }
    };
    if value.is_empty() {
        return Err(ProtectError::Input("the value to protect is empty".into()));
    }
    Ok(value)
}

/// Sets `A:B:C` in a JSON object tree, matching existing keys case-insensitively.
fn set_path(root: &mut serde_json::Value, path: &str, value: String) {
    let segments: Vec<&str> = path.split(':').collect();
    let mut node = root;
    for (i, segment) in segments.iter().enumerate() {
        if !node.is_object() {
            *node = serde_json::json!({});
        }
        let serde_json::Value::Object(map) = node else {
            return;
        };
        let existing = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(segment))
            .cloned()
            .unwrap_or_else(|| segment.to_string());
        if i + 1 == segments.len() {
            map.insert(existing, serde_json::Value::String(value));
            return;
        }
        node = map.entry(existing).or_insert_with(|| serde_json::json!({}));
    }
}

/// Writes `document` to `path` atomically: a new file readable by its owner only; an existing one keeps
/// its mode (an operator who let the service's group read it keeps that).
fn write_private(path: &Path, document: &serde_json::Value) -> Result<(), ProtectError> {
    let io = |e: std::io::Error| ProtectError::Io(format!("{}: cannot write: {e}", path.display()));
    let text =
        serde_json::to_string_pretty(document).map_err(|e| ProtectError::Io(e.to_string()))?;
    let mut file = AtomicFile::create(path, true).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        file.file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    file.file().write_all(text.as_bytes()).map_err(io)?;
    file.file().write_all(b"\n").map_err(io)?;
    file.commit().map_err(io)
}
