//! The `protect` command both apps share (`identity-server protect`, `agent protect`): its command line,
//! the request it turns into, and [`run`], which encrypts values for the `EncryptionCertificate` and
//! merges them into the encrypted settings file. Its errors say whether the input was bad (exit code 2)
//! or the work failed (1), so each app maps them to its exit status in one place.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ids_seal::atomic::AtomicFile;
use ids_seal::encrypted_file::Recipient;
use zeroize::Zeroizing;

use super::SecretFileError;
use super::secret_files::{read_secret_file, secret_file_target, without_final_line_break};
use super::{
    CERTIFICATE_NOT_PROTECTABLE, CERTIFICATE_SECTION, certificate_password, certificate_setting,
    is_protected, protect_value,
};
use crate::{Config, ConfigError, Origin, Schema};
use ids_pki::pfx::PublicCertificateError;
use ids_seal::encrypted_file::FileError;

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
    #[error(transparent)]
    Input(#[from] ProtectInputError),
    #[error(transparent)]
    Io(#[from] ProtectIoError),
}

/// Bad input to `protect`: the settings, the key, the value or the certificate (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ProtectInputError {
    /// The plain settings layers do not load.
    #[error("{}", join_errors(.0))]
    Settings(Vec<ConfigError>),
    /// `--key` is not a setting path.
    #[error("--key `{key}`: expected a setting path such as IdentityServer:X509KeyFilePassword")]
    NotAPath { key: String },
    /// A setting of the `EncryptionCertificate` section (it opens the key that decrypts the others).
    #[error("`{key}` {CERTIFICATE_NOT_PROTECTABLE}")]
    CertificateSetting { key: String },
    /// An `XFile` setting: the value, not the file's name, is what needs protecting.
    #[error("`{key}` names a file: protect the value itself (`{value_key}`) instead")]
    FileSetting { key: String, value_key: String },
    /// The first section is a near miss of one the application owns.
    #[error(
        "`{key}`: `{section}` is not a section of this application; did you mean the section `{owned}`?"
    )]
    NearSection {
        key: String,
        section: String,
        owned: String,
    },
    /// A key the application does not know in a section it owns.
    #[error("`{key}` is not a setting of this application{}", suggestion_hint(.suggestion))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    /// `--value-env` names a variable that is not set.
    #[error("--value-env {name}: the variable is not set")]
    UnsetVariable { name: String },
    /// `--value-file` gave no value.
    #[error("--value-file {}: {source}", .path.display())]
    ValueFile {
        path: PathBuf,
        source: SecretFileError,
    },
    #[error("the value to protect is empty")]
    EmptyValue,
    /// `--json`: the file cannot be read.
    #[error("{}: cannot read: {source}", .file.display())]
    ReadJson {
        file: PathBuf,
        source: std::io::Error,
    },
    /// `--json`: the file is not a JSON settings file.
    #[error(transparent)]
    Json(ConfigError),
    /// `--json`: the file holds no value.
    #[error("{}: no value to protect", .file.display())]
    NothingToProtect { file: PathBuf },
    /// The encrypted settings file to merge into is not a JSON object.
    #[error("{}: not a JSON object; fix or remove it", .file.display())]
    OutputNotAnObject { file: PathBuf },
    /// `--certificate` gave no certificate.
    #[error("--certificate {}: {source}", .path.display())]
    CertificateOption {
        path: PathBuf,
        source: PublicCertificateError,
    },
    /// No `--certificate`, and `EncryptionCertificate:File` is unset.
    #[error(transparent)]
    NoCertificate(ConfigError),
    /// `EncryptionCertificate:File` gave no certificate.
    #[error("EncryptionCertificate:File: {0}")]
    ConfiguredCertificate(#[source] PublicCertificateError),
    /// The certificate cannot be encrypted for (its key type).
    #[error("`{subject}`: {source}")]
    Recipient { subject: String, source: FileError },
}

/// `protect` failed while encrypting, reading or writing (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum ProtectIoError {
    #[error(transparent)]
    Encrypt(#[from] FileError),
    /// The existing encrypted settings file cannot be read.
    #[error("{}: cannot read: {source}", .file.display())]
    ReadOutput {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("standard input: {0}")]
    Stdin(#[source] std::io::Error),
    #[error(transparent)]
    Serialize(#[from] serde_json::Error),
    /// The encrypted settings file cannot be written.
    #[error("{}: cannot write: {source}", .file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// Load errors one after the other, as `error: ` lines below the first (which the app prefixes).
fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\nerror: ")
}

fn suggestion_hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|p| format!("; did you mean `{p}`?"))
        .unwrap_or_default()
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
    let config = Config::load_plain_layers(dir, bases, &request.vars, schema)
        .map_err(ProtectInputError::Settings)?;
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
            let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|source| {
                ProtectInputError::ReadJson {
                    file: file.clone(),
                    source,
                }
            })?);
            let mut plain = Config::empty(&protect.config_dir);
            plain
                .add_json(file, &text)
                .map_err(ProtectInputError::Json)?;
            for s in plain.settings.values() {
                check_key(&s.path, schema)?;
                pairs.push((s.path.clone(), Zeroizing::new(s.value.clone())));
            }
            if pairs.is_empty() {
                return Err(ProtectInputError::NothingToProtect { file: file.clone() }.into());
            }
            false
        }
    };
    let recipient = recipient(protect, config)?;
    let mut protected = Vec::new();
    for (key, value) in &pairs {
        let sealed = protect_value(&recipient, key, value).map_err(ProtectIoError::from)?;
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
                    return Err(ProtectInputError::OutputNotAnObject {
                        file: protect.output.clone(),
                    }
                    .into());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(source) => {
            return Err(ProtectIoError::ReadOutput {
                file: protect.output.clone(),
                source,
            }
            .into());
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
fn check_key(key: &str, schema: &Schema) -> Result<(), ProtectInputError> {
    let first = key.split(':').next().unwrap_or_default();
    if key.trim().is_empty() || key.split(':').any(str::is_empty) {
        return Err(ProtectInputError::NotAPath { key: key.into() });
    }
    if first.eq_ignore_ascii_case(CERTIFICATE_SECTION) {
        return Err(ProtectInputError::CertificateSetting { key: key.into() });
    }
    if secret_file_target(key, schema).is_some() {
        return Err(ProtectInputError::FileSetting {
            key: key.into(),
            value_key: key[..key.len() - 4].into(),
        });
    }
    if let Some(owned) = schema.near_section(first) {
        return Err(ProtectInputError::NearSection {
            key: key.into(),
            section: first.into(),
            owned: owned.to_string(),
        });
    }
    if schema.has_section(first) && !schema.knows(key) {
        return Err(ProtectInputError::UnknownKey {
            key: key.into(),
            suggestion: schema.suggest(key).map(|p| p.to_string()),
        });
    }
    Ok(())
}

fn recipient(protect: &Protect, config: &Config) -> Result<Recipient, ProtectInputError> {
    let cert = match &protect.certificate {
        Some(path) => {
            let password = certificate_password(config);
            ids_pki::pfx::public_certificate_from_file(
                path,
                &password,
                "EncryptionCertificate:Password",
            )
            .map_err(|source| ProtectInputError::CertificateOption {
                path: path.clone(),
                source,
            })?
        }
        None => {
            let (file, password) =
                certificate_setting(config).map_err(ProtectInputError::NoCertificate)?;
            ids_pki::pfx::public_certificate_from_file(
                &file,
                &password,
                "EncryptionCertificate:Password",
            )
            .map_err(ProtectInputError::ConfiguredCertificate)?
        }
    };
    Recipient::from_certificate(&cert).map_err(|source| ProtectInputError::Recipient {
        subject: cert.subject().to_string(),
        source,
    })
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
                .ok_or_else(|| ProtectInputError::UnsetVariable { name: name.clone() })?,
        ),
        ValueSource::File(path) => {
            read_secret_file(path).map_err(|source| ProtectInputError::ValueFile {
                path: path.clone(),
                source,
            })?
        }
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
                    .map_err(ProtectIoError::Stdin)?;
            } else {
                stdin
                    .lock()
                    .read_to_string(&mut text)
                    .map_err(ProtectIoError::Stdin)?;
            }
            Zeroizing::new(without_final_line_break(&text).to_string())
        }
    };
    if value.is_empty() {
        return Err(ProtectInputError::EmptyValue.into());
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
fn write_private(path: &Path, document: &serde_json::Value) -> Result<(), ProtectIoError> {
    let io = |source: std::io::Error| ProtectIoError::Write {
        file: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string_pretty(document)?;
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
