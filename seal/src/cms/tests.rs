//! Interoperability with the real `openssl cms` (keys and certificates generated at test time), and
//! robustness against damaged input.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_lc_rs::rand;
use tempfile::TempDir;

use super::ber::{Reader, oid_to_string, tag};
use super::*;
use ids_pki::cert::Certificate;

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

/// A key pair with a self-signed certificate, as files and parsed.
struct Party {
    dir: PathBuf,
    cert_pem: String,
    key_pem: String,
    cert: Certificate,
    pkcs8: Vec<u8>,
}

impl Party {
    fn rsa(dir: &TempDir, name: &str) -> Self {
        Self::new(dir, name, &["-newkey", "rsa:2048"])
    }

    fn ec(dir: &TempDir, name: &str) -> Self {
        Self::new(
            dir,
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        )
    }

    fn new(dir: &TempDir, name: &str, key_args: &[&str]) -> Self {
        let dir = dir.path().to_path_buf();
        let (cert_pem, key_pem) = (format!("{name}.pem"), format!("{name}.key"));
        let subject = format!("/CN={name} test/O=Example, Inc.");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2", "-subj", &subject];
        args.extend_from_slice(key_args);
        args.extend_from_slice(&["-keyout", &key_pem, "-out", &cert_pem]);
        openssl(&dir, &args);
        let pkcs8 = openssl(
            &dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", &key_pem, "-outform", "DER",
            ],
        );
        let cert = Certificate::from_file(&dir.join(&cert_pem)).unwrap();
        Party {
            dir,
            cert_pem,
            key_pem,
            cert,
            pkcs8,
        }
    }

    /// `openssl cms -encrypt` of `plaintext` for this party with extra `options` (after `-recip`,
    /// where `-keyopt` must be); DER output.
    fn openssl_encrypt(&self, plaintext: &[u8], options: &[&str]) -> Vec<u8> {
        std::fs::write(self.dir.join("plain.bin"), plaintext).unwrap();
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            "-in",
            "plain.bin",
        ];
        args.extend_from_slice(&["-recip", &self.cert_pem]);
        args.extend_from_slice(options);
        openssl(&self.dir, &args)
    }

    /// `openssl cms -decrypt` of `der` with this party's key.
    fn openssl_decrypt(&self, der: &[u8]) -> Vec<u8> {
        std::fs::write(self.dir.join("message.der"), der).unwrap();
        openssl(
            &self.dir,
            &[
                "cms",
                "-decrypt",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "message.der",
                "-inkey",
                &self.key_pem,
                "-recip",
                &self.cert_pem,
            ],
        )
    }

    fn decrypt(&self, der: &[u8]) -> Result<Decrypted, CmsError> {
        decrypt(der, &self.cert, &self.pkcs8)
    }
}

fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes).unwrap();
    bytes
}

#[test]
fn cms_ours_decrypted_by_openssl_rsa_and_ec() {
    let dir = tempfile::tempdir().unwrap();
    for party in [Party::rsa(&dir, "rsa"), Party::ec(&dir, "ec")] {
        for plaintext in [Vec::new(), vec![0x42], random(1 << 20)] {
            let der = encrypt(std::slice::from_ref(&party.cert), &plaintext).unwrap();
            assert!(looks_like_cms(&der[..der.len().min(64)]));
            assert_eq!(party.openssl_decrypt(&der), plaintext, "{}", party.cert_pem);
            let ours = party.decrypt(&der).unwrap();
            assert_eq!(*ours.plaintext, plaintext);
            assert!(ours.authenticated);
            assert_eq!(ours.content_cipher, "AES-256-GCM");
        }
    }
}

#[test]
fn cms_two_recipients_each_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (Party::rsa(&dir, "rsa"), Party::ec(&dir, "ec"));
    let plaintext = b"for both of you".to_vec();
    let der = encrypt(&[rsa.cert.clone(), ec.cert.clone()], &plaintext).unwrap();
    for party in [&rsa, &ec] {
        assert_eq!(party.openssl_decrypt(&der), plaintext);
        assert_eq!(*party.decrypt(&der).unwrap().plaintext, plaintext);
    }
    let ids = recipients(&der).unwrap();
    assert_eq!(ids.len(), 2);
    let text = ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(text.iter().any(|t| t.contains("CN=rsa test")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("CN=ec test")), "{text:?}");
}

/// `openssl cms -encrypt` options, and the cipher and authentication our decrypt must report.
const RSA_VARIANTS: &[(&[&str], &str, bool)] = &[
    (&["-aes-256-gcm"], "AES-256-GCM", true),
    (&["-aes-128-gcm"], "AES-128-GCM", true),
    (&["-aes-192-gcm"], "AES-192-GCM", true),
    (&["-aes-128-cbc"], "AES-128-CBC", false),
    (&["-aes-192-cbc"], "AES-192-CBC", false),
    (&["-aes-256-cbc"], "AES-256-CBC", false),
    (
        &["-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"],
        "AES-256-CBC",
        false,
    ),
    (
        &[
            "-aes-256-gcm",
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
        "AES-256-GCM",
        true,
    ),
    (&["-aes-256-gcm", "-keyid"], "AES-256-GCM", true),
    (&["-aes-256-cbc", "-keyid"], "AES-256-CBC", false),
    (&["-aes-256-gcm", "-stream"], "AES-256-GCM", true),
    (&["-aes-128-cbc", "-stream"], "AES-128-CBC", false),
];

const EC_VARIANTS: &[(&[&str], &str, bool)] = &[
    (&["-aes-256-gcm"], "AES-256-GCM", true),
    (&["-aes-128-gcm"], "AES-128-GCM", true),
    (&["-aes-256-cbc"], "AES-256-CBC", false),
    (&["-aes-128-cbc"], "AES-128-CBC", false),
    (
        &["-aes-256-gcm", "-keyopt", "ecdh_kdf_md:sha256"],
        "AES-256-GCM",
        true,
    ),
    (
        &["-aes-128-cbc", "-keyopt", "ecdh_kdf_md:sha384"],
        "AES-128-CBC",
        false,
    ),
    (&["-aes-256-gcm", "-keyid"], "AES-256-GCM", true),
    (&["-aes-256-gcm", "-stream"], "AES-256-GCM", true),
];

fn check_variants(party: &Party, variants: &[(&[&str], &str, bool)]) {
    // Larger than OpenSSL's 4096-byte stream chunks, so `-stream` writes a segmented OCTET STRING.
    let plaintext = random(10_000);
    for &(options, cipher, authenticated) in variants {
        let der = party.openssl_encrypt(&plaintext, options);
        assert!(looks_like_cms(&der[..64]), "{options:?}");
        let out = party
            .decrypt(&der)
            .unwrap_or_else(|e| panic!("{options:?}: {e}"));
        assert!(*out.plaintext == plaintext, "{options:?}");
        assert_eq!(out.content_cipher, cipher, "{options:?}");
        assert_eq!(out.authenticated, authenticated, "{options:?}");
    }
}

#[test]
fn cms_openssl_rsa_variants_decrypted_by_us() {
    let dir = tempfile::tempdir().unwrap();
    check_variants(&Party::rsa(&dir, "rsa"), RSA_VARIANTS);
}

#[test]
fn cms_openssl_ec_variants_decrypted_by_us() {
    let dir = tempfile::tempdir().unwrap();
    check_variants(&Party::ec(&dir, "ec"), EC_VARIANTS);
}

/// OpenSSL 3.0's default content cipher is 3DES, which aws-lc-rs offers only behind a feature this
/// crate does not enable: refused, naming the algorithm and the option to use instead.
#[test]
fn cms_openssl_defaults_3des_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    for party in [Party::rsa(&dir, "rsa"), Party::ec(&dir, "ec")] {
        let der = party.openssl_encrypt(b"legacy", &[]);
        let error = party.decrypt(&der).unwrap_err();
        assert!(matches!(error, CmsError::Unsupported { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("des-ede3-cbc"), "{message}");
        assert!(message.contains("-aes-256-gcm"), "{message}");
    }
}

#[test]
fn cms_keyid_recipient_is_listed_by_subject_key_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Party::rsa(&dir, "rsa");
    let der = rsa.openssl_encrypt(b"x", &["-aes-256-gcm", "-keyid"]);
    let ski = String::from_utf8(openssl(
        &rsa.dir,
        &[
            "x509",
            "-in",
            &rsa.cert_pem,
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ],
    ))
    .unwrap();
    let ski = ski.lines().nth(1).unwrap().trim().replace(':', "");
    assert_eq!(recipients(&der).unwrap(), [RecipientId::SubjectKeyId(ski)]);
}

#[test]
fn cms_wrong_certificate_lists_the_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (Party::rsa(&dir, "alice"), Party::ec(&dir, "bob"));
    let der = encrypt(std::slice::from_ref(&alice.cert), b"for alice").unwrap();
    let serial = String::from_utf8(openssl(
        &alice.dir,
        &["x509", "-in", &alice.cert_pem, "-noout", "-serial"],
    ))
    .unwrap();
    let expected = RecipientId::IssuerSerial {
        issuer: "CN=alice test, O=Example, Inc.".into(),
        serial_hex: serial.trim().trim_start_matches("serial=").into(),
    };
    match bob.decrypt(&der) {
        Err(CmsError::NotForThisKey { recipients }) => assert_eq!(recipients, [expected]),
        other => panic!("expected NotForThisKey, got {other:?}"),
    }
    let message = bob.decrypt(&der).unwrap_err().to_string();
    assert!(message.contains("CN=alice test"), "{message}");
}

#[test]
fn cms_key_of_another_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, mallory) = (Party::ec(&dir, "alice"), Party::ec(&dir, "mallory"));
    let der = encrypt(std::slice::from_ref(&alice.cert), b"secret").unwrap();
    let error = decrypt(&der, &alice.cert, &mallory.pkcs8).unwrap_err();
    assert!(matches!(error, CmsError::Crypto { .. }), "{error}");
    assert!(error.to_string().contains("does not belong"), "{error}");
}

#[test]
fn cms_flipped_ciphertext_byte_is_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Party::rsa(&dir, "rsa");
    let plaintext = random(1000);
    let ours = encrypt(std::slice::from_ref(&rsa.cert), &plaintext).unwrap();
    let theirs = rsa.openssl_encrypt(&plaintext, &["-aes-256-gcm"]);
    for mut der in [ours, theirs] {
        // The ciphertext sits just before the mac (2 header bytes + 16 bytes).
        let index = der.len() - 18 - 500;
        der[index] ^= 0x01;
        assert!(matches!(rsa.decrypt(&der), Err(CmsError::Tampered)));
        let len = der.len();
        der[len - 1] ^= 0x80; // and in the tag itself
        assert!(matches!(rsa.decrypt(&der), Err(CmsError::Tampered)));
    }
}

#[test]
fn cms_truncated_file_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let ec = Party::ec(&dir, "ec");
    let der = encrypt(std::slice::from_ref(&ec.cert), &random(100)).unwrap();
    for len in [0, 1, 10, der.len() / 2, der.len() - 1] {
        let error = ec.decrypt(&der[..len]).unwrap_err();
        assert!(
            matches!(error, CmsError::Malformed { .. }),
            "{len}: {error}"
        );
        assert!(recipients(&der[..len]).is_err());
    }
}

#[test]
fn cms_text_forms_get_conversion_advice() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Party::rsa(&dir, "rsa");
    std::fs::write(rsa.dir.join("plain.bin"), b"text").unwrap();
    for (outform, advice) in [("SMIME", "-inform SMIME"), ("PEM", "-inform PEM")] {
        let text = openssl(
            &rsa.dir,
            &[
                "cms",
                "-encrypt",
                "-aes-256-gcm",
                "-in",
                "plain.bin",
                "-recip",
                &rsa.cert_pem,
                "-outform",
                outform,
            ],
        );
        assert!(!looks_like_cms(&text));
        let error = rsa.decrypt(&text).unwrap_err();
        assert!(matches!(error, CmsError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains(advice), "{error}");
    }
}

#[test]
fn cms_looks_like_cms() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = Party::rsa(&dir, "rsa");
    let auth = encrypt(std::slice::from_ref(&rsa.cert), b"x").unwrap();
    let enveloped = rsa.openssl_encrypt(b"x", &["-aes-256-cbc"]);
    let streamed = rsa.openssl_encrypt(b"x", &["-aes-256-gcm", "-stream"]);
    for der in [&auth, &enveloped, &streamed] {
        assert!(looks_like_cms(&der[..64]));
        assert!(looks_like_cms(&der[..20]));
    }
    let pem = std::fs::read(rsa.dir.join(&rsa.cert_pem)).unwrap();
    let cert_der = rsa.cert.der();
    for other in [
        &pem[..64],
        &cert_der[..64],
        &random(64),
        &auth[..8],
        &[][..],
    ] {
        assert!(!looks_like_cms(other));
    }
}

/// Every single-byte change and every truncation of small files: never a panic, and for AES-GCM
/// never a success with other plaintext.
#[test]
fn cms_damaged_files_never_panic_or_yield_wrong_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa, ec) = (Party::rsa(&dir, "rsa"), Party::ec(&dir, "ec"));
    let plaintext = b"a small secret, long enough for two AES blocks".to_vec();
    let files = [
        (
            &ec,
            encrypt(std::slice::from_ref(&ec.cert), &plaintext).unwrap(),
            true,
        ),
        (
            &rsa,
            encrypt(std::slice::from_ref(&rsa.cert), &plaintext).unwrap(),
            true,
        ),
        (
            &ec,
            ec.openssl_encrypt(&plaintext, &["-aes-128-gcm", "-stream"]),
            true,
        ),
        (
            &rsa,
            rsa.openssl_encrypt(&plaintext, &["-aes-256-cbc"]),
            false,
        ),
    ];
    for (party, der, authenticated) in &files {
        let check = |damaged: &[u8]| {
            let _ = recipients(damaged);
            if let Ok(out) = party.decrypt(damaged) {
                assert!(
                    !authenticated || *out.plaintext == plaintext,
                    "damaged GCM file decrypted to other plaintext"
                );
            }
        };
        for index in 0..der.len() {
            let mut damaged = der.clone();
            damaged[index] ^= 0x01;
            check(&damaged);
            damaged[index] ^= 0xFF;
            check(&damaged);
        }
        for len in 0..der.len() {
            check(&der[..len]);
        }
    }
}

#[test]
fn cms_reader_bounds_hostile_input() {
    // Deep nesting of indefinite-length SEQUENCEs: refused, not a stack overflow.
    let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 10_000)
        .flatten()
        .collect();
    assert!(Reader::new(&deep).next().is_err());
    // Lengths beyond the input, or too large to be real.
    for bad in [
        &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF][..],
        &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        &[0x04, 0x05, 1, 2],
        &[0x04, 0x80, 0, 0],
        &[0x1F, 0x01, 0x00],
    ] {
        assert!(Reader::new(bad).next().is_err(), "{bad:?}");
        assert!(!looks_like_cms(bad));
    }
}

#[test]
fn cms_der_writer_lengths_round_trip() {
    for len in [0, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 20] {
        let content = vec![0xAB; len];
        let der = der::Encode::to_der(&der::asn1::OctetStringRef::new(&content).unwrap()).unwrap();
        let tlv = Reader::new(&der).next().unwrap().unwrap();
        assert_eq!(
            (tlv.tag, tlv.content.len(), tlv.raw.len()),
            (tag::OCTET_STRING, len, der.len())
        );
    }
}

#[test]
fn cms_oid_constants_match_their_dotted_form() {
    let expected = [
        (oid::ENVELOPED_DATA, "1.2.840.113549.1.7.3"),
        (oid::AUTH_ENVELOPED_DATA, "1.2.840.113549.1.9.16.1.23"),
        (oid::RSAES_OAEP, "1.2.840.113549.1.1.7"),
        (oid::AES256_GCM, "2.16.840.1.101.3.4.1.46"),
        (oid::AES192_CBC, "2.16.840.1.101.3.4.1.22"),
        (oid::AES256_WRAP, "2.16.840.1.101.3.4.1.45"),
        (oid::STD_DH_SHA1_KDF, "1.3.133.16.840.63.0.2"),
        (oid::STD_DH_SHA256_KDF, "1.3.132.1.11.1"),
        (oid::COFACTOR_DH_SHA512_KDF, "1.3.132.1.14.3"),
        (oid::PRIME256V1, "1.2.840.10045.3.1.7"),
    ];
    for (oid, dotted) in expected {
        assert_eq!(oid_to_string(oid), dotted);
    }
    for (oid, name) in oid::ALL {
        assert!(oid::describe(oid).starts_with(name));
    }
}

/// The OAEP parameters are written byte for byte as `openssl cms -encrypt -keyopt
/// rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256 -keyopt rsa_mgf1_md:sha256` writes them.
#[test]
fn cms_oaep_sha256_algorithm_matches_openssl() {
    let openssl_der = "303806092a864886f70d010107302ba00d300b0609608648016503040201\
                       a11a301806092a864886f70d010108300b0609608648016503040201";
    let ours = ids_pki::b64::hex(&encode::oaep_sha256_algorithm());
    assert_eq!(ours, openssl_der);
}

/// RFC 5083 section 2.2: authenticated attributes are covered by the tag, encoded as a SET OF.
/// OpenSSL does not write them and 3.0 cannot read them (wrong tags in its ASN.1 template,
/// openssl/openssl#26101), so this checks our reading against the RFC only.
#[test]
fn cms_authenticated_attributes_are_checked() {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    const CONTENT_TYPE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];
    let dir = tempfile::tempdir().unwrap();
    let rsa = Party::rsa(&dir, "rsa");
    let me = identity::CertIdentity::new(&rsa.cert).unwrap();
    let (content_key, nonce, plaintext) = ([7u8; 32], [9u8; 12], b"with attributes");
    // Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF ANY } (RFC 5652 5.3).
    #[derive(der::Sequence)]
    struct Attribute {
        attr_type: const_oid::ObjectIdentifier,
        attr_values: der::asn1::SetOfVec<const_oid::ObjectIdentifier>,
    }
    let attributes = |content_type: &'static [u8]| {
        let value = const_oid::ObjectIdentifier::from_bytes(content_type).unwrap();
        der::Encode::to_der(&Attribute {
            attr_type: const_oid::ObjectIdentifier::from_bytes(CONTENT_TYPE).unwrap(),
            attr_values: der::asn1::SetOfVec::try_from(vec![value]).unwrap(),
        })
        .unwrap()
    };
    let aad = encode::set(&attributes(oid::DATA)).unwrap();
    let recipient_info = ktri::recipient_info(&me, &content_key).unwrap();
    let mut ciphertext = plaintext.to_vec();
    let mac = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &content_key).unwrap())
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad),
            &mut ciphertext,
        )
        .unwrap();
    let message = |content_type| {
        encode::envelope(
            std::slice::from_ref(&recipient_info),
            &nonce,
            &ciphertext,
            Some(&[attributes(content_type)]),
            mac.as_ref(),
        )
        .unwrap()
    };
    let good = message(oid::DATA);
    assert_eq!(*rsa.decrypt(&good).unwrap().plaintext, plaintext);
    let changed = message(oid::ENVELOPED_DATA);
    assert!(matches!(rsa.decrypt(&changed), Err(CmsError::Tampered)));
}
