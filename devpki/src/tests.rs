//! CA loading, client certificates and certificate requests (openssl interoperability is tested
//! end to end with `ids-keytool` in `tests/tests/e2e/keytool.rs`).

use super::*;
use ids_pki::Certificate;

#[test]
fn names() {
    assert!(is_dns_name("localhost"));
    assert!(is_dns_name("api.example.com"));
    assert!(is_dns_name("Job"));
    assert!(!is_dns_name("bad_host"));
    assert!(!is_dns_name("-a.example"));
    assert!(!is_dns_name(""));
    assert!(!is_dns_name(&"a".repeat(64)));
    assert_eq!(
        San::host("127.0.0.1").unwrap(),
        San::Ip("127.0.0.1".parse().unwrap())
    );
    assert_eq!(San::host("::1").unwrap().to_string(), "IP:::1");
    assert_eq!(
        San::host("*.example.com").unwrap().to_string(),
        "DNS:*.example.com"
    );
    assert!(San::host("a b").is_err());
    assert_eq!(
        client_sans("Job").unwrap(),
        vec![
            San::Uri("urn:ids:client:Job".into()),
            San::Dns("Job".into())
        ]
    );
    assert_eq!(
        client_sans("svc@host").unwrap(),
        vec![San::Uri("urn:ids:client:svc@host".into())]
    );
    let err = client_sans("a/b").unwrap_err().to_string();
    assert!(err.contains("client id `a/b`"), "{err}");
    assert!(client_sans("").is_err());
}

#[test]
fn loaded_ca_issues_chained_certificates() {
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let made = Ca::authority("Loaded CA", kind, 30).unwrap();
        let ca_cert = Certificate::from_der("ca", &made.cert.cert_der).unwrap();
        let loaded = Ca::from_der("ca.crt", &made.cert.cert_der, &made.cert.key_pkcs8).unwrap();
        assert!(
            loaded
                .cert
                .cert_pem
                .starts_with("-----BEGIN CERTIFICATE-----\n")
        );
        let client = loaded.issue_client("Job", KeyKind::EcP256, 10).unwrap();
        let cert = Certificate::from_der("client", &client.cert_der).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        assert_eq!(cert.subject(), "CN=Job");
        let server = loaded
            .issue(
                &LeafSpec::server(&["localhost".into(), "10.0.0.1".into()], 10).unwrap(),
                KeyKind::Rsa2048,
            )
            .unwrap();
        let cert = Certificate::from_der("server", &server.cert_der).unwrap();
        assert_eq!(cert.subject(), "CN=localhost");
        // Serial numbers are random: the same key certified twice gets two serials.
        let (a, _) = loaded
            .issue_for_key(&LeafSpec::client("A", 1).unwrap(), cert.public_key())
            .unwrap();
        let (b, _) = loaded
            .issue_for_key(&LeafSpec::client("A", 1).unwrap(), cert.public_key())
            .unwrap();
        assert_ne!(a, b);
    }
}

#[test]
fn from_der_refuses_leaves_and_foreign_keys() {
    let ca = Ca::authority("CA", KeyKind::EcP256, 30).unwrap();
    let other = Ca::authority("Other", KeyKind::EcP256, 30).unwrap();
    let err = Ca::from_der("ca.crt", &ca.cert.cert_der, &other.cert.key_pkcs8)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ca.crt: ") && err.contains("does not belong"),
        "{err}"
    );
    let leaf = ca.issue_client("Job", KeyKind::EcP256, 1).unwrap();
    let err = Ca::from_der("leaf.crt", &leaf.cert_der, &leaf.key_pkcs8)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a CA certificate"), "{err}");
}

#[test]
fn requests_round_trip_and_tampering_is_detected() {
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let key = generate_key(kind).unwrap();
        let sans = client_sans("app-01").unwrap();
        let pem = create_request(&key, "app-01", &sans).unwrap();
        let request = parse_request("app.csr", pem.as_bytes()).unwrap();
        assert_eq!(request.common_name.as_deref(), Some("app-01"));
        assert_eq!(request.sans, sans);
        assert!(request.other_names.is_empty());
        let expected = ids_pki::keyfile::parse_private("k", &key, None).unwrap();
        assert_eq!(request.public_key, expected.public_key);

        // Change one byte of the subject: the signature no longer verifies.
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let mut der = block.contents;
        let at = der.windows(6).position(|w| w == b"app-01").unwrap();
        der[at] = b'b';
        let err = parse_request("app.csr", &der).unwrap_err().to_string();
        assert!(err.contains("signature does not verify"), "{err}");
    }
    let err = parse_request(
        "x.csr",
        b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("x.csr: ") && err.contains("CERTIFICATE REQUEST"),
        "{err}"
    );
}

#[test]
fn self_signed_for_an_existing_key() {
    let key = generate_key(KeyKind::EcP256).unwrap();
    let issued = self_signed(&key, &LeafSpec::server(&["myhost".into()], 5).unwrap()).unwrap();
    let cert = Certificate::from_der("c", &issued.cert_der).unwrap();
    assert_eq!(cert.subject(), cert.issuer());
    let read = ids_pki::keyfile::parse_private("k", &key, None).unwrap();
    assert_eq!(*cert.public_key(), read.public_key);
}
