//! IDSENC files (`ids_seal::encrypted_file`): the header, then the chunks, in both modes.

use std::io::sink;

use aws_lc_rs::digest::{SHA256, digest};
use ids_seal::encrypted_file::format::{CHECKSUM_LEN, MAGIC};
use ids_seal::encrypted_file::{Mode, decrypt_stream, read_header};

use crate::consume;
use crate::fixtures::fixtures;

/// Reads the header of `data`, then decrypts it strictly and in recovery mode with both fixture keys;
/// then the same with the header checksum recomputed, if that changes anything.
pub fn idsenc(data: &[u8]) {
    run(data);
    if let Some(fixed) = with_checksum(data) {
        run(&fixed);
    }
}

fn run(data: &[u8]) {
    let f = fixtures();
    match read_header(&mut &data[..]) {
        Ok(header) => consume((header.len(), header.recipients().count(), header.checksum())),
        Err(e) => consume(e.to_string()),
    }
    for mode in [Mode::Strict, Mode::Recover] {
        match decrypt_stream(data, &mut sink(), &f.decryption_keys, mode, |_| {}) {
            Ok(outcome) => consume(outcome.stopped.map(|e| e.to_string())),
            Err(e) => consume((e.kind(), e.to_string())),
        }
    }
}

/// `data` with the SHA-256 checksum that ends its header recomputed. The fuzzer cannot forge a hash,
/// so without this pass every mutation of the header would stop at the checksum and the stanza parsing
/// behind it would never be fuzzed. `None` when `data` has no complete header or the checksum was right.
fn with_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(data.get(7..11)?.try_into().ok()?) as usize;
    if !data.starts_with(MAGIC) || len < CHECKSUM_LEN || data.len() < len {
        return None;
    }
    let mut fixed = data.to_vec();
    let checksum = digest(&SHA256, &fixed[..len - CHECKSUM_LEN]);
    fixed[len - CHECKSUM_LEN..len].copy_from_slice(checksum.as_ref());
    (fixed != data).then_some(fixed)
}
