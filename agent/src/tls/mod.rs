//! What the agent trusts for HTTPS: the system store, or only the certificates it was given.
//!
//! With `Tls:TrustedCertificates`, a server presenting exactly one of those certificates (within its
//! validity) is trusted: that is pinning. CA certificates among them also anchor chains, checked by
//! webpki with the host name and validity as usual. Nothing else is trusted, not even the system store.
//!
//! `Tls:ServerPinning` adds a requirement on the server's key on top of that validation (the pinning
//! verifier wraps either verifier): `First` pins the key each server presents the first time
//! ([`known_servers`]), `Strict` requires one of `Tls:ServerThumbprints`.
//!
//! # Layout
//! - here: the [`client_config`] the agent's HTTPS client uses (on `ids_runtime::tls::provider`, the
//!   one rustls provider of the process), and [`TlsSetupError`], why it cannot be built.
//! - `only_trusted`: the verifier of `Tls:TrustedCertificates` (configured CAs and certificates only).
//! - `pinning`: [`Pinning`], the `Tls:ServerPinning` check after the usual validation, and the
//!   `host:port` [`authority`] pins are recorded under.
//! - [`known_servers`]: the file of `First` pins.

pub mod known_servers;
mod only_trusted;
mod pinning;

use std::path::PathBuf;
use std::sync::Arc;

use ids_runtime::tls::provider;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;

use crate::settings::TlsTrust;
pub use crate::settings::{InvalidThumbprint, normalize_thumbprint};
use only_trusted::OnlyTrusted;
pub use pinning::{PinRefused, Pinning, authority};

/// Why the agent's TLS client configuration cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot load the system's trusted certificates: {0}")]
    SystemStore(rustls::Error),
    #[error("CA certificate `{subject}`: {source}")]
    CaCertificate {
        subject: String,
        source: rustls::Error,
    },
    #[error("{0}")]
    Verifier(rustls::client::VerifierBuilderError),
    #[error("{0}")]
    Protocols(rustls::Error),
    /// `Tls:ServerPinning` is `First` and its file of pins cannot be read.
    #[error(transparent)]
    Pins(Box<PinRefused>),
    #[error(
        "ClientCertificate:File ({}): unusable as a TLS client certificate: {source}",
        file.display()
    )]
    ClientCertificate {
        file: PathBuf,
        source: rustls::Error,
    },
}

/// A rustls client configuration for `trust` (with the `trusted` certificates read for it) and
/// `pinning`, offering HTTP/2 and HTTP/1.1.
///
/// With `identity` (the agent's `ClientCertificate` with a certificate), the agent presents it when the
/// server asks: mutual TLS (RFC 8705), and tokens bound to it.
pub fn client_config(
    trust: &TlsTrust,
    trusted: &[ids_pki::cert::TrustedCertificate],
    pinning: &Pinning,
    identity: Option<&crate::settings::ClientKey>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        TlsTrust::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(TlsSetupError::SystemStore)?,
        ),
        TlsTrust::Only { .. } => Arc::new(OnlyTrusted::new(trusted, provider.clone())?),
    };
    let verifier = pinning.wrap(verifier).map_err(TlsSetupError::Pins)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Protocols)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity.filter(|k| !k.certificates.is_empty()) {
        None => config.with_no_client_auth(),
        Some(key) => {
            let chain = key
                .certificates
                .iter()
                .map(|c| CertificateDer::from(c.der().to_vec()))
                .collect();
            let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.pkcs8.to_vec()),
            );
            config
                .with_client_auth_cert(chain, private)
                .map_err(|source| TlsSetupError::ClientCertificate {
                    file: key.file.clone(),
                    source,
                })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
