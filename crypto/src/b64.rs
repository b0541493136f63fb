//! Base64 helpers: the URL-safe unpadded alphabet of JOSE (RFC 7515 section 2) and the standard one.

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

/// Standard base64 with padding (X.509 `x5c` members, legacy hashes).
pub fn std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
