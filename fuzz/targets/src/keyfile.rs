//! Key files in any format (`ids_pki::keyfile`): PEM, DER, JWK, PFX; public and private. No
//! passphrase is given: encrypted keys stop at "needs a password" (what follows is the same DER reading
//! as for clear keys), and a PFX is tried with the empty password as the tools do.

use ids_pki::keyfile;

use crate::consume;

const FILE: &str = "fuzz.key";

/// Reads `data` as a public key file and as a private key file, and writes back what was read.
pub fn keyfile(data: &[u8]) {
    match keyfile::parse_public(FILE, data, None) {
        Ok(public) => {
            consume(public.jwk_thumbprint());
            consume(keyfile::public_key_pem(&public.public_key));
        }
        Err(e) => consume(e.to_string()),
    }
    match keyfile::parse_private(FILE, data, None) {
        Ok(private) => {
            consume(private.jwk_thumbprint());
            if let Err(e) = keyfile::private_key_pem(&private.pkcs8, None) {
                consume(e.to_string());
            }
        }
        Err(e) => consume(e.to_string()),
    }
}
