//! Delivering files to the server: the agent decrypts its local file (encrypted with its own
//! certificate) as a stream and sends the plaintext over HTTPS with its token; the server stores it
//! encrypted with its own certificate. Plaintext never touches the agent's disk.
//!
//! One pass over the file: an encrypted file's size comes from its chunk framing ([`prepare`] opens
//! its header with the agent's key but decrypts nothing), and its SHA-256 is computed as the body
//! streams and sent after it, as a `Repr-Digest` request trailer, to a server that reads one (it says
//! so in its answer to the check before sending). A server that does not, and plain files, get the
//! digest before the body as before: the file is then read twice.
//!
//! # Layout
//! - here: one delivery: [`prepare`] (size, and what identifies the file for [`content_id`]),
//!   [`deliver`] asks the server whether the id already arrived, then streams the file as the request
//!   body; [`deliver_retrying`] retries it while the server is away (`agent push`).
//! - [`body`]: the request body, read and hashed on a blocking thread.
//! - [`outbox`]: `agent run`, the service that delivers what is dropped into the outbox folder.

mod body;
pub mod outbox;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use ids_pki::b64::hex;

use body::{Ending, PIECE};

use crate::Agent;
use crate::client::deliveries::{self, Announce, Receipt, UploadFailure};
use crate::files::FilesSetup;
use crate::files::VaultError;
use crate::files::vault::Vault;

/// A file ready to be delivered: what it decrypts to.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub path: PathBuf,
    /// The name the server records.
    pub name: String,
    /// The plaintext size.
    pub size: u64,
    /// The plaintext's SHA-256 when the file was read for it (a plain file); `None` for an encrypted
    /// file, whose digest is computed as it is sent.
    pub sha256: Option<[u8; 32]>,
    /// What identifies this content for [`content_id`]: the plaintext's SHA-256 for a plain file; for
    /// an encrypted file its header checksum, unique to that encryption (random file key and nonce)
    /// and bound into every chunk.
    pub fingerprint: [u8; 32],
    /// Whether the local file is encrypted (and is decrypted to be read).
    pub encrypted: bool,
}

/// How a delivery ended.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub receipt: Receipt,
    /// The server already had this id with this file (a repeat after a crash, or a second push).
    pub already: bool,
}

/// Why a file was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The file cannot be read or decrypted: it must not be sent.
    #[error("{0}")]
    File(#[from] VaultError),
    #[error("{0}")]
    Server(#[from] UploadFailure),
}

/// What `path` is: for an encrypted file, its size from the chunk framing and its header checksum,
/// without decrypting it (the header is opened with the agent's key: a foreign file fails here); a plain
/// file is read for its SHA-256. `name` loses a `.enc` suffix when the file is encrypted. Blocking.
/// An encrypted file damaged further in fails as it is sent: the server then stores nothing.
pub fn prepare(vault: &Vault, path: &Path, name: &str) -> Result<Prepared, VaultError> {
    let (size, sha256, fingerprint, encrypted) = match vault.layout(path) {
        Ok(Some(layout)) => (layout.plaintext_len, None, layout.header_checksum, true),
        Ok(None) => {
            let (size, sha256, encrypted) = read_digest(vault, path)?;
            (size, Some(sha256), sha256, encrypted)
        }
        // The chunk framing is damaged: reading says precisely where.
        Err(e) => {
            read_digest(vault, path)?;
            return Err(e);
        }
    };
    // `report.csv.enc` was `report.csv` before the agent encrypted it: the server records that.
    let name = match name.strip_suffix(".enc") {
        Some(plain) if encrypted && !plain.is_empty() => plain,
        _ => name,
    };
    Ok(Prepared {
        path: path.to_path_buf(),
        name: name.to_string(),
        size,
        sha256,
        fingerprint,
        encrypted,
    })
}

/// Reads `path` through the vault (decrypting it when it is encrypted): its size, SHA-256 and whether
/// it is encrypted. Blocking.
pub fn read_digest(vault: &Vault, path: &Path) -> Result<(u64, [u8; 32], bool), VaultError> {
    let (mut reader, encrypted) = vault.open(path)?;
    let mut hasher = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; PIECE];
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| read_error(path, encrypted, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(hasher.finish().as_ref());
    Ok((size, sha256, encrypted))
}

/// A read error from the vault: a decryption failure keeps its kind (damaged, not for this key).
fn read_error(path: &Path, encrypted: bool, e: std::io::Error) -> VaultError {
    let detail = e.to_string();
    match e
        .into_inner()
        .and_then(|inner| inner.downcast::<ids_seal::encrypted_file::FileError>().ok())
    {
        Some(format) => VaultError::format(path, *format),
        None if encrypted => VaultError::io(path, "cannot decrypt", std::io::Error::other(detail)),
        None => VaultError::io(path, "cannot read", std::io::Error::other(detail)),
    }
}

/// A fresh random delivery id (128 bits, hex): one per file dropped into the outbox.
pub fn new_id() -> Result<String, VaultError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| FilesSetup::Random)?;
    Ok(hex(&bytes))
}

/// The id `agent push` gives a file: derived from the client, the agent, the name, the size and the
/// content's fingerprint ([`Prepared::fingerprint`]: the header checksum of an encrypted file, so that
/// no pass over the content is needed), so that pushing the same file again (after a crash, or by
/// mistake) is recognised by the server and stored once, and two clients pushing the same file do not
/// collide. An encrypted file encrypted again is another file (another header): it gets another id.
pub fn content_id(client: &str, agent: Option<&str>, prepared: &Prepared) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        client.as_bytes(),
        agent.unwrap_or("").as_bytes(),
        prepared.name.as_bytes(),
        &prepared.size.to_be_bytes(),
        &prepared.fingerprint,
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    format!("push-{}", &hex(ctx.finish().as_ref())[..32])
}

/// Delivers a prepared file as delivery `id`: asks whether the server has it already, and otherwise
/// streams it (decrypting again as it goes). One attempt, except that a refused token is renewed once.
pub async fn deliver(
    agent: &Agent,
    vault: &Arc<Vault>,
    prepared: &Prepared,
    id: &str,
) -> Result<Delivered, PushError> {
    let settings = agent.settings();
    let base = settings.application_uri.clone();
    let mut token = agent
        .token()
        .await
        .map_err(|e| PushError::Server(e.into()))?;
    let mut renewed = false;
    let mut nonce_retried = false;
    loop {
        let attempt = attempt(agent, vault, prepared, id, &base, &token).await;
        match attempt {
            // The nonce came with the refusal and is remembered: the next proof carries it.
            Err(PushError::Server(UploadFailure::DpopNonce)) if !nonce_retried => {
                nonce_retried = true;
            }
            Err(PushError::Server(UploadFailure::InvalidToken(reason))) if !renewed => {
                tracing::warn!("the server refused the access token ({reason}); getting a new one");
                renewed = true;
                token = agent
                    .renew_token(settings.default_client.as_str())
                    .await
                    .map_err(|e| PushError::Server(e.into()))?;
            }
            other => return other,
        }
    }
}

/// [`deliver`], retrying temporary failures (server away or busy, storage full) as `Http:Retries`
/// says (`agent push`; the outbox retries without end on its own).
pub async fn deliver_retrying(
    agent: &Agent,
    vault: &Arc<Vault>,
    prepared: &Prepared,
    id: &str,
) -> Result<Delivered, PushError> {
    let policy = agent.http().retry_policy();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match deliver(agent, vault, prepared, id).await {
            Err(PushError::Server(UploadFailure::Temporary {
                detail,
                retry_after,
            })) if policy.may_retry(attempt) => {
                let pause = policy.pause(attempt, retry_after);
                tracing::warn!(
                    "{}: {detail}; retrying in {} ms (attempt {attempt} of {})",
                    prepared.path.display(),
                    pause.as_millis(),
                    policy.attempts()
                );
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

async fn attempt(
    agent: &Agent,
    vault: &Arc<Vault>,
    prepared: &Prepared,
    id: &str,
    base: &str,
    token: &crate::Token,
) -> Result<Delivered, PushError> {
    let http = agent.http();
    let status = deliveries::status(http, base, &agent.api_auth(token), id).await?;
    if let Some(receipt) = status.receipt {
        // Arrived already (a repeat): the file is read for its digest, to be sure it is this file.
        let (size, sha256) = known_digest(vault, prepared).await?;
        check_receipt(&receipt, size, &sha256)?;
        return Ok(Delivered {
            receipt,
            already: true,
        });
    }
    let (size, sha256) = match prepared.sha256 {
        Some(sha256) => (prepared.size, Some(sha256)),
        // One pass: the digest follows the body.
        None if status.digest_trailer => (prepared.size, None),
        // A server that needs the digest first: a pass for it, then one for the body.
        None => {
            let (size, sha256) = known_digest(vault, prepared).await?;
            (size, Some(sha256))
        }
    };
    let ending = if sha256.is_some() {
        Ending::Length
    } else {
        Ending::DigestTrailer
    };
    let (body, reader) = body::stream(vault.clone(), prepared.path.clone(), size, ending);
    let announce = Announce {
        id,
        name: &prepared.name,
        size,
        sha256,
        agent: agent.settings().agent_identifier.as_deref(),
    };
    // The request's own timeout grows with the file: the configured one plus 1 s per 64 KiB (a link of
    // 512 kbit/s still completes); a peer that vanished is noticed sooner by TCP keep-alive.
    let timeout = http.timeout() + Duration::from_secs(size / (64 * 1024));
    let sent = deliveries::put(http, base, &agent.api_auth(token), &announce, body, timeout).await;
    // A read failure while streaming (the file changed or is damaged) explains a broken request.
    let streamed = match reader.await {
        Ok(Err(e)) => return Err(PushError::File(e)),
        Ok(Ok(streamed)) => streamed,
        Err(_) => None,
    };
    let (receipt, already) = sent?;
    let sha256 = match sha256.or(streamed) {
        Some(sha256) => sha256,
        // Answered before the whole body was sent (not expected once the digest follows the body).
        None => known_digest(vault, prepared).await?.1,
    };
    check_receipt(&receipt, size, &sha256)?;
    Ok(Delivered { receipt, already })
}

/// The file's size and SHA-256: known from [`prepare`], or read now (on a blocking thread).
async fn known_digest(
    vault: &Arc<Vault>,
    prepared: &Prepared,
) -> Result<(u64, [u8; 32]), PushError> {
    if let Some(sha256) = prepared.sha256 {
        return Ok((prepared.size, sha256));
    }
    let (vault, path) = (vault.clone(), prepared.path.clone());
    let read = tokio::task::spawn_blocking(move || read_digest(&vault, &path))
        .await
        .map_err(|e| {
            PushError::File(VaultError::io(
                &prepared.path,
                "cannot read",
                std::io::Error::other(e.to_string()),
            ))
        })?;
    let (size, sha256, _) = read?;
    Ok((size, sha256))
}

/// The server must have recorded exactly this file.
fn check_receipt(receipt: &Receipt, size: u64, sha256: &[u8; 32]) -> Result<(), UploadFailure> {
    if receipt.size != size || receipt.sha256 != hex(sha256) {
        return Err(UploadFailure::Refused {
            id: receipt.id.to_string(),
            status: 409,
            error: "delivery_conflict".into(),
            description: format!(
                "the server holds {} bytes with SHA-256 {} under this id; this file is {} bytes with SHA-256 {}",
                receipt.size,
                receipt.sha256,
                size,
                hex(sha256)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn prepared(name: &str, size: u64, first: u8) -> Prepared {
        let mut fingerprint = [7u8; 32];
        fingerprint[0] = first;
        Prepared {
            path: PathBuf::from("/x"),
            name: name.into(),
            size,
            sha256: None,
            fingerprint,
            encrypted: true,
        }
    }

    #[test]
    fn a_pushed_file_keeps_its_id_and_another_file_gets_another() {
        let a = content_id("Job", Some("Paris"), &prepared("r.csv", 10, 1));
        assert_eq!(
            a,
            content_id("Job", Some("Paris"), &prepared("r.csv", 10, 1))
        );
        assert!(a.starts_with("push-") && a.len() == 37);
        for other in [
            content_id("Other", Some("Paris"), &prepared("r.csv", 10, 1)),
            content_id("Job", Some("Lyon"), &prepared("r.csv", 10, 1)),
            content_id("Job", None, &prepared("r.csv", 10, 1)),
            content_id("Job", Some("Paris"), &prepared("s.csv", 10, 1)),
            content_id("Job", Some("Paris"), &prepared("r.csv", 11, 1)),
            content_id("Job", Some("Paris"), &prepared("r.csv", 10, 2)),
        ] {
            assert_ne!(a, other);
        }
        // Length-prefixed parts: moving a character between agent and name changes the id.
        assert_ne!(
            content_id("Job", Some("ab"), &prepared("c", 1, 1)),
            content_id("Job", Some("a"), &prepared("bc", 1, 1))
        );
        let id = new_id().unwrap();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_id().unwrap());
    }
}
