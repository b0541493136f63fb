//! `identity-server health [--url URL]`: asks a running server's readiness endpoint
//! (`/health/ready`) and exits 0 when it is ready, 1 when it is not or cannot be reached: for
//! container `HEALTHCHECK`s, systemd `ExecStartPost` and scripts.
//!
//! The URL defaults to the first listen URL of the settings in `--config-dir` (a wildcard host is
//! asked on loopback). Over HTTPS the server is trusted when it presents exactly the TLS certificate
//! of those settings (it is this server), or, with `--ca-file`, a certificate chaining to those CAs
//! for the URL's host.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use identity_server::Settings;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(clap::Args)]
pub struct Args {
    /// The server's base URL (e.g. https://ids.example:5001) or its readiness URL; default: the first
    /// of `Urls` in the settings.
    #[arg(long)]
    url: Option<String>,
    /// CA certificates (PEM) to trust for the server's TLS certificate, instead of the TLS certificate
    /// of the settings.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// Print nothing; the exit code says it all.
    #[arg(long, short)]
    quiet: bool,
}

/// Exit code 0 (ready) or 1 (not ready, unreachable, or the probe cannot be made).
pub fn exec(config_dir: &Path, args: Args) -> std::process::ExitCode {
    match probe(config_dir, &args) {
        Ok((status, body)) => {
            if !args.quiet {
                println!("{}", body.trim_end());
            }
            if status == 200 {
                std::process::ExitCode::SUCCESS
            } else {
                if !args.quiet {
                    eprintln!("error: not ready (HTTP {status})");
                }
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            if !args.quiet {
                eprintln!("error: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The readiness URL's parts.
struct Target {
    https: bool,
    host: String,
    port: u16,
    path: String,
}

fn target(config_dir: &Path, url: Option<&str>) -> Result<(Target, Option<Settings>), String> {
    let settings = Settings::load(config_dir, None);
    let url = match url {
        Some(u) => u.to_string(),
        None => {
            let settings = settings.as_ref().map_err(|errors| {
                format!(
                    "no --url, and the settings in {} cannot be read: {}",
                    config_dir.display(),
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let first = settings
                .urls
                .first()
                .ok_or_else(|| "the settings have no listen URL: pass --url".to_string())?;
            let host = match first.host.as_str() {
                "0.0.0.0" | "*" | "+" | "" => "127.0.0.1".to_string(),
                "[::]" | "::" => "[::1]".to_string(),
                h => h.to_string(),
            };
            format!(
                "{}://{host}:{}",
                if first.https { "https" } else { "http" },
                first.port
            )
        }
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a URL: expected https://host:port"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(format!("`{url}`: expected an https:// (or http://) URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let path = if path.is_empty() || path == "/" {
        identity_server::http::health::READY.to_string()
    } else if path.ends_with(identity_server::http::health::READY)
        || path.ends_with(identity_server::http::health::LIVE)
        || path.ends_with(ids_proto::paths::HEALTH)
    {
        path.to_string()
    } else {
        format!("{path}{}", identity_server::http::health::READY)
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => (
            h.to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("`{url}`: the port is not a number"))?,
        ),
        _ => (authority.to_string(), if https { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("`{url}`: no host"));
    }
    Ok((
        Target {
            https,
            host,
            port,
            path,
        },
        settings.ok(),
    ))
}

fn probe(config_dir: &Path, args: &Args) -> Result<(u16, String), String> {
    let (target, settings) = target(config_dir, args.url.as_deref())?;
    let timeout = Duration::from_secs(args.timeout.max(1));
    let address = (
        target.host.trim_start_matches('[').trim_end_matches(']'),
        target.port,
    )
        .to_socket_addrs()
        .map_err(|e| format!("{}:{}: cannot resolve: {e}", target.host, target.port))?
        .next()
        .ok_or_else(|| format!("{}: no address", target.host))?;
    let mut tcp = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("{address}: cannot connect: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        target.path, target.host, target.port
    );
    let mut answer = Vec::new();
    if target.https {
        let config = tls_config(args.ca_file.as_deref(), settings.as_ref())?;
        let name = ServerName::try_from(
            target
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| format!("{}: not a host name: {e}", target.host))?;
        let connection = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| format!("TLS: {e}"))?;
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        tls.write_all(request.as_bytes())
            .map_err(|e| format!("{address}: {e}"))?;
        read_answer(&mut tls, &mut answer).map_err(|e| format!("{address}: {e}"))?;
    } else {
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("{address}: {e}"))?;
        read_answer(&mut tcp, &mut answer).map_err(|e| format!("{address}: {e}"))?;
    }
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{address}: not an HTTP answer"))?;
    Ok((status, body.to_string()))
}

/// Reads until the server closes (at most 1 MiB). A TLS peer that closes without `close_notify`
/// after a complete answer is accepted.
fn read_answer(stream: &mut impl std::io::Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    match stream.take(1024 * 1024).read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}

fn tls_config(
    ca_file: Option<&Path>,
    settings: Option<&Settings>,
) -> Result<rustls::ClientConfig, String> {
    let provider = ids_runtime::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match ca_file {
        Some(file) => {
            let cas = ids_pki::cert::trusted_certificates_from_file(file)
                .map_err(|e| format!("--ca-file {}: {e}", file.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for ca in &cas {
                roots
                    .add(CertificateDer::from(ca.der.clone()))
                    .map_err(|e| format!("--ca-file {}: {e}", file.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let settings = settings.ok_or(
                "the settings cannot be read, so the server's TLS certificate is not known: pass --ca-file",
            )?;
            let pfx = settings
                .tls
                .open()
                .map_err(|e| format!("{e} (or pass --ca-file)"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(OwnCertificate(
                    pfx.certificate.der().to_vec(),
                )))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Trusts exactly one certificate: the server's own, from its settings.
#[derive(Debug)]
struct OwnCertificate(Vec<u8>);

impl ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(ids_runtime::tls::refused(
                "the server does not present the TLS certificate of these settings (Kestrel:Certificates:Default); pass --ca-file to trust a CA instead",
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ids_runtime::tls::verify_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ids_runtime::tls::verify_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ids_runtime::tls::supported_verify_schemes()
    }
}
