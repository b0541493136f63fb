//! Known answers for the CMS writer: the DER it produces for fixed inputs (fixed keys, nonces and
//! wrapped keys in place of the random ones), pinned from the hand-written DER encoder the writer
//! used before it moved to the `der` crate, so the rewrite is byte-for-byte the same.

use std::path::Path;

use aws_lc_rs::digest;

use super::encode;
use super::identity::CertIdentity;
use ids_pki::cert::Certificate;

fn identity(name: &str) -> CertIdentity {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    CertIdentity::new(&Certificate::from_file(&path).unwrap()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    ids_pki::b64::hex(bytes)
}

fn sha256(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn key_trans() -> Vec<u8> {
    encode::key_trans_info(&identity("signing-rsa.crt"), &[0x11; 256]).unwrap()
}

fn key_agree() -> Vec<u8> {
    let mut point = vec![4u8];
    point.extend_from_slice(&[0x22; 64]);
    encode::key_agree_info(&identity("signing-ec.crt"), &point, &[0x33; 40]).unwrap()
}

#[test]
fn key_trans_recipient_info() {
    let der = key_trans();
    assert_eq!(
        (der.len(), sha256(&der).as_str()),
        (
            373,
            "9edadf71dd050ccdcdd6e215c571d8b29df0fb069a14bb14562924d188c8c724"
        ),
        "{}",
        hex(&der)
    );
}

#[test]
fn key_agree_recipient_info() {
    let der = key_agree();
    assert_eq!(
        (der.len(), sha256(&der).as_str()),
        (
            206,
            "80cc4b13a0342a1fa96a8e287a743aa75c62f3ce361042f5bb8993a849e63cd6"
        ),
        "{}",
        hex(&der)
    );
}

#[test]
fn ecc_cms_shared_info() {
    // The content of `SEQUENCE { id-aes256-wrap }`.
    let key_info = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d,
    ];
    let without = encode::shared_info(&key_info, None, 256).unwrap();
    let with = encode::shared_info(&key_info, Some(&[0x66; 64]), 128).unwrap();
    assert_eq!(
        hex(&without),
        "3015300b060960864801650304012da206040400000100"
    );
    assert_eq!(
        hex(&with),
        "3059300b060960864801650304012da042044066666666666666666666666666666666666666666666666666666666\
         666666666666666666666666666666666666666666666666666666666666666666666666a206040400000080"
    );
}

/// The whole message with both recipients, for an empty, a short and a long (three-byte length)
/// content.
#[test]
fn auth_enveloped_data() {
    let mut infos = vec![key_trans(), key_agree()];
    infos.sort();
    for (len, expected_len, expected) in [
        (
            0,
            676,
            "c727af7ef032a53ab5f1bc393e618532855b01ecae91f24a43225185d8fd4299",
        ),
        (
            300,
            980,
            "5e9aece3f1c8b10a8e4122b7f1c876bb1b6ffcc70aed9763c2d9525be3d702ae",
        ),
        (
            70_000,
            70_685,
            "bef2895ce6a7dc59be320084d48de2095cede283c2a8b1bb854800b10c00719b",
        ),
    ] {
        let der = encode::envelope(&infos, &[9; 12], &vec![0x44; len], None, &[0x55; 16]).unwrap();
        assert_eq!(
            (der.len(), sha256(&der).as_str()),
            (expected_len, expected),
            "{len}"
        );
    }
}
