//! Layered `appsettings` configuration, as .NET applications read it.
//!
//! Order (later wins): `appsettings.json`, `appsettings.{Environment}.json` (environment from
//! `ASPNETCORE_ENVIRONMENT`, else `DOTNET_ENVIRONMENT`, default `Production`), environment variables with
//! `__` (or `:`) as the section separator, then command-line overrides. Keys are case-insensitive.
//!
//! Who uses it: both apps (`identity-server`, `agent`) read their settings through it. Why a crate of its
//! own: existing deployments keep their `appsettings.json` files, so both apps must layer them exactly as
//! .NET does, with one list of known keys each and the same protected-settings rules.
//!
//! # Layout
//! - [`Config`]: the flattened, merged key/value view (`Section:Key` paths, as .NET's
//!   `IConfiguration` sees them, arrays as `Key:0`, `Key:1`).
//! - [`Key`] ([`keys`](mod@keys)): one declaration per key (path, kind, default, range, meaning); an application's
//!   table of them is both its [`Schema`] and what its settings code reads with [`Config::number`] and
//!   [`Config::flag`], so the two cannot drift apart.
//! - [`Schema`]: the keys an application knows; anything else is reported with a "did you mean".
//! - [`ConfigError`]: one problem, naming the key and where it came from. Values of keys whose name contains
//!   `password` or `secret`, and values that were protected, are never printed.
//! - [`protected`]: encrypted settings files (`appsettings.encrypted.json`), `...File` settings and
//!   systemd credentials, so that secrets need not sit in clear JSON.
//! - [`password`]: `--X-env VAR` / `--X-file FILE` password sources of the commands (never the command
//!   line itself).
//! - [`log_escape`]: the log writer of both apps, which escapes control characters so that no value
//!   a client sends can forge a log line (defined in `ids_runtime`, whose logging set-up uses it;
//!   re-exported here so that its old path keeps working).

pub mod appsettings;
mod json;
pub mod keys;
pub use ids_runtime::log_escape;
pub mod password;
pub mod protected;
mod schema;

pub use json::relax_json;
pub use keys::{Key, Kind};
pub use schema::Schema;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Environment(String),
    CommandLine(String),
    /// Read from `file`, named by the `...File` setting `key`.
    SecretFile {
        key: String,
        file: PathBuf,
    },
    /// A systemd credential (a file of `$CREDENTIALS_DIRECTORY`).
    Credential(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Environment(name) => write!(f, "environment variable {name}"),
            Origin::CommandLine(flag) => write!(f, "command-line option {flag}"),
            Origin::SecretFile { key, file } => write!(f, "{} (named by {key})", file.display()),
            Origin::Credential(file) => write!(f, "credential {}", file.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One leaf setting. `Debug` hides the value of keys that look secret.
#[derive(Clone)]
pub struct Setting {
    /// The path as written (`IdentityServer:X509KeyFilePath`).
    pub path: String,
    /// JSON strings as they are; numbers and booleans in their JSON spelling; `null` is absent.
    pub value: String,
    pub origin: Origin,
    /// The value was protected (an encrypted settings file, a `...File` setting, a credential): it is
    /// treated as a secret whatever the key's name.
    pub protected: bool,
}

impl Setting {
    /// True when the key's name says it holds a secret (`...Password`, `...Secret`, a connection
    /// string), or its value was
    /// protected.
    pub fn is_secret(&self) -> bool {
        if self.protected {
            return true;
        }
        let lower = self.path.to_lowercase();
        // `OpenId:OpenIdClients[:<client>]` holds the agent's plain client secrets; a connection
        // string (`Store:ConnectionString`, .NET's `ConnectionStrings`) may hold a password.
        lower.contains("password")
            || lower.contains("secret")
            || lower.contains("connectionstring")
            || lower.split(':').any(|section| section == "openidclients")
    }
}

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if self.is_secret() {
            &"<redacted>"
        } else {
            &self.value
        };
        f.debug_struct("Setting")
            .field("path", &self.path)
            .field("value", value)
            .field("origin", &self.origin)
            .finish()
    }
}

/// A problem with the configuration. Never contains a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    #[error("{file}:{line}:{column}: invalid JSON: {reason}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{file}: the top level must be a JSON object")]
    NotAnObject { file: String },
    #[error("unknown setting `{path}` (in {origin}){hint}")]
    UnknownKey {
        path: String,
        origin: String,
        hint: String,
    },
    #[error("setting `{path}` (in {origin}): {message}")]
    Invalid {
        path: String,
        origin: String,
        message: String,
    },
    #[error("setting `{path}` is required: {message}")]
    Missing { path: String, message: String },
}

/// A top-level section the application does not use, and the files (or variables) it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredSection {
    pub name: String,
    pub origins: Vec<String>,
}

impl fmt::Display for IgnoredSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (in {})", self.name, self.origins.join(", "))
    }
}

/// One line listing the ignored sections, or `None` when there are none.
pub fn describe_ignored(sections: &[IgnoredSection], app: &str) -> Option<String> {
    if sections.is_empty() {
        return None;
    }
    let list: Vec<String> = sections.iter().map(ToString::to_string).collect();
    Some(format!(
        "ignored: not used by this {app}: {}",
        list.join("; ")
    ))
}

fn top_section(path: &str) -> &str {
    path.split(':').next().unwrap_or_default()
}

/// The merged configuration.
#[derive(Clone, Debug, Default)]
pub struct Config {
    dir: PathBuf,
    environment: String,
    files: Vec<PathBuf>,
    /// Keyed by the lower-cased path.
    settings: BTreeMap<String, Setting>,
    /// What the application looked up ([`Config::reads`]).
    reads: keys::Reads,
}

/// `appsettings` -> `appsettings.encrypted`, `appsettings.agent` -> `appsettings.encrypted.agent` (the
/// vendor's names for the protected counterparts of its settings files).
pub fn encrypted_name(base: &str) -> String {
    match base.split_once('.') {
        Some((first, rest)) => format!("{first}.encrypted.{rest}"),
        None => format!("{base}.encrypted"),
    }
}

/// The environment name used to pick `appsettings.{Environment}.json`.
pub fn environment_name(vars: &[(String, String)]) -> String {
    let get = |name: &str| {
        vars.iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(name) && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    get("ASPNETCORE_ENVIRONMENT")
        .or_else(|| get("DOTNET_ENVIRONMENT"))
        .unwrap_or_else(|| "Production".to_string())
}

impl Config {
    /// Loads `dir/{base_name}.json` (required unless `required` is false), the environment file and the
    /// environment variables in `vars` whose first section is one of `schema`'s top-level sections.
    pub fn load(
        dir: &Path,
        base_name: &str,
        required: bool,
        vars: &[(String, String)],
        schema: &Schema,
    ) -> Result<Config, Vec<ConfigError>> {
        Self::load_layers(dir, &[(base_name, required)], vars, schema)
    }

    /// Loads several base files (for the agent: `appsettings` and `appsettings.agent`) in order, each
    /// followed by its encrypted counterpart (`appsettings.encrypted.json`, `appsettings.encrypted.agent.json`),
    /// then their `{base}.{Environment}.json` files in the same order, then the environment variables, then
    /// the systemd credentials: later layers override earlier ones, as .NET configuration providers do.
    /// Finally `...File` settings are read and protected values decrypted ([`protected`]).
    pub fn load_layers(
        dir: &Path,
        bases: &[(&str, bool)],
        vars: &[(String, String)],
        schema: &Schema,
    ) -> Result<Config, Vec<ConfigError>> {
        Self::load_layers_with(dir, bases, vars, schema, true)
    }

    /// [`Config::load_layers`] without the encrypted settings files and without decrypting anything:
    /// what `protect` needs to find the `EncryptionCertificate` (even when an encrypted file is damaged).
    pub fn load_plain_layers(
        dir: &Path,
        bases: &[(&str, bool)],
        vars: &[(String, String)],
        schema: &Schema,
    ) -> Result<Config, Vec<ConfigError>> {
        Self::load_layers_with(dir, bases, vars, schema, false)
    }

    fn load_layers_with(
        dir: &Path,
        bases: &[(&str, bool)],
        vars: &[(String, String)],
        schema: &Schema,
        protected: bool,
    ) -> Result<Config, Vec<ConfigError>> {
        let environment = environment_name(vars);
        let mut config = Config {
            dir: dir.to_path_buf(),
            environment: environment.clone(),
            ..Config::default()
        };
        let mut errors = Vec::new();
        // (file, required, encrypted): every value of an encrypted file must be a protected one.
        let main = bases.iter().flat_map(|(base, must)| {
            let encrypted = dir.join(format!("{}.json", encrypted_name(base)));
            std::iter::once((dir.join(format!("{base}.json")), *must, false))
                .chain(protected.then_some((encrypted, false, true)))
        });
        let env_files = bases
            .iter()
            .map(|(base, _)| (dir.join(format!("{base}.{environment}.json")), false, false));
        for (file, must, encrypted) in main.chain(env_files).collect::<Vec<_>>() {
            match std::fs::read_to_string(&file) {
                Ok(text) => match config.add_json(&file, &text) {
                    Ok(()) if encrypted => {
                        let found = config.clear_values_from(&file);
                        if found.is_empty() {
                            config.files.push(file);
                        }
                        errors.extend(found);
                    }
                    Ok(()) => config.files.push(file),
                    Err(e) => errors.push(e),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must => {}
                Err(e) => errors.push(ConfigError::Io {
                    file: file.display().to_string(),
                    reason: e.to_string(),
                }),
            }
        }
        config.add_environment(vars, schema);
        errors.extend(config.add_credentials(vars, schema));
        errors.extend(config.read_secret_files(schema));
        if errors.is_empty() && protected {
            errors.extend(config.unprotect());
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// An empty configuration rooted at `dir` (tests build settings on top of it).
    pub fn empty(dir: &Path) -> Config {
        Config {
            dir: dir.to_path_buf(),
            environment: "Production".into(),
            ..Config::default()
        }
    }

    /// Merges one JSON document.
    pub fn add_json(&mut self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = relax_json(text);
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ConfigError::Json {
                file: file.display().to_string(),
                line: e.line(),
                column: e.column(),
                reason: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(ConfigError::NotAnObject {
                file: file.display().to_string(),
            });
        };
        let origin = Origin::File(file.to_path_buf());
        for (k, v) in map {
            self.flatten(k, v, &origin);
        }
        Ok(())
    }

    fn flatten(&mut self, path: String, value: serde_json::Value, origin: &Origin) {
        use serde_json::Value as V;
        match value {
            V::Object(map) => {
                // A section replaces a scalar of the same name; children merge key by key.
                self.settings.remove(&path.to_lowercase());
                for (k, v) in map {
                    self.flatten(format!("{path}:{k}"), v, origin);
                }
            }
            V::Array(items) => {
                // As in .NET, an array is the keys `path:0`, `path:1`...: a later layer overrides element by
                // element, and a shorter array leaves the earlier layer's extra elements in place.
                self.settings.remove(&path.to_lowercase());
                for (i, v) in items.into_iter().enumerate() {
                    self.flatten(format!("{path}:{i}"), v, origin);
                }
            }
            V::Null => {
                self.settings.remove(&path.to_lowercase());
            }
            V::String(s) => self.set(path, s, origin.clone()),
            V::Bool(b) => self.set(path, b.to_string(), origin.clone()),
            V::Number(n) => self.set(path, n.to_string(), origin.clone()),
        }
    }

    /// Sets one value (used for environment variables and command-line overrides).
    pub fn set(&mut self, path: String, value: String, origin: Origin) {
        self.settings.insert(
            path.to_lowercase(),
            Setting {
                path,
                value,
                origin,
                protected: false,
            },
        );
    }

    fn add_environment(&mut self, vars: &[(String, String)], schema: &Schema) {
        for (name, value) in vars {
            let path = name.replace("__", ":");
            let first = path.split(':').next().unwrap_or_default();
            if schema.has_section(first) {
                self.set(path, value.clone(), Origin::Environment(name.clone()));
            }
        }
    }

    /// Reports every key the schema does not know inside the sections it owns (a misspelt key there is
    /// an error, with a "did you mean"), and every top-level section whose name is a near miss of an
    /// owned one (`IdentityServr`). Other top-level sections belong to other software sharing the file
    /// (the vendor's `Connections`, `License`, `Scheduler`...): see [`Config::ignored_sections`].
    pub fn check_unknown(&self, schema: &Schema) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut near_misses: Vec<String> = Vec::new();
        for s in self.settings.values().filter(|s| !schema.knows(&s.path)) {
            let section = top_section(&s.path);
            if schema.has_section(section) {
                errors.push(ConfigError::UnknownKey {
                    path: s.path.clone(),
                    origin: s.origin.to_string(),
                    hint: schema
                        .suggest(&s.path)
                        .map(|p| format!("; did you mean `{p}`?"))
                        .unwrap_or_default(),
                });
            } else if let Some(owned) = schema.near_section(section) {
                if near_misses.iter().any(|n| n.eq_ignore_ascii_case(section)) {
                    continue;
                }
                near_misses.push(section.to_string());
                errors.push(ConfigError::UnknownKey {
                    path: section.to_string(),
                    origin: s.origin.to_string(),
                    hint: format!("; did you mean the section `{owned}`?"),
                });
            }
        }
        errors
    }

    /// The top-level sections this application does not use (owned by other software sharing the
    /// file), once each, with where they were first seen: "ignored: not used by this server".
    pub fn ignored_sections(&self, schema: &Schema) -> Vec<IgnoredSection> {
        let mut out: Vec<IgnoredSection> = Vec::new();
        for s in self.settings.values() {
            let section = top_section(&s.path);
            if schema.has_section(section) || schema.near_section(section).is_some() {
                continue;
            }
            match out
                .iter_mut()
                .find(|i| i.name.eq_ignore_ascii_case(section))
            {
                Some(known) => {
                    let origin = s.origin.to_string();
                    if !known.origins.contains(&origin) {
                        known.origins.push(origin);
                    }
                }
                None => out.push(IgnoredSection {
                    name: section.to_string(),
                    origins: vec![s.origin.to_string()],
                }),
            }
        }
        out
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn environment(&self) -> &str {
        &self.environment
    }
    /// The files that were read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every setting below the section `path` (case-insensitive), in key order.
    pub fn below(&self, path: &str) -> Vec<&Setting> {
        self.reads.record(path);
        let prefix = format!("{}:", path.to_lowercase());
        self.settings
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| s)
            .collect()
    }

    /// The setting at `path` (case-insensitive), if any and not empty.
    pub fn get(&self, path: &str) -> Option<&Setting> {
        self.reads.record(path);
        self.settings.get(&path.to_lowercase())
    }

    /// The first setting at or below `path` (in key order), to point at a whole section in messages.
    pub fn first_below(&self, path: &str) -> Option<&Setting> {
        self.reads.record(path);
        let prefix = format!("{}:", path.to_lowercase());
        self.settings
            .iter()
            .find(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
    }

    /// A string value; empty strings count as unset.
    pub fn string(&self, path: &str) -> Option<String> {
        self.get(path)
            .map(|s| s.value.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// A boolean (`true`/`false`, any case, as .NET accepts).
    pub fn bool(&self, path: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(path) {
            None => Ok(default),
            Some(s) => match s.value.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(s, "expected `true` or `false`")),
            },
        }
    }

    /// A whole number within `min..=max`.
    pub fn u64_in(&self, path: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        match self.get(path) {
            None => Ok(default),
            Some(s) => match s.value.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(invalid(
                    s,
                    &format!("expected a whole number between {min} and {max}"),
                )),
            },
        }
    }

    /// The elements of an array (`Key:0`, `Key:1`, ...), in index order; a plain string value is split on `;`
    /// (so `IdentityServer__ValidationKeys="a.crt;b.crt"` works from the environment).
    pub fn list(&self, path: &str) -> Vec<Setting> {
        if let Some(scalar) = self.get(path) {
            return scalar
                .value
                .split(';')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Setting {
                    path: scalar.path.clone(),
                    value: v.to_string(),
                    origin: scalar.origin.clone(),
                    protected: scalar.protected,
                })
                .collect();
        }
        self.list_elements(path)
    }

    fn list_elements(&self, path: &str) -> Vec<Setting> {
        self.reads.record(path);
        let prefix = format!("{}:", path.to_lowercase());
        let mut items: Vec<(usize, &Setting)> = self
            .settings
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&prefix)?;
                rest.parse::<usize>().ok().map(|i| (i, v))
            })
            .collect();
        items.sort_by_key(|(i, _)| *i);
        items.into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Resolves a path value against the configuration folder.
    pub fn resolve(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// A file path setting, resolved against the configuration folder.
    pub fn path(&self, path: &str) -> Option<PathBuf> {
        self.string(path).map(|v| self.resolve(&v))
    }
}

/// An error about a setting's value (the value is shown unless the key looks secret).
pub fn invalid(setting: &Setting, message: &str) -> ConfigError {
    let shown = if setting.is_secret() {
        String::new()
    } else {
        format!(" (got `{}`)", setting.value)
    };
    ConfigError::Invalid {
        path: setting.path.clone(),
        origin: setting.origin.to_string(),
        message: format!("{message}{shown}"),
    }
}

#[cfg(test)]
mod tests;
