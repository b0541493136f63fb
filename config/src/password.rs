//! Where a password given to a command comes from: `--X-env VAR` (an environment variable) or
//! `--X-file FILE` (the first line of a file), never the command line itself, which `ps` and the
//! shell's history would show. One reader for every command that takes one (`ids-keytool`'s
//! passphrases and PFX passwords, the agent's `--password-env`/`--password-file`).
//!
//! The errors carry what went wrong (which variable, which file, the I/O error); each command renders
//! them with its own flag names, at its edge.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The source of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// No password given (read as an empty one).
    None,
    /// `--X-env VAR`: the value of the environment variable.
    Env(String),
    /// `--X-file FILE`: the first line of the file, without its line ending.
    File(PathBuf),
}

/// Why a password cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the environment variable `{var}` is not set")]
    EnvNotSet { var: String },
    #[error("the environment variable `{var}` is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("{}: cannot read the file: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PasswordSource {
    /// The source `--X-env` or else `--X-file` names (command lines let only one be given).
    pub fn from_args(env: Option<String>, file: Option<PathBuf>) -> Self {
        match (env, file) {
            (Some(var), _) => PasswordSource::Env(var),
            (None, Some(file)) => PasswordSource::File(file),
            (None, None) => PasswordSource::None,
        }
    }

    /// Reads the password; [`PasswordSource::None`] reads as an empty one.
    pub fn read(&self) -> Result<Zeroizing<String>, PasswordError> {
        match self {
            PasswordSource::None => Ok(Zeroizing::new(String::new())),
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(value) => Ok(Zeroizing::new(value)),
                Err(std::env::VarError::NotPresent) => {
                    Err(PasswordError::EnvNotSet { var: var.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(PasswordError::EnvNotUnicode { var: var.clone() })
                }
            },
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
        let dir = std::env::temp_dir().join(format!("ids-config-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("pw");
        std::fs::write(&path, "s3cret\r\nsecond line\n").expect("write");
        let source = PasswordSource::from_args(None, Some(path.clone()));
        assert_eq!(source.read().expect("read").as_str(), "s3cret");
        std::fs::write(&path, "").expect("write");
        assert_eq!(source.read().expect("read").as_str(), "");
        let missing = PasswordSource::File(dir.join("missing"));
        assert!(matches!(
            missing.read(),
            Err(PasswordError::File { ref path, .. }) if path.ends_with("missing")
        ));
        let unset = PasswordSource::Env("IDS_CONFIG_TEST_SURELY_UNSET".into());
        assert!(matches!(unset.read(), Err(PasswordError::EnvNotSet { .. })));
        assert_eq!(PasswordSource::None.read().expect("none").as_str(), "");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
