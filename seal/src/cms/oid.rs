//! Object identifiers used by CMS, encoded by `const-oid` from their dotted form: the DER content
//! octets the reader compares against, and their names for messages.

use const_oid::ObjectIdentifier;

use super::ber::oid_to_string;

macro_rules! oids {
    ($($(#[$doc:meta])* $name:ident = $label:literal $dotted:literal;)+) => {
        $($(#[$doc])* pub(super) const $name: &[u8] = id::$name.as_bytes();)+

        /// The same OIDs as `const-oid` values, for the writer.
        pub(super) mod id {
            use super::ObjectIdentifier;
            $(pub(in super::super) const $name: ObjectIdentifier = ObjectIdentifier::new_unwrap($dotted);)+
        }

        /// `name (dotted)` for a known OID, else the dotted form: what error messages show.
        pub(super) fn describe(oid: &[u8]) -> String {
            let dotted = oid_to_string(oid);
            $(if oid == $name {
                return format!("{} ({dotted})", $label);
            })+
            dotted
        }

        #[cfg(test)]
        pub(super) const ALL: &[(&[u8], &str)] = &[$(($name, $label)),+];
    };
}

oids! {
    /// id-data, RFC 5652 section 4.
    DATA = "id-data" "1.2.840.113549.1.7.1";
    /// id-envelopedData, RFC 5652 section 6.
    ENVELOPED_DATA = "id-envelopedData" "1.2.840.113549.1.7.3";
    /// id-ct-authEnvelopedData, RFC 5083 section 2.1.
    AUTH_ENVELOPED_DATA = "id-ct-authEnvelopedData"
        "1.2.840.113549.1.9.16.1.23";

    /// rsaEncryption: RSAES-PKCS1-v1_5 key transport, RFC 3370 section 4.2.1.
    RSA_ENCRYPTION = "rsaEncryption" "1.2.840.113549.1.1.1";
    /// id-RSAES-OAEP, RFC 3560 / RFC 8017 appendix A.2.1.
    RSAES_OAEP = "id-RSAES-OAEP" "1.2.840.113549.1.1.7";
    /// id-mgf1, RFC 8017 appendix B.2.1.
    MGF1 = "id-mgf1" "1.2.840.113549.1.1.8";
    /// id-pSpecified, RFC 8017 appendix A.2.1.
    P_SPECIFIED = "id-pSpecified" "1.2.840.113549.1.1.9";

    SHA1 = "SHA-1" "1.3.14.3.2.26";
    SHA224 = "SHA-224" "2.16.840.1.101.3.4.2.4";
    SHA256 = "SHA-256" "2.16.840.1.101.3.4.2.1";
    SHA384 = "SHA-384" "2.16.840.1.101.3.4.2.2";
    SHA512 = "SHA-512" "2.16.840.1.101.3.4.2.3";

    /// AES content encryption, RFC 3565 (CBC) and RFC 5084 (GCM).
    AES128_CBC = "AES-128-CBC" "2.16.840.1.101.3.4.1.2";
    AES192_CBC = "AES-192-CBC" "2.16.840.1.101.3.4.1.22";
    AES256_CBC = "AES-256-CBC" "2.16.840.1.101.3.4.1.42";
    AES128_GCM = "AES-128-GCM" "2.16.840.1.101.3.4.1.6";
    AES192_GCM = "AES-192-GCM" "2.16.840.1.101.3.4.1.26";
    AES256_GCM = "AES-256-GCM" "2.16.840.1.101.3.4.1.46";
    /// AES key wrap, RFC 3394 / RFC 3565 section 2.3.2.
    AES128_WRAP = "id-aes128-wrap" "2.16.840.1.101.3.4.1.5";
    AES192_WRAP = "id-aes192-wrap" "2.16.840.1.101.3.4.1.25";
    AES256_WRAP = "id-aes256-wrap" "2.16.840.1.101.3.4.1.45";
    /// Legacy algorithms, named only so that refusals say what the file uses.
    DES_EDE3_CBC = "des-ede3-cbc"
        "1.2.840.113549.3.7";
    RC2_CBC = "rc2-cbc" "1.2.840.113549.3.2";
    CMS3DES_WRAP = "id-alg-CMS3DESwrap"
        "1.2.840.113549.1.9.16.3.6";

    /// id-ecPublicKey and the P-256 curve, RFC 5480 section 2.1.1.
    EC_PUBLIC_KEY = "id-ecPublicKey" "1.2.840.10045.2.1";
    PRIME256V1 = "prime256v1 (P-256)" "1.2.840.10045.3.1.7";

    /// ECDH key agreement schemes with the X9.63 KDF, RFC 5753 section 7.1.4.
    STD_DH_SHA1_KDF = "dhSinglePass-stdDH-sha1kdf-scheme"
        "1.3.133.16.840.63.0.2";
    STD_DH_SHA224_KDF = "dhSinglePass-stdDH-sha224kdf-scheme" "1.3.132.1.11.0";
    STD_DH_SHA256_KDF = "dhSinglePass-stdDH-sha256kdf-scheme" "1.3.132.1.11.1";
    STD_DH_SHA384_KDF = "dhSinglePass-stdDH-sha384kdf-scheme" "1.3.132.1.11.2";
    STD_DH_SHA512_KDF = "dhSinglePass-stdDH-sha512kdf-scheme" "1.3.132.1.11.3";
    COFACTOR_DH_SHA1_KDF = "dhSinglePass-cofactorDH-sha1kdf-scheme"
        "1.3.133.16.840.63.0.3";
    COFACTOR_DH_SHA224_KDF = "dhSinglePass-cofactorDH-sha224kdf-scheme"
        "1.3.132.1.14.0";
    COFACTOR_DH_SHA256_KDF = "dhSinglePass-cofactorDH-sha256kdf-scheme"
        "1.3.132.1.14.1";
    COFACTOR_DH_SHA384_KDF = "dhSinglePass-cofactorDH-sha384kdf-scheme"
        "1.3.132.1.14.2";
    COFACTOR_DH_SHA512_KDF = "dhSinglePass-cofactorDH-sha512kdf-scheme"
        "1.3.132.1.14.3";
}
