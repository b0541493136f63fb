#![allow(clippy::unwrap_used)]
//! Key files: the Gorgone known answer, our PKCS#8 PEM round trips, and files made by the real `openssl`
//! (generated at test time) read in every format with the same thumbprint.

use std::path::{Path, PathBuf};
use std::process::Command;

use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_pki::cert::CertError;
use ids_pki::jwk::thumbprint;
use ids_pki::keyfile::*;
use ids_pki::{Certificate, Jwk};

const GORGONE_THUMBPRINT: &str = "pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Runs `openssl` with `args` in `dir`, panicking with its stderr on failure; returns stdout.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn gorgone_public_key_thumbprint() {
    let path = fixtures().join("gorgone-central-pubkey.pem");
    let key = read_public(&path, None).unwrap();
    assert_eq!(key.kind, KeyFileKind::PublicKey);
    assert_eq!(key.public_key.bits(), 4096);
    assert_eq!(key.jwk_thumbprint(), GORGONE_THUMBPRINT);
    // SPKI out is byte-identical to the file's (DER and PEM).
    let pem = std::fs::read_to_string(&path).unwrap();
    assert_eq!(public_key_pem(&key.public_key), pem.replace("\r\n", "\n"));
    let der = public_key_der(&key.public_key);
    assert_eq!(
        parse_public("der", &der, None).unwrap().jwk_thumbprint(),
        GORGONE_THUMBPRINT
    );
}

#[test]
fn jwk_files_and_members() {
    let path = fixtures().join("gorgone-central-pubkey.pem");
    let key = read_public(&path, None).unwrap();
    let jwk = Jwk::from_public_key(&key.public_key);
    let json = serde_json::to_vec(&jwk).unwrap();
    let read = parse_public("k.jwk", &json, None).unwrap();
    assert_eq!(read.kind, KeyFileKind::Jwk);
    assert_eq!(read.jwk_thumbprint(), GORGONE_THUMBPRINT);
    // A JWK set with one key.
    let set = serde_json::to_vec(&serde_json::json!({ "keys": [jwk] })).unwrap();
    assert_eq!(
        parse_public("set.json", &set, None)
            .unwrap()
            .jwk_thumbprint(),
        GORGONE_THUMBPRINT
    );
    // EC on another curve, OKP, missing members: clear errors naming the file.
    let p384 = br#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#;
    let err = parse_public("p384.jwk", p384, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("p384.jwk") && err.contains("P-384"), "{err}");
    let okp = br#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#;
    let err = parse_public("ed.jwk", okp, None).unwrap_err().to_string();
    assert!(err.contains("Ed25519"), "{err}");
    let no_n = br#"{"kty":"RSA","e":"AQAB"}"#;
    let err = parse_public("no-n.jwk", no_n, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`n`"), "{err}");
    let not_jwk = br#"{"hello":1}"#;
    assert!(matches!(
        parse_public("x.json", not_jwk, None),
        Err(KeyFileError::Unrecognized { .. })
    ));
}

#[test]
fn private_key_pem_round_trips_with_and_without_passphrase() {
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let ca = Ca::new("test", 1).unwrap();
        let issued = ca.issue_signing("signing", kind, 1).unwrap();
        let pkcs8 = issued.key_pkcs8.clone();
        let cert = Certificate::from_der("cert", &issued.cert_der).unwrap();
        let expected = thumbprint(cert.public_key());

        let plain = private_key_pem(&pkcs8, None).unwrap();
        assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let key = parse_private("plain.key", plain.as_bytes(), None).unwrap();
        assert_eq!(*key.pkcs8, *pkcs8);
        assert_eq!(key.jwk_thumbprint(), expected);

        let encrypted = private_key_pem(&pkcs8, Some("correct horse")).unwrap();
        assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let key = parse_private("enc.key", encrypted.as_bytes(), Some("correct horse")).unwrap();
        assert_eq!(*key.pkcs8, *pkcs8);
        assert!(matches!(
            parse_private("enc.key", encrypted.as_bytes(), Some("wrong")),
            Err(KeyFileError::WrongPassword { file }) if file == "enc.key"
        ));
        let err = parse_private("enc.key", encrypted.as_bytes(), None).unwrap_err();
        assert!(matches!(err, KeyFileError::NeedsPassword { .. }), "{err}");
        // The public half needs the passphrase too, unless a certificate is beside the key.
        assert!(matches!(
            parse_public("enc.key", encrypted.as_bytes(), None),
            Err(KeyFileError::NeedsPassword { .. })
        ));
        let bundle = format!("{}{}", encrypted.as_str(), issued.cert_pem);
        let public = parse_public("bundle.pem", bundle.as_bytes(), None).unwrap();
        assert_eq!(public.kind, KeyFileKind::Certificate);
        assert_eq!(public.jwk_thumbprint(), expected);
        // No passphrase, key and certificate in one file: the certificate is the key's.
        let bundle = format!("{}{}", plain.as_str(), issued.cert_pem);
        let key = parse_private("bundle.pem", bundle.as_bytes(), None).unwrap();
        assert_eq!(key.certificate.unwrap().der(), issued.cert_der.as_slice());
        assert!(key.chain.is_empty());
    }
    assert!(matches!(
        private_key_pem(b"not a key", None),
        Err(KeyFileError::Write { .. })
    ));
}

#[test]
fn key_and_chain_in_one_pem_and_pfx() {
    let ca = Ca::new("chain-ca", 1).unwrap();
    let leaf = ca
        .issue_server(&["localhost"], KeyKind::Rsa2048, 1)
        .unwrap();
    // CA first, then the key, then the leaf: the leaf is picked by its public key.
    let pem = format!(
        "{}{}{}",
        ca.cert.cert_pem,
        private_key_pem(&leaf.key_pkcs8, None).unwrap().as_str(),
        leaf.cert_pem
    );
    let key = parse_private("leaf.pem", pem.as_bytes(), None).unwrap();
    assert_eq!(key.certificate.as_ref().unwrap().der(), leaf.cert_der);
    assert_eq!(key.chain.len(), 1);
    assert_eq!(key.chain[0].der(), ca.cert.cert_der);
    let debug = format!("{key:?}");
    assert!(
        debug.contains("redacted") && !debug.contains("pkcs8: ["),
        "{debug}"
    );

    for profile in [PfxProfile::Modern, PfxProfile::Legacy] {
        let pfx = to_pfx(&leaf, &[&ca.cert.cert_der], "leaf", "pfx-pass", profile).unwrap();
        let key = parse_private("leaf.pfx", &pfx, Some("pfx-pass")).unwrap();
        assert_eq!(key.kind, KeyFileKind::Pfx);
        assert_eq!(*key.pkcs8, *leaf.key_pkcs8);
        assert_eq!(key.chain.len(), 1);
        let public = parse_public("leaf.pfx", &pfx, Some("pfx-pass")).unwrap();
        assert_eq!(public.kind, KeyFileKind::Pfx);
        assert_eq!(public.certificate.unwrap().der(), leaf.cert_der);
        assert!(matches!(
            parse_public("leaf.pfx", &pfx, None),
            Err(KeyFileError::NeedsPassword { .. })
        ));
        assert!(matches!(
            parse_private("leaf.pfx", &pfx, Some("nope")),
            Err(KeyFileError::WrongPassword { .. })
        ));
    }
}

#[test]
fn fixture_pfx_files() {
    let dir = fixtures();
    let rsa = read_public(&dir.join("signing-rsa.crt"), None).unwrap();
    assert_eq!(rsa.kind, KeyFileKind::Certificate);
    for pfx in [
        "signing-rsa.pfx",
        "signing-rsa-legacy.pfx",
        "windows-export.pfx",
        "no-localkeyid.pfx",
        "cert-only.pfx",
    ] {
        let read = read_public(&dir.join(pfx), Some("test-password")).unwrap();
        assert_eq!(read.jwk_thumbprint(), rsa.jwk_thumbprint(), "{pfx}");
    }
    let err = read_private(&dir.join("cert-only.pfx"), Some("test-password")).unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");
    let err = read_public(&dir.join("rsa1024.pfx"), Some("test-password")).unwrap_err();
    assert!(
        matches!(
            err,
            KeyFileError::Cert(CertError::WeakRsa { bits: 1024, .. })
        ),
        "{err}"
    );
    let ca = read_private(&dir.join("ca.key"), None).unwrap();
    let ca_cert = read_public(&dir.join("ca.crt"), None).unwrap();
    assert_eq!(ca.jwk_thumbprint(), ca_cert.jwk_thumbprint());
    let err = read_public(&dir.join("missing.pem"), None).unwrap_err();
    assert!(matches!(err, KeyFileError::Io { .. }) && err.to_string().contains("missing.pem"));
}

#[test]
fn garbage_is_refused_with_what_is_accepted() {
    for (name, bytes) in [
        ("empty.pem", &b""[..]),
        ("text.pem", b"hello world\n"),
        ("bin.der", &[0x01, 0x02, 0xff, 0x00][..]),
        (
            "ssh.pub",
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host\n",
        ),
    ] {
        let err = parse_public(name, bytes, None).unwrap_err().to_string();
        assert!(
            err.starts_with(name) && err.contains("PUBLIC KEY") && err.contains("PFX"),
            "{err}"
        );
    }
    let truncated = b"-----BEGIN PUBLIC KEY-----\nMIIB\n";
    let err = parse_public("t.pem", truncated, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    let only_cert_wanted_key = fixtures().join("ca.crt");
    let err = read_private(&only_cert_wanted_key, None).unwrap_err();
    assert!(matches!(err, KeyFileError::NoPrivateKey { .. }), "{err}");
}

/// Every file `openssl` makes for one key, read by us with the key's thumbprint.
#[test]
fn openssl_files_all_give_the_same_thumbprint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str]| openssl(dir, args);
    // RSA: PKCS#8 from genrsa (OpenSSL 3), PKCS#1 with -traditional, public SPKI and PKCS#1, certificate.
    run(&["genrsa", "-out", "rsa.key", "2048"]);
    run(&[
        "rsa",
        "-in",
        "rsa.key",
        "-traditional",
        "-out",
        "rsa-pkcs1.key",
    ]);
    run(&[
        "rsa",
        "-in",
        "rsa.key",
        "-RSAPublicKey_out",
        "-out",
        "rsa-pkcs1.pub",
    ]);
    run(&["pkey", "-in", "rsa.key", "-pubout", "-out", "rsa.pub"]);
    run(&[
        "pkey",
        "-in",
        "rsa.key",
        "-pubout",
        "-outform",
        "DER",
        "-out",
        "rsa.pub.der",
    ]);
    run(&[
        "pkey",
        "-in",
        "rsa.key",
        "-outform",
        "DER",
        "-out",
        "rsa.key.der",
    ]);
    run(&[
        "rsa",
        "-in",
        "rsa.key",
        "-traditional",
        "-outform",
        "DER",
        "-out",
        "rsa-pkcs1.key.der",
    ]);
    run(&[
        "req", "-new", "-x509", "-key", "rsa.key", "-subj", "/CN=rsa", "-days", "2", "-out",
        "rsa.crt",
    ]);
    run(&[
        "x509", "-in", "rsa.crt", "-outform", "DER", "-out", "rsa.der",
    ]);
    run(&[
        "req", "-new", "-key", "rsa.key", "-subj", "/CN=rsa", "-out", "rsa.csr",
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-in",
        "rsa.key",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:x",
        "-out",
        "rsa-enc.key",
    ]);
    run(&[
        "pkcs12", "-export", "-in", "rsa.crt", "-inkey", "rsa.key", "-passout", "pass:p12", "-out",
        "rsa.pfx",
    ]);
    // EC: SEC1 from ecparam (with its EC PARAMETERS block), PKCS#8, encrypted genpkey, public key.
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-out",
        "ec-sec1.key",
    ]);
    run(&["pkey", "-in", "ec-sec1.key", "-out", "ec.key"]);
    run(&["pkey", "-in", "ec-sec1.key", "-pubout", "-out", "ec.pub"]);
    run(&[
        "ec",
        "-in",
        "ec-sec1.key",
        "-outform",
        "DER",
        "-out",
        "ec-sec1.key.der",
    ]);
    run(&[
        "req", "-new", "-x509", "-key", "ec.key", "-subj", "/CN=ec", "-days", "2", "-out", "ec.crt",
    ]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes256",
        "-pass",
        "pass:x",
        "-out",
        "ec2-enc.key",
    ]);
    run(&[
        "pkey",
        "-in",
        "ec2-enc.key",
        "-passin",
        "pass:x",
        "-pubout",
        "-out",
        "ec2.pub",
    ]);

    let thumb = |file: &str, password: Option<&str>| -> String {
        read_public(&dir.join(file), password)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .jwk_thumbprint()
    };
    let private_thumb = |file: &str, password: Option<&str>| -> String {
        read_private(&dir.join(file), password)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .jwk_thumbprint()
    };
    let rsa = thumb("rsa.crt", None);
    for file in [
        "rsa.key",
        "rsa-pkcs1.key",
        "rsa-pkcs1.pub",
        "rsa.pub",
        "rsa.pub.der",
        "rsa.key.der",
        "rsa-pkcs1.key.der",
        "rsa.der",
        "rsa.csr",
    ] {
        assert_eq!(thumb(file, None), rsa, "{file}");
    }
    assert_eq!(thumb("rsa-enc.key", Some("x")), rsa);
    assert_eq!(thumb("rsa.pfx", Some("p12")), rsa);
    for file in [
        "rsa.key",
        "rsa-pkcs1.key",
        "rsa.key.der",
        "rsa-pkcs1.key.der",
    ] {
        assert_eq!(private_thumb(file, None), rsa, "{file}");
    }
    assert_eq!(private_thumb("rsa-enc.key", Some("x")), rsa);
    assert_eq!(private_thumb("rsa.pfx", Some("p12")), rsa);
    // The PKCS#1 key converted to PKCS#8 equals OpenSSL's PKCS#8 of the same key (same public key
    // at least; and aws-lc signs with it).
    let converted = read_private(&dir.join("rsa-pkcs1.key"), None).unwrap();
    ids_pki::keys::SigningKey::from_pkcs8(&converted.pkcs8).unwrap();

    let ec = thumb("ec.crt", None);
    for file in ["ec-sec1.key", "ec.key", "ec.pub", "ec-sec1.key.der"] {
        assert_eq!(thumb(file, None), ec, "{file}");
        if file.contains(".key") {
            assert_eq!(private_thumb(file, None), ec, "{file}");
        }
    }
    let sec1 = read_private(&dir.join("ec-sec1.key"), None).unwrap();
    ids_pki::keys::SigningKey::from_pkcs8(&sec1.pkcs8).unwrap();
    assert_eq!(thumb("ec2-enc.key", Some("x")), thumb("ec2.pub", None));
    assert!(matches!(
        read_private(&dir.join("ec2-enc.key"), Some("y")),
        Err(KeyFileError::WrongPassword { .. })
    ));

    // Our outputs read by OpenSSL: the encrypted PEM, the plain PEM and the public key.
    let key = read_private(&dir.join("ec-sec1.key"), None).unwrap();
    std::fs::write(
        dir.join("ours-enc.key"),
        private_key_pem(&key.pkcs8, Some("s3cret pass"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    std::fs::write(
        dir.join("ours.key"),
        private_key_pem(&key.pkcs8, None).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join("ours.pub"), public_key_pem(&key.public_key)).unwrap();
    let theirs = run(&["pkey", "-in", "ec.key", "-pubout"]);
    let from_enc = run(&[
        "pkey",
        "-in",
        "ours-enc.key",
        "-passin",
        "pass:s3cret pass",
        "-pubout",
    ]);
    assert_eq!(from_enc, theirs);
    assert_eq!(run(&["pkey", "-in", "ours.key", "-pubout"]), theirs);
    assert_eq!(
        run(&["pkey", "-pubin", "-in", "ours.pub", "-pubout"]),
        theirs
    );
    let text = String::from_utf8(run(&["asn1parse", "-in", "ours-enc.key"])).unwrap();
    assert!(
        text.contains("PBES2")
            && text.contains("PBKDF2")
            && text.contains("hmacWithSHA256")
            && text.contains("aes-256-cbc"),
        "{text}"
    );
    let rsa_key = read_private(&dir.join("rsa-pkcs1.key"), None).unwrap();
    std::fs::write(
        dir.join("ours-rsa-enc.key"),
        private_key_pem(&rsa_key.pkcs8, Some("x"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        run(&[
            "pkey",
            "-in",
            "ours-rsa-enc.key",
            "-passin",
            "pass:x",
            "-pubout"
        ]),
        run(&["pkey", "-in", "rsa.key", "-pubout"])
    );
}

#[test]
fn unsupported_and_weak_keys_from_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |args: &[&str]| openssl(dir, args);
    run(&["genrsa", "-out", "rsa1024.key", "1024"]);
    run(&[
        "rsa",
        "-in",
        "rsa1024.key",
        "-traditional",
        "-out",
        "rsa1024-pkcs1.key",
    ]);
    run(&[
        "pkey",
        "-in",
        "rsa1024.key",
        "-pubout",
        "-out",
        "rsa1024.pub",
    ]);
    run(&["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
    run(&["pkey", "-in", "ed.key", "-pubout", "-out", "ed.pub"]);
    run(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-out",
        "p384-sec1.key",
    ]);
    run(&["pkey", "-in", "p384-sec1.key", "-out", "p384.key"]);
    run(&[
        "pkey",
        "-in",
        "p384-sec1.key",
        "-pubout",
        "-out",
        "p384.pub",
    ]);
    run(&[
        "rsa",
        "-in",
        "rsa1024.key",
        "-aes256",
        "-traditional",
        "-passout",
        "pass:x",
        "-out",
        "legacy-enc.key",
    ]);

    for file in ["rsa1024.key", "rsa1024-pkcs1.key", "rsa1024.pub"] {
        let err = read_public(&dir.join(file), None).unwrap_err();
        assert!(
            matches!(err, KeyFileError::WeakRsa { bits: 1024, .. }),
            "{file}: {err}"
        );
        assert!(err.to_string().contains(file));
    }
    // Ed25519 and P-384 keys are read since they can sign tokens and assertions (issue 18).
    for (file, what) in [
        ("ed.key", "Ed25519"),
        ("ed.pub", "Ed25519"),
        ("p384-sec1.key", "EC P-384"),
        ("p384.key", "EC P-384"),
        ("p384.pub", "EC P-384"),
    ] {
        let key = read_public(&dir.join(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(key.public_key.describe(), what, "{file}");
    }
    let err = read_private(&dir.join("legacy-enc.key"), Some("x")).unwrap_err();
    assert!(
        matches!(err, KeyFileError::UnsupportedEncryption { .. })
            && err.to_string().contains("openssl pkcs8 -topk8"),
        "{err}"
    );
}

#[test]
fn des3_encrypted_keys_from_the_seed_recipe_are_read() {
    // `openssl genrsa -des3` (grpc-mutual-tls.rst's root CA key): PKCS#8, PBES2 with DES-EDE3-CBC.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl(
        dir,
        &[
            "genrsa",
            "-des3",
            "-passout",
            "pass:seed passphrase",
            "-out",
            "rootCA.key",
            "2048",
        ],
    );
    let text = std::fs::read_to_string(dir.join("rootCA.key")).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    let key = read_private(&dir.join("rootCA.key"), Some("seed passphrase")).unwrap();
    let public = read_public(&dir.join("rootCA.key"), Some("seed passphrase")).unwrap();
    assert_eq!(key.public_key, public.public_key);
    assert!(read_private(&dir.join("rootCA.key"), Some("wrong")).is_err());
}

#[test]
fn pfx_debug_shows_no_key_material() {
    let pfx = ids_pki::Pfx::from_file(&fixtures().join("signing-ec.pfx"), "test-password").unwrap();
    let shown = format!("{pfx:?}");
    assert!(shown.contains("<redacted,"), "{shown}");
    let hex_key = ids_pki::b64::hex(&pfx.key_pkcs8);
    let decimal_bytes = format!("{:?}", &pfx.key_pkcs8[..8]);
    assert!(
        !shown.contains(&hex_key) && !shown.contains(&decimal_bytes[1..decimal_bytes.len() - 1])
    );
}
