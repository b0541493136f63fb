//! Secrets from environment variables and files, output files (atomic, 0600 private / 0644 public,
//! never replaced without `--force`), key folders and the host name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ids_config::password::{PasswordError, PasswordSource};
use ids_seal::atomic::{AtomicFile, create_private_folder};
use zeroize::Zeroizing;

use super::bad;

/// Length of generated PFX passwords (62 symbols: ~143 bits).
const GENERATED_PASSWORD_LEN: usize = 24;

/// A secret named by `--X-env VAR` or `--X-file FILE` (`flag` is `X`, for messages). `None` when
/// neither is given. A file's first line is the secret (a trailing newline is not part of it).
pub fn secret(
    env: Option<&str>,
    file: Option<&Path>,
    flag: &str,
) -> anyhow::Result<Option<Zeroizing<String>>> {
    let source = PasswordSource::from_args(env.map(str::to_string), file.map(Path::to_path_buf));
    let value = match source.read() {
        Ok(_) if source == PasswordSource::None => return Ok(None),
        Ok(value) => value,
        Err(e @ (PasswordError::EnvNotSet { .. } | PasswordError::EnvNotUnicode { .. })) => {
            return Err(bad(format!(
                "--{flag}-env {}: {e}",
                env.unwrap_or_default()
            )));
        }
        Err(e @ PasswordError::File { .. }) => return Err(bad(format!("--{flag}-file {e}"))),
    };
    if value.is_empty() {
        let source = match (env, file) {
            (Some(var), _) => format!("--{flag}-env {var}"),
            (_, Some(path)) => format!("--{flag}-file {}", path.display()),
            _ => format!("--{flag}"),
        };
        return Err(bad(format!("{source}: the {flag} is empty")));
    }
    Ok(Some(value))
}

/// A random password of letters and digits (rejection sampling: no modulo bias).
pub fn generate_password() -> anyhow::Result<Zeroizing<String>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut password = Zeroizing::new(String::with_capacity(GENERATED_PASSWORD_LEN));
    while password.len() < GENERATED_PASSWORD_LEN {
        let mut byte = [0u8; 1];
        aws_lc_rs::rand::SecureRandom::fill(&rng, &mut byte)
            .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
        // 248 = 4 * 62: bytes above are redrawn.
        if byte[0] < 248 {
            password.push(char::from(ALPHABET[usize::from(byte[0] % 62)]));
        }
    }
    Ok(password)
}

/// Who may read an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// 0600: private keys, passwords, PFX files.
    Private,
    /// 0644: certificates, public keys, requests.
    Public,
}

/// Refuses, before anything is written, to replace any of `paths` without `--force`.
pub fn check_free(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    for path in paths {
        if path.exists() {
            return Err(bad(format!(
                "{}: the file already exists; nothing was written (use --force to replace it)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with `access` permissions.
pub fn write(path: &Path, bytes: &[u8], access: Access, force: bool) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path, force).map_err(|e| write_error(path, e))?;
    file.write_all(bytes)
        .with_context(|| format!("{}: cannot write the file", path.display()))?;
    #[cfg(unix)]
    if access == Access::Public {
        use std::os::unix::fs::PermissionsExt as _;
        file.file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("{}: cannot set its permissions", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = access;
    file.commit().map_err(|e| write_error(path, e))
}

fn write_error(path: &Path, error: std::io::Error) -> anyhow::Error {
    match error.kind() {
        std::io::ErrorKind::AlreadyExists => bad(format!(
            "{}: the file already exists (use --force to replace it)",
            path.display()
        )),
        std::io::ErrorKind::NotFound => bad(format!(
            "{}: cannot create the file: its folder does not exist",
            path.display()
        )),
        _ => {
            anyhow::Error::new(error).context(format!("{}: cannot write the file", path.display()))
        }
    }
}

/// Creates an output folder (0700, with its parents) when missing.
pub fn output_folder(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    create_private_folder(dir)
        .map_err(|e| bad(format!("{}: cannot create the folder: {e}", dir.display())))
}

/// A folder for private keys, as ssh treats `~/.ssh`: created 0700 when missing, refused when group or
/// others may access it.
pub fn key_folder(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return create_private_folder(dir)
            .map_err(|e| bad(format!("{}: cannot create the folder: {e}", dir.display())));
    }
    if !dir.is_dir() {
        return Err(bad(format!("{}: not a folder", dir.display())));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)
            .map_err(|e| bad(format!("{}: {e}", dir.display())))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "{}: permissions {mode:04o} are too open for a folder of private keys (group or others \
                 can access it); run `chmod 700 {}` or choose another --dir",
                dir.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a file stem that would land outside the output folder or hide the file.
pub fn check_stem(stem: &str, what: &str) -> anyhow::Result<()> {
    if stem.is_empty()
        || stem.starts_with('.')
        || stem.contains(['/', '\\'])
        || stem.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} `{stem}`: not usable as a file name (no `/`, no leading `.`)"
        )));
    }
    Ok(())
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`).
pub fn host_name() -> anyhow::Result<String> {
    let from_file = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .ok_or_else(|| bad("cannot find this machine's host name: give it with --host NAME"))
}

/// `$HOME/.ids`.
pub fn default_key_folder() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".ids"))
        .ok_or_else(|| bad("$HOME is not set: give the key folder with --dir DIR"))
}
