//! The pinning check against certificates from a development CA (the usual validation stubbed).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::settings::normalize_thumbprint;
use crate::tls::OnlyTrusted;
use ids_devpki::{Ca, KeyKind};
use ids_runtime::tls::provider;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// Accepts every certificate: stands for the usual validation, which these tests do not exercise.
#[derive(Debug)]
struct AcceptAll;

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Vec::new()
    }
}

fn server_cert(ca: &Ca) -> Vec<u8> {
    ca.issue_server(&["localhost", "127.0.0.1"], KeyKind::EcP256, 2)
        .unwrap()
        .cert_der
}

fn key_thumbprint(der: &[u8]) -> String {
    ids_pki::jwk::thumbprint(
        ids_pki::Certificate::from_der("test", der)
            .unwrap()
            .public_key(),
    )
}

fn verifier(mode: ServerPinning) -> Arc<dyn ServerCertVerifier> {
    Pinning::new(
        mode,
        &["https://LocalHost:8443/ids", "https://127.0.0.1:9443"],
    )
    .wrap(Arc::new(AcceptAll))
    .unwrap()
}

/// The pinning refusal of `der` from `host`, if any.
fn verify(verifier: &dyn ServerCertVerifier, der: &[u8], host: &str) -> Result<(), String> {
    let name = ServerName::try_from(host.to_string()).unwrap();
    // 2026-11-22T14:00:00Z
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_795_356_000));
    match verifier.verify_server_cert(&CertificateDer::from(der.to_vec()), &[], &name, &[], now) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(other))) => {
            assert!(other.0.downcast_ref::<PinRefused>().is_some());
            Err(other.to_string())
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn first_pins_the_key_once_and_refuses_another_with_both_thumbprints() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("work").join(known_servers::FILE_NAME);
    let ca = Ca::new("pinning test CA", 2).unwrap();
    let (old, new) = (server_cert(&ca), server_cert(&ca));
    let v = verifier(ServerPinning::First {
        store: store.clone(),
    });

    verify(v.as_ref(), &old, "localhost").unwrap();
    let text = std::fs::read_to_string(&store).unwrap();
    assert_eq!(
        text,
        format!(
            "localhost:8443 jwk-thumbprint {} 2026-11-22T14:00:00Z\n",
            key_thumbprint(&old)
        )
    );
    // Pinned: later connections read and write nothing (the file may even go away).
    std::fs::remove_file(&store).unwrap();
    verify(v.as_ref(), &old, "localhost").unwrap();
    assert!(!store.exists());
    std::fs::write(&store, &text).unwrap();

    // The IP address is another authority (its own port): pinned separately.
    verify(v.as_ref(), &new, "127.0.0.1").unwrap();
    let err = verify(v.as_ref(), &new, "localhost").unwrap_err();
    assert_eq!(
        err,
        format!(
            "the server localhost:8443 presented a certificate with key thumbprint {}, but the agent pinned {} on 2026-11-22T14:00:00Z ({} line 1); if the server's key was changed on purpose, delete that line (or run `agent trust --forget localhost:8443`)",
            key_thumbprint(&new),
            key_thumbprint(&old),
            store.display()
        )
    );
    // A new agent process reads the file: same answer.
    let fresh = verifier(ServerPinning::First {
        store: store.clone(),
    });
    assert!(verify(fresh.as_ref(), &new, "localhost").is_err());
    verify(fresh.as_ref(), &old, "localhost").unwrap();

    // The operator deletes the line: the running agent pins the new key.
    known_servers::forget(&store, "localhost:8443")
        .unwrap()
        .unwrap();
    verify(v.as_ref(), &new, "localhost").unwrap();
    let pins = known_servers::load(&store).unwrap();
    assert_eq!(pins.len(), 2);
    assert!(
        pins.iter()
            .any(|p| p.authority == "localhost:8443" && p.thumbprint == key_thumbprint(&new))
    );
}

#[test]
fn first_refuses_a_malformed_store_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join(known_servers::FILE_NAME);
    std::fs::write(&store, "localhost:8443 nonsense\n").unwrap();
    let err = Pinning::new(
        ServerPinning::First {
            store: store.clone(),
        },
        &["https://localhost:8443"],
    )
    .wrap(Arc::new(AcceptAll))
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("Tls:ServerPinning is First: "), "{err}");
    assert!(
        err.contains(&format!("{} line 1", store.display())),
        "{err}"
    );
}

#[test]
fn strict_accepts_any_listed_form_and_names_all_values_otherwise() {
    let ca = Ca::new("pinning test CA", 2).unwrap();
    let der = server_cert(&ca);
    let cert = ids_pki::Certificate::from_der("test", &der).unwrap();
    let sha256_hex =
        ids_pki::b64::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
    let sha1_spaced = cert
        .sha1_hex()
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    for configured in [
        key_thumbprint(&der),
        cert.x5t_s256(),
        format!("\u{200e}{sha1_spaced}"),
        sha256_hex,
    ] {
        let v = verifier(ServerPinning::Strict {
            thumbprints: vec![normalize_thumbprint(&configured).unwrap()],
        });
        verify(v.as_ref(), &der, "localhost").unwrap();
    }
    let other = key_thumbprint(&server_cert(&ca));
    let v = verifier(ServerPinning::Strict {
        thumbprints: vec![other.clone()],
    });
    let err = verify(v.as_ref(), &der, "127.0.0.1").unwrap_err();
    assert_eq!(
        err,
        format!(
            "the server 127.0.0.1:9443 presented a certificate with key thumbprint {} (x5t#S256 {}, SHA-1 {}), which is none of Tls:ServerThumbprints ({other}); if the server's key or certificate was changed on purpose, put its key thumbprint in Tls:ServerThumbprints",
            key_thumbprint(&der),
            cert.x5t_s256(),
            cert.sha1_hex()
        )
    );
}

#[test]
fn the_usual_validation_still_decides_first() {
    let ca = Ca::new("pinning test CA", 2).unwrap();
    let der = server_cert(&ca);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join(known_servers::FILE_NAME);
    // No CA configured: the inner verifier refuses, nothing is pinned.
    let first = Pinning::new(
        ServerPinning::First {
            store: store.clone(),
        },
        &["https://localhost:8443"],
    )
    .wrap(Arc::new(OnlyTrusted::new(&[], provider()).unwrap()))
    .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let err = first
        .verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
        .unwrap_err();
    assert!(err.to_string().contains("Tls:TrustedCertificates"), "{err}");
    assert!(!store.exists());
}

#[test]
fn thumbprints_are_normalized_or_refused() {
    let b64 = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    assert_eq!(normalize_thumbprint(&format!(" {b64} ")).unwrap(), b64);
    // Standard base64 with padding, as some tools print it.
    assert_eq!(
        normalize_thumbprint("NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs=").unwrap(),
        b64
    );
    assert_eq!(
        normalize_thumbprint("a9:0b:1c:2d:3e:4f:50:61:72:83:94:a5:b6:c7:d8:e9:f0:01:12:23")
            .unwrap(),
        "A90B1C2D3E4F5061728394A5B6C7D8E9F0011223"
    );
    for bad in [
        "",
        "abc",
        "A90B1C2D3E4F5061728394A5B6C7D8E9F001122",
        "not a thumbprint at all, not one at all!!",
    ] {
        let err = normalize_thumbprint(bad).unwrap_err().to_string();
        assert!(err.contains("RFC 7638 JWK thumbprint"), "{err}");
    }
}

#[test]
fn authorities_have_a_port_and_a_lower_case_host() {
    assert_eq!(
        authority("https://IDS.example.com/").as_deref(),
        Some("ids.example.com:443")
    );
    assert_eq!(
        authority("https://localhost:8443/ids").as_deref(),
        Some("localhost:8443")
    );
    assert_eq!(
        authority("https://[::1]:8443").as_deref(),
        Some("[::1]:8443")
    );
    assert_eq!(authority("localhost:8443"), None);
    let name = ServerName::try_from("::1").unwrap();
    assert_eq!(host_of(&name), "[::1]");
}
