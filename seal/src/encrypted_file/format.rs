//! Header layout of `IDSENC` version 1 (all integers big-endian; see `docs/encrypted-file-format.md`):
//!
//! ```text
//! offset  size  field
//!  0       6    magic "IDSENC"
//!  6       1    version = 1
//!  7       4    header length H (bytes 0..H, checksum included)
//! 11       4    chunk size C (plaintext bytes of a full chunk, 1 ..= 16 MiB)
//! 15       7    nonce prefix (random)
//! 22       1    recipient count N (1 ..= 32)
//! 23       ...  N stanzas: kind (1) | SHA-256 thumbprint of the certificate (32) | body length (2) | body
//! H-64    32    header MAC: HMAC-SHA256(key derived from the file key, bytes 0..H-64)
//! H-32    32    header checksum: SHA-256(bytes 0..H-32), bound into every chunk as associated data
//! ```
//!
//! Then chunks: `length (4, bit 31 = final) | ciphertext (length) | GCM tag (16)`.

use std::io::Read;

use aws_lc_rs::digest;

use super::error::FileError;
pub use super::thumbprint::Thumbprint;

pub const MAGIC: &[u8; 6] = b"IDSENC";
pub const VERSION: u8 = 1;
/// 64 KiB, as in age: large enough that the per-chunk cost vanishes, small enough to keep memory flat.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
pub const MAX_HEADER_LEN: usize = 64 * 1024;
pub const MAX_RECIPIENTS: usize = 32;
pub const NONCE_PREFIX_LEN: usize = 7;
pub const TAG_LEN: usize = 16;
pub const LENGTH_LEN: usize = 4;
/// Bit 31 of a chunk's length field marks the final chunk (STREAM's last-block flag, also in the nonce).
pub const FINAL_FLAG: u32 = 0x8000_0000;
pub const MAC_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 32;
const PREAMBLE_LEN: usize = 11;
const FIXED_LEN: usize = 23;
const STANZA_FIXED_LEN: usize = 1 + 32 + 2;

/// How the file key is wrapped for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WrapKind {
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 section 7.1); body = the RSA ciphertext.
    RsaOaepSha256 = 1,
    /// ECDH-ES on P-256 with HKDF-SHA256 (RFC 5869); body = ephemeral point (65) | AES-256-GCM sealed key (48).
    EcdhEsP256 = 2,
}

impl WrapKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(WrapKind::RsaOaepSha256),
            2 => Some(WrapKind::EcdhEsP256),
            _ => None,
        }
    }
}

/// The file key wrapped for one recipient.
#[derive(Clone, Debug)]
pub struct Stanza {
    pub kind: WrapKind,
    pub thumbprint: Thumbprint,
    pub body: Vec<u8>,
}

/// A parsed (or freshly built) header.
#[derive(Clone, Debug)]
pub struct Header {
    pub chunk_size: u32,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub stanzas: Vec<Stanza>,
    /// The whole serialised header; the MAC and the checksum are its last 64 bytes.
    pub bytes: Vec<u8>,
}

impl Header {
    /// Serialises a header; `mac` computes the header MAC over the bytes it is given.
    pub(crate) fn build(
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        stanzas: Vec<Stanza>,
        mac: impl FnOnce(&[u8]) -> Result<[u8; MAC_LEN], FileError>,
    ) -> Result<Self, FileError> {
        if stanzas.is_empty() || stanzas.len() > MAX_RECIPIENTS {
            return Err(FileError::InvalidParameters {
                detail: format!(
                    "{} recipients given: between 1 and {MAX_RECIPIENTS} are supported",
                    stanzas.len()
                ),
            });
        }
        let mut bytes = Vec::with_capacity(512 * stanzas.len() + FIXED_LEN + 64);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&[0; 4]); // header length, patched below
        bytes.extend_from_slice(&chunk_size.to_be_bytes());
        bytes.extend_from_slice(&nonce_prefix);
        bytes.push(stanzas.len() as u8);
        for stanza in &stanzas {
            let body_len = u16::try_from(stanza.body.len()).map_err(|_| FileError::Crypto {
                what: "wrapped key too long",
            })?;
            bytes.push(stanza.kind as u8);
            bytes.extend_from_slice(&stanza.thumbprint.0);
            bytes.extend_from_slice(&body_len.to_be_bytes());
            bytes.extend_from_slice(&stanza.body);
        }
        let total = bytes.len() + MAC_LEN + CHECKSUM_LEN;
        if total > MAX_HEADER_LEN {
            return Err(FileError::InvalidParameters {
                detail: format!("header of {total} bytes exceeds {MAX_HEADER_LEN}"),
            });
        }
        bytes[7..11].copy_from_slice(&(total as u32).to_be_bytes());
        let tag = mac(&bytes)?;
        bytes.extend_from_slice(&tag);
        let checksum = digest::digest(&digest::SHA256, &bytes);
        bytes.extend_from_slice(checksum.as_ref());
        Ok(Header {
            chunk_size,
            nonce_prefix,
            stanzas,
            bytes,
        })
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The recipients' thumbprints, in header order.
    pub fn recipients(&self) -> impl Iterator<Item = &Thumbprint> {
        self.stanzas.iter().map(|s| &s.thumbprint)
    }

    /// The bytes the header MAC covers.
    pub(crate) fn mac_input(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - MAC_LEN - CHECKSUM_LEN]
    }

    pub(crate) fn mac(&self) -> &[u8] {
        let end = self.bytes.len() - CHECKSUM_LEN;
        &self.bytes[end - MAC_LEN..end]
    }

    /// The header checksum: every chunk's associated data starts with it, binding chunks to this header.
    pub fn checksum(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - CHECKSUM_LEN..]
    }
}

/// Reads and checks a header (structure and checksum; the MAC needs the file key and is checked by the
/// decryptor). Reads exactly the header's bytes from `input`.
pub fn read_header(input: &mut impl Read) -> Result<Header, FileError> {
    let mut preamble = [0u8; PREAMBLE_LEN];
    let got = read_full(input, &mut preamble)?;
    if got < MAGIC.len() || &preamble[..MAGIC.len()] != MAGIC {
        return Err(FileError::NotEncrypted);
    }
    if got < PREAMBLE_LEN {
        return Err(FileError::header(format!(
            "the file ends after {got} bytes, inside the header"
        )));
    }
    if preamble[6] != VERSION {
        return Err(FileError::UnsupportedVersion { found: preamble[6] });
    }
    let total = u32::from_be_bytes([preamble[7], preamble[8], preamble[9], preamble[10]]) as usize;
    let minimum = FIXED_LEN + STANZA_FIXED_LEN + MAC_LEN + CHECKSUM_LEN;
    if !(minimum..=MAX_HEADER_LEN).contains(&total) {
        return Err(FileError::header(format!(
            "header length field says {total} bytes, expected {minimum} to {MAX_HEADER_LEN}"
        )));
    }
    let mut bytes = vec![0u8; total];
    bytes[..PREAMBLE_LEN].copy_from_slice(&preamble);
    let got = read_full(input, &mut bytes[PREAMBLE_LEN..])?;
    if got < total - PREAMBLE_LEN {
        return Err(FileError::header(format!(
            "the file ends after {} bytes, inside the {total}-byte header (truncated)",
            PREAMBLE_LEN + got
        )));
    }
    let (covered, checksum) = bytes.split_at(total - CHECKSUM_LEN);
    if digest::digest(&digest::SHA256, covered).as_ref() != checksum {
        return Err(FileError::header(
            "its SHA-256 checksum does not match (a byte of the header changed)",
        ));
    }
    parse(bytes)
}

/// Parses a header whose checksum is correct. A failure here means a header that was built wrongly or
/// altered with its checksum recomputed.
fn parse(bytes: Vec<u8>) -> Result<Header, FileError> {
    let body_end = bytes.len() - MAC_LEN - CHECKSUM_LEN;
    let chunk_size = u32::from_be_bytes([bytes[11], bytes[12], bytes[13], bytes[14]]);
    if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
        return Err(FileError::header(format!(
            "chunk size {chunk_size} is outside 1 to {MAX_CHUNK_SIZE}"
        )));
    }
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    nonce_prefix.copy_from_slice(&bytes[15..22]);
    let count = bytes[22] as usize;
    if count == 0 || count > MAX_RECIPIENTS {
        return Err(FileError::header(format!(
            "{count} recipients, expected 1 to {MAX_RECIPIENTS}"
        )));
    }
    let mut stanzas = Vec::with_capacity(count);
    let mut at = FIXED_LEN;
    for index in 0..count {
        let fixed = bytes
            .get(at..at + STANZA_FIXED_LEN)
            .filter(|_| at + STANZA_FIXED_LEN <= body_end)
            .ok_or_else(|| FileError::header(format!("recipient {} is cut short", index + 1)))?;
        let kind = WrapKind::from_byte(fixed[0]).ok_or_else(|| {
            FileError::header(format!(
                "recipient {} has unknown key-wrapping kind {}",
                index + 1,
                fixed[0]
            ))
        })?;
        let mut thumbprint = [0u8; 32];
        thumbprint.copy_from_slice(&fixed[1..33]);
        let body_len = u16::from_be_bytes([fixed[33], fixed[34]]) as usize;
        let start = at + STANZA_FIXED_LEN;
        if start + body_len > body_end {
            return Err(FileError::header(format!(
                "recipient {} is cut short",
                index + 1
            )));
        }
        stanzas.push(Stanza {
            kind,
            thumbprint: Thumbprint(thumbprint),
            body: bytes[start..start + body_len].to_vec(),
        });
        at = start + body_len;
    }
    if at != body_end {
        return Err(FileError::header(format!(
            "{} unexpected bytes after the recipients",
            body_end - at
        )));
    }
    Ok(Header {
        chunk_size,
        nonce_prefix,
        stanzas,
        bytes,
    })
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read (a short count means
/// the end of the input).
pub fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// [`read_up_to`] with the error as a [`FileError::Read`].
pub(crate) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, FileError> {
    read_up_to(input, buf).map_err(|source| FileError::Read { source })
}
