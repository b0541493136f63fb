//! `csr`: a PKCS#10 request for a new or existing key; the private key never leaves this machine.

use std::io::Write;

use ids_devpki::LeafSpec;
use ids_pki::jwk;
use ids_pki::keyfile::{self, KeyFileError};

use super::files::{self, Access};
use super::{CsrArgs, bad, cert_error, key_error};

/// `ids-keytool csr`.
pub fn csr(args: &CsrArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let passphrase = files::secret(
        args.key_passphrase_env.as_deref(),
        args.key_passphrase_file.as_deref(),
        "key-passphrase",
    )?;
    let spec = match (&args.client_id, args.names.as_slice()) {
        (Some(id), []) => LeafSpec::client(id, 1).map_err(cert_error)?,
        (None, names) if !names.is_empty() => LeafSpec::server(names, 1).map_err(cert_error)?,
        _ => {
            return Err(bad(
                "give either --client-id ID or --name DNS_OR_IP (repeatable)",
            ));
        }
    };
    let mut planned = vec![args.out.as_path()];
    if let Some(key_out) = &args.key_out {
        planned.push(key_out);
    }
    files::check_free(&planned, args.force)?;
    // Everything is prepared before anything is written: a failure leaves no key without a request.
    let mut new_key = None;
    let (pkcs8, key_note) = match (&args.key_out, &args.key) {
        (Some(key_out), _) => {
            let kind = args.key_options.kind();
            let pkcs8 = ids_devpki::generate_key(kind).map_err(cert_error)?;
            let pem = keyfile::private_key_pem(&pkcs8, passphrase.as_ref().map(|p| p.as_str()))
                .map_err(key_error)?;
            new_key = Some((key_out, pem));
            let encrypted = if passphrase.is_some() {
                "encrypted with the passphrase"
            } else {
                "not encrypted"
            };
            (
                pkcs8,
                format!(
                    "wrote {} (new private key, {}, {encrypted}, mode 0600: it stays on this machine)",
                    key_out.display(),
                    kind.describe()
                ),
            )
        }
        (None, Some(key)) => {
            let read = match keyfile::read_private(key, passphrase.as_ref().map(|p| p.as_str())) {
                Ok(read) => read,
                Err(KeyFileError::NeedsPassword { file }) => {
                    return Err(bad(format!(
                        "{file}: the key is encrypted: give its passphrase with --key-passphrase-env VAR or \
                         --key-passphrase-file FILE"
                    )));
                }
                Err(e) => return Err(key_error(e)),
            };
            (read.pkcs8, format!("key: {}", key.display()))
        }
        (None, None) => {
            return Err(bad(
                "give --key-out FILE (new key) or --key FILE (existing key)",
            ));
        }
    };
    let pem =
        ids_devpki::create_request(&pkcs8, &spec.common_name, &spec.sans).map_err(cert_error)?;
    // Read back: the request we hand out verifies and names what was asked.
    let file = args.out.display().to_string();
    let request = ids_devpki::parse_request(&file, pem.as_bytes()).map_err(cert_error)?;
    if let Some((key_out, key_pem)) = new_key {
        files::write(key_out, key_pem.as_bytes(), Access::Private, args.force)?;
    }
    files::write(&args.out, pem.as_bytes(), Access::Public, args.force)?;
    writeln!(out, "{key_note}")?;
    writeln!(out, "wrote {file} (certificate signing request)")?;
    writeln!(out, "  subject: {}", request.subject)?;
    let names: Vec<String> = request.sans.iter().map(ToString::to_string).collect();
    writeln!(out, "  SAN: {}", names.join(", "))?;
    writeln!(out, "  key: {}", request.public_key.describe())?;
    writeln!(
        out,
        "  jwk-thumbprint: {}",
        jwk::thumbprint(&request.public_key)
    )?;
    writeln!(
        out,
        "Send {file} to the CA operator, who runs: ids-keytool sign --ca-dir CA_DIR --csr {file} --usage {}",
        spec.usage.as_str()
    )?;
    Ok(())
}
