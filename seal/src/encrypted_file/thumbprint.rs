//! How a header names a recipient: the SHA-256 thumbprint of its certificate.

use aws_lc_rs::digest;
use ids_pki::b64;

/// SHA-256 of a certificate's DER: how a header names a recipient (JOSE `x5t#S256`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    pub fn of_der(der: &[u8]) -> Self {
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
        Thumbprint(out)
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&b64::url(&self.0))
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}
