//! CMS files from `openssl cms -encrypt -outform DER` (`ids_seal::cms`): the hand-written BER reader,
//! then the recipient and content-encryption structures, decrypted for both fixture keys.

use crate::consume;
use crate::fixtures::fixtures;

/// Sniffs, lists the recipients of, and decrypts `data` with the RSA and the EC fixture keys.
pub fn cms(data: &[u8]) {
    let f = fixtures();
    consume(ids_seal::cms::looks_like_cms(data));
    match ids_seal::cms::recipients(data) {
        Ok(ids) => ids.iter().for_each(|id| consume(id.to_string())),
        Err(e) => consume(e.to_string()),
    }
    for pfx in [&f.rsa, &f.ec] {
        match ids_seal::cms::decrypt(data, &pfx.certificate, &pfx.key_pkcs8) {
            Ok(decrypted) => consume(format!("{decrypted:?}")),
            Err(e) => consume(e.to_string()),
        }
    }
}
