//! `Tls:TrustedCertificates`: the server is trusted when it presents one of the configured
//! certificates (within its validity), or a chain to one of the configured CAs; nothing else is, not
//! even the system store.

use std::sync::Arc;

use ids_pki::cert::TrustedCertificate;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};

use super::TlsSetupError;

/// Trusts configured CAs (as chain anchors) and configured server certificates (pinned), nothing else.
#[derive(Debug)]
pub(super) struct OnlyTrusted {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<TrustedCertificate>,
}

impl OnlyTrusted {
    pub(super) fn new(
        certs: &[TrustedCertificate],
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsSetupError> {
        let mut store = RootCertStore::empty();
        // Every configured certificate is also pinned as it is: a self-signed server certificate made
        // by `openssl req -x509` says CA:TRUE, and webpki would refuse it as an end-entity certificate.
        let pinned = certs.to_vec();
        for cert in certs.iter().filter(|c| c.is_ca) {
            store
                .add(CertificateDer::from(cert.der.clone()))
                .map_err(|source| TlsSetupError::CaCertificate {
                    subject: cert.subject.clone(),
                    source,
                })?;
        }
        let roots = if store.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
                    .build()
                    .map_err(TlsSetupError::Verifier)?,
            )
        };
        Ok(OnlyTrusted { roots, pinned })
    }
}

impl ServerCertVerifier for OnlyTrusted {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self
            .pinned
            .iter()
            .find(|p| p.der.as_slice() == end_entity.as_ref())
        {
            let now = now.as_secs() as i64;
            if now > pin.not_after {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
            }
            if now < pin.not_before {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidYet,
                ));
            }
            return Ok(ServerCertVerified::assertion());
        }
        match &self.roots {
            Some(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => {
                let fingerprint = ids_pki::b64::url(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end_entity.as_ref())
                        .as_ref(),
                );
                Err(ids_runtime::tls::refused(format!(
                    "the server presented a certificate (x5t#S256 {fingerprint}) that is not one of the certificates in Tls:TrustedCertificates"
                )))
            }
        }
    }

    ids_runtime::handshake_signatures!();
}
