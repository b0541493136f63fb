#![allow(clippy::unwrap_used)]
//! Known answers for what the key-file module writes (SPKI DER, PKCS#1 `RSAPublicKey`, PEM), pinned
//! from the hand-written DER and PEM encoders it used before it moved to the RustCrypto `der`, `spki`
//! and `pem-rfc7468` crates, so the rewrite is byte-for-byte the same.

use std::path::Path;

use ids_pki::PublicKey;
use ids_pki::b64::hex;
use ids_pki::keyfile::*;

fn sha256(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn keys() -> Vec<(&'static str, PublicKey)> {
    let mut n_high = vec![0x80u8; 256];
    n_high[255] = 0x01;
    let mut n_low = vec![0x7fu8; 256];
    n_low[0] = 0x00; // a leading zero is dropped
    vec![
        (
            "p256",
            PublicKey::P256 {
                x: (1..=32).collect(),
                y: (101..=132).collect(),
            },
        ),
        (
            "rsa-high-bit",
            PublicKey::Rsa {
                n: n_high,
                e: vec![1, 0, 1],
            },
        ),
        (
            "rsa-leading-zero",
            PublicKey::Rsa {
                n: n_low,
                e: vec![0x80, 0, 1],
            },
        ),
    ]
}

/// SPKI DER (length and SHA-256 for RSA), the `subjectPublicKey` bits and the PEM of each key.
#[test]
fn spki_and_pkcs1_encodings() {
    let p256_spki = "3059301306072a8648ce3d020106082a8648ce3d03010703420004\
                     0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20\
                     65666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f8081828384";
    let expected = [
        (
            "p256",
            (91, p256_spki.to_string()),
            (
                65,
                sha256(&ids_pki::b64::hex_decode(&p256_spki[52..]).unwrap()),
            ),
            (
                178,
                "5a22552ac1411ea9828047739734637b1a189fa3c698160e08ff0f1e4f65c313",
            ),
        ),
        (
            "rsa-high-bit",
            (
                294,
                "529789e307f1b9bf1ab727db391b4c57772860c8989f8634063d5b282c73dc37".to_string(),
            ),
            (
                270,
                "7dffa820a2b8b95d56a592c6d60b10c4b96ad03b036515dc8ca516249893705b".to_string(),
            ),
            (
                451,
                "a45c6ba6a88b80698fdb27b81157fb1424d5d916064ae1ad3af1cb1dd5a50b42",
            ),
        ),
        (
            "rsa-leading-zero",
            (
                292,
                "240b328a27064f62915bbcede12dddaa3b193889d4529bb09469160f04f9b8c3".to_string(),
            ),
            (
                268,
                "c829540b125198cc6687cb52e09ab00198983b8173849d2bb45acc7e09a2826a".to_string(),
            ),
            (
                451,
                "0e83d5a88be3279ce5b13e844ecd5937d67bc84ecbfbf6d4847f14f74af69886",
            ),
        ),
    ];
    for ((name, key), (expected_name, spki, bits, pem)) in keys().into_iter().zip(expected) {
        assert_eq!(name, expected_name);
        let der = public_key_der(&key);
        let der_answer = if name == "p256" {
            hex(&der)
        } else {
            sha256(&der)
        };
        assert_eq!((der.len(), der_answer), spki, "{name} SPKI");
        let raw = subject_public_key_bits(&key);
        assert_eq!((raw.len(), sha256(&raw)), bits, "{name} bits");
        let text = public_key_pem(&key);
        assert_eq!(
            (text.len(), sha256(text.as_bytes()).as_str()),
            pem,
            "{name} PEM"
        );
    }
}

/// PEM of 0 to 1,000 bytes (line breaks every 48 bytes of input), and a private key.
#[test]
fn pem_encodings() {
    for (len, expected_len, expected) in [
        (
            0usize,
            54,
            "8944ea1031367945f4bc0ba05d8d125678f1b4c7a8aca51088695f4d176b7232",
        ),
        (
            1,
            59,
            "3c934779b67c1386c27fb2568674f9b364284b69cdd666ef4f5bbad57d9377d7",
        ),
        (
            2,
            59,
            "e84fb282645d5ddde9afc017f18d6d0c9db0fa208042f1d08045a92f8cd828a5",
        ),
        (
            3,
            59,
            "1ee51c0453644fba6402a79647c705a59fed25b0d97b0ac79ff519f802029ae3",
        ),
        (
            47,
            119,
            "437bc9806d4796c173daf9fc4d276ea56d5367cf4272a9972bc51f17d8781e1a",
        ),
        (
            48,
            119,
            "bc446ac0828bb4970627ce91d9023e5d4564dd4f8c2c306cffd8bc4018adfd81",
        ),
        (
            49,
            124,
            "4c5ab2b827609128345a4a63dec7aad571bafd8177efd57a8cef61127d75561b",
        ),
        (
            96,
            184,
            "4369994f4c88a87a37994701f9f27a0a3fe675413b19dcd3adc69d48b08822fa",
        ),
        (
            1000,
            1411,
            "305b18dd2b2d4e1c98d8257bc7009b54a2d74326ba088dcbc497706bcb41403a",
        ),
    ] {
        let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let pem = certificate_pem(&der);
        assert_eq!(
            (pem.len(), sha256(pem.as_bytes()).as_str()),
            (expected_len, expected),
            "{len}"
        );
    }
    assert_eq!(
        certificate_pem(&[]),
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
    );
    let key = read_private(&fixture("ca.key"), None).unwrap();
    let pem = private_key_pem(&key.pkcs8, None).unwrap();
    assert_eq!(
        (pem.len(), sha256(pem.as_bytes()).as_str()),
        (
            241,
            "2f70302cd702e3644600481c5883d95ac3340f9822c5662b21e84828d0a2b94f"
        )
    );
}
