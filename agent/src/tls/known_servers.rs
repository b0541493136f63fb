//! The agent's `known_servers` file (`Tls:ServerPinning: First`): the key each server presented the
//! first time the agent connected to it, as ssh's `known_hosts`.
//!
//! One line per server authority (`host:port` of the URL):
//!
//! ```text
//! localhost:8443 jwk-thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs 2026-11-22T14:00:00Z
//! ```
//!
//! the RFC 7638 JWK thumbprint of the server certificate's public key and when it was first seen
//! (RFC 3339). The key, not the certificate, is pinned: a server may renew its certificate with the same
//! key. Blank lines and lines starting with `#` are ignored, and kept when the file is rewritten.
//!
//! The file lives in the work folder (created 0700) and is rewritten atomically (temporary file,
//! fsync, rename) with mode 0600. Two processes pinning the same server at the same moment both write
//! the key they were shown; the last rename wins, and both keys passed the usual validation.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ids_seal::atomic::AtomicFile;
use ids_seal::atomic::create_private_folder;

/// The file's name in the work folder.
pub use crate::settings::KNOWN_SERVERS_FILE as FILE_NAME;

/// The only kind of value the file holds today (a second field keeps the format open).
const KIND: &str = "jwk-thumbprint";

const FORMAT: &str =
    "each line is `<host:port> jwk-thumbprint <RFC 7638 thumbprint> <RFC 3339 date first seen>`";

/// `known_servers` in `work_folder`.
pub fn path(work_folder: &Path) -> PathBuf {
    work_folder.join(FILE_NAME)
}

/// One pinned server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// `host:port`, lower-case.
    pub authority: String,
    /// RFC 7638 JWK thumbprint of the server's public key.
    pub thumbprint: String,
    /// RFC 3339 time the key was first seen.
    pub first_seen: String,
    /// 1-based line in the file; 0 when the pin could not be written (kept for this run only).
    pub line: usize,
}

/// A `known_servers` file that cannot be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum PinStoreError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot write {file}: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
    #[error(
        "{file} line {line}: {message}; {FORMAT} (delete the line to pin that server again at the next connection)"
    )]
    Malformed {
        file: String,
        line: usize,
        message: String,
    },
}

/// The pins in `text`, the content of `file` (named in errors).
pub fn parse(text: &str, file: &Path) -> Result<Vec<Pin>, PinStoreError> {
    let mut pins: Vec<Pin> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |message: String| PinStoreError::Malformed {
            file: file.display().to_string(),
            line,
            message,
        };
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let [authority, kind, thumbprint, first_seen] = fields[..] else {
            return Err(bad(format!("expected 4 fields, found {}", fields.len())));
        };
        if !kind.eq_ignore_ascii_case(KIND) {
            return Err(bad(format!("unknown kind `{kind}` (expected `{KIND}`)")));
        }
        if !is_authority(authority) {
            return Err(bad(format!("`{authority}` is not `host:port`")));
        }
        if !is_sha256_b64url(thumbprint) {
            return Err(bad(format!(
                "`{thumbprint}` is not a JWK thumbprint (43 base64url characters)"
            )));
        }
        if time::OffsetDateTime::parse(first_seen, &time::format_description::well_known::Rfc3339)
            .is_err()
        {
            return Err(bad(format!("`{first_seen}` is not an RFC 3339 date")));
        }
        let authority = authority.to_ascii_lowercase();
        if let Some(other) = pins.iter().find(|p| p.authority == authority) {
            return Err(bad(format!(
                "{authority} is already pinned on line {}; keep one of the two lines",
                other.line
            )));
        }
        pins.push(Pin {
            authority,
            thumbprint: thumbprint.to_string(),
            first_seen: first_seen.to_string(),
            line,
        });
    }
    Ok(pins)
}

/// The pins in `file`; none when it does not exist yet.
pub fn load(file: &Path) -> Result<Vec<Pin>, PinStoreError> {
    parse(&read(file)?, file)
}

/// Records `thumbprint` for `authority`, first seen at `first_seen` (RFC 3339), unless the file already
/// pins that authority (another process was faster): the pin the file then holds is returned.
pub fn add(
    file: &Path,
    authority: &str,
    thumbprint: &str,
    first_seen: &str,
) -> Result<Pin, PinStoreError> {
    let mut text = read(file)?;
    if let Some(pin) = parse(&text, file)?
        .into_iter()
        .find(|p| p.authority == authority)
    {
        return Ok(pin);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let line = text.lines().count() + 1;
    text.push_str(&format!("{authority} {KIND} {thumbprint} {first_seen}\n"));
    write(file, &text)?;
    Ok(Pin {
        authority: authority.to_string(),
        thumbprint: thumbprint.to_string(),
        first_seen: first_seen.to_string(),
        line,
    })
}

/// Removes the pin of `authority` (the other lines are kept as they are); returns it, or `None` when
/// the file does not pin that authority.
pub fn forget(file: &Path, authority: &str) -> Result<Option<Pin>, PinStoreError> {
    let text = read(file)?;
    let authority = authority.trim().to_ascii_lowercase();
    let Some(pin) = parse(&text, file)?
        .into_iter()
        .find(|p| p.authority == authority)
    else {
        return Ok(None);
    };
    let kept: String = text
        .lines()
        .enumerate()
        .filter(|(index, _)| index + 1 != pin.line)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    write(file, &kept)?;
    Ok(Some(pin))
}

/// The file's text; empty when it does not exist.
fn read(file: &Path) -> Result<String, PinStoreError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(PinStoreError::Read {
            file: file.display().to_string(),
            source,
        }),
    }
}

/// Replaces `file` with `text` atomically, mode 0600, creating its folder (0700) if needed.
fn write(file: &Path, text: &str) -> Result<(), PinStoreError> {
    let error = |source| PinStoreError::Write {
        file: file.display().to_string(),
        source,
    };
    if let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_folder(folder).map_err(error)?;
    }
    let mut out = AtomicFile::create(file, true).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(out.temp_path(), std::fs::Permissions::from_mode(0o600))
            .map_err(error)?;
    }
    out.write_all(text.as_bytes()).map_err(error)?;
    out.commit().map_err(error)
}

/// `host:port` with a non-empty host and a numeric port (`[::1]:8443` for IPv6).
fn is_authority(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok()
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
        }
        None => false,
    }
}

/// 32 bytes in base64url without padding.
fn is_sha256_b64url(text: &str) -> bool {
    text.len() == 43
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const B: &str = "0sQmm3hIL4-V5I6SAc9ZHRkrmXHN6-9n1lDEAY3QzOs";

    #[test]
    fn parses_pins_comments_and_blank_lines() {
        let text = format!(
            "# pinned by the agent\n\nlocalhost:8443 jwk-thumbprint {A} 2026-11-22T14:00:00Z\n  [::1]:443  JWK-THUMBPRINT {B} 2026-11-23T08:30:00+01:00\n"
        );
        let pins = parse(&text, Path::new("work/known_servers")).unwrap();
        assert_eq!(
            pins,
            vec![
                Pin {
                    authority: "localhost:8443".into(),
                    thumbprint: A.into(),
                    first_seen: "2026-11-22T14:00:00Z".into(),
                    line: 3,
                },
                Pin {
                    authority: "[::1]:443".into(),
                    thumbprint: B.into(),
                    first_seen: "2026-11-23T08:30:00+01:00".into(),
                    line: 4,
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_name_the_file_the_line_and_the_format() {
        let file = Path::new("work/known_servers");
        let line = |fields: &str| format!("{fields} 2026-11-22T14:00:00Z");
        let cases = [
            ("localhost:8443 jwk-thumbprint".to_string(), 2, "4 fields"),
            (
                line(&format!("localhost:8443 sha1 {A}")),
                2,
                "unknown kind `sha1`",
            ),
            (
                line(&format!("localhost jwk-thumbprint {A}")),
                2,
                "`localhost` is not `host:port`",
            ),
            (
                line("localhost:8443 jwk-thumbprint AB12"),
                2,
                "not a JWK thumbprint",
            ),
            (
                format!("localhost:8443 jwk-thumbprint {A} yesterday"),
                2,
                "not an RFC 3339 date",
            ),
            (
                format!(
                    "{}\n{}",
                    line(&format!("localhost:8443 jwk-thumbprint {A}")),
                    line(&format!("LOCALHOST:8443 jwk-thumbprint {B}"))
                ),
                3,
                "already pinned on line 2",
            ),
        ];
        for (text, at, expected) in cases {
            let text = format!("# comment\n{text}\n");
            let err = parse(&text, file).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                err.starts_with(&format!("work/known_servers line {at}: ")),
                "{err}"
            );
            assert!(err.contains("<host:port> jwk-thumbprint"), "{err}");
        }
    }

    #[test]
    fn add_writes_once_and_keeps_the_first_pin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("work").join(FILE_NAME);
        assert_eq!(load(&file).unwrap(), vec![]);

        let pin = add(&file, "localhost:8443", A, "2026-11-22T14:00:00Z").unwrap();
        assert_eq!(pin.line, 1);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("localhost:8443 jwk-thumbprint {A} 2026-11-22T14:00:00Z\n")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(&dir.path().join("work")), 0o700);
        }
        // Already pinned (another process was faster): the file's pin wins, nothing is written.
        let again = add(&file, "localhost:8443", B, "2026-11-23T00:00:00Z").unwrap();
        assert_eq!(again, pin);
        let other = add(&file, "ids.example.com:443", B, "2026-11-23T00:00:00Z").unwrap();
        assert_eq!(other.line, 2);
        assert_eq!(load(&file).unwrap().len(), 2);
        assert!(no_partial_files(file.parent().unwrap()));
    }

    #[test]
    fn forget_removes_only_that_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(
            &file,
            format!(
                "# mine\nlocalhost:8443 jwk-thumbprint {A} 2026-11-22T14:00:00Z\nids.example.com:443 jwk-thumbprint {B} 2026-11-22T14:00:00Z"
            ),
        )
        .unwrap();
        let removed = forget(&file, " LocalHost:8443 ").unwrap().unwrap();
        assert_eq!(removed.thumbprint, A);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# mine\nids.example.com:443 jwk-thumbprint {B} 2026-11-22T14:00:00Z\n")
        );
        assert_eq!(forget(&file, "localhost:8443").unwrap(), None);
        assert_eq!(
            forget(&dir.path().join("none"), "localhost:8443").unwrap(),
            None
        );
    }

    fn no_partial_files(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".partial"))
    }
}
