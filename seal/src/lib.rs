//! File encryption: where a file is sealed for its recipients and opened again.
//!
//! Who uses it: the agent (its local files, decrypted to send), the identity server (stored deliveries,
//! re-encrypted for its own certificate), `ids-config` (protected settings are IDSENC values) and
//! `ids-bench`. Why a crate of its own: file formats outlive the code, so the format readers and
//! writers sit apart from the apps, with their known-answer tests.
//!
//! # Layout
//! - [`encrypted_file`]: the streaming `IDSENC` format (`docs/encrypted-file-format.md`): the agent's
//!   local files and the server's stored deliveries.
//! - [`cms`]: CMS EnvelopedData/AuthEnvelopedData, interoperable with `openssl cms`.
//! - [`atomic`]: output files written to a temporary name, fsynced and renamed into place.

pub mod atomic;
pub mod cms;
pub mod encrypted_file;
