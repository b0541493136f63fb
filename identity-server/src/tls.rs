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
use std::sync::Mutex;

use ids_pki::Certificate;
use ids_pki::cert::SpkiParts;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// How many distinct refused certificates the handshake remembers, so as to log each once.
const REMEMBERED_REFUSALS: usize = 4096;

/// Accepts any client certificate (optional), naming the configured CAs as hints.
#[derive(Debug)]
pub struct AnyClientCertificate {
    hints: Vec<DistinguishedName>,
    refusals: LogOnce,
}

impl AnyClientCertificate {
    pub fn new(cas: &[Certificate]) -> Self {
        let hints = cas
            .iter()
            .map(|ca| DistinguishedName::from(ca.subject_der().to_vec()))
            .collect();
        AnyClientCertificate {
            hints,
            refusals: LogOnce::new(
                REMEMBERED_REFUSALS,
                "client certificates refused in the TLS handshake",
            ),
        }
    }

    /// Logs the refusal of `der` (once per certificate and reason) and makes the TLS error.
    fn refuse(&self, der: &[u8], reason: &str, error: rustls::Error) -> rustls::Error {
        if self.refusals.first(&[der, reason.as_bytes()]) {
            let (subject, issuer) = ids_pki::cert::subject_and_issuer(der)
                .unwrap_or_else(|| ("(unreadable)".into(), "(unreadable)".into()));
            tracing::warn!(
                subject = %loggable(&subject),
                issuer = %loggable(&issuer),
                x5t_s256 = %ids_pki::cert::x5t_s256(der),
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
        let result = match Certificate::from_der("client certificate", cert.as_ref()) {
            Ok(parsed) if parsed.version() < 3 => verify_v1_handshake_signature(
                &parsed,
                message,
                dss,
                &ids_runtime::tls::provider().signature_verification_algorithms,
                tls13,
            ),
            _ => ids_runtime::tls::verify_signature(message, cert, dss, tls13),
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
                return Err(self.refuse(
                    end_entity.as_ref(),
                    &reason,
                    ids_runtime::tls::refused(reason.clone()),
                ));
            }
        };
        if cert.version() < 3 && cert.is_self_issued() {
            let reason = format!(
                "a self-signed X.509 v{} certificate is a CA certificate (OpenSSL's rule: no basicConstraints to say otherwise), not a client certificate; make a v3 one (`ids-keytool keygen`, `ids-keytool client`, or `openssl req -x509`)",
                cert.version()
            );
            return Err(self.refuse(
                end_entity.as_ref(),
                &reason,
                ids_runtime::tls::refused(reason.clone()),
            ));
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
        ids_runtime::tls::supported_verify_schemes()
    }
}

/// A name from a certificate anyone may present, fit for one log line: control characters become `?`,
/// and at most 256 characters are kept.
pub(crate) fn loggable(text: &str) -> String {
    let head: String = text.chars().take(256).collect();
    one_line(&head)
}

/// `text` with its control characters (line breaks, terminal escapes) replaced by `?`.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The handshake signature (TLS 1.3 CertificateVerify, or TLS 1.2) made with the key of `cert`, a v1
/// certificate webpki will not parse: the checks of `rustls::crypto::verify_tls1x_signature`, on the
/// certificate's `SubjectPublicKeyInfo`.
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
    verify_tls12_with_spki(&spki, message, dss.scheme, dss.signature(), algorithms)
        .map(|()| HandshakeSignatureValid::assertion())
}

/// TLS 1.2: as `rustls::crypto::verify_tls12_signature`, any algorithm of the scheme whose key type
/// is the key's.
fn verify_tls12_with_spki(
    spki: &SpkiParts<'_>,
    message: &[u8],
    scheme: SignatureScheme,
    signature: &[u8],
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), rustls::Error> {
    let candidates = algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, algs)| *algs)
        .ok_or(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
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
    alg.verify_signature(spki.key, message, signature)
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
/// that presents ever new certificates grow the memory. The log volume is bounded too: at most
/// [`LOG_ONCE_PER_MINUTE`] new events a minute are let through; beyond, they are counted and the count
/// is logged when the next minute starts (a client making a new certificate per handshake cannot flood
/// the log).
#[derive(Debug)]
pub struct LogOnce {
    capacity: usize,
    what: &'static str,
    seen: Mutex<Remembered>,
}

/// New events logged per minute by one [`LogOnce`].
pub const LOG_ONCE_PER_MINUTE: u32 = 60;

/// The remembered keys, as a set and in arrival order (the oldest is forgotten first), and the current
/// minute's budget.
#[derive(Debug, Default)]
struct Remembered {
    set: HashSet<[u8; 16]>,
    order: VecDeque<[u8; 16]>,
    window: Option<std::time::Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogOnce {
    /// `what` names the events in the summary of those not logged ("client certificates refused in the
    /// TLS handshake").
    pub fn new(capacity: usize, what: &'static str) -> Self {
        LogOnce {
            capacity: capacity.max(1),
            what,
            seen: Mutex::new(Remembered::default()),
        }
    }

    /// `true` the first time the event made of `parts` is seen (among the last `capacity` events), within
    /// the minute's budget. An event over the budget is not remembered (it may be logged later).
    pub fn first(&self, parts: &[&[u8]]) -> bool {
        self.first_at(parts, std::time::Instant::now())
    }

    fn first_at(&self, parts: &[&[u8]], now: std::time::Instant) -> bool {
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
        if seen.set.contains(&key) {
            return false;
        }
        let new_window = seen
            .window
            .is_none_or(|start| now.duration_since(start) >= std::time::Duration::from_secs(60));
        if new_window {
            if seen.suppressed > 0 {
                tracing::warn!(
                    not_logged = seen.suppressed,
                    "{} more {} in the last minute were not logged one by one (at most {LOG_ONCE_PER_MINUTE} a minute)",
                    seen.suppressed,
                    self.what
                );
            }
            seen.window = Some(now);
            seen.logged = 0;
            seen.suppressed = 0;
        }
        if seen.logged >= LOG_ONCE_PER_MINUTE {
            seen.suppressed += 1;
            return false;
        }
        seen.logged += 1;
        seen.set.insert(key);
        seen.order.push_back(key);
        if seen.order.len() > self.capacity
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.set.remove(&oldest);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_certs {
    //! Hand-made X.509 v1 certificates (rcgen only writes v3): ECDSA P-256, laid out as `openssl x509
    //! -req` writes them without an extension file (no version field, no extensions), encoded with
    //! `der` (RFC 5280 section 4.1 structures, the v1 subset).

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
    use der::asn1::{
        AnyRef, BitStringRef, ObjectIdentifier, SetOfVec, UintRef, UtcTime, Utf8StringRef,
    };
    use der::{Decode as _, Encode as _, Sequence, ValueOrd};

    const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

    #[derive(Sequence, ValueOrd)]
    struct AttributeTypeAndValue<'a> {
        kind: ObjectIdentifier,
        value: Utf8StringRef<'a>,
    }

    #[derive(Sequence)]
    struct Algorithm {
        algorithm: ObjectIdentifier,
        parameters: Option<ObjectIdentifier>,
    }

    #[derive(Sequence)]
    struct Validity {
        not_before: UtcTime,
        not_after: UtcTime,
    }

    #[derive(Sequence)]
    struct SubjectPublicKeyInfo<'a> {
        algorithm: Algorithm,
        subject_public_key: BitStringRef<'a>,
    }

    /// TBSCertificate without the `[0] version` field (v1) and without extensions.
    #[derive(Sequence)]
    struct TbsCertificateV1<'a> {
        serial_number: UintRef<'a>,
        signature: Algorithm,
        issuer: AnyRef<'a>,
        validity: Validity,
        subject: AnyRef<'a>,
        subject_public_key_info: SubjectPublicKeyInfo<'a>,
    }

    #[derive(Sequence)]
    struct Certificate<'a> {
        tbs_certificate: AnyRef<'a>,
        signature_algorithm: Algorithm,
        signature: BitStringRef<'a>,
    }

    /// `CN=<cn>` as a Name.
    pub fn name(cn: &str) -> Vec<u8> {
        let attribute = AttributeTypeAndValue {
            kind: COMMON_NAME,
            value: Utf8StringRef::new(cn).unwrap(),
        };
        let rdn = SetOfVec::try_from(vec![attribute]).unwrap();
        vec![rdn].to_der().unwrap()
    }

    fn utc_time(unix: i64) -> UtcTime {
        UtcTime::from_unix_duration(std::time::Duration::from_secs(unix as u64)).unwrap()
    }

    /// The key pair of a PKCS#8 P-256 key.
    pub fn key(pkcs8: &[u8]) -> EcdsaKeyPair {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).unwrap()
    }

    /// A v1 certificate named `subject` for the P-256 key `subject_key`, naming `issuer` (a Name's
    /// DER) as its issuer and signed with `issuer_key`, valid from `not_before` to `not_after`.
    pub fn v1(
        subject: &[u8],
        subject_key: &[u8],
        issuer: &[u8],
        issuer_key: &[u8],
        not_before: i64,
        not_after: i64,
    ) -> Vec<u8> {
        let signature_algorithm = || Algorithm {
            algorithm: ECDSA_SHA256,
            parameters: None,
        };
        let point = key(subject_key).public_key().as_ref().to_vec();
        let tbs = TbsCertificateV1 {
            serial_number: UintRef::new(&[0x01]).unwrap(),
            signature: signature_algorithm(),
            issuer: AnyRef::from_der(issuer).unwrap(),
            validity: Validity {
                not_before: utc_time(not_before),
                not_after: utc_time(not_after),
            },
            subject: AnyRef::from_der(subject).unwrap(),
            subject_public_key_info: SubjectPublicKeyInfo {
                algorithm: Algorithm {
                    algorithm: EC_PUBLIC_KEY,
                    parameters: Some(P256),
                },
                subject_public_key: BitStringRef::from_bytes(&point).unwrap(),
            },
        }
        .to_der()
        .unwrap();
        let signature = key(issuer_key).sign(&SystemRandom::new(), &tbs).unwrap();
        Certificate {
            tbs_certificate: AnyRef::from_der(&tbs).unwrap(),
            signature_algorithm: signature_algorithm(),
            signature: BitStringRef::from_bytes(signature.as_ref()).unwrap(),
        }
        .to_der()
        .unwrap()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::test_certs::{key, name, v1};
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use ids_devpki::{KeyKind, generate_key};

    fn algorithms() -> WebPkiSupportedAlgorithms {
        ids_runtime::tls::provider().signature_verification_algorithms
    }

    #[test]
    fn v1_certificates_parse_and_their_signatures_verify_with_the_issuers_key() {
        let (leaf_key, ca_key, other_key) = (
            generate_key(KeyKind::EcP256).unwrap(),
            generate_key(KeyKind::EcP256).unwrap(),
            generate_key(KeyKind::EcP256).unwrap(),
        );
        let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
        let ca_der = v1(
            &name("CA"),
            &ca_key,
            &name("CA"),
            &ca_key,
            now - 10,
            now + 100,
        );
        let ca = Certificate::from_der("ca", &ca_der).unwrap();
        assert_eq!(
            (ca.version(), ca.is_ca(), ca.is_self_issued()),
            (1, false, true)
        );
        let leaf = Certificate::from_der(
            "leaf",
            &v1(
                &name("leaf"),
                &leaf_key,
                &name("CA"),
                &ca_key,
                now - 10,
                now + 100,
            ),
        )
        .unwrap();
        assert_eq!((leaf.version(), leaf.issuer()), (1, "CN=CA"));
        assert!(!leaf.is_self_issued());
        assert_eq!(verify_signed_by(&leaf, &ca, &algorithms()), Ok(()));
        // The same names, signed by another key.
        let forged = Certificate::from_der(
            "forged",
            &v1(
                &name("leaf"),
                &leaf_key,
                &name("CA"),
                &other_key,
                now - 10,
                now + 100,
            ),
        )
        .unwrap();
        assert_eq!(
            verify_signed_by(&forged, &ca, &algorithms()),
            Err(SignatureRefusal::BadSignature {
                issuer: "CN=CA".into()
            })
        );
    }

    #[test]
    fn v1_handshake_signatures_verify_with_the_certificates_key() {
        let (leaf_key, other_key) = (
            generate_key(KeyKind::EcP256).unwrap(),
            generate_key(KeyKind::EcP256).unwrap(),
        );
        let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
        let leaf = Certificate::from_der(
            "leaf",
            &v1(
                &name("leaf"),
                &leaf_key,
                &name("CA"),
                &other_key,
                now - 10,
                now + 100,
            ),
        )
        .unwrap();
        let spki = leaf.spki().unwrap();
        let rng = SystemRandom::new();
        let message = b"TLS 1.2 handshake transcript";
        let signature = key(&leaf_key).sign(&rng, message).unwrap();
        let scheme = SignatureScheme::ECDSA_NISTP256_SHA256;
        let algs = algorithms();
        assert!(verify_tls12_with_spki(&spki, message, scheme, signature.as_ref(), &algs).is_ok());
        let wrong_key = key(&other_key).sign(&rng, message).unwrap();
        assert_eq!(
            verify_tls12_with_spki(&spki, message, scheme, wrong_key.as_ref(), &algs),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            ))
        );
        assert!(
            verify_tls12_with_spki(&spki, b"another", scheme, signature.as_ref(), &algs).is_err()
        );
        // An RSA scheme with an EC key, and a scheme the server never offered.
        assert!(matches!(
            verify_tls12_with_spki(
                &spki,
                message,
                SignatureScheme::RSA_PSS_SHA256,
                signature.as_ref(),
                &algs
            ),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. }
            ))
        ));
        assert!(matches!(
            verify_tls12_with_spki(
                &spki,
                message,
                SignatureScheme::ED448,
                signature.as_ref(),
                &algs
            ),
            Err(rustls::Error::PeerMisbehaved(_))
        ));
    }

    #[test]
    fn the_handshake_accepts_v1_leaves_and_refuses_v1_self_signed_certificates() {
        let (leaf_key, ca_key) = (
            generate_key(KeyKind::EcP256).unwrap(),
            generate_key(KeyKind::EcP256).unwrap(),
        );
        let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
        let verifier = AnyClientCertificate::new(&[]);
        let check = |der: Vec<u8>| {
            verifier
                .verify_client_cert(&CertificateDer::from(der), &[], UnixTime::now())
                .map(|_| ())
        };
        assert!(
            check(v1(
                &name("leaf"),
                &leaf_key,
                &name("CA"),
                &ca_key,
                now - 10,
                now + 100
            ))
            .is_ok()
        );
        assert!(
            check(v1(
                &name("CA"),
                &ca_key,
                &name("CA"),
                &ca_key,
                now - 10,
                now + 100
            ))
            .is_err()
        );
        assert!(check(b"not a certificate".to_vec()).is_err());
    }

    #[test]
    fn names_are_logged_on_one_line() {
        assert_eq!(
            loggable("CN=a\nWARN forged\u{1b}[0m"),
            "CN=a?WARN forged?[0m"
        );
        assert_eq!(loggable(&"x".repeat(300)).len(), 256);
    }

    #[test]
    fn log_once_remembers_a_bounded_number_of_events() {
        let once = LogOnce::new(2, "events");
        assert!(once.first(&[b"a"]));
        assert!(!once.first(&[b"a"]));
        // Parts are length-prefixed: ("ab", "") is not ("a", "b").
        assert!(once.first(&[b"a", b"b"]));
        assert!(once.first(&[b"ab", b""]));
        // "a" was pushed out by the two events after it.
        assert!(once.first(&[b"a"]));
        assert!(!once.first(&[b"ab", b""]));
    }

    #[test]
    fn log_once_lets_at_most_a_minutes_budget_through() {
        let once = LogOnce::new(10_000, "events");
        let start = std::time::Instant::now();
        let fresh = |i: u32| i.to_be_bytes();
        for i in 0..LOG_ONCE_PER_MINUTE {
            assert!(once.first_at(&[&fresh(i)], start));
        }
        // A client presenting a new certificate per handshake: counted, not logged.
        assert!(!once.first_at(&[&fresh(1_000)], start));
        assert!(!once.first_at(&[&fresh(1_001)], start));
        // A minute later the budget is back, and the one not logged then can be logged now.
        let later = start + std::time::Duration::from_secs(61);
        assert!(once.first_at(&[&fresh(1_000)], later));
        assert!(!once.first_at(&[&fresh(0)], later), "already logged once");
    }
}
