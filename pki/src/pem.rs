//! PEM (RFC 7468), the one implementation of the workspace: every PEM block read or written by the
//! server, the agent and the tools goes through here, and the encoding and decoding themselves are
//! `pem-rfc7468`'s (RustCrypto, already compiled through `der`).
//!
//! Why a module around the crate: `pem-rfc7468` decodes exactly one block, while the files people
//! give us hold several (a key with its certificate, a CA bundle) with text between them, and
//! OpenSSL's legacy encrypted keys carry RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) that RFC 7468
//! disallows. So [`blocks`] finds each `-----BEGIN`/`-----END` pair and hands that slice to
//! `pem-rfc7468`; a block with headers is recorded as such ([`Block::legacy_encrypted`]) and its
//! other header lines are left out before decoding.

use pem_rfc7468::LineEnding;
use zeroize::Zeroizing;

/// One PEM block; the decoded contents are wiped on drop.
pub struct Block {
    /// The type label, e.g. `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded contents (DER for every label we read).
    pub der: Zeroizing<Vec<u8>>,
    /// Pre-PKCS#8 OpenSSL encryption (`Proc-Type: 4,ENCRYPTED` header): the contents are left empty,
    /// they are ciphertext in a format that is not read.
    pub legacy_encrypted: bool,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("label", &self.label)
            .field("der_len", &self.der.len())
            .field("legacy_encrypted", &self.legacy_encrypted)
            .finish()
    }
}

/// Why PEM text could not be read. `Display` gives the detail old messages showed; callers add the
/// file name and the block.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("PEM text that is not UTF-8")]
    /// Bytes that are not UTF-8 inside a block (outside the blocks they are ignored).
    NotUtf8,
    /// A `-----BEGIN` line without its `-----END` line.
    #[error("no `-----END {label}-----` line (truncated file?)")]
    Unterminated { label: String },
    /// `pem-rfc7468` refused the block (base64, line lengths, boundaries).
    #[error("its body is not base64")]
    Body {
        label: String,
        source: pem_rfc7468::Error,
    },
}

impl PemError {
    /// The label of the block the error is about (`None` for text that is not UTF-8).
    pub fn label(&self) -> Option<&str> {
        match self {
            PemError::NotUtf8 => None,
            PemError::Unterminated { label } | PemError::Body { label, .. } => Some(label),
        }
    }
}

/// Whether `bytes` contain a `-----BEGIN ` marker, i.e. should be read as PEM.
pub fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every PEM block of `bytes`, or `None` when there is no `-----BEGIN ` (DER or other input). Text
/// before, between and after the blocks is ignored (RFC 7468 section 2), whatever its encoding.
pub fn blocks(bytes: &[u8]) -> Result<Option<Vec<Block>>, PemError> {
    if !is_pem(bytes) {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(bytes);
    let mut cursor = Cursor {
        text: &text,
        pos: 0,
    };
    let mut blocks = Vec::new();
    while let Some(block) = cursor.next_block()? {
        blocks.push(block);
    }
    Ok(Some(blocks))
}

/// The first PEM block of `bytes`; later blocks are not looked at. `None` when there is none.
pub fn first(bytes: &[u8]) -> Result<Option<Block>, PemError> {
    if !is_pem(bytes) {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(bytes);
    Cursor {
        text: &text,
        pos: 0,
    }
    .next_block()
}

/// PEM of `der` under `label`: base64 lines of 64 characters, LF line endings, as OpenSSL writes.
/// The text is wiped on drop (private keys). Fails only for a label RFC 7468 does not allow.
pub fn encode(label: &str, der: &[u8]) -> Result<Zeroizing<String>, pem_rfc7468::Error> {
    if der.is_empty() {
        // `pem-rfc7468` writes an empty line for empty contents; the boundaries alone say it.
        return Ok(Zeroizing::new(format!(
            "-----BEGIN {label}-----\n-----END {label}-----\n"
        )));
    }
    pem_rfc7468::encode_string(label, LineEnding::LF, der).map(Zeroizing::new)
}

/// Walks the lines of PEM text.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next line (without its line ending, trimmed) and the byte offset of its first character.
    fn next_line(&mut self) -> Option<(&'a str, usize)> {
        let rest = self.text.get(self.pos..).filter(|r| !r.is_empty())?;
        let raw = rest.split_inclusive('\n').next().unwrap_or(rest);
        let start = self.pos;
        self.pos += raw.len();
        let trimmed_start = raw.len() - raw.trim_start().len();
        Some((raw.trim(), start + trimmed_start))
    }

    fn next_block(&mut self) -> Result<Option<Block>, PemError> {
        while let Some((line, begin)) = self.next_line() {
            let Some(label) = line
                .strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
            else {
                continue;
            };
            let end_line = format!("-----END {label}-----");
            let mut legacy_encrypted = false;
            let mut end = None;
            while let Some((line, start)) = self.next_line() {
                if line == end_line {
                    end = Some(start + line.len());
                    break;
                }
                if line.contains(':') {
                    // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`).
                    legacy_encrypted |=
                        line.starts_with("Proc-Type:") && line.contains("ENCRYPTED");
                }
            }
            let Some(end) = end else {
                return Err(PemError::Unterminated {
                    label: label.to_string(),
                });
            };
            let der = if legacy_encrypted {
                Zeroizing::new(Vec::new())
            } else {
                let block = &self.text[begin..end];
                decode(label, block)?
            };
            return Ok(Some(Block {
                label: label.to_string(),
                der,
                legacy_encrypted,
            }));
        }
        Ok(None)
    }
}

/// Decodes one block (from its `-----BEGIN` to the end of its `-----END` line) with `pem-rfc7468`.
///
/// `pem-rfc7468` is strict (RFC 7468 section 3: lines of one width, no spaces, no headers), while the
/// files operators have are not always: indented or copy-pasted blocks with trailing spaces, bodies
/// re-wrapped by an editor, OpenSSL's RFC 1421 headers. So the body is put back into the strict form
/// first (header and blank lines left out, each line trimmed, re-wrapped at 64 columns); what is
/// decoded, and every base64 check, is still `pem-rfc7468`'s.
fn decode(label: &str, block: &str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let body_error = |source| PemError::Body {
        label: label.to_string(),
        source,
    };
    // Text around the blocks may be in any encoding (tools write Latin-1 comments before a block);
    // inside a block it cannot be.
    if block.contains(char::REPLACEMENT_CHARACTER) {
        return Err(PemError::NotUtf8);
    }
    let mut lines = block.lines().map(str::trim);
    let begin = lines.next().unwrap_or_default();
    let mut body = Zeroizing::new(String::new());
    let mut end = "";
    for line in lines {
        if line.starts_with("-----END ") {
            end = line;
            break;
        }
        if line.contains(':') {
            continue;
        }
        body.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    let mut strict = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 128));
    strict.push_str(begin);
    strict.push('\n');
    for chunk in body.as_bytes().chunks(64) {
        strict.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        strict.push('\n');
    }
    strict.push_str(end);
    strict.push('\n');
    let mut decoder =
        pem_rfc7468::Decoder::new_detect_wrap(strict.as_bytes()).map_err(body_error)?;
    let mut der = Zeroizing::new(Vec::new());
    decoder.decode_to_end(&mut der).map_err(body_error)?;
    Ok(der)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bundle_with_text_between_blocks_crlf_and_headers() {
        let one = encode("CERTIFICATE", &[1, 2, 3]).unwrap();
        let two = encode("PRIVATE KEY", &[4; 100]).unwrap();
        let text = format!(
            "Bag Attributes\n    friendlyName: x\n{}subject=CN = x\r\n{}",
            one.as_str(),
            two.replace('\n', "\r\n")
        );
        let blocks = super::blocks(text.as_bytes()).unwrap().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].label.as_str(), &blocks[0].der[..]),
            ("CERTIFICATE", &[1, 2, 3][..])
        );
        assert_eq!(&blocks[1].der[..], &[4; 100][..]);
        assert_eq!(
            first(text.as_bytes()).unwrap().unwrap().label,
            "CERTIFICATE"
        );

        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let blocks = super::blocks(legacy.as_bytes()).unwrap().unwrap();
        assert!(blocks[0].legacy_encrypted && blocks[0].der.is_empty());
        let commented =
            "-----BEGIN CERTIFICATE-----\nComment: hello\n\nAQID\n-----END CERTIFICATE-----\n";
        let blocks = super::blocks(commented.as_bytes()).unwrap().unwrap();
        assert_eq!(
            (&blocks[0].der[..], blocks[0].legacy_encrypted),
            (&[1, 2, 3][..], false)
        );

        assert!(super::blocks(b"DER bytes").unwrap().is_none());
        let truncated = super::blocks(b"-----BEGIN PUBLIC KEY-----\nMIIB\n").unwrap_err();
        assert!(truncated.to_string().contains("truncated"), "{truncated}");
        let bad = super::blocks(b"-----BEGIN X-----\n!!!!\n-----END X-----\n").unwrap_err();
        assert_eq!(
            (bad.label(), bad.to_string().as_str()),
            (Some("X"), "its body is not base64")
        );
    }

    #[test]
    fn indented_blocks_trailing_spaces_and_rewrapped_bodies_are_read() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("CERTIFICATE", &der).unwrap();
        let lines: Vec<&str> = pem.lines().collect();
        // Indented, trailing spaces and tabs, CRLF.
        let messy: String = lines.iter().map(|l| format!("    {l} \t\r\n")).collect();
        assert_eq!(&first(messy.as_bytes()).unwrap().unwrap().der[..], &der[..]);
        // The body re-wrapped at another width, lines of unequal length.
        let body: String = lines[1..lines.len() - 1].concat();
        let (a, b) = body.split_at(50);
        let rewrapped = format!("{}\n{a}\n{b}\n{}\n", lines[0], lines[lines.len() - 1]);
        assert_eq!(
            &first(rewrapped.as_bytes()).unwrap().unwrap().der[..],
            &der[..]
        );
        // Not base64 is still refused.
        let bad = format!("{}\n@@@@\n{}\n", lines[0], lines[lines.len() - 1]);
        assert!(matches!(first(bad.as_bytes()), Err(PemError::Body { .. })));
    }

    #[test]
    fn text_around_blocks_may_be_any_encoding_but_not_inside_a_block() {
        let pem = encode("CERTIFICATE", &[7; 40]).unwrap();
        let mut latin1 = b"subject=CN = Soci\xe9t\xe9\n".to_vec();
        latin1.extend_from_slice(pem.as_bytes());
        latin1.extend_from_slice(b"trailing \xff\xfe\n");
        assert_eq!(&first(&latin1).unwrap().unwrap().der[..], &[7; 40][..]);
        assert_eq!(blocks(&latin1).unwrap().unwrap().len(), 1);
        let mut inside = pem.as_bytes().to_vec();
        let at = inside.iter().position(|&b| b == b'\n').unwrap() + 1;
        inside.insert(at, 0xe9);
        assert!(matches!(first(&inside), Err(PemError::NotUtf8)));
    }
}
