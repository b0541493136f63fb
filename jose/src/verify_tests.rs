//! The verifier against the RFC 8725 / RFC 9068 acceptance list: every token here is forged by hand
//! (base64url header and payload, signed with the fixture keys or an attacker's key), and each rejection
//! must be the exact [`VerifyError`] variant. Ends with a mutation robustness test.

use std::path::PathBuf;
use std::sync::OnceLock;

use aws_lc_rs::hmac;
use serde_json::{Map, Value, json};

use super::verify::{MAX_LEEWAY_SECS, MAX_TOKEN_LEN};
use super::{KeySet, TokenSigner, Validation, Verifier, VerifyError};
use ids_pki::{Algorithm, Certificate, Jwk, Pfx, SigningKey, b64, jwk};

/// The clock of every test (2025-06-15), passed in as the verifier wants.
const NOW: i64 = 1_750_000_000;
const ISSUER: &str = "https://ids.example.test";
const AUDIENCE: &str = "gorgone";
const PASSWORD: &str = "test-password";
/// The order n of the P-256 group (SEC 2 section 2.4.2), written out independently of the verifier's copy.
const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

type Json = Map<String, Value>;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(name)
}

struct Keys {
    /// The server's key (`signing-rsa.pfx`) and the certificate verifiers pin (`signing-rsa.crt`).
    rsa: Pfx,
    rsa_cert: Certificate,
    /// The ES256 key (`signing-ec.pfx`, `signing-ec.crt`).
    ec: Pfx,
    ec_cert: Certificate,
    /// An unrelated RSA-2048 key (`tls.pfx`): the attacker's, or the second key of a rotation.
    other: Pfx,
    /// The trusted verifier: `signing-rsa.crt` and `signing-ec.crt`, leeway 60 s.
    verifier: Verifier,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pfx = |name: &str| Pfx::from_file(&fixture(name), PASSWORD).expect(name);
        let crt = |name: &str| Certificate::from_file(&fixture(name)).expect(name);
        let (rsa_cert, ec_cert) = (crt("signing-rsa.crt"), crt("signing-ec.crt"));
        let keyset = KeySet::from_certificates([
            (&rsa_cert, "signing-rsa.crt".to_string()),
            (&ec_cert, "signing-ec.crt".to_string()),
        ])
        .expect("key set");
        Keys {
            rsa: pfx("signing-rsa.pfx"),
            ec: pfx("signing-ec.pfx"),
            other: pfx("tls.pfx"),
            verifier: Verifier::new(keyset, validation(MAX_LEEWAY_SECS)),
            rsa_cert,
            ec_cert,
        }
    })
}

fn validation(leeway_secs: u64) -> Validation {
    Validation {
        issuer: ISSUER.to_string(),
        audience: AUDIENCE.to_string(),
        leeway_secs,
    }
}

fn rsa_kid() -> String {
    jwk::thumbprint(keys().rsa_cert.public_key())
}

fn ec_kid() -> String {
    jwk::thumbprint(keys().ec_cert.public_key())
}

fn verify(token: &str) -> Result<super::AccessToken, VerifyError> {
    keys().verifier.verify(token, NOW)
}

/// Asserts that `$result` is an error matching the pattern (by reference), and returns it.
macro_rules! assert_err {
    ($result:expr, $($pattern:pat_param)|+ $(if $guard:expr)?) => {
        match $result {
            Err(e) => {
                assert!(
                    matches!(&e, $($pattern)|+ $(if $guard)?),
                    "wrong rejection: {e:?} ({e})"
                );
                e
            }
            Ok(token) => panic!("accepted: {token:?}"),
        }
    };
}

fn claims() -> Json {
    let value = json!({
        "iss": ISSUER,
        "sub": "Job",
        "client_id": "Job",
        "aud": AUDIENCE,
        "scope": "openid gorgone.read",
        "jti": "0f3c7a1e9b2d4c68",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

fn header(alg: &str, kid: &str) -> Json {
    let mut map = Json::new();
    map.insert("alg".into(), alg.into());
    map.insert("typ".into(), "at+jwt".into());
    map.insert("kid".into(), kid.into());
    map
}

fn to_json(map: &Json) -> Vec<u8> {
    serde_json::to_vec(map).expect("serialize")
}

/// `base64url(header) "." base64url(payload)`, the JWS signing input.
fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}", b64::url(header), b64::url(payload))
}

/// A compact JWS of raw header and payload bytes, signed by `sign`.
fn forge_raw(header: &[u8], payload: &[u8], sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = signing_input(header, payload);
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64::url(&signature))
}

fn signer(key: &SigningKey) -> impl FnOnce(&[u8]) -> Vec<u8> + '_ {
    move |message| key.sign(message).expect("sign")
}

/// A token signed by the trusted RSA key, header and claims edited from the valid ones.
fn rs256(edit_header: impl FnOnce(&mut Json), edit_claims: impl FnOnce(&mut Json)) -> String {
    let mut h = header("RS256", &rsa_kid());
    edit_header(&mut h);
    let mut c = claims();
    edit_claims(&mut c);
    forge_raw(&to_json(&h), &to_json(&c), signer(&keys().rsa.key))
}

/// A token signed by the trusted EC key, header and claims edited from the valid ones.
fn es256(edit_header: impl FnOnce(&mut Json), edit_claims: impl FnOnce(&mut Json)) -> String {
    let mut h = header("ES256", &ec_kid());
    edit_header(&mut h);
    let mut c = claims();
    edit_claims(&mut c);
    forge_raw(&to_json(&h), &to_json(&c), signer(&keys().ec.key))
}

/// Valid RS256 claims edited by `edit`.
fn rs_claims(edit: impl FnOnce(&mut Json)) -> String {
    rs256(|_| {}, edit)
}

/// Valid RS256 header edited by `edit`.
fn rs_header(edit: impl FnOnce(&mut Json)) -> String {
    rs256(edit, |_| {})
}

/// Replaces the signature part of `token` with `signature`.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let input = token.rsplit_once('.').expect("three parts").0;
    format!("{input}.{}", b64::url(signature))
}

fn signature_of(token: &str) -> Vec<u8> {
    b64::url_decode(token.rsplit_once('.').expect("three parts").1).expect("base64url")
}

fn hs256(key: &[u8], header_kid: &str) -> String {
    let h = header("HS256", header_kid);
    forge_raw(&to_json(&h), &to_json(&claims()), |message| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
            .as_ref()
            .to_vec()
    })
}

fn es256_with_signature(signature: &[u8]) -> String {
    with_signature(&es256(|_| {}, |_| {}), signature)
}

fn r_s(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    [r.as_slice(), s.as_slice()].concat()
}

fn one() -> [u8; 32] {
    let mut one = [0u8; 32];
    one[31] = 1;
    one
}

/// The attacker's JWK (the `tls.pfx` key), as an embedded `jwk` header would carry it.
fn attacker_jwk() -> Value {
    serde_json::to_value(Jwk::from_certificate(&keys().other.certificate)).expect("jwk")
}

/// A token signed by the attacker's key with an extra header member.
fn attacker_token(member: &str, value: Value) -> String {
    let mut h = header("RS256", &rsa_kid());
    h.insert(member.into(), value);
    forge_raw(&to_json(&h), &to_json(&claims()), signer(&keys().other.key))
}

fn untrusted_header_cases() -> Vec<(&'static str, String)> {
    let other_der = keys().other.certificate.der();
    vec![
        ("jwk", attacker_token("jwk", attacker_jwk())),
        (
            "jku",
            attacker_token("jku", "https://attacker.example/jwks.json".into()),
        ),
        (
            "x5u",
            attacker_token("x5u", "https://attacker.example/cert.pem".into()),
        ),
        ("x5c", attacker_token("x5c", json!([b64::std(other_der)]))),
    ]
}

// ---------------------------------------------------------------------------------------------------
// Baseline: the valid tokens the negative cases are edited from do verify.

#[test]
fn baseline_rs256_and_es256_tokens_verify() {
    let token = verify(&rs256(|_| {}, |_| {})).expect("valid RS256");
    assert_eq!(token.algorithm, Algorithm::RS256);
    assert_eq!(token.kid, rsa_kid());
    assert_eq!(token.issuer, ISSUER);
    assert_eq!(token.subject.as_deref(), Some("Job"));
    assert_eq!(token.client_id.as_deref(), Some("Job"));
    assert_eq!(token.audience, vec![AUDIENCE.to_string()]);
    assert_eq!(token.jti.as_deref(), Some("0f3c7a1e9b2d4c68"));
    assert_eq!(
        (token.issued_at, token.not_before, token.expires_at),
        (NOW - 10, NOW - 10, NOW + 3600)
    );
    let token = verify(&es256(|_| {}, |_| {})).expect("valid ES256");
    assert_eq!(token.algorithm, Algorithm::ES256);
    assert_eq!(token.kid, ec_kid());
}

#[test]
fn token_signer_rs256_token_verifies_with_thumbprint_kid() {
    let k = keys();
    let signer = TokenSigner::new(
        SigningKey::from_pkcs8(&k.rsa.key_pkcs8).expect("key"),
        &k.rsa.certificate,
    );
    assert_eq!(signer.kid(), rsa_kid(), "kid is the RFC 7638 thumbprint");
    let token = signer.sign(&claims()).expect("sign");
    let header: Value = serde_json::from_slice(
        &b64::url_decode(token.split('.').next().expect("header")).expect("b64"),
    )
    .expect("json");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["x5t"], k.rsa_cert.x5t().as_str());
    let verified = verify(&token).expect("TokenSigner RS256 token");
    assert_eq!(verified.kid, rsa_kid());
    assert_eq!(verified.algorithm, Algorithm::RS256);
    assert!(verified.has_scope("gorgone.read"));
}

#[test]
fn kid_may_be_the_x5t_or_the_upper_case_sha1_hex_thumbprint() {
    let cert = &keys().rsa_cert;
    for kid in [cert.x5t(), cert.sha1_hex()] {
        let token = rs_header(|h| {
            h.insert("kid".into(), kid.clone().into());
        });
        let verified = verify(&token).unwrap_or_else(|e| panic!("kid {kid}: {e}"));
        assert_eq!(verified.kid, rsa_kid(), "reported under its canonical kid");
    }
    assert!(
        cert.sha1_hex()
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
}

#[test]
fn token_signer_es256_token_from_signing_ec_pfx_verifies() {
    let k = keys();
    let signer = TokenSigner::new(
        SigningKey::from_pkcs8(&k.ec.key_pkcs8).expect("key"),
        &k.ec.certificate,
    );
    let token = signer.sign(&claims()).expect("sign");
    let verified = verify(&token).expect("TokenSigner ES256 token");
    assert_eq!(verified.algorithm, Algorithm::ES256);
    assert_eq!(verified.kid, ec_kid());
}

// ---------------------------------------------------------------------------------------------------
// Algorithm confusion and unsigned tokens.

#[test]
fn alg_none_is_unsigned_with_or_without_a_signature() {
    for alg in ["none", "None", "NONE"] {
        let h = to_json(&header(alg, &rsa_kid()));
        let input = signing_input(&h, &to_json(&claims()));
        assert_err!(verify(&format!("{input}.")), VerifyError::Unsigned);
        let real_signature = keys().rsa.key.sign(input.as_bytes()).expect("sign");
        let signed = format!("{input}.{}", b64::url(&real_signature));
        assert_err!(verify(&signed), VerifyError::Unsigned);
    }
}

#[test]
fn hs256_keyed_with_the_public_key_is_symmetric() {
    let cert = &keys().rsa_cert;
    let pem = std::fs::read(fixture("signing-rsa.crt")).expect("pem");
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).expect("x509");
    let spki_der = parsed.public_key().raw.to_vec();
    let pkcs1_der = keys().rsa.key.public_key_bytes().to_vec();
    for key in [pem, spki_der, pkcs1_der, cert.der().to_vec()] {
        for kid in [rsa_kid(), String::new()] {
            assert_err!(
                verify(&hs256(&key, &kid)),
                VerifyError::Symmetric { alg } if alg == "HS256"
            );
        }
    }
}

#[test]
fn other_algorithms_are_unsupported() {
    for alg in ["RS512", "PS512", "ES512", "Ed25519", "rs256"] {
        let token = rs_header(|h| {
            h.insert("alg".into(), alg.into());
        });
        assert_err!(
            verify(&token),
            VerifyError::UnsupportedAlgorithm { alg: found } if found == alg
        );
    }
}

#[test]
fn rs256_token_naming_the_ec_key_is_an_algorithm_mismatch() {
    let token = rs_header(|h| {
        h.insert("kid".into(), ec_kid().into());
    });
    assert_err!(
        verify(&token),
        VerifyError::AlgorithmMismatch { alg, kid, expected, .. }
            if alg == "RS256" && *kid == ec_kid() && expected == "ES256"
    );
    // An RSA certificate verifies RS256 and PS256 (both RSA signatures with its key), nothing else.
    let token = es256(
        |h| {
            h.insert("kid".into(), rsa_kid().into());
        },
        |_| {},
    );
    assert_err!(
        verify(&token),
        VerifyError::AlgorithmMismatch { alg, expected, .. } if alg == "ES256" && expected == "RS256 or PS256"
    );
}

// ---------------------------------------------------------------------------------------------------
// Keys: forged signatures, embedded keys, unknown kids.

#[test]
fn another_rsa_key_with_the_trusted_kid_is_a_bad_signature() {
    let token = forge_raw(
        &to_json(&header("RS256", &rsa_kid())),
        &to_json(&claims()),
        signer(&keys().other.key),
    );
    assert_err!(
        verify(&token),
        VerifyError::BadSignature { kid, .. } if *kid == rsa_kid()
    );
    // Without a kid the only RS256 candidate is tried, with the same result.
    let mut h = header("RS256", "");
    h.remove("kid");
    let token = forge_raw(&to_json(&h), &to_json(&claims()), signer(&keys().other.key));
    assert_err!(verify(&token), VerifyError::BadSignature { .. });
}

#[test]
fn embedded_or_referenced_keys_are_untrusted() {
    for (member, token) in untrusted_header_cases() {
        assert_err!(
            verify(&token),
            VerifyError::UntrustedKeyHeader { member: found } if found == member
        );
    }
    // Even with the trusted key's signature: the header itself is refused.
    let token = rs_header(|h| {
        h.insert("jwk".into(), attacker_jwk());
    });
    assert_err!(
        verify(&token),
        VerifyError::UntrustedKeyHeader { member } if member == "jwk"
    );
}

#[test]
fn unknown_kid_is_unknown_key_and_asks_for_a_jwks_refresh() {
    let token = rs_header(|h| {
        h.insert("kid".into(), "rotated-in-later".into());
    });
    let e = assert_err!(
        verify(&token),
        VerifyError::UnknownKey { kid, .. } if kid == "rotated-in-later"
    );
    assert!(e.is_unknown_key());
    assert!(!VerifyError::Unsigned.is_unknown_key());
}

#[test]
fn no_kid_and_no_key_of_the_algorithm_is_no_key_for_algorithm() {
    let k = keys();
    let rsa_only = Verifier::new(
        KeySet::from_certificates([(&k.rsa_cert, "signing-rsa.crt".to_string())]).expect("keys"),
        validation(0),
    );
    let token = es256(
        |h| {
            h.remove("kid");
        },
        |_| {},
    );
    let e = assert_err!(
        rsa_only.verify(&token, NOW),
        VerifyError::NoKeyForAlgorithm { alg } if alg == "ES256"
    );
    assert!(e.is_unknown_key());
}

// ---------------------------------------------------------------------------------------------------
// Signatures.

#[test]
fn truncated_signature_is_signature_length() {
    let token = rs256(|_| {}, |_| {});
    let mut signature = signature_of(&token);
    signature.pop();
    assert_err!(
        verify(&with_signature(&token, &signature)),
        VerifyError::SignatureLength {
            found: 255,
            expected: 256,
            ..
        }
    );
    assert_err!(
        verify(&with_signature(&token, &[])),
        VerifyError::SignatureLength { found: 0, .. }
    );
    let token = es256(|_| {}, |_| {});
    assert_err!(
        verify(&with_signature(&token, &signature_of(&token)[..63])),
        VerifyError::SignatureLength {
            found: 63,
            expected: 64,
            ..
        }
    );
}

#[test]
fn altered_signature_or_payload_is_a_bad_signature() {
    let token = rs256(|_| {}, |_| {});
    for bit in [0, 7, 1000, 2047] {
        let mut signature = signature_of(&token);
        signature[bit / 8] ^= 1 << (bit % 8);
        assert_err!(
            verify(&with_signature(&token, &signature)),
            VerifyError::BadSignature { .. }
        );
    }
    // The payload of another (validly signed) token under the original signature.
    let escalated = rs_claims(|c| {
        c.insert("scope".into(), "openid gorgone.admin".into());
    });
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = escalated.split('.').nth(1).expect("payload");
    assert_err!(verify(&parts.join(".")), VerifyError::BadSignature { .. });
    // The same for ES256.
    let token = es256(|_| {}, |_| {});
    let mut signature = signature_of(&token);
    signature[40] ^= 0x10;
    assert_err!(
        verify(&with_signature(&token, &signature)),
        VerifyError::BadSignature { .. }
    );
}

#[test]
fn es256_signature_with_r_or_s_out_of_range_is_refused() {
    let zero = [0u8; 32];
    for (name, signature) in [
        ("r = s = 0", r_s(&zero, &zero)),
        ("r = 0", r_s(&zero, &one())),
        ("s = 0", r_s(&one(), &zero)),
        ("r = n", r_s(&P256_N, &one())),
        ("s = n", r_s(&one(), &P256_N)),
        ("r = s = n", r_s(&P256_N, &P256_N)),
        ("r = 2^256 - 1", r_s(&[0xFF; 32], &one())),
    ] {
        match verify(&es256_with_signature(&signature)) {
            Err(VerifyError::SignatureOutOfRange) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    // n - 1 is in range: an ordinary bad signature.
    let mut n_minus_1 = P256_N;
    n_minus_1[31] -= 1;
    assert_err!(
        verify(&es256_with_signature(&r_s(&n_minus_1, &n_minus_1))),
        VerifyError::BadSignature { .. }
    );
}

// ---------------------------------------------------------------------------------------------------
// Header policy.

#[test]
fn typ_must_be_at_jwt() {
    let token = rs_header(|h| {
        h.insert("typ".into(), "JWT".into());
    });
    assert_err!(verify(&token), VerifyError::WrongType { found } if found == "\"JWT\"");
    let token = rs_header(|h| {
        h.remove("typ");
    });
    assert_err!(verify(&token), VerifyError::WrongType { found } if found == "missing");
    // The media-type form (RFC 9068 section 2.1) is accepted.
    let token = rs_header(|h| {
        h.insert("typ".into(), "application/at+jwt".into());
    });
    verify(&token).expect("application/at+jwt");
}

#[test]
fn crit_is_critical() {
    let token = rs_header(|h| {
        h.insert("crit".into(), json!(["exp"]));
        h.insert("exp".into(), json!(NOW + 10));
    });
    assert_err!(verify(&token), VerifyError::Critical { names } if names.contains("exp"));
}

#[test]
fn duplicate_or_missing_alg_and_non_object_headers_are_bad_headers() {
    let kid = rsa_kid();
    let payload = to_json(&claims());
    let sign = |header: &str| forge_raw(header.as_bytes(), &payload, signer(&keys().rsa.key));
    for header in [
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"RS256"}}"#),
        format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}","alg":"RS256"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u0061lg":"HS256"}}"#),
        format!(r#"{{"typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"["RS256","at+jwt","{kid}",null,null,null,null,null]"#),
        r#""RS256""#.to_string(),
        "not json".to_string(),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}} trailing"#),
    ] {
        match verify(&sign(&header)) {
            Err(VerifyError::BadHeader { .. }) => {}
            other => panic!("{header}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Structure.

#[test]
fn wrong_number_of_parts_is_malformed() {
    let token = rs256(|_| {}, |_| {});
    let mut parts: Vec<&str> = token.split('.').collect();
    let two = parts[..2].join(".");
    assert_err!(verify(&two), VerifyError::Malformed { detail } if detail.contains('2'));
    parts.push(parts[2]);
    assert_err!(verify(&parts.join(".")), VerifyError::Malformed { detail } if detail.contains('4'));
    assert_err!(verify(""), VerifyError::Malformed { .. });
    assert_err!(verify("."), VerifyError::Malformed { .. });
    // Three empty parts are structurally a JWS; the empty header is what is wrong.
    assert_err!(verify(".."), VerifyError::BadHeader { .. });
}

#[test]
fn non_base64url_characters_and_padding_are_malformed() {
    let token = rs256(|_| {}, |_| {});
    let (header, rest) = token.split_once('.').expect("parts");
    let (payload, signature) = rest.split_once('.').expect("parts");
    for bad in ['+', '/', '!', ' ', '='] {
        for (i, part) in [header, signature].into_iter().enumerate() {
            let mut altered = part.to_string();
            altered.insert(part.len() / 2, bad);
            let parts = if i == 0 {
                [altered.as_str(), payload, signature]
            } else {
                [header, payload, altered.as_str()]
            };
            assert_err!(verify(&parts.join(".")), VerifyError::Malformed { .. });
        }
    }
    // Padding at the end of each part. For the payload, the (padded) signing input is properly signed,
    // so the padding is what gets it refused.
    let padded = |part: &str| format!("{part}==");
    assert_err!(
        verify(&format!("{}.{payload}.{signature}", padded(header))),
        VerifyError::Malformed { .. }
    );
    assert_err!(
        verify(&format!("{header}.{payload}.{}", padded(signature))),
        VerifyError::Malformed { .. }
    );
    let input = format!("{header}.{}", padded(payload));
    let signature = keys().rsa.key.sign(input.as_bytes()).expect("sign");
    assert_err!(
        verify(&format!("{input}.{}", b64::url(&signature))),
        VerifyError::Malformed { detail } if detail.contains("payload")
    );
}

#[test]
fn oversized_token_is_too_large() {
    let token = rs_claims(|c| {
        c.insert("padding".into(), "x".repeat(MAX_TOKEN_LEN).into());
    });
    assert_err!(
        verify(&token),
        VerifyError::TooLarge { len, max } if *len == token.len() && *max == MAX_TOKEN_LEN
    );
    assert_err!(
        verify(&"a".repeat(MAX_TOKEN_LEN)),
        VerifyError::Malformed { .. }
    );
    assert_err!(
        verify(&"a".repeat(MAX_TOKEN_LEN + 1)),
        VerifyError::TooLarge { .. }
    );
}

#[test]
fn claims_that_are_not_an_object_are_bad_claims() {
    let h = to_json(&header("RS256", &rsa_kid()));
    for payload in [&b"[]"[..], b"\"claims\"", b"{\"exp\":1", b"null"] {
        let token = forge_raw(&h, payload, signer(&keys().rsa.key));
        assert_err!(verify(&token), VerifyError::BadClaims { .. });
    }
}

// ---------------------------------------------------------------------------------------------------
// Time claims.

#[test]
fn expiry_beyond_the_leeway_is_expired_and_within_it_accepted() {
    let token = rs_claims(|c| {
        c.insert("exp".into(), json!(NOW - 61));
    });
    assert_err!(
        verify(&token),
        VerifyError::Expired { exp, now: NOW, leeway: 60 } if *exp == NOW - 61
    );
    let token = rs_claims(|c| {
        c.insert("exp".into(), json!(NOW - 30));
    });
    verify(&token).expect("expired 30 s ago, leeway 60 s");
}

#[test]
fn expiry_boundary_follows_rfc_7519() {
    // "The current date/time MUST be before the expiration date/time" (RFC 7519 section 4.1.4).
    let strict = Verifier::new(
        KeySet::from_certificates([(&keys().rsa_cert, "signing-rsa.crt".to_string())])
            .expect("keys"),
        validation(0),
    );
    let expiring = |exp: i64| {
        rs_claims(|c| {
            c.insert("exp".into(), json!(exp));
        })
    };
    strict
        .verify(&expiring(NOW + 1), NOW)
        .expect("one second left");
    assert_err!(
        strict.verify(&expiring(NOW), NOW),
        VerifyError::Expired { .. }
    );
    verify(&expiring(NOW - 59)).expect("within the 60 s leeway");
    assert_err!(verify(&expiring(NOW - 60)), VerifyError::Expired { .. });
}

#[test]
fn nbf_in_the_future_is_not_yet_valid_and_iat_in_the_future_is_issued_in_future() {
    let token = rs_claims(|c| {
        c.insert("nbf".into(), json!(NOW + 120));
    });
    assert_err!(
        verify(&token),
        VerifyError::NotYetValid { nbf, .. } if *nbf == NOW + 120
    );
    let token = rs_claims(|c| {
        c.insert("nbf".into(), json!(NOW + 30));
    });
    verify(&token).expect("nbf within the leeway");
    let token = rs_claims(|c| {
        c.insert("iat".into(), json!(NOW + 120));
    });
    assert_err!(
        verify(&token),
        VerifyError::IssuedInFuture { iat, .. } if *iat == NOW + 120
    );
}

#[test]
fn leeway_is_capped_at_max_leeway_secs() {
    let k = keys();
    let lax = Verifier::new(
        KeySet::from_certificates([(&k.rsa_cert, "signing-rsa.crt".to_string())]).expect("keys"),
        validation(600),
    );
    assert_eq!(lax.validation().leeway_secs, MAX_LEEWAY_SECS);
    let token = rs_claims(|c| {
        c.insert("exp".into(), json!(NOW - 100));
    });
    assert_err!(
        lax.verify(&token, NOW),
        VerifyError::Expired { leeway, .. } if *leeway == MAX_LEEWAY_SECS
    );
}

#[test]
fn string_exp_is_a_claim_type_error() {
    for value in [
        json!("9999999999"),
        json!(null),
        json!(true),
        json!([NOW + 10]),
    ] {
        let token = rs_claims(|c| {
            c.insert("exp".into(), value.clone());
        });
        assert_err!(verify(&token), VerifyError::ClaimType { claim: "exp", .. });
    }
    let token = rs_claims(|c| {
        c.insert("exp".into(), json!(18_446_744_073_709_551_615u64));
    });
    assert_err!(verify(&token), VerifyError::ClaimType { claim: "exp", .. });
}

#[test]
fn missing_time_claims_are_missing_claims() {
    for name in ["exp", "nbf", "iat"] {
        let token = rs_claims(|c| {
            c.remove(name);
        });
        assert_err!(
            verify(&token),
            VerifyError::MissingClaim { claim } if *claim == name
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Issuer, audience, scope.

#[test]
fn wrong_issuer_and_audience_are_refused() {
    let token = rs_claims(|c| {
        c.insert("iss".into(), "https://evil.example.test".into());
    });
    assert_err!(
        verify(&token),
        VerifyError::WrongIssuer { found, .. } if found == "https://evil.example.test"
    );
    let token = rs_claims(|c| {
        c.insert("iss".into(), format!("{ISSUER}/").into());
    });
    assert_err!(verify(&token), VerifyError::WrongIssuer { .. });
    let token = rs_claims(|c| {
        c.insert("aud".into(), "other-api".into());
    });
    assert_err!(verify(&token), VerifyError::WrongAudience { .. });
    let token = rs_claims(|c| {
        c.insert("aud".into(), json!(["a", "b"]));
    });
    assert_err!(verify(&token), VerifyError::WrongAudience { .. });
    for name in ["iss", "aud"] {
        let token = rs_claims(|c| {
            c.remove(name);
        });
        assert_err!(
            verify(&token),
            VerifyError::MissingClaim { claim } if *claim == name
        );
    }
}

#[test]
fn audience_array_containing_the_expected_one_is_accepted() {
    let token = rs_claims(|c| {
        c.insert("aud".into(), json!(["other-api", AUDIENCE]));
    });
    let verified = verify(&token).expect("aud array");
    assert_eq!(verified.audience, vec!["other-api", AUDIENCE]);
}

#[test]
fn scope_string_or_array_gives_scopes_and_a_number_is_a_claim_type_error() {
    let token = rs_claims(|c| {
        c.insert("scope".into(), " openid  gorgone.read ".into());
    });
    assert_eq!(
        verify(&token).expect("string").scopes,
        ["openid", "gorgone.read"]
    );
    let token = rs_claims(|c| {
        c.insert("scope".into(), json!(["openid", "gorgone.read"]));
    });
    assert_eq!(
        verify(&token).expect("array").scopes,
        ["openid", "gorgone.read"]
    );
    let token = rs_claims(|c| {
        c.remove("scope");
    });
    assert!(verify(&token).expect("no scope").scopes.is_empty());
    let token = rs_claims(|c| {
        c.insert("scope".into(), json!(42));
    });
    assert_err!(
        verify(&token),
        VerifyError::ClaimType { claim: "scope", .. }
    );
    let token = rs_claims(|c| {
        c.insert("scope".into(), json!(["openid", 42]));
    });
    assert_err!(
        verify(&token),
        VerifyError::ClaimType { claim: "scope", .. }
    );
}

// ---------------------------------------------------------------------------------------------------
// Key rotation.

#[test]
fn key_set_with_two_certificates_verifies_tokens_from_both() {
    let k = keys();
    let keyset = KeySet::from_certificates([
        (&k.rsa.certificate, "signing-rsa.pfx".to_string()),
        (&k.other.certificate, "tls.pfx".to_string()),
    ])
    .expect("keys");
    assert_rotation(&Verifier::new(keyset, validation(0)));
}

#[test]
fn jwks_with_two_certificates_verifies_tokens_from_both() {
    let k = keys();
    let jwks = json!({
        "keys": [Jwk::from_certificate(&k.rsa.certificate), Jwk::from_certificate(&k.other.certificate)]
    });
    let keyset = KeySet::from_jwks(jwks.to_string().as_bytes()).expect("jwks");
    assert!(keyset.skipped().is_empty(), "{:?}", keyset.skipped());
    assert_rotation(&Verifier::new(keyset, validation(0)));
}

fn assert_rotation(verifier: &Verifier) {
    for pfx in [&keys().rsa, &keys().other] {
        let signer = TokenSigner::new(
            SigningKey::from_pkcs8(&pfx.key_pkcs8).expect("key"),
            &pfx.certificate,
        );
        let token = signer.sign(&claims()).expect("sign");
        let verified = verifier
            .verify(&token, NOW)
            .unwrap_or_else(|e| panic!("{}: {e}", pfx.file));
        assert_eq!(verified.kid, signer.kid());
    }
    // A key that is not in the set is still unknown.
    let ec = TokenSigner::new(
        SigningKey::from_pkcs8(&keys().ec.key_pkcs8).expect("key"),
        &keys().ec.certificate,
    );
    let token = ec.sign(&claims()).expect("sign");
    assert_err!(verifier.verify(&token, NOW), VerifyError::UnknownKey { .. });
}

// ---------------------------------------------------------------------------------------------------
// Every kind of rejection says something different.

#[test]
fn every_kind_of_rejection_has_its_own_message() {
    let k = keys();
    let rsa_only = Verifier::new(
        KeySet::from_certificates([(&k.rsa_cert, "signing-rsa.crt".to_string())]).expect("keys"),
        validation(60),
    );
    let valid = rs256(|_| {}, |_| {});
    let (input, _) = valid.rsplit_once('.').expect("parts");
    let mut flipped = signature_of(&valid);
    flipped[0] ^= 1;
    let kid = rsa_kid();
    let rs_header_json = to_json(&header("RS256", &kid));
    let padded_payload = {
        let input = format!("{}.e30=", b64::url(&rs_header_json));
        let signature = k.rsa.key.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", b64::url(&signature))
    };
    let duplicate_alg = forge_raw(
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#).as_bytes(),
        &to_json(&claims()),
        signer(&k.rsa.key),
    );
    let unsigned = format!(
        "{}.",
        signing_input(&to_json(&header("none", &kid)), &to_json(&claims()))
    );
    let claim = |name: &'static str, value: Value| {
        verify(&rs_claims(|c| {
            c.insert(name.into(), value);
        }))
    };
    let without_claim = |name: &'static str| {
        verify(&rs_claims(|c| {
            c.remove(name);
        }))
    };
    let header_with = |name: &'static str, value: Value| {
        verify(&rs_header(|h| {
            h.insert(name.into(), value);
        }))
    };
    let without_header = |name: &'static str| {
        verify(&rs_header(|h| {
            h.remove(name);
        }))
    };
    let es256_without_kid = es256(
        |h| {
            h.remove("kid");
        },
        |_| {},
    );
    let not_an_object = forge_raw(&rs_header_json, b"[]", signer(&k.rsa.key));
    let mut cases: Vec<(&str, Result<super::AccessToken, VerifyError>)> = vec![
        ("too large", verify(&"a".repeat(MAX_TOKEN_LEN + 1))),
        ("2 parts", verify(input)),
        ("4 parts", verify(&format!("{valid}.x"))),
        ("header not base64url", verify(&format!("!{valid}"))),
        ("signature not base64url", verify(&format!("{valid}!"))),
        ("payload not base64url", verify(&padded_payload)),
        ("duplicate alg", verify(&duplicate_alg)),
        ("missing alg", without_header("alg")),
        ("alg none", verify(&unsigned)),
        ("HS256", verify(&hs256(b"public key", &kid))),
        ("PS512", header_with("alg", "PS512".into())),
        ("crit", header_with("crit", json!(["b64"]))),
        ("typ JWT", header_with("typ", "JWT".into())),
        ("typ missing", without_header("typ")),
        ("unknown kid", header_with("kid", "unknown".into())),
        (
            "no key for the algorithm",
            rsa_only.verify(&es256_without_kid, NOW),
        ),
        ("algorithm mismatch", header_with("kid", ec_kid().into())),
        (
            "signature length",
            verify(&with_signature(&valid, &[1, 2, 3])),
        ),
        (
            "signature out of range",
            verify(&es256_with_signature(&[0; 64])),
        ),
        ("bad signature", verify(&with_signature(&valid, &flipped))),
        ("claims not an object", verify(&not_an_object)),
        ("missing exp", without_claim("exp")),
        ("missing nbf", without_claim("nbf")),
        ("missing iat", without_claim("iat")),
        ("missing iss", without_claim("iss")),
        ("missing aud", without_claim("aud")),
        ("exp string", claim("exp", json!("9999999999"))),
        ("scope number", claim("scope", json!(42))),
        ("expired", claim("exp", json!(NOW - 100))),
        ("not yet valid", claim("nbf", json!(NOW + 100))),
        ("issued in future", claim("iat", json!(NOW + 100))),
        (
            "wrong issuer",
            claim("iss", json!("https://evil.example.test")),
        ),
        ("wrong audience", claim("aud", json!("other-api"))),
    ];
    for (member, token) in untrusted_header_cases() {
        cases.push((member, verify(&token)));
    }
    let messages: Vec<(&str, String)> = cases
        .into_iter()
        .map(|(name, result)| match result {
            Err(e) => (name, e.to_string()),
            Ok(t) => panic!("{name}: accepted {t:?}"),
        })
        .collect();
    for (i, (name_a, a)) in messages.iter().enumerate() {
        assert!(!a.is_empty(), "{name_a}: empty message");
        for (name_b, b) in &messages[i + 1..] {
            assert_ne!(a, b, "\"{name_a}\" and \"{name_b}\" give the same message");
        }
    }
    assert!(messages.len() >= 35, "{} cases", messages.len());
}

// ---------------------------------------------------------------------------------------------------
// Robustness: random mutations never panic and never get a modified token accepted.

/// xorshift64 (Marsaglia 2003): deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ {}\"\\\0\xff";

fn mutate(rng: &mut XorShift, token: &[u8]) -> Vec<u8> {
    let mut bytes = token.to_vec();
    for _ in 0..=rng.below(3) {
        let len = bytes.len();
        let at = rng.below(len);
        match rng.below(8) {
            0 if len > 0 => bytes[at] ^= 1 << rng.below(8),
            1 if len > 0 => bytes[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 if len > 0 => {
                bytes.remove(at);
            }
            3 => bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            4 => bytes.truncate(at),
            5 if len > 0 => {
                let other = rng.below(len);
                bytes.swap(at, other);
            }
            6 => {
                let end = (at + rng.below(64)).min(len);
                let slice = bytes[at..end].to_vec();
                let to = rng.below(len);
                bytes.splice(to..to, slice);
            }
            _ if len > 0 => bytes[at] = rng.next() as u8,
            _ => bytes.push(b'.'),
        }
    }
    bytes
}

fn assert_mutations_refused(original: &str, seed: u64, rounds: usize) -> usize {
    let mut rng = XorShift(seed);
    let mut refused = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for round in 0..rounds {
        let bytes = mutate(&mut rng, original.as_bytes());
        let mutated = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| verify(&mutated)))
            .unwrap_or_else(|_| panic!("round {round}: verify panicked on {mutated:?}"));
        match result {
            Ok(_) => assert_eq!(
                mutated, original,
                "round {round}: a modified token was accepted"
            ),
            Err(e) => {
                refused += 1;
                let debug = format!("{e:?}");
                kinds.insert(
                    debug
                        .split([' ', '{', '('])
                        .next()
                        .unwrap_or("")
                        .to_string(),
                );
            }
        }
    }
    for kind in ["Malformed", "BadHeader", "BadSignature", "SignatureLength"] {
        assert!(
            kinds.contains(kind),
            "mutations never gave {kind}: {kinds:?}"
        );
    }
    refused
}

#[test]
fn random_mutations_never_panic_and_never_pass() {
    let rs = rs256(|_| {}, |_| {});
    let es = es256(|_| {}, |_| {});
    let refused = assert_mutations_refused(&rs, 0x9E37_79B9_7F4A_7C15, 3_000)
        + assert_mutations_refused(&es, 0xD1B5_4A32_D192_ED03, 2_000);
    // Almost every mutation changes the token; the few that do not (e.g. a swap of equal bytes) pass.
    assert!(refused > 4_900, "only {refused} of 5000 refused");
}

#[test]
fn certificate_bound_tokens_need_that_certificate() {
    let cert = b"the DER of the client certificate".as_slice();
    let x5t = b64::url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert).as_ref());
    let bound = rs_claims(|c| {
        c.insert("cnf".into(), json!({ "x5t#S256": x5t }));
    });
    let v = &keys().verifier;
    // verify() alone checks the signature and claims; the binding is checked with the certificate.
    assert!(v.verify(&bound, NOW).is_ok());
    assert!(v.verify_presented(&bound, NOW, Some(cert)).is_ok());
    assert!(matches!(
        v.verify_presented(&bound, NOW, None),
        Err(VerifyError::CertificateRequired { .. })
    ));
    assert!(matches!(
        v.verify_presented(&bound, NOW, Some(b"another certificate")),
        Err(VerifyError::CertificateMismatch { .. })
    ));
    // Unbound tokens pass with or without a certificate.
    let plain = rs_claims(|_| {});
    assert!(v.verify_presented(&plain, NOW, None).is_ok());
    assert!(v.verify_presented(&plain, NOW, Some(cert)).is_ok());
    // A confirmation method we cannot check is refused, not ignored.
    let unknown = rs_claims(|c| {
        c.insert("cnf".into(), json!({ "x5t": "abc" }));
    });
    assert!(matches!(
        v.verify_presented(&unknown, NOW, None),
        Err(VerifyError::UnsupportedConfirmation { .. })
    ));
    // ... also beside one it understands.
    let mixed = rs_claims(|c| {
        c.insert("cnf".into(), json!({ "jkt": "abc", "x5t#S256": 7 }));
    });
    assert!(matches!(
        v.verify_presented(&mixed, NOW, None),
        Err(VerifyError::UnsupportedConfirmation { .. })
    ));
}

#[test]
fn dpop_bound_tokens_need_a_proof_with_that_key_and_unbound_ones_none() {
    use crate::dpop::{DpopPolicy, DpopRequest, DpopSigner};
    let (key, _) = SigningKey::generate(Algorithm::ES256).expect("key");
    let public = key.public_key();
    let client = DpopSigner::new(key, &public);
    let (other_key, _) = SigningKey::generate(Algorithm::EdDSA).expect("key");
    let other_public = other_key.public_key();
    let other = DpopSigner::new(other_key, &other_public);
    let bound = rs_claims(|c| {
        c.insert("cnf".into(), json!({ "jkt": client.jkt() }));
    });
    let v = &keys().verifier;
    let url = "https://api.example.test/items";
    let urls = vec![url.to_string()];
    let request = DpopRequest {
        method: "GET",
        urls: &urls,
        access_token: None,
    };
    let policy = DpopPolicy::default();
    let proof = client
        .proof("GET", url, NOW, None, Some(&bound))
        .expect("proof");
    let (token, verified) = v
        .verify_dpop(&bound, &proof, &request, &policy, None, NOW)
        .expect("accepted");
    assert_eq!(token.dpop_binding(), Some(client.jkt()));
    assert_eq!(verified.jkt, client.jkt());
    // As a bearer token: refused, saying to use DPoP.
    assert!(matches!(
        v.verify_presented(&bound, NOW, None),
        Err(VerifyError::DpopRequired { .. })
    ));
    // Another key's proof.
    let foreign = other
        .proof("GET", url, NOW, None, Some(&bound))
        .expect("proof");
    assert!(matches!(
        v.verify_dpop(&bound, &foreign, &request, &policy, None, NOW),
        Err(crate::DpopVerifyError::Token(
            VerifyError::DpopKeyMismatch { .. }
        ))
    ));
    // A proof without the token's hash, or for another token.
    let no_ath = client.proof("GET", url, NOW, None, None).expect("proof");
    assert!(matches!(
        v.verify_dpop(&bound, &no_ath, &request, &policy, None, NOW),
        Err(crate::DpopVerifyError::Proof(
            crate::DpopError::MissingTokenHash
        ))
    ));
    // An unbound token with the DPoP scheme.
    let plain = rs_claims(|_| {});
    let proof = client
        .proof("GET", url, NOW, None, Some(&plain))
        .expect("proof");
    assert!(matches!(
        v.verify_dpop(&plain, &proof, &request, &policy, None, NOW),
        Err(crate::DpopVerifyError::Token(VerifyError::NotDpopBound))
    ));
}

// ---------------------------------------------------------------------------------------------------
// ES384, EdDSA and PS256 keys (issue 18): signed by `TokenSigner`, verified through certificates and
// through a JWKS, each pinned to its algorithm.

#[test]
fn es384_eddsa_and_ps256_tokens_verify_with_the_key_they_name_only() {
    for algorithm in [Algorithm::ES384, Algorithm::EdDSA, Algorithm::PS256] {
        let (key, _) = SigningKey::generate(algorithm).expect("generate");
        let public = key.public_key();
        let kid = jwk::thumbprint(&public);
        let signer = TokenSigner::for_public_key(key, &public, None);
        let token = signer.sign(&claims()).expect("sign");
        let mut entry = Jwk::from_public_key(&public);
        entry.kid = Some(kid.clone());
        entry.use_ = Some("sig".into());
        entry.alg = Some(algorithm.as_str().into());
        let jwks = json!({ "keys": [entry] }).to_string();
        let verifier = Verifier::new(
            KeySet::from_jwks(jwks.as_bytes()).expect("jwks"),
            validation(MAX_LEEWAY_SECS),
        );
        let verified = verifier.verify(&token, NOW).expect("verifies");
        assert_eq!(verified.algorithm, algorithm);
        // The same token under the verifier that does not know the key.
        assert_err!(verify(&token), VerifyError::UnknownKey { .. });
        // A signature bit flipped.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 3;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert!(verifier.verify(&forged, NOW).is_err(), "{algorithm:?}");
    }
    // An RSA JWKS entry that says RS256 refuses a PS256 signature by its key (and the reverse).
    let (key, _) = SigningKey::generate(Algorithm::PS256).expect("generate");
    let public = key.public_key();
    let token = TokenSigner::for_public_key(key, &public, None)
        .sign(&claims())
        .expect("sign");
    let mut entry = Jwk::from_public_key(&public);
    entry.kid = Some(jwk::thumbprint(&public));
    entry.alg = Some("RS256".into());
    let verifier = Verifier::new(
        KeySet::from_jwks(json!({ "keys": [entry] }).to_string().as_bytes()).expect("jwks"),
        validation(MAX_LEEWAY_SECS),
    );
    assert_err!(
        verifier.verify(&token, NOW),
        VerifyError::AlgorithmMismatch { alg, expected, .. } if alg == "PS256" && expected == "RS256"
    );
}

#[test]
fn jwks_entries_of_the_new_key_types_are_published_as_rfc_7518_and_8037_say() {
    let (ec, _) = SigningKey::generate(Algorithm::ES384).expect("generate");
    let entry = Jwk::from_public_key(&ec.public_key());
    assert_eq!(
        (
            entry.kty.as_str(),
            entry.crv.as_deref(),
            entry.alg.as_deref()
        ),
        ("EC", Some("P-384"), Some("ES384"))
    );
    assert_eq!(entry.x.as_deref().map(str::len), Some(64));
    let (ed, _) = SigningKey::generate(Algorithm::EdDSA).expect("generate");
    let entry = Jwk::from_public_key(&ed.public_key());
    assert_eq!(
        (
            entry.kty.as_str(),
            entry.crv.as_deref(),
            entry.alg.as_deref()
        ),
        ("OKP", Some("Ed25519"), Some("EdDSA"))
    );
    assert!(entry.y.is_none());
    // RFC 8037 appendix A.3: the thumbprint of the RFC's example key.
    let x = b64::url_decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").expect("b64");
    assert_eq!(
        jwk::thumbprint(&ids_pki::PublicKey::Ed25519 { x }),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}
