//! Key declarations: each setting an application knows is declared once, with its path, kind, default,
//! range and a one-line meaning.
//!
//! Why: the list of known keys (the [`Schema`] that [`Config::check_unknown`] checks against) used to be
//! a list of strings beside the code that read the keys, with defaults and ranges written again at each
//! read. A key could be read and not listed (then refused as unknown), listed and never read (silently
//! ignored), or read with two defaults. Now an application declares a table of [`Key`]s with
//! [`crate::keys!`], builds its schema from that table ([`Schema::from_keys`]) and reads numbers and
//! switches through the same constants ([`Config::number`], [`Config::flag`]). [`Config::reads`] records
//! what was looked up, so a unit test can show that every declared key is read.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use crate::{Config, ConfigError, Schema};

/// What a key holds, and so which paths it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number within `min..=max`; `default` is `None` when the application computes it (from
    /// the CPU count, another setting...).
    Number {
        default: Option<u64>,
        min: u64,
        max: u64,
    },
    /// `true` or `false`; `default` is `None` when each application chooses its own.
    Flag { default: Option<bool> },
    /// A string: a path, a URL, a name, one of a few words.
    Text,
    /// An array (`Key:0`, `Key:1`...) or a `;`-separated string: the paths `Key` and `Key:*`.
    List,
    /// A map of names the operator chooses to values: the paths `Key:*`.
    Map,
    /// A whole section owned by other software, or read only to be refused: the paths `Key:**`.
    Section,
}

/// One setting's declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The path as documented (`IdentityServer:AccessTokenLifetime`); case does not matter when read.
    pub path: &'static str,
    pub kind: Kind,
    /// What it means, in one line (for `check` and the documentation).
    pub meaning: &'static str,
}

impl Key {
    /// A whole number in `range`, `default` when unset.
    pub const fn number(
        path: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
        meaning: &'static str,
    ) -> Key {
        Key::number_with(path, Some(default), range, meaning)
    }

    /// A whole number in `range` whose default the application computes (read with
    /// [`Config::number_or`]).
    pub const fn computed_number(
        path: &'static str,
        range: RangeInclusive<u64>,
        meaning: &'static str,
    ) -> Key {
        Key::number_with(path, None, range, meaning)
    }

    const fn number_with(
        path: &'static str,
        default: Option<u64>,
        range: RangeInclusive<u64>,
        meaning: &'static str,
    ) -> Key {
        Key {
            path,
            kind: Kind::Number {
                default,
                min: *range.start(),
                max: *range.end(),
            },
            meaning,
        }
    }

    /// `true` or `false`, `default` when unset.
    pub const fn flag(path: &'static str, default: bool, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::Flag {
                default: Some(default),
            },
            meaning,
        }
    }

    /// `true` or `false`, with a default each application chooses (read with [`Config::flag_or`]).
    pub const fn app_flag(path: &'static str, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::Flag { default: None },
            meaning,
        }
    }

    pub const fn text(path: &'static str, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::Text,
            meaning,
        }
    }

    pub const fn list(path: &'static str, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::List,
            meaning,
        }
    }

    pub const fn map(path: &'static str, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::Map,
            meaning,
        }
    }

    pub const fn section(path: &'static str, meaning: &'static str) -> Key {
        Key {
            path,
            kind: Kind::Section,
            meaning,
        }
    }

    /// The schema patterns this key covers, in order.
    pub fn patterns(&self) -> Vec<String> {
        match self.kind {
            Kind::Number { .. } | Kind::Flag { .. } | Kind::Text => vec![self.path.to_string()],
            Kind::List => vec![self.path.to_string(), format!("{}:*", self.path)],
            Kind::Map => vec![format!("{}:*", self.path)],
            Kind::Section => vec![format!("{}:**", self.path)],
        }
    }

    /// The declared default of a number (0 for a computed one, which is read with a default).
    pub fn default_number(&self) -> u64 {
        match self.kind {
            Kind::Number { default, .. } => default.unwrap_or(0),
            _ => 0,
        }
    }
}

/// Declares an application's keys: one `pub const` per key and a slice of them all, in order (the
/// order of the schema, which decides between equally close "did you mean" suggestions).
///
/// ```
/// ids_config::keys! {
///     /// Every key of the example.
///     pub const ALL;
///     LIFETIME = number("Example:LifetimeSeconds", 60, 1..=3600, "how long a thing lives");
///     NAME = text("Example:Name", "what it is called");
/// }
/// assert_eq!(ALL.len(), 2);
/// assert_eq!(LIFETIME.default_number(), 60);
/// ```
#[macro_export]
macro_rules! keys {
    (
        $(#[$all_meta:meta])*
        $vis:vis const $all:ident;
        $( $(#[$meta:meta])* $name:ident = $ctor:ident ( $($arg:expr),* $(,)? ); )*
    ) => {
        $( $(#[$meta])* $vis const $name: $crate::Key = $crate::Key::$ctor($($arg),*); )*
        $(#[$all_meta])*
        $vis const $all: &[$crate::Key] = &[$($name),*];
    };
}

impl Schema {
    /// The schema of these key tables, in order.
    pub fn from_keys(tables: &[&[Key]]) -> Schema {
        let patterns: Vec<String> = tables
            .iter()
            .flat_map(|table| table.iter())
            .flat_map(Key::patterns)
            .collect();
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        Schema::new(&refs)
    }
}

impl Schema {
    /// The paths of those `keys` (some pattern of theirs, with `*` and `**` filled in) this schema does
    /// not know: empty when a schema built from the declarations covers them all.
    pub fn unknown_keys<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<&'static str> {
        keys.into_iter()
            .filter(|key| {
                key.patterns().iter().any(|pattern| {
                    let example = pattern.replace("**", "X").replace('*', "x");
                    !self.knows(&example)
                })
            })
            .map(|key| key.path)
            .collect()
    }
}

impl Config {
    /// A configuration rooted at a folder that does not exist, holding `values` (for the unit tests that
    /// run an application's settings pass on chosen keys).
    pub fn with_values(values: &[(&str, &str)]) -> Config {
        let mut config = Config::empty(std::path::Path::new("/nonexistent"));
        for (key, value) in values {
            config.set(key.to_string(), value.to_string(), crate::Origin::Default);
        }
        config
    }
}

/// Where an application's declarations and the code that reads them disagree: what its unit test
/// asserts is empty ([`ReadAudit::default`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadAudit {
    /// Declared keys nobody read (and not listed as not read): accepted and forgotten.
    pub unread: Vec<&'static str>,
    /// Keys listed as not read that were read anyway.
    pub read_anyway: Vec<&'static str>,
}

impl ReadAudit {
    /// Compares the `declared` keys, those the application lists as accepted and `not_read`, with the
    /// paths its settings pass looked up (`reads`, from [`Config::reads`]).
    pub fn new<'a>(
        declared: impl IntoIterator<Item = &'a Key>,
        not_read: &[Key],
        reads: &BTreeSet<String>,
    ) -> ReadAudit {
        ReadAudit {
            unread: declared
                .into_iter()
                .filter(|k| !not_read.contains(k) && !was_read(k, reads))
                .map(|k| k.path)
                .collect(),
            read_anyway: not_read
                .iter()
                .filter(|k| was_read(k, reads))
                .map(|k| k.path)
                .collect(),
        }
    }
}

/// The paths a [`Config`] was asked for (lower-cased), shared by its clones.
#[derive(Clone, Default)]
pub(crate) struct Reads(Arc<Mutex<BTreeSet<String>>>);

impl Reads {
    pub(crate) fn record(&self, path: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(path.to_lowercase());
        }
    }

    fn snapshot(&self) -> BTreeSet<String> {
        self.0.lock().map(|set| set.clone()).unwrap_or_default()
    }
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reads")
    }
}

impl Config {
    /// A whole number declared by `key`, its declared default when unset.
    pub fn number(&self, key: &Key) -> Result<u64, ConfigError> {
        self.number_or(key, key.default_number())
    }

    /// A whole number declared by `key`, `default` when unset (for defaults computed at run time).
    pub fn number_or(&self, key: &Key, default: u64) -> Result<u64, ConfigError> {
        let (min, max) = match key.kind {
            Kind::Number { min, max, .. } => (min, max),
            _ => (0, u64::MAX),
        };
        self.u64_in(key.path, default, min, max)
    }

    /// A switch declared by `key`, its declared default when unset.
    pub fn flag(&self, key: &Key) -> Result<bool, ConfigError> {
        let default = match key.kind {
            Kind::Flag { default } => default.unwrap_or(false),
            _ => false,
        };
        self.bool(key.path, default)
    }

    /// A switch declared by `key`, `default` when unset.
    pub fn flag_or(&self, key: &Key, default: bool) -> Result<bool, ConfigError> {
        self.bool(key.path, default)
    }

    /// Every path this configuration (or a clone of it) was asked for so far, lower-cased: what a test
    /// compares with the declarations to find keys nobody reads.
    pub fn reads(&self) -> BTreeSet<String> {
        self.reads.snapshot()
    }
}

/// The number `key` declares, or its declared default with the error recorded in `errors` (so that
/// every problem is reported, and the default is written once).
pub fn number(config: &Config, key: &Key, errors: &mut Vec<ConfigError>) -> u64 {
    take(errors, config.number(key)).unwrap_or(key.default_number())
}

/// The switch `key` declares, or its declared default with the error recorded in `errors`.
pub fn flag(config: &Config, key: &Key, errors: &mut Vec<ConfigError>) -> bool {
    let default = match key.kind {
        Kind::Flag { default } => default.unwrap_or(false),
        _ => false,
    };
    take(errors, config.bool(key.path, default)).unwrap_or(default)
}

/// True when one of `reads` is covered by `key` (the key itself, or an element of a list or map).
pub fn was_read(key: &Key, reads: &BTreeSet<String>) -> bool {
    let path = key.path.to_lowercase();
    reads.contains(&path)
        || matches!(key.kind, Kind::List | Kind::Map | Kind::Section)
            && reads.iter().any(|r| {
                r.strip_prefix(&path)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
}

/// Keeps a validation result, or records its error and returns `None`, so that every problem is reported.
pub fn take<T>(errors: &mut Vec<ConfigError>, result: Result<T, ConfigError>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;
    use std::path::Path;

    crate::keys! {
        const ALL;
        LIFETIME = number("A:Lifetime", 60, 1..=3600, "seconds");
        ON = flag("A:On", true, "a switch");
        FILES = list("A:Files", "files");
        CLIENTS = map("A:Clients", "id to secret");
        LOGGING = section("Logging", "another program's");
    }

    #[test]
    fn declarations_make_the_schema_and_the_reads() {
        let schema = Schema::from_keys(&[ALL]);
        for path in [
            "A:Lifetime",
            "a:on",
            "A:Files",
            "A:Files:0",
            "A:Clients:x",
            "Logging:X:Y",
        ] {
            assert!(schema.knows(path), "{path}");
        }
        assert!(!schema.knows("A:Clients"));
        let mut config = Config::empty(Path::new("/tmp"));
        assert_eq!(config.number(&LIFETIME), Ok(60));
        assert_eq!(config.flag(&ON), Ok(true));
        config.set("A:Lifetime".into(), "0".into(), Origin::Default);
        let text = config.number(&LIFETIME).expect_err("range").to_string();
        assert!(text.contains("between 1 and 3600"), "{text}");
        let _ = config.list(FILES.path);
        let reads = config.reads();
        assert!(was_read(&LIFETIME, &reads) && was_read(&ON, &reads));
        assert!(was_read(&FILES, &reads));
        assert!(!was_read(&CLIENTS, &reads));
        assert_eq!(schema.unknown_keys(ALL), Vec::<&str>::new());
        assert_eq!(
            Schema::from_keys(&[&ALL[1..]]).unknown_keys(ALL),
            ["A:Lifetime"]
        );
        let audit = ReadAudit::new(ALL, &[LOGGING, FILES], &reads);
        assert_eq!(audit.unread, ["A:Clients"]);
        assert_eq!(audit.read_anyway, ["A:Files"]);
    }
}
