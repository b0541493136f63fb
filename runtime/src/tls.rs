//! rustls set-up written once: the crypto provider (aws-lc-rs, built once and installed as the process
//! default so that a second provider in the tree cannot make rustls panic) and the pieces every
//! certificate verifier repeats: handshake-signature checks and errors in our own words.

use std::sync::{Arc, OnceLock};

use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

/// The process's crypto provider: aws-lc-rs, built on first use.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            // Also the default for libraries that build their own configuration (reqwest); a
            // provider installed before (a test harness) is kept.
            let _ = CryptoProvider::install_default(provider.as_ref().clone());
            provider
        })
        .clone()
}

/// Checks a handshake signature, TLS 1.3's when `tls13` (else TLS 1.2's), with the provider's
/// algorithms.
pub fn verify_signature(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let algorithms = &provider().signature_verification_algorithms;
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// The signature schemes the provider verifies.
pub fn supported_verify_schemes() -> Vec<SignatureScheme> {
    provider()
        .signature_verification_algorithms
        .supported_schemes()
}

/// A certificate refused for a reason in our own words, which reaches the operator through the
/// connection error (`invalid peer certificate: <reason>`).
pub fn refused(reason: impl Into<String>) -> rustls::Error {
    refused_because(Reason(reason.into()))
}

/// A certificate refused for a typed reason, which the caller can find again in the connection error
/// (`downcast_ref` on the [`rustls::OtherError`]) and whose `Display` reaches the operator.
pub fn refused_because(reason: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(reason),
    )))
}

#[derive(Debug)]
struct Reason(String);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reason {}

/// Writes, inside an `impl ServerCertVerifier` or `impl ClientCertVerifier`, the handshake-signature
/// methods: delegated to the verifier `self.$inner` when given, else checked with the provider's
/// algorithms ([`verify_signature`], [`supported_verify_schemes`]).
///
/// The two signature methods share one template (`@methods`); `@call` picks the inner verifier or
/// the provider. `self` is handed down as a token so that the receiver and its uses come from the
/// same expansion.
#[macro_export]
macro_rules! handshake_signatures {
    ($($inner:ident)?) => {
        $crate::handshake_signatures!(@methods self [$($inner)?]
            verify_tls12_signature = false, verify_tls13_signature = true);

        fn supported_verify_schemes(&self) -> Vec<::rustls::SignatureScheme> {
            $crate::handshake_signatures!(@call self [$($inner)?] supported_verify_schemes())
        }
    };
    (@methods $self:tt $inner:tt $($method:ident = $tls13:literal),+) => {
        $(
            fn $method(
                &$self,
                message: &[u8],
                cert: &::rustls::pki_types::CertificateDer<'_>,
                dss: &::rustls::DigitallySignedStruct,
            ) -> Result<::rustls::client::danger::HandshakeSignatureValid, ::rustls::Error> {
                $crate::handshake_signatures!(@call $self $inner $method(message, cert, dss; $tls13))
            }
        )+
    };
    (@call $self:tt [$inner:ident] $method:ident($($arg:ident),*$(; $tls13:literal)?)) => {
        $self.$inner.$method($($arg),*)
    };
    (@call $self:tt [] supported_verify_schemes()) => {
        $crate::tls::supported_verify_schemes()
    };
    (@call $self:tt [] $method:ident($($arg:ident),*; $tls13:literal)) => {
        $crate::tls::verify_signature($($arg),*, $tls13)
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_provider_and_reasons_in_our_words() {
        assert!(Arc::ptr_eq(&provider(), &provider()));
        assert!(!supported_verify_schemes().is_empty());
        let e = refused("the certificate is not pinned");
        let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = e else {
            panic!("not an invalid-certificate error: {e:?}");
        };
        assert_eq!(other.0.to_string(), "the certificate is not pinned");
    }
}
