//! The keys an application knows, as patterns, with the "did you mean" for those it does not.
//! Applications build theirs from their key declarations ([`crate::keys`]), so that the keys the
//! schema accepts and the keys the code reads are one list.

use ids_runtime::suggest::closest;

use crate::protected;

/// The keys an application understands. Patterns are `:`-separated; `*` matches one segment and a
/// trailing `**` matches anything below (sections owned by other software, such as `Logging`).
#[derive(Clone, Debug, Default)]
pub struct Schema {
    patterns: Vec<String>,
}

impl Schema {
    pub fn new(patterns: &[&str]) -> Self {
        Schema {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// True when a pattern starts with `section` (case-insensitive).
    pub fn has_section(&self, section: &str) -> bool {
        self.patterns.iter().any(|p| {
            p.split(':')
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case(section))
        })
    }

    /// The owned top-level section `section` is a near miss of, case-insensitively: edit distance 1 or 2
    /// for names of 5 characters or more (`IdentityServr` -> `IdentityServer`), 1 for shorter ones of 3
    /// or 4 (`Url` -> `Urls`). Shorter names, and other software's sections (`Connections`, `License`,
    /// `Cors`, `Jobs`...), are further away.
    pub fn near_section(&self, section: &str) -> Option<String> {
        let length = section.chars().count();
        let allowed = match length {
            0..=2 => return None,
            3 | 4 => 1,
            _ => 2,
        };
        let lower = section.to_lowercase();
        // A near miss, not the section itself (distance 0).
        let owned = self
            .patterns
            .iter()
            .filter_map(|p| p.split(':').next())
            .filter(|owned| owned.chars().count() >= 3 && owned.to_lowercase() != lower);
        closest(section, owned, allowed).map(str::to_string)
    }

    /// True when `path` is one of the schema's literal keys (no `*`/`**` pattern involved).
    pub fn knows_literally(&self, path: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| !p.contains('*') && p.eq_ignore_ascii_case(path))
    }

    pub fn knows(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| matches(p, path))
            || protected::secret_file_target(path, self).is_some()
    }

    /// The closest known key to a mistyped one (edit distance on the whole path).
    pub fn suggest(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split(':').collect();
        let filled: Vec<String> = self
            .patterns
            .iter()
            .filter(|p| !p.ends_with("**"))
            .map(|p| {
                // Fill wildcards with the user's own segments so `Kestrel:Endpoints:Https:Ulr` compares well.
                let filled: Vec<&str> = p
                    .split(':')
                    .enumerate()
                    .map(|(i, s)| {
                        if s == "*" {
                            segments.get(i).copied().unwrap_or("*")
                        } else {
                            s
                        }
                    })
                    .collect();
                filled.join(":")
            })
            .collect();
        closest(path, filled.iter().map(String::as_str), 3).map(str::to_string)
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split(':');
    let mut segs = path.split(':');
    loop {
        match (pat.next(), segs.next()) {
            (Some("**"), _) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p.eq_ignore_ascii_case(s) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
