//! Unit tests of client-key authentication.
#![allow(clippy::unwrap_used)]

use ids_devpki::{Ca, KeyKind};
use ids_jose::assertion::UnverifiedAssertion;
use ids_pki::Certificate;

use super::assertion::registered_key;
use super::certificate::parse_dn;
use super::*;
use crate::access_control::RegisteredClient;

fn client(id: &str) -> RegisteredClient {
    RegisteredClient {
        audiences: None,
        require_dpop: false,
        identifier: id.into(),
        hash: None,
        hash_fingerprint: [0; 32],
        profile: None,
        display_name: None,
        expires_at: None,
        thumbprints: Vec::new(),
        tls_subject_dn: None,
        tls_san: None,
    }
}

#[test]
fn a_thumbprint_only_client_is_told_the_assertion_carries_no_key() {
    // What Authlib sends: no `kid`, no `jwk`/`x5c` header.
    let b64 = |v: serde_json::Value| ids_pki::b64::url(v.to_string().as_bytes());
    let token = format!(
        "{}.{}.{}",
        b64(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        b64(serde_json::json!({"iss": "Py", "sub": "Py", "jti": "x", "exp": 1})),
        ids_pki::b64::url(&[0u8; 256])
    );
    let assertion = UnverifiedAssertion::parse(&token).expect("structure");
    let mut py = client("Py");
    py.thumbprints = vec!["pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4".into()];
    let error = registered_key(&assertion, &py, &[]).expect_err("no key to verify with");
    assert!(matches!(error, KeyRejection::ThumbprintWithoutKey { .. }));
    let text = error.to_string();
    assert!(
        text.contains("no `jwk` or `x5c` header")
            && text.contains("AccessControl:AuthorizedClientsPath")
            && text.contains("Py.pem"),
        "{text}"
    );
}

#[test]
fn distinguished_names_parse_with_escapes() {
    assert_eq!(
        parse_dn("CN=Poller, O=Corp").unwrap(),
        [
            ("CN".to_string(), "Poller".to_string()),
            ("O".into(), "Corp".into())
        ]
    );
    assert_eq!(
        parse_dn(r"CN=Evil\,O=Corp").unwrap(),
        [("CN".to_string(), "Evil,O=Corp".to_string())]
    );
    assert!(parse_dn("CN").is_none());
}

#[test]
fn replay_cache_refuses_a_second_use_until_expiry_and_stays_bounded() {
    let cache = MemoryReplayCache::new(2, 2);
    assert!(cache.first_use_now("a", "1", 100, 50).unwrap());
    assert!(!cache.first_use_now("a", "1", 100, 60).unwrap());
    // Same jti for another client is another assertion.
    assert!(cache.first_use_now("b", "1", 100, 60).unwrap());
    // Full of live entries: fail closed.
    assert_eq!(
        cache.first_use_now("c", "1", 100, 60),
        Err(KeyRejection::ReplayCacheFull)
    );
    // Once expired (plus leeway), entries make room.
    assert!(
        cache
            .first_use_now("c", "1", 300, 100 + LEEWAY + 1)
            .unwrap()
    );
    // One client's share cannot crowd out the others.
    let cache = MemoryReplayCache::new(10, 2);
    assert!(cache.first_use_now("greedy", "1", 100, 50).unwrap());
    assert!(cache.first_use_now("greedy", "2", 100, 50).unwrap());
    assert_eq!(
        cache.first_use_now("greedy", "3", 100, 50),
        Err(KeyRejection::ReplayCacheFull)
    );
    assert!(cache.first_use_now("polite", "1", 100, 50).unwrap());
}

#[test]
fn ca_issued_certificates_map_by_san_or_subject_and_others_are_refused() {
    let ca = Ca::new("client CA", 1).unwrap();
    let other_ca = Ca::new("other CA", 1).unwrap();
    let authorities =
        ClientAuthorities::new(&[Certificate::from_der("ca", &ca.cert.cert_der).unwrap()]).unwrap();
    let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
    let issued = ca.issue_client("Poller", KeyKind::EcP256, 1).unwrap();
    let presented = PresentedCertificate {
        chain: vec![issued.cert_der.clone()],
    };
    assert_eq!(
        authenticate_certificate(&presented, &client("Poller"), &[], Some(&authorities), now),
        Ok(())
    );
    // Signed by the CA but not for this client.
    let err = authenticate_certificate(&presented, &client("Job"), &[], Some(&authorities), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("urn:ids:client:Job"), "{err}");
    // An explicit subject mapping replaces the default; a value with a comma is not two RDNs.
    let mut by_dn = client("Job");
    by_dn.tls_subject_dn = Some("CN = Poller".into());
    let mut two = client("Job");
    two.tls_subject_dn = Some("CN=Poller,O=Corp".into());
    assert!(authenticate_certificate(&presented, &two, &[], Some(&authorities), now).is_err());
    assert_eq!(
        authenticate_certificate(&presented, &by_dn, &[], Some(&authorities), now),
        Ok(())
    );
    // Another CA's certificate is refused, unless its thumbprint is registered (self-signed mode).
    let foreign = other_ca.issue_client("Poller", KeyKind::EcP256, 1).unwrap();
    let foreign = PresentedCertificate {
        chain: vec![foreign.cert_der],
    };
    assert!(
        authenticate_certificate(&foreign, &client("Poller"), &[], Some(&authorities), now)
            .is_err()
    );
    let mut pinned = client("Poller");
    pinned.thumbprints = vec![foreign.x5t_s256().unwrap()];
    assert_eq!(
        authenticate_certificate(&foreign, &pinned, &[], Some(&authorities), now),
        Ok(())
    );
}

/// Issue 13 point 4: v1 leaves (the seed's `openssl x509 -req`), verified without webpki.
#[test]
fn v1_leaves_must_be_signed_directly_by_a_v3_ca_and_valid() {
    use crate::tls::test_certs::{name, v1};
    use ids_devpki::generate_key;
    let ca = Ca::new("client CA", 1).unwrap();
    let ca_cert = Certificate::from_der("ca", &ca.cert.cert_der).unwrap();
    let ca_name = ca_cert.subject_der().to_vec();
    let authorities = ClientAuthorities::new(std::slice::from_ref(&ca_cert)).unwrap();
    let now = ids_runtime::Clock::now(&ids_runtime::SystemClock);
    let day = 86_400;
    let leaf_key = generate_key(KeyKind::EcP256).unwrap();
    let rogue_key = generate_key(KeyKind::EcP256).unwrap();
    let present = |der: Vec<u8>| PresentedCertificate { chain: vec![der] };
    let mut by_dn = client("Seed");
    by_dn.tls_subject_dn = Some("CN=poller-seed".into());
    let check = |der: Vec<u8>, client: &RegisteredClient, now: i64| {
        authenticate_certificate(&present(der), client, &[], Some(&authorities), now)
            .map_err(|e| e.to_string())
    };
    let good = v1(
        &name("poller-seed"),
        &leaf_key,
        &ca_name,
        &ca.cert.key_pkcs8,
        now - day,
        now + day,
    );
    assert_eq!(check(good.clone(), &by_dn, now), Ok(()));
    // A v1 certificate has no SAN: without TlsClientAuthSubjectDn it maps to no client.
    let err = check(good.clone(), &client("poller-seed"), now).unwrap_err();
    assert!(err.contains("subject `CN=poller-seed` and no SAN"), "{err}");
    // Outside its validity.
    let err = check(good.clone(), &by_dn, now + 2 * day).unwrap_err();
    assert!(
        err.contains("X.509 v1") && err.contains("expired on"),
        "{err}"
    );
    let err = check(good, &by_dn, now - 2 * day).unwrap_err();
    assert!(err.contains("not valid before"), "{err}");
    // The CA's name, another key's signature.
    let forged = v1(
        &name("poller-seed"),
        &leaf_key,
        &ca_name,
        &rogue_key,
        now - day,
        now + day,
    );
    let err = check(forged, &by_dn, now).unwrap_err();
    assert!(
        err.contains("signature does not verify with the public key of `CN=client CA`")
            && err.contains("issuer `CN=client CA`"),
        "{err}"
    );
    // Another issuer.
    let foreign = v1(
        &name("poller-seed"),
        &leaf_key,
        &name("Rogue CA"),
        &rogue_key,
        now - day,
        now + day,
    );
    let err = check(foreign, &by_dn, now).unwrap_err();
    assert!(
        err.contains("issuer `CN=Rogue CA`")
            && err.contains("not issued by IdentityServer:ClientCertificateAuthorities"),
        "{err}"
    );
    // A leaf configured as a CA (CA:FALSE) does not vouch for the v1 certificates its key signs.
    let not_ca = ca.issue_client("Issuer", KeyKind::EcP256, 1).unwrap();
    let not_ca_cert = Certificate::from_der("not a CA", &not_ca.cert_der).unwrap();
    let by_leaf = ClientAuthorities::new(std::slice::from_ref(&not_ca_cert)).unwrap();
    let signed_by_leaf = v1(
        &name("poller-seed"),
        &leaf_key,
        not_ca_cert.subject_der(),
        &not_ca.key_pkcs8,
        now - day,
        now + day,
    );
    let err = authenticate_certificate(&present(signed_by_leaf), &by_dn, &[], Some(&by_leaf), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a v3 CA certificate"), "{err}");
    // A v1 certificate cannot be a CA at all.
    let v1_ca = v1(
        &name("Old CA"),
        &rogue_key,
        &name("Old CA"),
        &rogue_key,
        now - day,
        now + day,
    );
    let err = ClientAuthorities::new(&[Certificate::from_der("old", &v1_ca).unwrap()]).unwrap_err();
    assert!(err.to_string().contains("X.509 v1"), "{err}");
}
