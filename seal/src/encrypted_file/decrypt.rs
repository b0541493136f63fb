//! Reading encrypted files: [`Decryptor`] hands out one authenticated chunk at a time.

use std::io::{Read, Write};

use aws_lc_rs::aead::{Aad, LessSafeKey};

use super::encrypt::{chunk_aad, chunk_nonce};
use super::error::{FileError, KeyName};
use super::format::{
    CHECKSUM_LEN, FINAL_FLAG, Header, LENGTH_LEN, TAG_LEN, read_full, read_header,
};
use super::recipient::DecryptionKey;

/// Decrypts a stream chunk by chunk. Nothing of a chunk is returned before its tag is verified, and
/// the end of the file is only accepted after a chunk marked final.
pub struct Decryptor<R: Read> {
    input: R,
    header: Header,
    key: LessSafeKey,
    used: KeyName,
    checksum: [u8; CHECKSUM_LEN],
    buf: Vec<u8>,
    /// Range of `buf` holding the current chunk's plaintext not yet handed to `Read::read`.
    pending: std::ops::Range<usize>,
    chunk: u64,
    offset: u64,
    authentic: u64,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Chunks,
    /// The final chunk was read; the input must end here.
    AfterFinal,
    Done,
}

impl<R: Read> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("key", &self.used)
            .field("chunk", &self.chunk)
            .field("authentic", &self.authentic)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decryptor<R> {
    /// Reads the header, finds the stanza of one of `keys`, unwraps the file key and checks the
    /// header MAC.
    pub fn new(mut input: R, keys: &[DecryptionKey]) -> Result<Self, FileError> {
        let header = read_header(&mut input)?;
        let found = header.stanzas.iter().find_map(|stanza| {
            keys.iter()
                .find(|k| k.thumbprint() == stanza.thumbprint)
                .map(|k| (k, stanza))
        });
        let Some((key, stanza)) = found else {
            return Err(FileError::NotForThisKey {
                recipients: header
                    .recipients()
                    .map(|t| KeyName {
                        thumbprint: *t,
                        subject: String::new(),
                    })
                    .collect(),
                keys: keys.iter().map(|k| k.name().clone()).collect(),
            });
        };
        let file_key = key.unwrap_key(stanza)?;
        file_key.verify_header_mac(header.mac_input(), header.mac())?;
        let mut checksum = [0u8; CHECKSUM_LEN];
        checksum.copy_from_slice(header.checksum());
        let capacity = LENGTH_LEN + header.chunk_size as usize + TAG_LEN;
        Ok(Decryptor {
            input,
            key: file_key.payload_key()?,
            used: key.name().clone(),
            checksum,
            buf: vec![0u8; capacity],
            pending: 0..0,
            chunk: 0,
            offset: header.len(),
            authentic: 0,
            state: State::Chunks,
            header,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The key that opened the file.
    pub fn key_used(&self) -> &KeyName {
        &self.used
    }

    /// Plaintext bytes authenticated so far.
    pub fn authentic_bytes(&self) -> u64 {
        self.authentic
    }

    /// Encrypted bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The next chunk's authenticated plaintext; `None` once the final chunk was read and nothing
    /// follows it.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, FileError> {
        Ok(self.advance()?.map(|range| &self.buf[range]))
    }

    /// Reads the next chunk; its plaintext is `buf[range]`.
    fn advance(&mut self) -> Result<Option<std::ops::Range<usize>>, FileError> {
        match self.state {
            State::Done => Ok(None),
            State::AfterFinal => {
                self.check_end()?;
                self.state = State::Done;
                Ok(None)
            }
            State::Chunks => self.read_chunk().map(Some),
        }
    }

    fn read_chunk(&mut self) -> Result<std::ops::Range<usize>, FileError> {
        let (chunk, offset, authentic) = (self.chunk, self.offset, self.authentic);
        let mut field = [0u8; LENGTH_LEN];
        match read_full(&mut self.input, &mut field)? {
            0 => {
                return Err(FileError::TruncatedAtChunk {
                    chunk,
                    offset,
                    authentic_bytes: authentic,
                });
            }
            n if n < LENGTH_LEN => {
                return Err(FileError::TruncatedInChunk {
                    chunk,
                    offset,
                    missing: (LENGTH_LEN - n + TAG_LEN) as u64,
                    authentic_bytes: authentic,
                });
            }
            _ => {}
        }
        let field = u32::from_be_bytes(field);
        let last = field & FINAL_FLAG != 0;
        let len = (field & !FINAL_FLAG) as usize;
        let damaged = |detail: String| FileError::ChunkDamaged {
            chunk,
            offset,
            detail,
        };
        if len > self.header.chunk_size as usize {
            return Err(damaged(format!(
                "its length field says {len} bytes, more than the file's chunk size of {}",
                self.header.chunk_size
            )));
        }
        if len == 0 && !last {
            return Err(damaged("an empty chunk that is not the final one".into()));
        }
        let sealed = &mut self.buf[..len + TAG_LEN];
        let got = read_full(&mut self.input, sealed)?;
        if got < sealed.len() {
            return Err(FileError::TruncatedInChunk {
                chunk,
                offset,
                missing: (sealed.len() - got) as u64,
                authentic_bytes: authentic,
            });
        }
        let counter = u32::try_from(chunk).map_err(|_| damaged("more than 2^32 chunks".into()))?;
        let nonce = chunk_nonce(&self.header.nonce_prefix, counter, last);
        let aad = chunk_aad(&self.checksum, field);
        self.key
            .open_in_place(nonce, Aad::from(&aad), sealed)
            .map_err(|_| FileError::Tampered { chunk, offset })?;
        self.chunk += 1;
        self.offset += (LENGTH_LEN + len + TAG_LEN) as u64;
        self.authentic += len as u64;
        if last {
            self.state = State::AfterFinal;
        }
        Ok(0..len)
    }

    /// After the final chunk the input must end.
    fn check_end(&mut self) -> Result<(), FileError> {
        let mut probe = [0u8; 1];
        if read_full(&mut self.input, &mut probe)? == 0 {
            return Ok(());
        }
        let rest = std::io::copy(&mut self.input, &mut std::io::sink())
            .map_err(|source| FileError::Read { source })?;
        Err(FileError::TrailingData {
            offset: self.offset,
            extra: rest + 1,
        })
    }
}

/// Plaintext as a byte stream (for an upload body); errors carry the [`FileError`] inside.
impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            match self.advance() {
                Ok(Some(range)) => self.pending = range,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.buf[self.pending.start..self.pending.start + n]);
        self.pending.start += n;
        Ok(n)
    }
}

/// Whether to stop at the first damaged chunk with an error, or output the authentic part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The whole file must be authentic and complete; any damage is an error.
    Strict,
    /// Output every authentic chunk up to the first damaged or missing one, and report where it stopped
    /// (an agent log written until a crash).
    Recover,
}

/// What a decryption produced.
#[derive(Debug)]
pub struct Outcome {
    /// Authentic plaintext bytes written.
    pub bytes: u64,
    /// Chunks read.
    pub chunks: u64,
    /// The key that opened the file.
    pub key: KeyName,
    /// In [`Mode::Recover`], why decryption stopped before the end of a complete file.
    pub stopped: Option<FileError>,
}

/// Decrypts `input` into `output` with one of `keys`; `progress` gets the encrypted bytes consumed
/// after each chunk.
pub fn decrypt_stream(
    input: impl Read,
    output: &mut impl Write,
    keys: &[DecryptionKey],
    mode: Mode,
    mut progress: impl FnMut(u64),
) -> Result<Outcome, FileError> {
    let mut decryptor = Decryptor::new(input, keys)?;
    let mut last_position = 0;
    let stopped = loop {
        match decryptor.next_chunk() {
            Ok(Some(plain)) => output
                .write_all(plain)
                .map_err(|source| FileError::Write { source })?,
            Ok(None) => break None,
            Err(e @ (FileError::Read { .. } | FileError::Write { .. })) => return Err(e),
            Err(e) if mode == Mode::Recover => break Some(e),
            Err(e) => return Err(e),
        }
        let position = decryptor.position();
        progress(position - last_position);
        last_position = position;
    };
    output
        .flush()
        .map_err(|source| FileError::Write { source })?;
    Ok(Outcome {
        bytes: decryptor.authentic_bytes(),
        chunks: decryptor.chunk,
        key: decryptor.used.clone(),
        stopped,
    })
}
