//! A file's plaintext length and header checksum without decrypting it: the length fields of the
//! chunks are in clear, so a walk over them (one 4-byte read and one seek per chunk) gives the size a
//! delivery announces before its body is sent, without a pass over the content.
//!
//! Nothing here is authenticated: the lengths are checked when the chunks are decrypted (a length
//! changed on disk fails that chunk's tag), so a caller sends what [`Layout`] says only through a
//! [`Decryptor`](super::Decryptor), which stops at the first chunk that does not match.

use std::io::{Read, Seek, SeekFrom};

use super::error::FileError;
use super::format::{CHECKSUM_LEN, FINAL_FLAG, LENGTH_LEN, TAG_LEN, read_full, read_header};

/// What the header and the chunk framing of an encrypted file say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The header checksum (SHA-256 of the header): unique to one encryption, since the header holds
    /// the random file key (wrapped) and nonce prefix, and bound into every chunk.
    pub header_checksum: [u8; CHECKSUM_LEN],
    /// The sum of the chunks' plaintext lengths.
    pub plaintext_len: u64,
}

/// Reads the header of `input` (from its start) and walks the chunk length fields up to the final
/// chunk. A file that ends early, has a length above the chunk size, or bytes after the final chunk is
/// reported as damaged (the decryptor gives the precise error).
pub fn layout<R: Read + Seek>(mut input: R) -> Result<Layout, FileError> {
    let header = read_header(&mut input)?;
    let mut header_checksum = [0u8; CHECKSUM_LEN];
    header_checksum.copy_from_slice(header.checksum());
    let mut offset = header.len();
    let mut plaintext_len = 0u64;
    let mut chunk = 0u64;
    let damaged = |chunk: u64, offset: u64, detail: &str| FileError::ChunkDamaged {
        chunk,
        offset,
        detail: detail.to_string(),
    };
    loop {
        let mut field = [0u8; LENGTH_LEN];
        if read_full(&mut input, &mut field)? < LENGTH_LEN {
            return Err(damaged(
                chunk,
                offset,
                "the file ends before its final chunk",
            ));
        }
        let field = u32::from_be_bytes(field);
        let len = u64::from(field & !FINAL_FLAG);
        if len > u64::from(header.chunk_size) {
            return Err(damaged(chunk, offset, "its length is above the chunk size"));
        }
        plaintext_len += len;
        offset += (LENGTH_LEN + TAG_LEN) as u64 + len;
        let skip = i64::try_from(len + TAG_LEN as u64)
            .map_err(|_| damaged(chunk, offset, "length out of range"))?;
        input
            .seek(SeekFrom::Current(skip))
            .map_err(|source| FileError::Read { source })?;
        if field & FINAL_FLAG != 0 {
            break;
        }
        chunk += 1;
    }
    let end = input
        .seek(SeekFrom::End(0))
        .map_err(|source| FileError::Read { source })?;
    if end != offset {
        return Err(damaged(
            chunk,
            offset,
            "the file's length does not end at its final chunk",
        ));
    }
    Ok(Layout {
        header_checksum,
        plaintext_len,
    })
}
