//! `pfx`: certificate + key (+ chain) -> PKCS#12, and the PFX writer `server` and `client` share.

use std::io::Write;
use std::path::{Path, PathBuf};

use ids_devpki::{Issued, PfxProfile, to_pfx};
use ids_pki::cert::trusted_certificates_from_file;
use ids_pki::keyfile::{self, KeyFileError};
use ids_pki::{Certificate, Pfx};
use zeroize::Zeroizing;

use super::files::{self, Access};
use super::{CertArgs, PfxArgs, bad, key_error};

/// `<pfx>.password`: where a generated password goes.
pub fn password_path(pfx: &Path) -> PathBuf {
    let mut name = pfx.as_os_str().to_owned();
    name.push(".password");
    PathBuf::from(name)
}

/// Writes `issued` with `chain` as a PFX at `path`, with `password` or a generated one (written to
/// `<path>.password`, 0600), and reads it back to check it.
pub fn write_pfx(
    issued: &Issued,
    chain: &[&[u8]],
    password: Option<Zeroizing<String>>,
    legacy: bool,
    path: &Path,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let file = path.display().to_string();
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (files::generate_password()?, true),
    };
    let profile = if legacy {
        PfxProfile::Legacy
    } else {
        PfxProfile::Modern
    };
    let alias = Certificate::from_der(&file, &issued.cert_der)
        .ok()
        .and_then(|c| {
            c.subject()
                .split(',')
                .find_map(|part| part.trim().strip_prefix("CN=").map(str::to_string))
        })
        .unwrap_or_else(|| "certificate".to_string());
    let bytes = to_pfx(issued, chain, &alias, &password, profile)?;
    // What we wrote must open as the server and agent open it.
    Pfx::from_bytes(&file, &bytes, &password)?;
    let password_file = password_path(path);
    if generated {
        let mut text = Zeroizing::new(password.to_string());
        text.push('\n');
        files::write(&password_file, text.as_bytes(), Access::Private, force)?;
    }
    files::write(path, &bytes, Access::Private, force)?;
    let encryption = if legacy {
        "3DES + SHA-1 MAC (legacy)"
    } else {
        "AES-256-CBC + SHA-256 MAC"
    };
    writeln!(
        out,
        "wrote {file} (PFX: certificate, key and {} chain certificate(s), {encryption}, mode 0600)",
        chain.len()
    )?;
    if generated {
        writeln!(
            out,
            "wrote {} (the PFX password, generated; mode 0600)",
            password_file.display()
        )?;
    }
    Ok(())
}

/// `ids-keytool pfx`.
pub fn pfx(args: &PfxArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let key_passphrase = files::secret(
        args.key_passphrase_env.as_deref(),
        args.key_passphrase_file.as_deref(),
        "key-passphrase",
    )?;
    let password = files::secret(
        args.password_env.as_deref(),
        args.password_file.as_deref(),
        "password",
    )?;
    let key_file = args.key.display().to_string();
    let key = match keyfile::read_private(&args.key, key_passphrase.as_ref().map(|p| p.as_str())) {
        Ok(key) => key,
        Err(KeyFileError::NeedsPassword { file }) => {
            return Err(bad(format!(
                "{file}: the key is encrypted: give its passphrase with --key-passphrase-env VAR or \
                 --key-passphrase-file FILE"
            )));
        }
        Err(e) => return Err(key_error(e)),
    };
    // The certificate file may be a bundle: the certificate of the key, and chain certificates.
    let cert_file = args.cert.display().to_string();
    let ders = trusted_certificates_from_file(&args.cert).map_err(|e| bad(e.to_string()))?;
    let mut leaf = None;
    let mut chain: Vec<Vec<u8>> = Vec::new();
    for der in ders.into_iter().map(|c| c.der) {
        let matches = Certificate::from_der(&cert_file, &der)
            .map(|c| *c.public_key() == key.public_key)
            .unwrap_or(false);
        if matches && leaf.is_none() {
            leaf = Some(der);
        } else {
            chain.push(der);
        }
    }
    let Some(leaf) = leaf else {
        return Err(bad(format!(
            "{cert_file}: no certificate in the file belongs to the private key {key_file}"
        )));
    };
    for path in &args.chain {
        let extra = trusted_certificates_from_file(path).map_err(|e| bad(e.to_string()))?;
        chain.extend(extra.into_iter().map(|c| c.der));
    }
    chain.dedup();
    let mut planned = vec![args.out.as_path()];
    let password_file = password_path(&args.out);
    if password.is_none() {
        planned.push(&password_file);
    }
    files::check_free(&planned, args.force)?;
    let issued = Issued {
        cert_pem: String::new(),
        cert_der: leaf,
        key_pkcs8: key.pkcs8.clone(),
    };
    let chain_refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    write_pfx(
        &issued,
        &chain_refs,
        password,
        args.legacy,
        &args.out,
        args.force,
        out,
    )
}

/// `cert`: writes the PFX's certificate (and chain with `--chain`) as PEM.
pub fn export_certificate(args: &CertArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let password = files::secret(
        args.password_env.as_deref(),
        args.password_file.as_deref(),
        "password",
    )?
    .unwrap_or_default();
    // The leaf alone needs no private key (a certificate-only PFX works); the chain comes with the key.
    let (certificate, chain) = if args.chain {
        let pfx = Pfx::from_file(&args.pfx, &password).map_err(|e| bad(e.to_string()))?;
        (pfx.certificate, pfx.chain)
    } else {
        let leaf = ids_pki::pfx::leaf_certificate_from_file(&args.pfx, &password)
            .map_err(|e| bad(e.to_string()))?;
        (leaf, Vec::new())
    };
    let mut pem = keyfile::certificate_pem(certificate.der());
    for der in &chain {
        pem.push_str(&keyfile::certificate_pem(der));
    }
    if args.out.as_os_str() == "-" {
        out.write_all(pem.as_bytes())?;
        return Ok(());
    }
    files::write(&args.out, pem.as_bytes(), Access::Public, args.force)?;
    writeln!(
        out,
        "wrote {} (certificate `{}`{}, valid until {}; no private key)",
        args.out.display(),
        certificate.subject(),
        if args.chain {
            format!(" and {} chain certificate(s)", chain.len())
        } else {
            String::new()
        },
        ids_pki::cert::format_time(certificate.not_after())
    )?;
    Ok(())
}
