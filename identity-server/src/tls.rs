//! TLS client certificates (RFC 8705): the handshake asks for one, never requires one, and accepts any
//! certificate whose private key the client proves (rustls checks the handshake signature). What the
//! certificate is worth is decided by the token endpoint (`oauth::client_keys`): a certificate from
//! `IdentityServer:ClientCertificateAuthorities` mapped to the client, or a self-signed certificate
//! whose thumbprint is registered. Rejecting unknown certificates here would make the error a TLS
//! alert the client cannot interpret instead of an `invalid_client` the server logs with the
//! certificate's thumbprint.

use std::sync::Arc;

use ids_crypto::Certificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Accepts any client certificate (optional), naming the configured CAs as hints.
#[derive(Debug)]
pub struct AnyClientCertificate {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl AnyClientCertificate {
    pub fn new(cas: &[Certificate], provider: Arc<CryptoProvider>) -> Self {
        let hints = cas
            .iter()
            .map(|ca| DistinguishedName::from(ca.subject_der().to_vec()))
            .collect();
        AnyClientCertificate { hints, provider }
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Only a certificate we can read goes further; its worth is decided per client later.
        Certificate::from_der("client certificate", end_entity.as_ref()).map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(e.to_string())),
            )))
        })?;
        Ok(ClientCertVerified::assertion())
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
