//! A minimal ASN.1 BER reader (X.690): the one hand-written ASN.1 codec of the workspace, kept for
//! reading CMS files other programs wrote. Everything we write, CMS included, is encoded by RustCrypto
//! `der` (see `encode.rs`).
//!
//! Why not `der` here too: `openssl cms -encrypt -stream` (and other CMS writers) produce BER, not DER:
//! indefinite lengths (X.690 section 8.1.3.6) on the outer structures and the encrypted content
//! split into a constructed OCTET STRING (section 8.7.3). `der` refuses both in its default (DER)
//! mode; its optional `ber` mode (0.8) accepts indefinite lengths and indefinite-length constructed
//! strings but still refuses constructed strings of definite length (RustCrypto/formats#779), which
//! this reader joins. The reader also borrows primitive contents instead of copying them and reports
//! errors in CMS terms.
//!
//! It accepts definite lengths, indefinite lengths and constructed OCTET STRINGs in either form. It
//! never panics and never allocates more than the input size: every length is checked against the
//! remaining input and nesting is bounded by [`MAX_DEPTH`].

use std::borrow::Cow;

use super::CmsError;

/// Deepest nesting accepted. CMS needs about 12 levels (a Name inside a recipient info); the bound
/// keeps recursion on hostile input short.
pub(super) const MAX_DEPTH: usize = 32;

/// Universal and context-specific tags used by CMS (single-byte, low-tag-number form only).
pub(super) mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const CONSTRUCTED: u8 = 0x20;

    /// `[n] IMPLICIT` on a primitive type.
    pub const fn context(n: u8) -> u8 {
        0x80 | n
    }

    /// `[n] EXPLICIT`, or `[n] IMPLICIT` on a constructed type.
    pub const fn context_constructed(n: u8) -> u8 {
        0xA0 | n
    }
}

pub(super) fn malformed(detail: impl Into<String>) -> CmsError {
    CmsError::Malformed {
        detail: detail.into(),
    }
}

/// The identifier and length octets of an element.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub tag: u8,
    /// `None` for the indefinite form.
    pub len: Option<usize>,
    pub header_len: usize,
}

/// Parses identifier and length octets. Needs only the header bytes, not the content, so it also
/// works on the first bytes of a file ([`super::looks_like_cms`]).
pub(super) fn parse_header(data: &[u8]) -> Result<Header, CmsError> {
    let truncated = || malformed("the data ends inside an element header (truncated file?)");
    let (&tag, rest) = data.split_first().ok_or_else(truncated)?;
    if tag & 0x1F == 0x1F {
        return Err(malformed(format!(
            "high tag number form (tag byte {tag:#04x}) does not occur in CMS"
        )));
    }
    let (&first, rest) = rest.split_first().ok_or_else(truncated)?;
    if first < 0x80 {
        return Ok(Header {
            tag,
            len: Some(usize::from(first)),
            header_len: 2,
        });
    }
    if first == 0x80 {
        if tag & tag::CONSTRUCTED == 0 {
            return Err(malformed("indefinite length on a primitive element"));
        }
        return Ok(Header {
            tag,
            len: None,
            header_len: 2,
        });
    }
    let count = usize::from(first & 0x7F);
    if count > 4 {
        return Err(malformed(format!(
            "length field of {count} bytes: larger than any supported file"
        )));
    }
    let bytes = rest.get(..count).ok_or_else(truncated)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok(Header {
        tag,
        len: Some(len),
        header_len: 2 + count,
    })
}

/// One element: its tag, its content octets and its whole encoding.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tlv<'a> {
    pub tag: u8,
    /// Content octets; for the indefinite form, the nested elements without the end-of-contents.
    pub content: &'a [u8],
    /// Header, content and (for the indefinite form) end-of-contents octets.
    pub raw: &'a [u8],
    depth: usize,
}

impl<'a> Tlv<'a> {
    pub fn is_constructed(&self) -> bool {
        self.tag & tag::CONSTRUCTED != 0
    }

    /// A reader over the nested elements of a constructed element.
    pub fn reader(&self) -> Result<Reader<'a>, CmsError> {
        if !self.is_constructed() {
            return Err(malformed(format!(
                "element with tag {:#04x} should be constructed",
                self.tag
            )));
        }
        Reader::nested(self.content, self.depth + 1)
    }

    /// The content of an OBJECT IDENTIFIER.
    pub fn oid(&self) -> Result<&'a [u8], CmsError> {
        if self.tag != tag::OID || self.content.is_empty() {
            return Err(malformed("expected an OBJECT IDENTIFIER"));
        }
        Ok(self.content)
    }

    /// The value of an OCTET STRING (or an IMPLICIT-tagged one), joining the segments of the
    /// constructed BER form. The result is never larger than the input.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>, CmsError> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        self.append_segments(&mut out)?;
        Ok(Cow::Owned(out))
    }

    fn append_segments(&self, out: &mut Vec<u8>) -> Result<(), CmsError> {
        let mut reader = self.reader()?;
        while let Some(segment) = reader.next()? {
            match segment.tag {
                tag::OCTET_STRING => out.extend_from_slice(segment.content),
                t if t == tag::OCTET_STRING | tag::CONSTRUCTED => segment.append_segments(out)?,
                t => {
                    return Err(malformed(format!(
                        "segment of a constructed OCTET STRING has tag {t:#04x}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// A small non-negative INTEGER (versions, tag lengths).
    pub fn small_uint(&self) -> Result<u32, CmsError> {
        let bad = || malformed("expected a small non-negative INTEGER");
        if self.tag != tag::INTEGER || self.content.is_empty() || self.content[0] & 0x80 != 0 {
            return Err(bad());
        }
        let digits = self.content.strip_prefix(&[0]).unwrap_or(self.content);
        if digits.len() > 4 {
            return Err(bad());
        }
        Ok(digits
            .iter()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// The bits of a BIT STRING without unused bits (public keys).
    pub fn bit_string(&self) -> Result<&'a [u8], CmsError> {
        match (self.tag, self.content.split_first()) {
            (tag::BIT_STRING, Some((0, bits))) => Ok(bits),
            _ => Err(malformed(
                "expected a BIT STRING holding whole bytes (a public key)",
            )),
        }
    }
}

/// Reads consecutive elements from a byte slice.
#[derive(Clone, Debug)]
pub(super) struct Reader<'a> {
    data: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, depth: 0 }
    }

    fn nested(data: &'a [u8], depth: usize) -> Result<Self, CmsError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!(
                "elements nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(Reader { data, depth })
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// The next element, or `None` at the end of the input.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.data.is_empty() {
            return Ok(None);
        }
        let header = parse_header(self.data)?;
        if header.tag == 0 {
            return Err(malformed("unexpected end-of-contents marker"));
        }
        let body = &self.data[header.header_len..];
        let (content_len, total) = match header.len {
            Some(len) if len <= body.len() => (len, header.header_len + len),
            Some(_) => {
                return Err(malformed(
                    "an element's length runs past the end of the data (truncated file?)",
                ));
            }
            None => {
                let len = indefinite_content_len(body, self.depth + 1)?;
                (len, header.header_len + len + 2)
            }
        };
        let tlv = Tlv {
            tag: header.tag,
            content: &body[..content_len],
            raw: &self.data[..total],
            depth: self.depth,
        };
        self.data = &self.data[total..];
        Ok(Some(tlv))
    }

    /// The next element, which must exist; `what` names it in errors.
    pub fn required(&mut self, what: &str) -> Result<Tlv<'a>, CmsError> {
        self.next()?
            .ok_or_else(|| malformed(format!("{what} is missing")))
    }

    /// The next element, which must exist and have tag `tag`; `what` names it in errors.
    pub fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, CmsError> {
        match self.next()? {
            Some(tlv) if tlv.tag == tag => Ok(tlv),
            Some(tlv) => Err(malformed(format!(
                "expected {what} (tag {tag:#04x}), found tag {:#04x}",
                tlv.tag
            ))),
            None => Err(malformed(format!("{what} is missing"))),
        }
    }

    /// The value of the next element, an OCTET STRING in primitive or constructed form.
    pub fn octet_string(&mut self, what: &str) -> Result<Cow<'a, [u8]>, CmsError> {
        match self.next()? {
            Some(tlv) if tlv.tag & !tag::CONSTRUCTED == tag::OCTET_STRING => tlv.octets(),
            Some(tlv) => Err(malformed(format!(
                "expected {what} (an OCTET STRING), found tag {:#04x}",
                tlv.tag
            ))),
            None => Err(malformed(format!("{what} is missing"))),
        }
    }

    /// The next element if it has tag `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.peek_tag() == Some(tag) {
            self.next()
        } else {
            Ok(None)
        }
    }
}

/// Length of the content of an indefinite-length element: the nested elements up to the
/// end-of-contents octets (X.690 section 8.1.5), which are not included.
fn indefinite_content_len(body: &[u8], depth: usize) -> Result<usize, CmsError> {
    let mut reader = Reader::nested(body, depth)?;
    loop {
        if reader.data.starts_with(&[0, 0]) {
            return Ok(body.len() - reader.data.len());
        }
        if reader.next()?.is_none() {
            return Err(malformed(
                "an indefinite-length element has no end-of-contents marker (truncated file?)",
            ));
        }
    }
}

/// An AlgorithmIdentifier (RFC 5280 section 4.1.1.2). NULL parameters count as absent.
#[derive(Clone, Copy, Debug)]
pub(super) struct AlgId<'a> {
    pub oid: &'a [u8],
    pub params: Option<Tlv<'a>>,
    /// The content octets of the SEQUENCE, for ECC-CMS-SharedInfo.
    pub content: &'a [u8],
}

impl<'a> AlgId<'a> {
    pub fn parse(tlv: Tlv<'a>) -> Result<Self, CmsError> {
        if tlv.tag != tag::SEQUENCE {
            return Err(malformed("expected an AlgorithmIdentifier SEQUENCE"));
        }
        let mut reader = tlv.reader()?;
        let oid = reader
            .next()?
            .ok_or_else(|| malformed("empty AlgorithmIdentifier"))?
            .oid()?;
        let params = reader.next()?.filter(|p| p.tag != tag::NULL);
        Ok(AlgId {
            oid,
            params,
            content: tlv.content,
        })
    }

    pub fn read(reader: &mut Reader<'a>, what: &str) -> Result<Self, CmsError> {
        Self::parse(reader.expect(tag::SEQUENCE, what)?)
    }
}

/// Dotted-decimal form of an OBJECT IDENTIFIER's content, for messages.
pub(super) fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        if value > u64::MAX >> 7 {
            return format!("(invalid OID {})", hex(oid));
        }
        value = (value << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let Some((&first, rest)) = arcs.split_first() else {
        return "(empty OID)".into();
    };
    let (a, b) = match first {
        0..40 => (0, first),
        40..80 => (1, first - 40),
        _ => (2, first - 80),
    };
    std::iter::once(a)
        .chain(std::iter::once(b))
        .chain(rest.iter().copied())
        .map(|arc| arc.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

pub(super) use ids_pki::b64::hex_upper as hex;
