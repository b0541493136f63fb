//! Writes the seed corpora of `fuzz/corpus/<target>/`: small valid inputs made with the fixture keys,
//! by the code itself and by the `openssl` CLI, so that the fuzzer starts from inputs that reach deep
//! into each parser. Run it again after `tests/fixtures/make.sh` (the seeds are made for those keys):
//!
//! ```sh
//! cargo test -p ids-fuzz-targets --test seeds -- --ignored
//! ```

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ids_fuzz_targets::fixtures::{ISSUER, NOW, TOKEN_ENDPOINT, fixtures};
use ids_jose::{AssertionSigner, TokenSigner};
use ids_pki::{SigningKey, b64, keyfile};
use ids_seal::encrypted_file::{Encryptor, Recipient};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// Replaces `fuzz/corpus/<target>/` with `seeds`.
fn write(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = repo().join("fuzz/corpus").join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fixtures' private keys as PKCS#8 PEM files in `dir`: (rsa, ec).
fn key_files(dir: &Path) -> (PathBuf, PathBuf) {
    let f = fixtures();
    let rsa = dir.join("rsa.key");
    let ec = dir.join("ec.key");
    std::fs::write(
        &rsa,
        keyfile::private_key_pem(&f.rsa.key_pkcs8, None)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    std::fs::write(
        &ec,
        keyfile::private_key_pem(&f.ec.key_pkcs8, None)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    (rsa, ec)
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after regenerating tests/fixtures"]
fn write_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (rsa_key, ec_key) = key_files(tmp.path());
    cms_seeds(tmp.path());
    keyfile_seeds(&rsa_key, &ec_key);
    idsenc_seeds();
    jwt_seeds();
    assertion_seeds();
    token_request_seeds();
    xml_seeds();
    dpop_seeds();
}

#[test]
#[ignore = "writes fuzz/corpus/dpop; run by hand"]
fn write_dpop_seeds() {
    dpop_seeds();
}

/// A valid proof of each algorithm for the `dpop` target's request, with `ath` of `token`, and a few
/// refusals.
fn dpop_seeds() {
    use ids_pki::Algorithm;
    let url = "https://ids.example.test/connect/token";
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for algorithm in Algorithm::ALL {
        let (key, _) = SigningKey::generate(algorithm).unwrap();
        let public = key.public_key();
        let signer = ids_jose::DpopSigner::new(key, &public);
        let proof = signer
            .proof("POST", url, NOW, Some("nonce"), Some("token"))
            .unwrap();
        seeds.push((format!("{}.jwt", algorithm.as_str()), proof.into_bytes()));
    }
    let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let public = key.public_key();
    let signer = ids_jose::DpopSigner::new(key, &public);
    let old = signer.proof("POST", url, NOW - 600, None, None).unwrap();
    seeds.push(("too-old.jwt".into(), old.into_bytes()));
    let get = signer.proof("GET", url, NOW, None, None).unwrap();
    seeds.push(("get.jwt".into(), get.into_bytes()));
    let named: Vec<(&str, Vec<u8>)> = seeds.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write("dpop", &named);
}

fn cms_seeds(tmp: &Path) {
    let f = fixtures();
    let plain = tmp.join("plain.txt");
    std::fs::write(&plain, b"hello, fuzzer\n").unwrap();
    let (rsa, ec) = (fixture("signing-rsa.crt"), fixture("signing-ec.crt"));
    let enc = |extra: &[&str], certs: &[&Path]| {
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            path(&plain),
        ];
        args.extend_from_slice(extra);
        args.extend(certs.iter().map(|c| path(c)));
        openssl(&args)
    };
    let oaep = ["-keyopt", "rsa_padding_mode:oaep"];
    write(
        "cms",
        &[
            ("openssl-rsa-aes256gcm.der", enc(&["-aes-256-gcm"], &[&rsa])),
            ("openssl-rsa-aes128cbc.der", enc(&["-aes-128-cbc"], &[&rsa])),
            (
                "openssl-rsa-keyid-stream.der",
                enc(&["-aes-256-cbc", "-keyid", "-stream"], &[&rsa]),
            ),
            (
                "openssl-rsa-oaep.der",
                enc(
                    &[&["-aes-256-gcm", "-recip", path(&rsa)][..], &oaep[..]].concat(),
                    &[],
                ),
            ),
            ("openssl-ec-aes256gcm.der", enc(&["-aes-256-gcm"], &[&ec])),
            (
                "openssl-ec-rsa-aes256cbc.der",
                enc(&["-aes-256-cbc"], &[&ec, &rsa]),
            ),
            (
                "ids-seal-rsa-ec.der",
                ids_seal::cms::encrypt(
                    &[f.rsa.certificate.clone(), f.ec.certificate.clone()],
                    b"hello",
                )
                .unwrap(),
            ),
        ],
    );
}

fn keyfile_seeds(rsa_key: &Path, ec_key: &Path) {
    let f = fixtures();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let (rsa_crt, ec_crt) = (fixture("signing-rsa.crt"), fixture("signing-ec.crt"));
    let jwk = serde_json::to_vec(&ids_pki::Jwk::from_public_key(
        f.ec.certificate.public_key(),
    ))
    .unwrap();
    let mut key_and_cert = read(ec_key);
    key_and_cert.extend(read(&ec_crt));
    write(
        "keyfile",
        &[
            ("rsa-cert.pem", read(&rsa_crt)),
            (
                "ec-cert.der",
                openssl(&["x509", "-in", path(&ec_crt), "-outform", "DER"]),
            ),
            (
                "ec-spki.pem",
                openssl(&["pkey", "-in", path(ec_key), "-pubout"]),
            ),
            (
                "rsa-spki.der",
                openssl(&["pkey", "-in", path(rsa_key), "-pubout", "-outform", "DER"]),
            ),
            (
                "rsa-pkcs1-public.pem",
                openssl(&["rsa", "-in", path(rsa_key), "-RSAPublicKey_out"]),
            ),
            (
                "rsa-pkcs1-private.pem",
                openssl(&["rsa", "-in", path(rsa_key), "-traditional"]),
            ),
            ("ec-pkcs8.pem", read(ec_key)),
            (
                "ec-pkcs8.der",
                openssl(&["pkey", "-in", path(ec_key), "-outform", "DER"]),
            ),
            ("ec-sec1.pem", openssl(&["ec", "-in", path(ec_key)])),
            ("ec-key-and-cert.pem", key_and_cert),
            (
                "ec-encrypted-pkcs8.pem",
                openssl(&[
                    "pkcs8",
                    "-topk8",
                    "-in",
                    path(ec_key),
                    "-v2",
                    "aes-256-cbc",
                    "-iter",
                    "1",
                    "-passout",
                    "pass:x",
                ]),
            ),
            (
                "ec-csr.pem",
                openssl(&["req", "-new", "-key", path(ec_key), "-subj", "/CN=fuzz"]),
            ),
            ("ec.jwk", jwk),
            ("cert-only.pfx", read(&fixture("cert-only.pfx"))),
            (
                "gorgone-central-pubkey.pem",
                read(&fixture("gorgone-central-pubkey.pem")),
            ),
        ],
    );
}

fn idsenc_seeds() {
    let f = fixtures();
    let rsa = Recipient::from_certificate(&f.rsa.certificate).unwrap();
    let ec = Recipient::from_certificate(&f.ec.certificate).unwrap();
    let file = |recipients: &[Recipient], chunk: u32, plain: &[u8]| {
        let mut enc = Encryptor::with_chunk_size(Vec::new(), recipients, chunk).unwrap();
        enc.copy_from(&mut &plain[..], |_| {}).unwrap();
        enc.finish().unwrap()
    };
    let plain: Vec<u8> = (0..200u8).collect();
    write(
        "idsenc",
        &[
            (
                "ec-3-chunks.idsenc",
                file(std::slice::from_ref(&ec), 80, &plain),
            ),
            ("ec-empty.idsenc", file(std::slice::from_ref(&ec), 16, b"")),
            (
                "rsa-1-chunk.idsenc",
                file(std::slice::from_ref(&rsa), 4096, b"hello"),
            ),
            ("rsa-ec-2-chunks.idsenc", file(&[rsa, ec], 16, &plain[..20])),
        ],
    );
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut claims = serde_json::json!({
        "iss": ISSUER, "sub": "Job", "client_id": "Job", "aud": ISSUER, "scope": "api deliveries",
        "profile": "Administrator", "jti": "AAECAwQFBgcICQoL", "iat": NOW, "nbf": NOW, "exp": NOW + 3600,
    });
    if let (Some(c), serde_json::Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
    }
    claims
}

/// A `header \n payload` input (signed by the target with the EC fixture key).
fn signed_form(header: serde_json::Value, payload: serde_json::Value) -> Vec<u8> {
    format!("{header}\n{payload}").into_bytes()
}

fn jwt_seeds() {
    let f = fixtures();
    let signer = |pfx: &ids_pki::Pfx| {
        TokenSigner::new(
            SigningKey::from_pkcs8(&pfx.key_pkcs8).unwrap(),
            &pfx.certificate,
        )
    };
    let (rsa, ec) = (signer(&f.rsa), signer(&f.ec));
    let bound = claims(serde_json::json!({"cnf": {"x5t#S256": f.rsa.certificate.x5t_s256()}}));
    let header = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": ec.kid()});
    write(
        "jwt",
        &[
            (
                "rs256.jwt",
                rsa.sign(&claims(serde_json::json!({})))
                    .unwrap()
                    .into_bytes(),
            ),
            (
                "es256.jwt",
                ec.sign(&claims(serde_json::json!({})))
                    .unwrap()
                    .into_bytes(),
            ),
            ("es256-bound.jwt", ec.sign(&bound).unwrap().into_bytes()),
            (
                "signed-form.txt",
                signed_form(
                    header.clone(),
                    claims(serde_json::json!({"scope": ["api"]})),
                ),
            ),
            ("signed-form-bound.txt", signed_form(header, bound)),
        ],
    );
}

fn assertion_seeds() {
    let f = fixtures();
    let key = || SigningKey::from_pkcs8(&f.ec.key_pkcs8).unwrap();
    let plain = AssertionSigner::new(key(), f.ec.certificate.public_key());
    let with_cert = AssertionSigner::with_certificate(key(), &f.ec.certificate);
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": plain.thumbprint()});
    let payload = serde_json::json!({
        "iss": "Job", "sub": "Job@localhost:5001", "aud": [TOKEN_ENDPOINT], "jti": "j1",
        "iat": NOW, "nbf": NOW, "exp": NOW + 60,
    });
    write(
        "assertion",
        &[
            (
                "jwk.jwt",
                plain.sign("Job", TOKEN_ENDPOINT, NOW).unwrap().into_bytes(),
            ),
            (
                "x5c.jwt",
                with_cert.sign("Job", ISSUER, NOW).unwrap().into_bytes(),
            ),
            ("signed-form.txt", signed_form(header, payload)),
        ],
    );
}

fn token_request_seeds() {
    let basic = format!("Basic {}", b64::std(b"Job:secret"));
    let assertion = "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJFUzI1NiJ9.e30.AA&scope=api";
    write(
        "token_request",
        &[
            ("post.txt", b"grant_type=client_credentials&client_id=Job&client_secret=s%C3%A9cret+x&scope=api%20deliveries".to_vec()),
            ("basic.txt", format!("{basic}\ngrant_type=client_credentials&scope=api+api").into_bytes()),
            ("assertion.txt", assertion.as_bytes().to_vec()),
            ("authority.txt", b"grant_type=client_credentials&client_id=Job%40localhost%3A5001".to_vec()),
        ],
    );
}

fn xml_seeds() {
    write(
        "xml",
        &[
            (
                "example.xml",
                br#"<?xml version="1.0" encoding="utf-8"?>
<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
  <Profile Identifier="Administrator" DisplayName_L1="Administrator" />
  <Agent Identifier="Local" URI="https://localhost:5001" />
  <OpenIdClient Identifier="Job" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=" DisplayName_L1="Permissions for jobs" Profile="Administrator" ContextId="-2" ExpirationDate="2027-01-01T00:00:00"/>
  <EntityType Identifier="Directory_User"> <Property Identifier="x"/> </EntityType>
</ConfigurationFile>
"#
                .to_vec(),
            ),
            (
                "keys-and-escapes.xml",
                "\u{feff}<u:C xmlns:u=\"urn:x\"><!-- c --><?pi x?><!DOCTYPE x><u:OpenIdClient identifier=\"A&amp;B\" Thumbprints=\"pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4, AB12\" TlsClientAuthSan=\"urn:ids:client:A\" DisplayName_L16=\"&#x42;&lt;\" HashedSecrt=\"x\" ExpirationDate=\"2027-01-01\"/><![CDATA[x]]></u:C>\r\n"
                    .as_bytes()
                    .to_vec(),
            ),
            (
                "duplicates.xml",
                br#"<C><Profile Identifier="P"/><OpenIdClient Identifier="Job" Profile="Q"/><OpenIdClient Identifier="job" Profile="P"/><Agent Identifier="A" DisplayName_L1="x"/></C>"#
                    .to_vec(),
            ),
        ],
    );
}

/// The seeds are only worth their place if they get past the key and signature checks; if this fails
/// after `tests/fixtures/make.sh`, run `write_seeds` again (see the top of this file).
#[test]
fn seeds_reach_the_code_behind_the_keys() {
    let f = fixtures();
    let corpus = |target: &str, name: &str| {
        std::fs::read(repo().join("fuzz/corpus").join(target).join(name)).unwrap()
    };
    let rerun = "the seeds do not match tests/fixtures: run `cargo test -p ids-fuzz-targets --test seeds -- --ignored`";
    for (name, pfx) in [
        ("openssl-rsa-oaep.der", &f.rsa),
        ("openssl-ec-aes256gcm.der", &f.ec),
        ("ids-seal-rsa-ec.der", &f.ec),
    ] {
        ids_seal::cms::decrypt(&corpus("cms", name), &pfx.certificate, &pfx.key_pkcs8)
            .expect(rerun);
    }
    let data = corpus("idsenc", "rsa-ec-2-chunks.idsenc");
    let mode = ids_seal::encrypted_file::Mode::Strict;
    ids_seal::encrypted_file::decrypt_stream(
        &data[..],
        &mut std::io::sink(),
        &f.decryption_keys,
        mode,
        |_| {},
    )
    .expect(rerun);
    let token = String::from_utf8(corpus("jwt", "rs256.jwt")).unwrap();
    f.verifier.verify(&token, NOW).expect(rerun);
    let token = String::from_utf8(corpus("assertion", "x5c.jwt")).unwrap();
    let unverified = ids_jose::UnverifiedAssertion::parse(&token).unwrap();
    unverified
        .verify(f.ec.certificate.public_key())
        .expect(rerun);
}
