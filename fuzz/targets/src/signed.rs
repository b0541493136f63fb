//! The second input form of the `jwt` and `assertion` targets.
//!
//! A random signature never verifies, so fuzzing compact tokens alone stops at the signature check and
//! never reaches the claim checks behind it. An input holding a newline is therefore read as
//! `header JSON \n payload JSON` and signed here with the fixture EC key (ES256); a compact token never
//! holds a newline, so an input without one is used as the token itself.

use ids_pki::{SigningKey, b64};

/// The compact JWS of `data` if it is in the `header \n payload` form, else `None`.
pub fn token(data: &[u8], key: &SigningKey) -> Option<String> {
    let split = data.iter().position(|&b| b == b'\n')?;
    let (header, payload) = (&data[..split], &data[split + 1..]);
    let mut token = format!("{}.{}", b64::url(header), b64::url(payload));
    let signature = key.sign(token.as_bytes()).ok()?;
    token.push('.');
    token.push_str(&b64::url(&signature));
    Some(token)
}
