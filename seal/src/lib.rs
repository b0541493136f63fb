//! File encryption: where a file is sealed for its recipients and opened again.
//!
//! # Layout
//! - [`encrypted_file`]: the streaming `IDSENC` format (`docs/encrypted-file-format.md`): the agent's
//!   local files and the server's stored deliveries.
//! - [`cms`]: CMS EnvelopedData/AuthEnvelopedData, interoperable with `openssl cms`.
//! - [`atomic`]: output files written to a temporary name, fsynced and renamed into place.

pub mod atomic;
pub mod cms;
pub mod encrypted_file;
