//! Round trips, and every way a file can be damaged, each with its own error.

use std::io::{Read, Write};
use std::sync::OnceLock;

use super::error::{FailureKind, FileError};
use super::format::{CHECKSUM_LEN, DEFAULT_CHUNK_SIZE, LENGTH_LEN, TAG_LEN, read_header};
use super::*;
use crate::atomic::AtomicFile;
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_pki::pfx::Pfx;

struct Party {
    pfx: Pfx,
}

impl Party {
    fn recipient(&self) -> Recipient {
        Recipient::from_certificate(&self.pfx.certificate).unwrap()
    }
    fn key(&self) -> DecryptionKey {
        DecryptionKey::from_pfx(&self.pfx).unwrap()
    }
}

fn party(kind: KeyKind, name: &str) -> Party {
    static CA: OnceLock<Ca> = OnceLock::new();
    let ca = CA.get_or_init(|| Ca::new("file test CA", 1).unwrap());
    let issued = ca.issue_signing(name, kind, 1).unwrap();
    let bytes = to_pfx(&issued, &[], name, "pw", PfxProfile::Modern).unwrap();
    Party {
        pfx: Pfx::from_bytes(name, &bytes, "pw").unwrap(),
    }
}

fn rsa() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    P.get_or_init(|| party(KeyKind::Rsa2048, "rsa recipient"))
}

fn ec() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    P.get_or_init(|| party(KeyKind::EcP256, "ec recipient"))
}

fn stranger() -> &'static Party {
    static P: OnceLock<Party> = OnceLock::new();
    P.get_or_init(|| party(KeyKind::EcP256, "someone else"))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn encrypt_with(plain: &[u8], recipients: &[Recipient], chunk: u32) -> Vec<u8> {
    let mut enc = Encryptor::with_chunk_size(Vec::new(), recipients, chunk).unwrap();
    enc.copy_from(&mut &plain[..], |_| {}).unwrap();
    enc.finish().unwrap()
}

fn decrypt(file: &[u8], keys: &[DecryptionKey]) -> (Vec<u8>, Result<Outcome, FileError>) {
    let mut out = Vec::new();
    let result = decrypt_stream(file, &mut out, keys, Mode::Strict, |_| {});
    (out, result)
}

fn decrypt_ok(file: &[u8], keys: &[DecryptionKey]) -> Vec<u8> {
    let (out, result) = decrypt(file, keys);
    result.unwrap();
    out
}

/// A small file with 16-byte chunks: header, then chunks of 4 + 16 + 16 bytes.
fn small_file() -> (Vec<u8>, Vec<u8>, usize) {
    let plain = data(16 * 4 + 5);
    let file = encrypt_with(&plain, &[ec().recipient()], 16);
    let header_len = read_header(&mut &file[..]).unwrap().bytes.len();
    (plain, file, header_len)
}

const SMALL_CHUNK: usize = LENGTH_LEN + 16 + TAG_LEN;

#[test]
fn round_trips_at_chunk_boundaries_for_rsa_and_ec() {
    let c = DEFAULT_CHUNK_SIZE as usize;
    for party in [rsa(), ec()] {
        for len in [0, 1, c - 1, c, c + 1, 3 * c + 17] {
            let plain = data(len);
            let file = encrypt_with(&plain, &[party.recipient()], DEFAULT_CHUNK_SIZE);
            assert_eq!(decrypt_ok(&file, &[party.key()]), plain, "length {len}");
            let full_chunks = len / c;
            let expected_chunks = if len > 0 && len % c == 0 {
                full_chunks
            } else {
                full_chunks + 1
            };
            let header = read_header(&mut &file[..]).unwrap().bytes.len();
            assert_eq!(
                file.len(),
                header + len + expected_chunks * (LENGTH_LEN + TAG_LEN),
                "a file of {len} bytes is {expected_chunks} chunk(s)"
            );
        }
    }
}

#[test]
fn write_interface_and_read_interface_agree_with_the_stream_functions() {
    let plain = data(100_000);
    let mut enc = Encryptor::new(Vec::new(), &[rsa().recipient()]).unwrap();
    for piece in plain.chunks(777) {
        enc.write_all(piece).unwrap();
    }
    let file = enc.finish().unwrap();
    let mut reader = Decryptor::new(&file[..], &[rsa().key()]).unwrap();
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    assert_eq!(back, plain);
}

#[test]
fn several_recipients_each_decrypt_and_others_are_told_who_can() {
    let plain = data(5000);
    let file = encrypt_with(&plain, &[rsa().recipient(), ec().recipient()], 1024);
    assert_eq!(decrypt_ok(&file, &[rsa().key()]), plain);
    assert_eq!(decrypt_ok(&file, &[ec().key()]), plain);
    assert_eq!(decrypt_ok(&file, &[stranger().key(), ec().key()]), plain);

    let (out, err) = decrypt(&file, &[stranger().key()]);
    let err = err.unwrap_err();
    assert!(out.is_empty());
    assert_eq!(err.kind(), FailureKind::NotForThisKey);
    let message = err.to_string();
    for who in [rsa(), ec()] {
        let thumbprint = who.recipient().thumbprint().to_string();
        assert!(message.contains(&thumbprint), "{message}");
    }
    assert!(message.contains("someone else"), "{message}");
}

#[test]
fn flipping_any_byte_is_detected_and_only_authentic_plaintext_comes_out() {
    let (plain, file, _) = small_file();
    for i in 0..file.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = file.clone();
            bad[i] ^= bit;
            let (out, result) = decrypt(&bad, &[ec().key()]);
            let err = result.expect_err(&format!("byte {i} flipped was accepted"));
            let expected = if i < 7 {
                FailureKind::Unsupported // the signature or the version: not a file of ours
            } else {
                FailureKind::Damaged
            };
            assert_eq!(err.kind(), expected, "byte {i}: {err}");
            assert!(plain.starts_with(&out), "byte {i}: unauthentic output");
        }
    }
}

#[test]
fn each_kind_of_damage_has_its_own_error() {
    let (_, file, h) = small_file();
    let key = [ec().key()];

    // A header byte: the checksum catches it before any key is used.
    let mut bad = file.clone();
    bad[20] ^= 1;
    assert!(matches!(
        decrypt(&bad, &key).1,
        Err(FileError::HeaderDamaged { .. })
    ));

    // A header byte with the checksum recomputed: the MAC (keyed by the file key) catches it.
    let mut bad = file.clone();
    bad[16] ^= 1; // nonce prefix
    let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bad[..h - CHECKSUM_LEN]);
    bad[h - CHECKSUM_LEN..h].copy_from_slice(sum.as_ref());
    assert!(matches!(
        decrypt(&bad, &key).1,
        Err(FileError::HeaderTampered { .. })
    ));

    // A ciphertext byte and a tag byte of chunk 2.
    for within in [LENGTH_LEN + 3, SMALL_CHUNK - 1] {
        let mut bad = file.clone();
        bad[h + 2 * SMALL_CHUNK + within] ^= 1;
        match decrypt(&bad, &key).1 {
            Err(FileError::Tampered { chunk: 2, offset }) => {
                assert_eq!(offset, (h + 2 * SMALL_CHUNK) as u64)
            }
            other => panic!("{other:?}"),
        }
    }

    // Chunks 1 and 2 swapped.
    let mut bad = file.clone();
    let (a, b) = (h + SMALL_CHUNK, h + 2 * SMALL_CHUNK);
    let chunk1 = file[a..b].to_vec();
    bad.copy_within(b..b + SMALL_CHUNK, a);
    bad[b..b + SMALL_CHUNK].copy_from_slice(&chunk1);
    assert!(matches!(
        decrypt(&bad, &key).1,
        Err(FileError::Tampered { chunk: 1, .. })
    ));

    // The final chunk dropped (4 full chunks, then a final chunk of 5 bytes).
    let cut = h + 4 * SMALL_CHUNK;
    let (out, result) = decrypt(&file[..cut], &key);
    match result {
        Err(FileError::TruncatedAtChunk {
            chunk: 4,
            authentic_bytes: 64,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(out.len(), 64);

    // Cut inside a chunk.
    assert!(matches!(
        decrypt(&file[..cut + 7], &key).1,
        Err(FileError::TruncatedInChunk { chunk: 4, .. })
    ));

    // Data appended after the final chunk.
    let mut bad = file.clone();
    bad.extend_from_slice(b"appended");
    match decrypt(&bad, &key).1 {
        Err(FileError::TrailingData { extra: 8, offset }) => assert_eq!(offset, file.len() as u64),
        other => panic!("{other:?}"),
    }

    // Cut inside the header, and not an encrypted file at all.
    assert!(matches!(
        decrypt(&file[..30], &key).1,
        Err(FileError::HeaderDamaged { .. })
    ));
    assert!(matches!(
        decrypt(b"plain text log line\n", &key).1,
        Err(FileError::NotEncrypted)
    ));
    assert!(matches!(decrypt(b"", &key).1, Err(FileError::NotEncrypted)));
}

#[test]
fn recover_outputs_the_authentic_chunks_of_a_file_cut_short() {
    // A log writer that sealed two batches of lines, then the process died before `finish`.
    let mut enc = Encryptor::new(Vec::new(), &[rsa().recipient()]).unwrap();
    enc.write_all(b"line one\n").unwrap();
    enc.seal_partial().unwrap();
    enc.write_all(b"line two\n").unwrap();
    enc.seal_partial().unwrap();
    enc.write_all(b"never sealed\n").unwrap();
    let crashed = enc.get_ref().clone();

    let (out, strict) = decrypt(&crashed, &[rsa().key()]);
    assert!(matches!(
        strict,
        Err(FileError::TruncatedAtChunk { chunk: 2, .. })
    ));
    assert_eq!(out, b"line one\nline two\n");

    let mut out = Vec::new();
    let outcome = decrypt_stream(
        &crashed[..],
        &mut out,
        &[rsa().key()],
        Mode::Recover,
        |_| {},
    )
    .unwrap();
    assert_eq!(out, b"line one\nline two\n");
    assert_eq!((outcome.bytes, outcome.chunks), (18, 2));
    assert!(matches!(
        outcome.stopped,
        Some(FileError::TruncatedAtChunk { .. })
    ));

    // Recover on a tampered chunk stops before it; on a complete file it reports nothing.
    let mut bad = crashed.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut out = Vec::new();
    let outcome =
        decrypt_stream(&bad[..], &mut out, &[rsa().key()], Mode::Recover, |_| {}).unwrap();
    assert_eq!(out, b"line one\n");
    assert!(matches!(
        outcome.stopped,
        Some(FileError::Tampered { chunk: 1, .. })
    ));

    let whole = encrypt_with(b"complete", &[rsa().recipient()], 16);
    let mut out = Vec::new();
    let outcome =
        decrypt_stream(&whole[..], &mut out, &[rsa().key()], Mode::Recover, |_| {}).unwrap();
    assert!(outcome.stopped.is_none());
    assert_eq!(out, b"complete");
}

#[test]
fn random_mutations_never_yield_other_plaintext() {
    let (plain, file, _) = small_file();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut bad = file.clone();
        match next() % 3 {
            0 => {
                let at = (next() as usize) % bad.len();
                bad[at] = next() as u8;
            }
            1 => bad.truncate((next() as usize) % bad.len()),
            _ => {
                let at = (next() as usize) % bad.len();
                bad.insert(at, next() as u8);
            }
        }
        if bad == file {
            continue;
        }
        let (out, result) = decrypt(&bad, &[ec().key()]);
        assert!(result.is_err());
        assert!(plain.starts_with(&out));
    }
}

#[test]
fn atomic_files_appear_only_when_committed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.bin");

    let mut file = AtomicFile::create(&target, false).unwrap();
    file.write_all(b"half").unwrap();
    let temp = file.temp_path().to_path_buf();
    assert!(temp.exists() && !target.exists());
    drop(file);
    assert!(
        !temp.exists() && !target.exists(),
        "a dropped file leaves nothing"
    );

    let mut file = AtomicFile::create(&target, false).unwrap();
    file.write_all(b"whole").unwrap();
    file.commit().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"whole");

    let refused = AtomicFile::create(&target, false).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
    let mut file = AtomicFile::create(&target, true).unwrap();
    file.write_all(b"replaced").unwrap();
    file.commit().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"replaced");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn layout_gives_the_plaintext_length_and_refuses_a_file_cut_or_extended() {
    for len in [0usize, 1, 15, 16, 17, 64, 69, 1000] {
        let plain = data(len);
        let file = encrypt_with(&plain, &[ec().recipient()], 16);
        let found = layout(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(found.plaintext_len, len as u64, "{len} bytes");
        let header = read_header(&mut &file[..]).unwrap();
        assert_eq!(&found.header_checksum[..], header.checksum());
    }
    // Another encryption of the same content: another header, another checksum.
    let plain = data(100);
    let a = layout(std::io::Cursor::new(encrypt_with(
        &plain,
        &[ec().recipient()],
        16,
    )))
    .unwrap();
    let b = layout(std::io::Cursor::new(encrypt_with(
        &plain,
        &[ec().recipient()],
        16,
    )))
    .unwrap();
    assert_eq!(a.plaintext_len, b.plaintext_len);
    assert_ne!(a.header_checksum, b.header_checksum);
    let (_, file, header_len) = small_file();
    for cut in [header_len + 2, header_len + SMALL_CHUNK, file.len() - 1] {
        let err = layout(std::io::Cursor::new(&file[..cut])).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Damaged, "cut at {cut}: {err}");
    }
    let mut longer = file.clone();
    longer.push(0);
    let err = layout(std::io::Cursor::new(&longer)).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Damaged, "{err}");
}
