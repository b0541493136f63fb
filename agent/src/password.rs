//! Where a password given on the command line comes from: an environment variable or the first line of
//! a file, never the command line itself (it would show in `ps` and in the shell's history).

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The source of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password (an empty one).
    None,
    /// `--password-env VAR`: the value of the environment variable.
    Env(String),
    /// `--password-file FILE`: the first line of the file, without its line ending.
    File(PathBuf),
}

/// Why the password cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("--password-env: the environment variable `{var}` is not set")]
    EnvNotSet { var: String },
    #[error("--password-file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PasswordSource {
    /// The source `--password-env` or else `--password-file` names (the command line lets only one
    /// be given).
    pub fn from_args(env: Option<String>, file: Option<PathBuf>) -> Self {
        match (env, file) {
            (Some(var), _) => PasswordSource::Env(var),
            (None, Some(file)) => PasswordSource::File(file),
            (None, None) => PasswordSource::None,
        }
    }

    /// Reads the password.
    pub fn read(&self) -> Result<Zeroizing<String>, PasswordError> {
        match self {
            PasswordSource::None => Ok(Zeroizing::new(String::new())),
            PasswordSource::Env(var) => std::env::var(var)
                .map(Zeroizing::new)
                .map_err(|_| PasswordError::EnvNotSet { var: var.clone() }),
            PasswordSource::File(path) => first_line(path),
        }
    }
}

fn first_line(path: &Path) -> Result<Zeroizing<String>, PasswordError> {
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| PasswordError::File {
                path: path.to_path_buf(),
                source,
            })?,
        );
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_the_file_without_its_line_ending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\r\nsecond line\n").expect("write");
        let source = PasswordSource::from_args(None, Some(path.clone()));
        assert_eq!(source.read().expect("read").as_str(), "s3cret");
        std::fs::write(&path, "").expect("write");
        assert_eq!(source.read().expect("read").as_str(), "");
        let missing = PasswordSource::File(dir.path().join("missing"));
        let e = missing.read().expect_err("missing");
        assert!(e.to_string().starts_with("--password-file "), "{e}");
        assert_eq!(PasswordSource::None.read().expect("none").as_str(), "");
    }
}
