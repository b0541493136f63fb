//! `ca`, `server`, `client` and `sign`: the private CA and the certificates it issues.

use std::io::Write;
use std::path::{Path, PathBuf};

use ids_devpki::{
    self, CLIENT_URN_PREFIX, Ca, LeafSpec, San, Usage, check_client_id, client_urn, is_dns_name,
};
use ids_pki::cert::format_time;
use ids_pki::keyfile::{self, KeyFileError};
use ids_pki::{Certificate, jwk};

use super::files::{self, Access};
use super::{
    CaArgs, CaSource, ClientArgs, PfxOutput, ServerArgs, SignArgs, UsageArg, bad, cert_error,
    key_error,
};

/// A CA loaded from its files.
pub struct LoadedCa {
    pub ca: Ca,
    pub cert: Certificate,
    pub cert_path: PathBuf,
}

/// Reads the CA certificate and key named by `source`; the key's passphrase from its option.
pub fn load_ca(source: &CaSource) -> anyhow::Result<LoadedCa> {
    let (cert_path, key_path) = match (&source.ca_dir, &source.ca_cert, &source.ca_key) {
        (Some(dir), _, _) => (dir.join("ca.crt"), dir.join("ca.key")),
        (None, Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            return Err(bad(
                "no CA given: use --ca-dir DIR (holding ca.crt and ca.key) or --ca-cert FILE --ca-key FILE",
            ));
        }
    };
    let passphrase = files::secret(
        source.ca_passphrase_env.as_deref(),
        source.ca_passphrase_file.as_deref(),
        "ca-passphrase",
    )?;
    let cert_file = cert_path.display().to_string();
    let read = keyfile::read_public(&cert_path, None).map_err(key_error)?;
    let Some(cert) = read.certificate else {
        return Err(bad(format!(
            "{cert_file}: holds a {}, expected the CA certificate",
            read.kind.as_str()
        )));
    };
    let key = match keyfile::read_private(&key_path, passphrase.as_ref().map(|p| p.as_str())) {
        Ok(key) => key,
        Err(KeyFileError::NeedsPassword { file }) => {
            return Err(bad(format!(
                "{file}: the CA key is encrypted: give its passphrase with --ca-passphrase-env VAR or \
                 --ca-passphrase-file FILE"
            )));
        }
        Err(KeyFileError::WrongPassword { file }) => {
            return Err(bad(format!(
                "{file}: wrong CA passphrase: the CA key could not be decrypted with it"
            )));
        }
        Err(e) => return Err(key_error(e)),
    };
    if key.public_key != *cert.public_key() {
        return Err(bad(format!(
            "{}: this private key does not belong to the CA certificate {cert_file}",
            key_path.display()
        )));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if cert.not_after() < now {
        return Err(bad(format!(
            "{cert_file}: the CA certificate expired on {}",
            format_time(cert.not_after())
        )));
    }
    let ca = Ca::from_der(&cert_file, cert.der(), &key.pkcs8).map_err(cert_error)?;
    Ok(LoadedCa {
        ca,
        cert,
        cert_path,
    })
}

impl LoadedCa {
    /// Warns when a certificate valid for `days` would outlive the CA.
    fn warn_if_outlived(&self, days: i64) {
        let end = time::OffsetDateTime::now_utc().unix_timestamp() + days * 86_400;
        if end > self.cert.not_after() {
            eprintln!(
                "warning: the certificate is valid for {days} days but the CA {} expires on {}: clients \
                 will refuse it after that date",
                self.cert_path.display(),
                format_time(self.cert.not_after())
            );
        }
    }
}

/// `ids-keytool ca`.
pub fn ca(args: &CaArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.name.trim().is_empty() {
        return Err(bad("--name: the CA name is empty"));
    }
    let passphrase = files::secret(
        args.passphrase_env.as_deref(),
        args.passphrase_file.as_deref(),
        "passphrase",
    )?;
    files::output_folder(&args.out_dir)?;
    let crt = args.out_dir.join("ca.crt");
    let key = args.out_dir.join("ca.key");
    files::check_free(&[&crt, &key], args.force)?;
    let ca = Ca::authority(&args.name, args.key.kind(), args.days).map_err(cert_error)?;
    let key_pem =
        keyfile::private_key_pem(&ca.cert.key_pkcs8, passphrase.as_ref().map(|p| p.as_str()))
            .map_err(key_error)?;
    files::write(&key, key_pem.as_bytes(), Access::Private, args.force)?;
    files::write(
        &crt,
        ca.cert.cert_pem.as_bytes(),
        Access::Public,
        args.force,
    )?;
    report_certificate(out, &crt, &ca.cert.cert_der, &[])?;
    if passphrase.is_some() {
        writeln!(
            out,
            "wrote {} (private key, encrypted with the passphrase, mode 0600)",
            key.display()
        )?;
    } else {
        writeln!(
            out,
            "wrote {} (private key, NOT encrypted, mode 0600)",
            key.display()
        )?;
        eprintln!(
            "warning: {} is not encrypted: keep it offline, or encrypt it (--passphrase-env VAR)",
            key.display()
        );
    }
    writeln!(
        out,
        "Clients and servers trust {}; issue certificates with `ids-keytool server|client --ca-dir {}`.",
        crt.display(),
        args.out_dir.display()
    )?;
    Ok(())
}

/// `ids-keytool server`.
pub fn server(args: &ServerArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    files::check_stem(&args.file_name, "--file-name")?;
    let spec = LeafSpec::server(&args.names, args.days).map_err(cert_error)?;
    let loaded = load_ca(&args.ca)?;
    issue_files(
        &loaded,
        &spec,
        args.key.kind(),
        &args.out_dir,
        &args.file_name,
        &args.pfx,
        args.force,
        out,
    )
}

/// `ids-keytool client`.
pub fn client(args: &ClientArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let spec = LeafSpec::client(&args.client_id, args.days).map_err(cert_error)?;
    let stem = args.file_name.as_deref().unwrap_or(&args.client_id);
    files::check_stem(stem, "--file-name (default: the client id)")?;
    let loaded = load_ca(&args.ca)?;
    issue_files(
        &loaded,
        &spec,
        args.key.kind(),
        &args.out_dir,
        stem,
        &args.pfx,
        args.force,
        out,
    )
}

/// Issues a certificate with a new key and writes `<stem>.crt`, `<stem>.key` and maybe `<stem>.pfx`.
#[allow(clippy::too_many_arguments)]
fn issue_files(
    loaded: &LoadedCa,
    spec: &LeafSpec,
    kind: ids_devpki::KeyKind,
    out_dir: &Path,
    stem: &str,
    pfx: &PfxOutput,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let crt = out_dir.join(format!("{stem}.crt"));
    let key = out_dir.join(format!("{stem}.key"));
    let pfx_path = out_dir.join(format!("{stem}.pfx"));
    let password = if pfx.pfx {
        files::secret(
            pfx.password_env.as_deref(),
            pfx.password_file.as_deref(),
            "password",
        )?
    } else {
        None
    };
    let mut planned = vec![crt.as_path(), key.as_path()];
    let password_path = super::pfx::password_path(&pfx_path);
    if pfx.pfx {
        planned.push(&pfx_path);
        if password.is_none() {
            planned.push(&password_path);
        }
    }
    files::output_folder(out_dir)?;
    files::check_free(&planned, force)?;
    loaded.warn_if_outlived(spec.days);
    let issued = loaded.ca.issue(spec, kind).map_err(cert_error)?;
    let key_pem = keyfile::private_key_pem(&issued.key_pkcs8, None).map_err(key_error)?;
    files::write(&key, key_pem.as_bytes(), Access::Private, force)?;
    files::write(&crt, issued.cert_pem.as_bytes(), Access::Public, force)?;
    report_certificate(out, &crt, &issued.cert_der, &spec.sans)?;
    writeln!(
        out,
        "wrote {} (private key, {}, mode 0600)",
        key.display(),
        kind.describe()
    )?;
    if pfx.pfx {
        super::pfx::write_pfx(
            &issued,
            &[loaded.cert.der()],
            password,
            pfx.legacy,
            &pfx_path,
            force,
            out,
        )?;
    }
    writeln!(
        out,
        "CA certificate (the chain to trust): {}",
        loaded.cert_path.display()
    )?;
    Ok(())
}

/// `ids-keytool sign`.
pub fn sign(args: &SignArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let csr_file = args.csr.display().to_string();
    let bytes = std::fs::read(&args.csr).map_err(|e| {
        bad(format!(
            "{csr_file}: cannot read the certificate request: {e}"
        ))
    })?;
    let request = ids_devpki::parse_request(&csr_file, &bytes).map_err(cert_error)?;
    let usage = match args.usage {
        UsageArg::Server => Usage::Server,
        UsageArg::Client => Usage::Client,
    };
    let (spec, notes) = spec_from_request(&csr_file, &request, usage, args.days)?;
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| args.csr.with_extension("crt"));
    files::check_free(&[&out_path], args.force)?;
    let loaded = load_ca(&args.ca)?;
    loaded.warn_if_outlived(args.days);
    let (der, pem) = loaded
        .ca
        .issue_for_key(&spec, &request.public_key)
        .map_err(cert_error)?;
    for note in notes {
        writeln!(out, "note: {note}")?;
    }
    writeln!(out, "request subject: {}", request.subject)?;
    files::write(&out_path, pem.as_bytes(), Access::Public, args.force)?;
    report_certificate(out, &out_path, &der, &spec.sans)?;
    writeln!(
        out,
        "Send {} back with the CA certificate {}.",
        out_path.display(),
        loaded.cert_path.display()
    )?;
    Ok(())
}

/// The certificate to issue for a request: its SANs checked against `usage`, completed where the
/// request left the name to its subject CN (`notes` say so).
pub fn spec_from_request(
    file: &str,
    request: &ids_devpki::CertificateRequest,
    usage: Usage,
    days: i64,
) -> anyhow::Result<(LeafSpec, Vec<String>)> {
    let mut notes = Vec::new();
    if !request.other_names.is_empty() {
        return Err(bad(format!(
            "{file}: the request asks for names a {} certificate does not carry: {}",
            usage.as_str(),
            request.other_names.join(", ")
        )));
    }
    let mut sans = request.sans.clone();
    let common_name = match usage {
        Usage::Server => {
            for san in &sans {
                match san {
                    San::Dns(name) if is_dns_name(name.strip_prefix("*.").unwrap_or(name)) => {}
                    San::Ip(_) => {}
                    other => {
                        return Err(bad(format!(
                            "{file}: `{other}` in the request: a server certificate names DNS names and IP \
                             addresses only"
                        )));
                    }
                }
            }
            if sans.is_empty() {
                let cn = request.common_name.as_deref().unwrap_or_default();
                let san = San::host(cn).map_err(|_| {
                    bad(format!(
                        "{file}: the request names no DNS name or IP address (no SAN, and its subject CN `{cn}` \
                         is not a host name)"
                    ))
                })?;
                notes.push(format!(
                    "the request has no SAN: added {san} from its subject CN (TLS clients check the SAN, not the CN)"
                ));
                sans.push(san);
            }
            request
                .common_name
                .clone()
                .unwrap_or_else(|| sans.first().map(san_value).unwrap_or_default())
        }
        Usage::Client => {
            let mut ids: Vec<&str> = Vec::new();
            for san in &sans {
                match san {
                    San::Uri(uri) => {
                        if let Some(id) = uri.strip_prefix(CLIENT_URN_PREFIX)
                            && !ids.contains(&id)
                        {
                            ids.push(id);
                        }
                    }
                    San::Dns(name) if is_dns_name(name) => {}
                    other => {
                        return Err(bad(format!(
                            "{file}: `{other}` in the request: a client certificate names the client id as a \
                             URI (`{CLIENT_URN_PREFIX}<id>`) or DNS name"
                        )));
                    }
                }
            }
            let id = match (ids.as_slice(), request.common_name.as_deref()) {
                ([id], Some(cn)) if *id != cn => {
                    return Err(bad(format!(
                        "{file}: the request names client `{id}` in its SAN but `{cn}` in its subject CN"
                    )));
                }
                ([id], _) => (*id).to_string(),
                ([], Some(cn)) => cn.to_string(),
                ([], None) => {
                    return Err(bad(format!(
                        "{file}: the request names no client id (no `{CLIENT_URN_PREFIX}<id>` URI SAN, no subject CN)"
                    )));
                }
                (several, _) => {
                    return Err(bad(format!(
                        "{file}: the request names several client ids: {}",
                        several.join(", ")
                    )));
                }
            };
            check_client_id(&id).map_err(|e| bad(format!("{file}: {e}")))?;
            let urn = San::Uri(client_urn(&id));
            let dns = San::Dns(id.clone());
            if !sans.contains(&urn) {
                notes.push(format!(
                    "added {urn} to the SAN (the client id from the request's subject CN)"
                ));
            }
            // A client certificate names its client and nothing else: another name in the SAN could
            // map it to another client on a server that matches by DNS name.
            let dropped: Vec<String> = sans
                .iter()
                .filter(|s| **s != urn && **s != dns)
                .map(ToString::to_string)
                .collect();
            if !dropped.is_empty() {
                notes.push(format!(
                    "dropped {} from the SAN: a client certificate names only its client id",
                    dropped.join(", ")
                ));
            }
            let had_dns = sans.contains(&dns);
            sans = vec![urn];
            if had_dns {
                sans.push(dns);
            }
            id
        }
    };
    Ok((
        LeafSpec {
            common_name,
            sans,
            usage,
            days,
        },
        notes,
    ))
}

fn san_value(san: &San) -> String {
    match san {
        San::Dns(name) => name.clone(),
        San::Ip(ip) => ip.to_string(),
        San::Uri(uri) => uri.clone(),
    }
}

/// `wrote FILE` and what a relying party needs to know of the certificate.
pub fn report_certificate(
    out: &mut dyn Write,
    path: &Path,
    der: &[u8],
    sans: &[San],
) -> anyhow::Result<()> {
    let file = path.display().to_string();
    let cert = Certificate::from_der(&file, der)?;
    writeln!(out, "wrote {file}")?;
    writeln!(out, "  subject: {}", cert.subject())?;
    writeln!(out, "  issuer: {}", cert.issuer())?;
    writeln!(out, "  key: {}", cert.public_key().describe())?;
    if !sans.is_empty() {
        let names: Vec<String> = sans.iter().map(ToString::to_string).collect();
        writeln!(out, "  SAN: {}", names.join(", "))?;
    }
    writeln!(out, "  valid until: {}", format_time(cert.not_after()))?;
    writeln!(
        out,
        "  jwk-thumbprint: {}",
        jwk::thumbprint(cert.public_key())
    )?;
    writeln!(out, "  x5t#S256: {}", cert.x5t_s256())?;
    writeln!(out, "  sha1: {}", cert.sha1_hex())?;
    Ok(())
}
