//! TLS client certificates (RFC 8705): the handshake asks for one, never requires one, and accepts any
//! certificate whose private key the client proves (the handshake signature). What the certificate is
//! worth is decided by the token endpoint (`oauth::client_keys`): a certificate from
//! `IdentityServer:ClientCertificateAuthorities` mapped to the client, or a certificate whose thumbprint
//! is registered. Rejecting unknown certificates here would make the error a TLS alert the client
//! cannot interpret instead of an `invalid_client` the server logs with the certificate's thumbprint.
//!
//! X.509 v1 certificates (what `openssl x509 -req` writes without an extension file, as the gRPC seed
//! recipe does) are refused by webpki, which rustls uses to check the handshake signature; for those,
//! the signature is checked here with the provider's algorithms ([`verify_v1_handshake_signature`]),
//! and [`verify_signed_by`] checks the issuer's signature for `oauth::client_keys`. A self-signed v1
//! certificate is a CA certificate by OpenSSL's rules, and is refused.
//!
//! Every certificate refused here is logged once (subject, issuer, reason): see [`LogOnce`].

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use ids_crypto::Certificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// How many distinct refused certificates the handshake remembers, so as to log each once.
const REMEMBERED_REFUSALS: usize = 4096;

/// Accepts any client certificate (optional), naming the configured CAs as hints.
#[derive(Debug)]
pub struct AnyClientCertificate {
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
    refusals: LogOnce,
}

impl AnyClientCertificate {
    pub fn new(cas: &[Certificate], provider: Arc<CryptoProvider>) -> Self {
        let hints = cas
            .iter()
            .map(|ca| DistinguishedName::from(ca.subject_der().to_vec()))
            .collect();
        AnyClientCertificate {
            hints,
            provider,
            refusals: LogOnce::new(REMEMBERED_REFUSALS),
        }
    }

    /// Logs the refusal of `der` (once per certificate and reason) and makes the TLS error.
    fn refuse(&self, der: &[u8], reason: &str, error: rustls::Error) -> rustls::Error {
        if self.refusals.first(&[der, reason.as_bytes()]) {
            let (subject, issuer) = ids_crypto::cert::subject_and_issuer(der)
                .unwrap_or_else(|| ("(unreadable)".into(), "(unreadable)".into()));
            tracing::warn!(
                subject = %subject,
                issuer = %issuer,
                x5t_s256 = %x5t_s256(der),
                reason,
                "client certificate refused in the TLS handshake (logged once per certificate)"
            );
        }
        error
    }

    /// The handshake signature with `cert`'s key: rustls (webpki) for v3 certificates, ours for v1.
    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        let result = match Certificate::from_der("client certificate", cert.as_ref()) {
            Ok(parsed) if parsed.version() < 3 => {
                verify_v1_handshake_signature(&parsed, message, dss, algorithms, tls13)
            }
            _ if tls13 => rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms),
            _ => rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms),
        };
        result.map_err(|e| {
            let reason = format!(
                "the handshake signature ({:?}) does not verify with the certificate's key: {e}",
                dss.scheme
            );
            self.refuse(cert.as_ref(), &reason, e)
        })
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
        let cert = match Certificate::from_der("client certificate", end_entity.as_ref()) {
            Ok(cert) => cert,
            Err(e) => {
                let reason = e.to_string();
                return Err(self.refuse(end_entity.as_ref(), &reason, other_error(&reason)));
            }
        };
        if cert.version() < 3 && cert.is_self_issued() {
            let reason = format!(
                "a self-signed X.509 v{} certificate is a CA certificate (OpenSSL's rule: no basicConstraints to say otherwise), not a client certificate; make a v3 one (`ids-keytool keygen`, `ids-keytool client`, or `openssl req -x509`)",
                cert.version()
            );
            return Err(self.refuse(end_entity.as_ref(), &reason, other_error(&reason)));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn other_error(reason: &str) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(std::io::Error::other(reason.to_string())),
    )))
}

fn x5t_s256(der: &[u8]) -> String {
    ids_crypto::b64::url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// The handshake signature (TLS 1.3 CertificateVerify, or TLS 1.2) made with the key of `cert`, a v1
/// certificate webpki will not parse: the same checks as `rustls::crypto::verify_tls1x_signature`, on
/// the certificate's `SubjectPublicKeyInfo`.
pub fn verify_v1_handshake_signature(
    cert: &Certificate,
    message: &[u8],
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let spki = cert.spki().ok_or(rustls::Error::InvalidCertificate(
        rustls::CertificateError::BadEncoding,
    ))?;
    if tls13 {
        return rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.der),
            dss,
            algorithms,
        );
    }
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == dss.scheme)
        .map(|(_, algs)| *algs)
        .ok_or(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    // TLS 1.2: every algorithm of the scheme whose key type is the certificate's.
    let alg = candidates
        .iter()
        .find(|alg| alg.public_key_alg_id().as_ref() == spki.algorithm_id)
        .ok_or_else(|| {
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                    signature_algorithm_id: candidates
                        .first()
                        .map(|a| a.signature_alg_id().as_ref().to_vec())
                        .unwrap_or_default(),
                    public_key_algorithm_id: spki.algorithm_id.to_vec(),
                },
            )
        })?;
    alg.verify_signature(spki.key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))
}

/// Why [`verify_signed_by`] refused a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    #[error("the certificate is not well-formed DER (RFC 5280 section 4.1)")]
    Malformed,
    #[error("the issuer's public key is not well-formed")]
    MalformedIssuerKey,
    #[error("its signature algorithm is not supported (supported: RSA PKCS#1 and PSS, ECDSA)")]
    UnsupportedAlgorithm,
    #[error("its signature does not verify with the public key of `{issuer}`")]
    BadSignature { issuer: String },
}

/// Whether `issuer`'s key signed `cert` (its `tbsCertificate`), with one of `algorithms` (the
/// provider's, as webpki would use them: the signature algorithm and the issuer's key type must match).
pub fn verify_signed_by(
    cert: &Certificate,
    issuer: &Certificate,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), SignatureRefusal> {
    let signed = cert.signed_parts().ok_or(SignatureRefusal::Malformed)?;
    let key = issuer.spki().ok_or(SignatureRefusal::MalformedIssuerKey)?;
    let alg = algorithms
        .all
        .iter()
        .find(|alg| {
            alg.signature_alg_id().as_ref() == signed.algorithm_id
                && alg.public_key_alg_id().as_ref() == key.algorithm_id
        })
        .ok_or(SignatureRefusal::UnsupportedAlgorithm)?;
    alg.verify_signature(key.key, signed.tbs, signed.signature)
        .map_err(|_| SignatureRefusal::BadSignature {
            issuer: issuer.subject().to_string(),
        })
}

/// Remembers the last `capacity` events (SHA-256 of their parts, truncated to 128 bits: 16 bytes each,
/// ~100 KiB for 4096 with the set's overhead), so that each is logged once without letting a client
/// that presents ever new certificates grow the memory.
#[derive(Debug)]
pub struct LogOnce {
    capacity: usize,
    seen: Mutex<(HashSet<[u8; 16]>, VecDeque<[u8; 16]>)>,
}

impl LogOnce {
    pub fn new(capacity: usize) -> Self {
        LogOnce {
            capacity: capacity.max(1),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        }
    }

    /// `true` the first time the event made of `parts` is seen (among the last `capacity` events).
    pub fn first(&self, parts: &[&[u8]]) -> bool {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&ctx.finish().as_ref()[..16]);
        // A poisoned lock only means another thread panicked while logging: log again rather than never.
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        let (set, order) = &mut *seen;
        if !set.insert(key) {
            return false;
        }
        order.push_back(key);
        if order.len() > self.capacity {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn log_once_remembers_a_bounded_number_of_events() {
        let once = LogOnce::new(2);
        assert!(once.first(&[b"a"]));
        assert!(!once.first(&[b"a"]));
        // Parts are length-prefixed: ("ab", "") is not ("a", "b").
        assert!(once.first(&[b"a", b"b"]));
        assert!(once.first(&[b"ab", b""]));
        // "a" was pushed out by the two events after it.
        assert!(once.first(&[b"a"]));
        assert!(!once.first(&[b"ab", b""]));
    }
}
