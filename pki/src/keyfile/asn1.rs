//! The DER structures of key files, on RustCrypto `der` (its derive for the PKCS#1 and SEC1
//! structures, which the tree has no der-0.8 crate for), `spki` and `const-oid`; and recognising a
//! DER file by its shape.
//!
//! `pkcs1` and `sec1` are only in the tree at 0.7 (on `der` 0.7, through `rsa`, a test dependency);
//! their der-0.8 versions are release candidates. The three structures needed here are a few lines
//! each with `#[derive(Sequence)]`, so they are declared below rather than pulling a second `der`.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitStringRef, OctetStringRef, UintRef};
use der::{
    Decode as _, Encode as _, ErrorKind, Header, Reader as _, Sequence, SliceReader, Tag,
    Tagged as _,
};
use pkcs8::{EncryptedPrivateKeyInfoRef, PrivateKeyInfoRef};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_parser::prelude::{FromDer as _, X509Certificate, X509CertificationRequest};

use super::{KeyFileError, malformed, unsupported};
use crate::cert::{PublicKey, strip_zeros};

/// rsaEncryption (RFC 8017 appendix A.1).
pub(super) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-ecPublicKey (RFC 5480 section 2.1.1).
pub(super) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1 (RFC 5480 section 2.1.1.1).
pub(super) const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1 (RFC 5480 section 2.1.1.1).
pub(super) const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// id-Ed25519 (RFC 8410 section 3).
pub(super) const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 appendix A.1.1).
#[derive(Clone, Copy, Debug, Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// `RSAPrivateKey` (RFC 8017 appendix A.1.2); only the modulus is looked at, to name a key aws-lc
/// refused.
#[derive(Clone, Copy, Debug, Sequence)]
struct RsaPrivateKey<'a> {
    version: u8,
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
    private_exponent: UintRef<'a>,
    prime1: UintRef<'a>,
    prime2: UintRef<'a>,
    exponent1: UintRef<'a>,
    exponent2: UintRef<'a>,
    coefficient: UintRef<'a>,
    #[asn1(optional = "true")]
    other_prime_infos: Option<AnyRef<'a>>,
}

/// `ECPrivateKey ::= SEQUENCE { version (1), privateKey OCTET STRING, parameters [0] ECParameters
/// OPTIONAL, publicKey [1] BIT STRING OPTIONAL }` (RFC 5915 section 3). The parameters are kept as
/// they are: a named curve is an OID, other forms are refused by name later.
#[derive(Clone, Copy, Debug, Sequence)]
struct EcPrivateKey<'a> {
    version: u8,
    private_key: &'a OctetStringRef,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    parameters: Option<AnyRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    public_key: Option<BitStringRef<'a>>,
}

/// What a DER file holds, judged by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DerKind {
    Certificate,
    Spki,
    RsaPublic,
    Csr,
    Pkcs8,
    EncryptedPkcs8,
    RsaPrivate,
    EcPrivate,
    Pfx,
    Unknown,
}

/// Recognises a DER structure by its shape.
pub(super) fn classify_der(der: &[u8]) -> DerKind {
    if matches!(X509Certificate::from_der(der), Ok((rest, _)) if rest.is_empty()) {
        return DerKind::Certificate;
    }
    if SubjectPublicKeyInfoRef::from_der(der).is_ok() {
        return DerKind::Spki;
    }
    if PrivateKeyInfoRef::try_from(der).is_ok() {
        return DerKind::Pkcs8;
    }
    if EncryptedPrivateKeyInfoRef::try_from(der).is_ok() {
        return DerKind::EncryptedPkcs8;
    }
    if matches!(X509CertificationRequest::from_der(der), Ok((rest, _)) if rest.is_empty()) {
        return DerKind::Csr;
    }
    let Ok(elements) = sequence_elements(der) else {
        // BER with indefinite lengths: only PKCS#12 files (some Windows exports) come this way.
        return if starts_indefinite_sequence(der) {
            DerKind::Pfx
        } else {
            DerKind::Unknown
        };
    };
    let small_int = |any: &AnyRef<'_>| -> Option<u8> {
        (any.tag() == Tag::Integer && any.value().len() == 1).then(|| any.value()[0])
    };
    let is_int = |any: &AnyRef<'_>| any.tag() == Tag::Integer;
    match elements.as_slice() {
        // PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL }
        [version, content, ..]
            if small_int(version) == Some(3) && content.tag() == Tag::Sequence =>
        {
            DerKind::Pfx
        }
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        [n, e] if is_int(n) && is_int(e) => DerKind::RsaPublic,
        // RSAPrivateKey ::= SEQUENCE { version (0), n, e, d, p, q, dp, dq, qinv }
        [version, rest @ ..]
            if small_int(version) == Some(0) && rest.len() >= 8 && rest.iter().all(is_int) =>
        {
            DerKind::RsaPrivate
        }
        // ECPrivateKey ::= SEQUENCE { version (1), privateKey OCTET STRING, [0] params, [1] public }
        [version, key, ..] if small_int(version) == Some(1) && key.tag() == Tag::OctetString => {
            DerKind::EcPrivate
        }
        _ => DerKind::Unknown,
    }
}

/// The elements of a DER SEQUENCE that spans all of `der`.
fn sequence_elements(der: &[u8]) -> der::Result<Vec<AnyRef<'_>>> {
    let any = AnyRef::from_der(der)?;
    any.sequence(|reader: &mut SliceReader<'_>| {
        let mut elements = Vec::new();
        while !reader.is_finished() {
            elements.push(AnyRef::decode(reader)?);
        }
        Ok(elements)
    })
}

/// Name of a well-known key algorithm or curve OID, for messages.
pub(super) fn oid_name(oid: &ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.3.132.0.34" => "P-384 (secp384r1)",
        "1.3.132.0.35" => "P-521 (secp521r1)",
        "1.3.132.0.10" => "secp256k1",
        "1.3.101.110" => "X25519",
        "1.3.101.111" => "X448",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.10045.3.1.7" => "P-256",
        _ => return format!("OID {oid}"),
    };
    name.to_string()
}

/// The public key of an SPKI structure.
pub fn public_key_from_spki(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let spki =
        SubjectPublicKeyInfoRef::from_der(der).map_err(|e| malformed(file, "the public key", e))?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let rsa = spki
            .subject_public_key
            .as_bytes()
            .and_then(|bits| RsaPublicKey::from_der(bits).ok())
            .ok_or_else(|| malformed(file, "the RSA public key", "not an RSAPublicKey"))?;
        rsa_public_key(file, rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes())
    } else if oid == EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let point = spki.subject_public_key.raw_bytes();
        let size = match curve {
            Some(P256) => 65,
            Some(P384) => 97,
            _ => {
                let name = curve.map_or("(unnamed)".to_string(), |c| oid_name(&c));
                return Err(unsupported(file, &format!("EC key on curve {name}")));
            }
        };
        PublicKey::from_ec_point(point)
            .filter(|_| point.len() == size)
            .ok_or_else(|| {
                malformed(
                    file,
                    "the EC public key",
                    "not an uncompressed point of its curve",
                )
            })
    } else if oid == ED25519 {
        let key = spki.subject_public_key.raw_bytes();
        if key.len() != 32 {
            return Err(malformed(file, "the Ed25519 public key", "not 32 bytes"));
        }
        Ok(PublicKey::Ed25519 { x: key.to_vec() })
    } else {
        Err(unsupported(file, &format!("{} key", oid_name(&oid))))
    }
}

/// The public key of a PKCS#1 `RSAPublicKey`.
pub(super) fn public_key_from_pkcs1(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let rsa = RsaPublicKey::from_der(der).map_err(|e| {
        malformed(
            file,
            "the RSA public key",
            format!("expected SEQUENCE {{ modulus, publicExponent }} ({e})"),
        )
    })?;
    rsa_public_key(file, rsa.modulus.as_bytes(), rsa.public_exponent.as_bytes())
}

/// The public key of a PKCS#10 certificate request (its signature is not checked here).
pub(super) fn public_key_from_csr(file: &str, der: &[u8]) -> Result<PublicKey, KeyFileError> {
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| malformed(file, "the certificate request", e))?;
    public_key_from_spki(file, csr.certification_request_info.subject_pki.raw)
}

/// Bits of the modulus of a PKCS#1 `RSAPrivateKey`, to name a key aws-lc refused.
pub(super) fn rsa_private_bits(der: &[u8]) -> Option<usize> {
    let key = RsaPrivateKey::from_der(der).ok()?;
    Some(
        PublicKey::Rsa {
            n: key.modulus.as_bytes().to_vec(),
            e: Vec::new(),
        }
        .bits(),
    )
}

/// The curve of a SEC1 `ECPrivateKey` when its parameters name one; `None` without parameters or
/// with explicit ones (which aws-lc then refuses).
pub(super) fn sec1_curve(der: &[u8]) -> der::Result<Option<ObjectIdentifier>> {
    let key = EcPrivateKey::from_der(der)?;
    Ok(key
        .parameters
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok()))
}

/// Whether `der` starts with a SEQUENCE of indefinite length (BER, X.690 section 8.1.3.6), which
/// `der` refuses: only PKCS#12 files (some Windows exports) come this way.
fn starts_indefinite_sequence(der: &[u8]) -> bool {
    let Ok(mut reader) = SliceReader::new(der) else {
        return false;
    };
    let tag = Tag::peek(&reader);
    matches!(tag, Ok(Tag::Sequence))
        && matches!(Header::decode(&mut reader), Err(e) if e.kind() == ErrorKind::IndefiniteLength)
}

/// PKCS#1 `RSAPublicKey` DER of an RSA key (the `subjectPublicKey` of its SPKI).
pub(super) fn rsa_public_key_der(n: &[u8], e: &[u8]) -> der::Result<Vec<u8>> {
    RsaPublicKey {
        modulus: uint(n)?,
        public_exponent: uint(e)?,
    }
    .to_der()
}

/// `UintRef` drops leading zeros but keeps a lone one; an empty input would give an empty INTEGER.
fn uint(bytes: &[u8]) -> der::Result<UintRef<'_>> {
    UintRef::new(if bytes.is_empty() { &[0] } else { bytes })
}

/// SPKI DER: `rsaEncryption` with NULL parameters, or `id-ecPublicKey` with the named curve P-256
/// (RFC 5480), around the `subjectPublicKey` bits.
pub(super) fn spki_der(key: &PublicKey, subject_public_key: &[u8]) -> der::Result<Vec<u8>> {
    let algorithm = match key {
        PublicKey::Rsa { .. } => AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        PublicKey::P256 { .. } => AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&P256)),
        },
        PublicKey::P384 { .. } => AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&P384)),
        },
        // RFC 8410 section 3: no parameters.
        PublicKey::Ed25519 { .. } => AlgorithmIdentifierRef {
            oid: ED25519,
            parameters: None,
        },
    };
    SubjectPublicKeyInfoRef {
        algorithm,
        subject_public_key: BitStringRef::from_bytes(subject_public_key)?,
    }
    .to_der()
}

/// An RSA public key from its unsigned big-endian modulus and exponent; at least 2048 bits.
pub(super) fn rsa_public_key(file: &str, n: &[u8], e: &[u8]) -> Result<PublicKey, KeyFileError> {
    let key = PublicKey::Rsa {
        n: strip_zeros(n).to_vec(),
        e: strip_zeros(e).to_vec(),
    };
    let bits = key.bits();
    if bits < 2048 {
        return Err(KeyFileError::WeakRsa {
            file: file.to_string(),
            bits,
        });
    }
    Ok(key)
}
