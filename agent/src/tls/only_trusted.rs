//! `Tls:TrustedCertificates`: the server is trusted when it presents one of the configured
//! certificates (within its validity), or a chain to one of the configured CAs; nothing else is, not
//! even the system store.

use std::sync::Arc;

use ids_pki::cert::TrustedCertificate;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Trusts configured CAs (as chain anchors) and configured server certificates (pinned), nothing else.
#[derive(Debug)]
pub(super) struct OnlyTrusted {
    roots: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<TrustedCertificate>,
    provider: Arc<CryptoProvider>,
}

impl OnlyTrusted {
    pub(super) fn new(
        certs: &[TrustedCertificate],
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let mut store = RootCertStore::empty();
        // Every configured certificate is also pinned as it is: a self-signed server certificate made
        // by `openssl req -x509` says CA:TRUE, and webpki would refuse it as an end-entity certificate.
        let pinned = certs.to_vec();
        for cert in certs.iter().filter(|c| c.is_ca) {
            store
                .add(CertificateDer::from(cert.der.clone()))
                .map_err(|e| format!("CA certificate `{}`: {e}", cert.subject))?;
        }
        let roots = if store.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(OnlyTrusted {
            roots,
            pinned,
            provider,
        })
    }
}

/// A certificate error with our own words (shown to the operator through the connection error).
#[derive(Debug)]
struct NotTrusted(String);

impl std::fmt::Display for NotTrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotTrusted {}

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
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(NotTrusted(format!(
                        "the server presented a certificate (x5t#S256 {fingerprint}) that is not one of the certificates in Tls:TrustedCertificates"
                    )))),
                )))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
