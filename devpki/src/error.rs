//! Why a development certificate could not be made: generation and encoding failures (the tool's fault),
//! and bad input (a request, a CA file, a name the operator gave), each cause a value the caller can match
//! on; messages are rendered by `Display`.

use ids_pki::keyfile::KeyFileError;
use ids_pki::pem::PemError;
use x509_parser::error::X509Error;

/// Errors while making certificates.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("PFX encoding failed: {0}")]
    Pfx(#[from] p12_keystore::error::Error),
    /// The certificate request `file` cannot be signed.
    #[error("{file}: {}", reason.for_file(file))]
    Request {
        file: String,
        reason: Box<RequestError>,
    },
    /// The CA read from `file` (certificate and key) cannot sign.
    #[error("{file}: {reason}")]
    Authority {
        file: String,
        reason: AuthorityError,
    },
    /// A name for a certificate is not one.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Why a PKCS#10 certificate request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("not a PEM certificate request ({0})")]
    NotPem(#[source] PemError),
    #[error("not a PEM certificate request (no PEM block)")]
    NoPemBlock,
    #[error("PEM block is `{label}`, expected `CERTIFICATE REQUEST`")]
    WrongLabel { label: String },
    #[error("not a PKCS#10 certificate request (expected PEM `CERTIFICATE REQUEST` or DER): {0}")]
    NotPkcs10(#[source] x509_parser::nom::Err<X509Error>),
    /// The requested public key is not one the project uses.
    #[error("requested key: {0}")]
    RequestedKey(#[source] KeyFileError),
    /// The request's signature algorithm (its OID) is not one we verify.
    #[error(
        "the request is signed with algorithm {oid}; expected sha256/384/512WithRSAEncryption or ecdsa-with-SHA256/384"
    )]
    UnsupportedSignature { oid: String },
    /// The self-signature does not verify (RFC 2986 section 3).
    #[error("the request's signature does not verify: it was altered or not signed by its key")]
    BadSignature,
}

impl RequestError {
    /// The message below `file: ` (the key reader's errors name the file themselves: said once).
    fn for_file(&self, file: &str) -> String {
        match self {
            RequestError::RequestedKey(e) => {
                let message = e.to_string();
                let detail = message
                    .strip_prefix(&format!("{file}: "))
                    .unwrap_or(&message);
                format!("requested key: {detail}")
            }
            other => other.to_string(),
        }
    }
}

/// Why a CA certificate and key cannot be used to sign.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("not an X.509 certificate ({0})")]
    NotX509(#[source] x509_parser::nom::Err<X509Error>),
    #[error("not a CA certificate (no `basicConstraints: CA:TRUE`): it cannot sign certificates")]
    NotCa,
    #[error("the CA certificate's key usage does not allow signing certificates (`keyCertSign`)")]
    NoKeyCertSign,
    #[error("the CA private key is not usable ({0})")]
    KeyUnusable(#[source] rcgen::Error),
    #[error("the CA private key does not belong to this certificate (their public keys differ)")]
    KeyMismatch,
}

/// A name that cannot go into a certificate.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error(
        "`{name}`: not a DNS name (letters, digits and `-` in dot-separated labels of at most 63 characters) nor an IP address"
    )]
    NotAHost { name: String },
    #[error("`{text}`: not ASCII")]
    NotAscii { text: String },
    #[error(
        "client id `{client_id}`: expected 1-128 characters among letters, digits and - . _ ~ @ : + = , ; ! $ * ' ( )"
    )]
    BadClientId { client_id: String },
    #[error("server certificate: at least one DNS name or IP address is required")]
    NoServerName,
}
