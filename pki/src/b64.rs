//! Text encodings of bytes: base64 in the URL-safe unpadded alphabet of JOSE (RFC 7515 section 2) and
//! the standard one, and hexadecimal (thumbprints, digests, delivery records).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// base64url without padding, as JOSE requires.
pub fn url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `text` in the base64url alphabet without padding, as some tools write it in the standard one or
/// padded: `+` and `/` become `-` and `_`, trailing `=` are dropped. Not decoded, not checked.
pub fn url_alphabet(text: &str) -> String {
    text.trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Standard base64 with padding (X.509 `x5c` members, legacy hashes).
pub fn std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64 with padding (e.g. an RFC 9530 `Repr-Digest` value).
pub fn std_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Lower-case hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Upper-case hex without separators.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

/// Decodes hex (either case); `None` for an odd length or a character that is not a hex digit.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trips() {
        assert_eq!(super::hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(super::hex_upper(&[0x00, 0xab, 0x7f]), "00AB7F");
        assert_eq!(super::hex_decode("00Ab7f"), Some(vec![0x00, 0xab, 0x7f]));
        assert_eq!(super::hex_decode("0"), None);
        assert_eq!(super::hex_decode("zz"), None);
        assert_eq!(super::hex_decode("+1"), None);
    }
}
