//! Writing encrypted files: [`Encryptor`] seals chunks as data arrives, with one chunk of memory.

use std::io::{Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce};
use aws_lc_rs::rand;

use super::error::FileError;
use super::format::{
    CHECKSUM_LEN, DEFAULT_CHUNK_SIZE, FINAL_FLAG, Header, LENGTH_LEN, MAX_CHUNK_SIZE,
    NONCE_PREFIX_LEN, TAG_LEN,
};
use super::recipient::{FileKey, Recipient};

/// Encrypts a stream: writes the header at creation, then one chunk each time a chunk's worth of
/// plaintext has arrived and more follows. [`Encryptor::finish`] writes the final chunk; a file
/// whose writer stopped before it (a crash) reads as truncated, and `recover` reads what was sealed.
pub struct Encryptor<W: Write> {
    out: W,
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    checksum: [u8; CHECKSUM_LEN],
    chunk_size: usize,
    counter: u32,
    /// `length field | plaintext (then ciphertext) | tag`, sealed in place: one write per chunk.
    buf: Vec<u8>,
    filled: usize,
    written: u64,
}

impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("chunk_size", &self.chunk_size)
            .field("chunks", &self.counter)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    /// Starts a file for `recipients` (at least one) with the default 64 KiB chunks.
    pub fn new(out: W, recipients: &[Recipient]) -> Result<Self, FileError> {
        Self::with_chunk_size(out, recipients, DEFAULT_CHUNK_SIZE)
    }

    /// Starts a file with `chunk_size` plaintext bytes per chunk (1 ..= 16 MiB).
    pub fn with_chunk_size(
        mut out: W,
        recipients: &[Recipient],
        chunk_size: u32,
    ) -> Result<Self, FileError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(FileError::InvalidParameters {
                detail: format!("chunk size {chunk_size} is outside 1 to {MAX_CHUNK_SIZE}"),
            });
        }
        let file_key = FileKey::generate()?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rand::fill(&mut nonce_prefix).map_err(|_| FileError::Crypto {
            what: "random number generation",
        })?;
        let stanzas = recipients
            .iter()
            .map(|r| r.wrap(&file_key))
            .collect::<Result<Vec<_>, _>>()?;
        let header = Header::build(chunk_size, nonce_prefix, stanzas, |bytes| {
            file_key.header_mac(bytes)
        })?;
        out.write_all(&header.bytes)
            .map_err(|source| FileError::Write { source })?;
        let mut checksum = [0u8; CHECKSUM_LEN];
        checksum.copy_from_slice(header.checksum());
        let chunk_size = chunk_size as usize;
        Ok(Encryptor {
            out,
            key: file_key.payload_key()?,
            nonce_prefix,
            checksum,
            chunk_size,
            counter: 0,
            buf: vec![0u8; LENGTH_LEN + chunk_size + TAG_LEN],
            filled: 0,
            written: header.len(),
        })
    }

    /// The output, as written so far (sealed chunks only).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Bytes written to the output so far (header and sealed chunks).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Seals what is buffered as a (short) non-final chunk and flushes the output, so that everything
    /// written so far survives a crash: the log writer calls this after each batch of lines.
    pub fn seal_partial(&mut self) -> Result<(), FileError> {
        if self.filled > 0 {
            self.seal(false)?;
        }
        self.out
            .flush()
            .map_err(|source| FileError::Write { source })
    }

    /// Writes the final chunk and flushes; returns the output (for an fsync and rename).
    pub fn finish(mut self) -> Result<W, FileError> {
        self.seal(true)?;
        self.out
            .flush()
            .map_err(|source| FileError::Write { source })?;
        Ok(self.out)
    }

    /// Encrypts everything `input` yields, reading straight into the chunk buffer; `progress` gets the
    /// number of plaintext bytes read after each read.
    pub fn copy_from(
        &mut self,
        input: &mut impl Read,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, FileError> {
        let mut total = 0u64;
        loop {
            if self.filled == self.chunk_size {
                // Seal a full chunk as non-final only once more data is known to follow, so that a
                // file of exactly N chunks has no empty final chunk.
                let mut probe = [0u8; 1];
                if super::format::read_full(input, &mut probe)? == 0 {
                    return Ok(total);
                }
                self.seal(false)?;
                self.buf[LENGTH_LEN] = probe[0];
                self.filled = 1;
                total += 1;
                progress(1);
            }
            let space = &mut self.buf[LENGTH_LEN + self.filled..LENGTH_LEN + self.chunk_size];
            let n = match input.read(space) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(FileError::Read { source }),
            };
            self.filled += n;
            total += n as u64;
            progress(n as u64);
        }
    }

    fn seal(&mut self, last: bool) -> Result<(), FileError> {
        let n = self.filled;
        let field = n as u32 | if last { FINAL_FLAG } else { 0 };
        let nonce = chunk_nonce(&self.nonce_prefix, self.counter, last);
        let aad = chunk_aad(&self.checksum, field);
        self.buf[..LENGTH_LEN].copy_from_slice(&field.to_be_bytes());
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce,
                Aad::from(&aad),
                &mut self.buf[LENGTH_LEN..LENGTH_LEN + n],
            )
            .map_err(|_| FileError::Crypto { what: "AES-GCM" })?;
        self.buf[LENGTH_LEN + n..LENGTH_LEN + n + TAG_LEN].copy_from_slice(tag.as_ref());
        self.out
            .write_all(&self.buf[..LENGTH_LEN + n + TAG_LEN])
            .map_err(|source| FileError::Write { source })?;
        self.written += (LENGTH_LEN + n + TAG_LEN) as u64;
        self.filled = 0;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(FileError::InvalidParameters {
                detail: "more than 2^32 chunks: use a larger chunk size".into(),
            })?;
        Ok(())
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            if self.filled == self.chunk_size {
                self.seal(false).map_err(|e| match e {
                    // Keep the kind (a full disk stays `StorageFull`) for callers that map it.
                    FileError::Write { source } => source,
                    other => std::io::Error::other(other),
                })?;
            }
            let take = rest.len().min(self.chunk_size - self.filled);
            let at = LENGTH_LEN + self.filled;
            self.buf[at..at + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
        }
        Ok(data.len())
    }

    /// Flushes sealed chunks to the output; buffered plaintext stays buffered (see `seal_partial`).
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Encrypts `input` into `output` for `recipients`; returns the plaintext length.
pub fn encrypt_stream<W: Write>(
    input: &mut impl Read,
    output: W,
    recipients: &[Recipient],
    progress: impl FnMut(u64),
) -> Result<(u64, W), FileError> {
    let mut encryptor = Encryptor::new(output, recipients)?;
    let length = encryptor.copy_from(input, progress)?;
    Ok((length, encryptor.finish()?))
}

/// STREAM nonce: 7-byte random prefix | 32-bit chunk counter | last-chunk flag.
pub(crate) fn chunk_nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// Associated data of a chunk: the header checksum (binds the chunk to its header) and the chunk's
/// length field.
pub(crate) fn chunk_aad(checksum: &[u8; CHECKSUM_LEN], field: u32) -> [u8; CHECKSUM_LEN + 4] {
    let mut aad = [0u8; CHECKSUM_LEN + 4];
    aad[..CHECKSUM_LEN].copy_from_slice(checksum);
    aad[CHECKSUM_LEN..].copy_from_slice(&field.to_be_bytes());
    aad
}
