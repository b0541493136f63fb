//! TLS to PostgreSQL on our rustls (aws-lc-rs), honouring libpq's `sslmode`:
//! `verify-full` checks the chain to `Store:CaFile` and the host name, `verify-ca` the chain only,
//! `prefer`/`require` check the chain when a CA file is given (as libpq does with a root certificate)
//! and otherwise accept the server's certificate (libpq's behaviour; `check` warns that the link is
//! encrypted but not authenticated). Handshake signatures are always verified.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;
use crate::store::settings::{PgSettings, SslMode};

/// The TLS connector for `settings` (reads the CA file).
pub fn connector(settings: &PgSettings) -> Result<MakeRustlsConnect, PgError> {
    let roots = match &settings.ca_file {
        Some(path) => Some(read_roots(path)?),
        None => None,
    };
    let builder = rustls::ClientConfig::builder_with_provider(ids_runtime::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls {
            target: settings.describe(),
            detail: e.to_string(),
        })?;
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Some(roots) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                ids_runtime::tls::provider(),
            )
            .build()
            .map_err(|e| PgError::Tls {
                target: settings.describe(),
                detail: e.to_string(),
            })?;
            if settings.ssl_mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(AnyName { inner: webpki })
            }
        }
        None => Arc::new(Unauthenticated),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn read_roots(path: &Path) -> Result<RootCertStore, PgError> {
    let found =
        ids_pki::cert::trusted_certificates_from_file(path).map_err(|e| PgError::CaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if found.is_empty() {
        return Err(PgError::CaFile {
            path: path.to_path_buf(),
            detail: "no certificate in it (expected PEM `CERTIFICATE` blocks or a DER certificate)"
                .into(),
        });
    }
    let mut roots = RootCertStore::empty();
    for t in found {
        roots
            .add(CertificateDer::from(t.der.clone()))
            .map_err(|e| PgError::CaFile {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
    }
    Ok(roots)
}

/// `verify-ca` (and `prefer`/`require` with a CA file): the chain is checked, the name is not.
#[derive(Debug)]
struct AnyName {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    ids_runtime::handshake_signatures!(inner);
}

/// `prefer`/`require` without a CA file: libpq encrypts without authenticating the server.
#[derive(Debug)]
struct Unauthenticated;

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    ids_runtime::handshake_signatures!();
}
