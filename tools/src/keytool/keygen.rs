//! `keygen`: an ssh-keygen-like key pair in a private folder: `id_<mode>_<host>.key` (0600),
//! `.pub` (SPKI PEM) and `.crt` (self-signed), plus `authorized_clients/` in server mode.

use std::io::Write;

use ids_devpki::LeafSpec;
use ids_pki::cert::format_time;
use ids_pki::keyfile;
use ids_pki::{Certificate, jwk};
use ids_seal::atomic::create_private_folder;

use super::files::{self, Access};
use super::{KeygenArgs, Mode, bad, cert_error, key_error};

/// `ids-keytool keygen`.
pub fn keygen(args: &KeygenArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => files::default_key_folder()?,
    };
    let host = match &args.host {
        Some(host) => host.clone(),
        None => files::host_name()?,
    };
    files::check_stem(&host, "--host")?;
    let passphrase = files::secret(
        args.passphrase_env.as_deref(),
        args.passphrase_file.as_deref(),
        "passphrase",
    )?;
    let (spec, client_id) = match args.mode {
        Mode::Agent => {
            let id = args.client_id.clone().unwrap_or_else(|| host.clone());
            let spec = LeafSpec::client(&id, args.days).map_err(|e| {
                bad(format!(
                    "{e} (the client id defaults to the host name: choose one with --client-id ID)"
                ))
            })?;
            (spec, Some(id))
        }
        Mode::Server => {
            if args.client_id.is_some() {
                return Err(bad("--client-id is for --mode agent"));
            }
            let spec = LeafSpec::server(std::slice::from_ref(&host), args.days).map_err(|e| {
                bad(format!(
                    "{e} (the server certificate names the host: give a DNS name with --host NAME)"
                ))
            })?;
            (spec, None)
        }
    };
    let stem = format!("id_{}_{host}", args.mode.as_str());
    let key_path = dir.join(format!("{stem}.key"));
    let pub_path = dir.join(format!("{stem}.pub"));
    let crt_path = dir.join(format!("{stem}.crt"));
    files::key_folder(&dir)?;
    files::check_free(&[&key_path, &pub_path, &crt_path], args.force)?;

    let kind = args.key.kind();
    let pkcs8 = ids_devpki::generate_key(kind).map_err(cert_error)?;
    let issued = ids_devpki::self_signed(&pkcs8, &spec).map_err(cert_error)?;
    let crt_file = crt_path.display().to_string();
    let cert = Certificate::from_der(&crt_file, &issued.cert_der)?;
    let key_pem = keyfile::private_key_pem(&pkcs8, passphrase.as_ref().map(|p| p.as_str()))
        .map_err(key_error)?;
    let pub_pem = keyfile::public_key_pem(cert.public_key());
    // All three or none: a failure part-way removes what this run wrote where nothing was before, so
    // that a rerun is not blocked by a lone key.
    let writes = [
        (&pub_path, pub_pem.as_bytes(), Access::Public),
        (&crt_path, issued.cert_pem.as_bytes(), Access::Public),
        (&key_path, key_pem.as_bytes(), Access::Private),
    ];
    let mut created = Vec::new();
    for (path, bytes, access) in writes {
        let existed = path.exists();
        if let Err(e) = files::write(path, bytes, access, args.force) {
            for path in created {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
        if !existed {
            created.push(path);
        }
    }
    let authorized = dir.join("authorized_clients");
    if args.mode == Mode::Server && !authorized.exists() {
        create_private_folder(&authorized).map_err(|e| {
            bad(format!(
                "{}: cannot create the folder: {e}",
                authorized.display()
            ))
        })?;
    }

    let thumbprint = jwk::thumbprint(cert.public_key());
    let purpose = match args.mode {
        Mode::Agent => "clientAuth",
        Mode::Server => "serverAuth",
    };
    writeln!(
        out,
        "Generated a key pair ({}, {} mode) in {}",
        kind.describe(),
        args.mode.as_str(),
        dir.display()
    )?;
    let encrypted = if passphrase.is_some() {
        "encrypted with the passphrase, "
    } else {
        ""
    };
    writeln!(
        out,
        "  private key: {} ({encrypted}mode 0600: keep it secret)",
        key_path.display()
    )?;
    writeln!(out, "  public key: {}", pub_path.display())?;
    writeln!(
        out,
        "  certificate: {crt_file} (self-signed, {}, {purpose}, valid until {})",
        cert.subject(),
        format_time(cert.not_after())
    )?;
    writeln!(out, "  jwk-thumbprint: {thumbprint}")?;
    writeln!(out, "  x5t#S256: {}", cert.x5t_s256())?;
    writeln!(out, "  sha1: {}", cert.sha1_hex())?;
    match (args.mode, client_id) {
        (Mode::Agent, Some(id)) => {
            writeln!(
                out,
                "Next, on the identity server, allow this key for client `{id}`: add its thumbprint to the \
                 client's entry in the access-control XML,"
            )?;
            writeln!(
                out,
                "  <OpenIdClient Identifier=\"{id}\" Thumbprints=\"{thumbprint}\" Profile=\"...\" />"
            )?;
            writeln!(
                out,
                "or copy {} (or {crt_file}) into the server's authorized_clients/{id}.pem",
                pub_path.display()
            )?;
        }
        _ => {
            writeln!(
                out,
                "  authorized_clients: {}/ (mode 0700)",
                authorized.display()
            )?;
            writeln!(
                out,
                "Next, put each client's public key or certificate (made by `ids-keytool keygen --mode agent`) \
                 into {}/<client id>.pem; clients pin this server with {crt_file}.",
                authorized.display()
            )?;
        }
    }
    Ok(())
}
