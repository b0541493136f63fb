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
//! - here: the rustls [`provider`] and the [`client_config`] the agent's HTTPS client uses.
//! - `only_trusted`: the verifier of `Tls:TrustedCertificates` (configured CAs and certificates only).
//! - `pinning`: [`Pinning`], the `Tls:ServerPinning` check after the usual validation, and the
//!   `host:port` [`authority`] pins are recorded under.
//! - [`known_servers`]: the file of `First` pins.

pub mod known_servers;
mod only_trusted;
mod pinning;

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

use crate::settings::TlsTrust;
use only_trusted::OnlyTrusted;
pub use pinning::{PinRefused, Pinning, authority, normalize_thumbprint};

/// The aws-lc-rs provider, named explicitly: two providers in one process make rustls panic otherwise.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client configuration for `trust` and `pinning`, offering HTTP/2 and HTTP/1.1.
///
/// With `identity` (the agent's `ClientCertificate` with a certificate), the agent presents it when the
/// server asks: mutual TLS (RFC 8705), and tokens bound to it.
pub fn client_config(
    trust: &TlsTrust,
    pinning: &Pinning,
    identity: Option<&crate::settings::ClientKey>,
) -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        TlsTrust::System => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| format!("cannot load the system's trusted certificates: {e}"))?,
        ),
        TlsTrust::Only { certificates, .. } => {
            Arc::new(OnlyTrusted::new(certificates, provider.clone())?)
        }
    };
    let verifier = pinning.wrap(verifier)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
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
            config.with_client_auth_cert(chain, private).map_err(|e| {
                format!(
                    "ClientCertificate:File ({}): unusable as a TLS client certificate: {e}",
                    key.file.display()
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
