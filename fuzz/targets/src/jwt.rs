//! Access tokens (`ids_jose::Verifier::verify`), as any API protected by the server verifies them.

use crate::consume;
use crate::fixtures::{NOW, fixtures};
use crate::signed;

/// A DER that is no certificate, presented as the TLS client certificate of a bound token.
const PRESENTED: &[u8] = b"\x30\x03\x02\x01\x01";

/// Verifies `data` (a compact token, or `header \n payload` signed with the EC fixture key) with a
/// verifier trusting both fixture certificates, then checks its certificate binding.
pub fn jwt(data: &[u8]) {
    let f = fixtures();
    let token = signed::token(data, &f.ec.key)
        .unwrap_or_else(|| String::from_utf8_lossy(data).into_owned());
    match f.verifier.verify(&token, NOW) {
        Ok(token) => {
            consume((token.has_scope("api"), token.certificate_binding()));
            for certificate in [None, Some(PRESENTED), Some(f.rsa.certificate.der())] {
                for dpop_jkt in [None, Some("jkt")] {
                    let presented = ids_jose::Presentation {
                        certificate,
                        dpop_jkt,
                    };
                    if let Err(e) = token.check_binding(&presented) {
                        consume(e.to_string());
                    }
                }
            }
        }
        Err(e) => consume((e.is_unknown_key(), e.to_string())),
    }
}
