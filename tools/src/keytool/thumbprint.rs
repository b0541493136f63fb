//! `thumbprint`: RFC 7638 JWK thumbprints of key files, and certificate thumbprints.
//!
//! Output, one block per file (`--quiet`: the JWK thumbprints only, one per line):
//!
//! ```text
//! <file>
//!   kind: certificate
//!   jwk-thumbprint: <base64url>
//!   x5t#S256: <base64url>        (when the file holds a certificate)
//!   sha1: <HEX>                  (when the file holds a certificate: the Windows thumbprint)
//! ```

use std::io::Write;

use ids_pki::keyfile::{self, KeyFileError};

use super::files;
use super::{ThumbprintArgs, bad};

/// `ids-keytool thumbprint`. Every file is tried; failures are reported as they come, and make the
/// command fail (status 2) at the end.
pub fn thumbprint(args: &ThumbprintArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let password = files::secret(
        args.password_env.as_deref(),
        args.password_file.as_deref(),
        "password",
    )?;
    let mut failed = 0usize;
    for path in &args.files {
        let read = match keyfile::read_public(path, password.as_ref().map(|p| p.as_str())) {
            Ok(read) => read,
            Err(e) => {
                let message = match e {
                    KeyFileError::NeedsPassword { file } => format!(
                        "{file}: the file is protected by a password: give it with --password-env VAR or \
                         --password-file FILE"
                    ),
                    other => other.to_string(),
                };
                eprintln!("ids-keytool: {message}");
                failed += 1;
                continue;
            }
        };
        let thumbprint = read.jwk_thumbprint();
        if args.quiet {
            writeln!(out, "{thumbprint}")?;
            continue;
        }
        writeln!(out, "{}", path.display())?;
        writeln!(out, "  kind: {}", read.kind.as_str())?;
        writeln!(out, "  jwk-thumbprint: {thumbprint}")?;
        if let Some(cert) = &read.certificate {
            writeln!(out, "  x5t#S256: {}", cert.x5t_s256())?;
            writeln!(out, "  sha1: {}", cert.sha1_hex())?;
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(bad(format!(
            "{} of {} file(s) could not be read (reported above)",
            failed,
            args.files.len()
        )))
    }
}
