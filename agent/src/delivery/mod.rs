//! Delivering files to the server: the agent decrypts its local file (encrypted with its own
//! certificate) as a stream and sends the plaintext over HTTPS with its token; the server stores it
//! encrypted with its own certificate. Plaintext never touches the agent's disk.
//!
//! # Layout
//! - here: one delivery: [`prepare`] reads the file once for its size and SHA-256 (which also proves
//!   it decrypts), [`deliver`] asks the server whether the id already arrived, then streams the file
//!   again as the request body; [`deliver_retrying`] retries it while the server is away (`agent push`).
//! - [`outbox`]: `agent run`, the service that delivers what is dropped into the outbox folder.

pub mod outbox;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use ids_pki::b64::hex;

use crate::Agent;
use crate::client::deliveries::{self, Announce, Receipt, UploadFailure};
use crate::files::FilesSetup;
use crate::files::VaultError;
use crate::files::vault::Vault;

/// Plaintext read at a time, and pieces queued towards the connection.
const PIECE: usize = 64 * 1024;
const QUEUE: usize = 8;

/// A file ready to be delivered: what it decrypts to.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub path: PathBuf,
    /// The name the server records.
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Whether the local file is encrypted (and was decrypted to be read).
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

/// Reads `path` through the vault (decrypting it when it is encrypted) for its size and SHA-256; `name`
/// loses a `.enc` suffix when the file is encrypted. Blocking. A tampered, truncated or foreign file fails here, before anything is sent.
pub fn prepare(vault: &Vault, path: &Path, name: &str) -> Result<Prepared, VaultError> {
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
        encrypted,
    })
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

/// The id `agent push` gives a file: derived from the client, the agent, the name and the content, so
/// that pushing the same file again (after a crash, or by mistake) is recognised by the server and
/// stored once, and two clients pushing the same file do not collide.
pub fn content_id(client: &str, agent: Option<&str>, prepared: &Prepared) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [
        client.as_bytes(),
        agent.unwrap_or("").as_bytes(),
        prepared.name.as_bytes(),
        &prepared.size.to_be_bytes(),
        &prepared.sha256,
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
    loop {
        let attempt = attempt(agent, vault, prepared, id, &base, &token.access_token).await;
        match attempt {
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
    token: &crate::BearerToken,
) -> Result<Delivered, PushError> {
    let http = agent.http();
    if let Some(receipt) = deliveries::status(http, base, token, id).await? {
        check_receipt(&receipt, prepared)?;
        return Ok(Delivered {
            receipt,
            already: true,
        });
    }
    let (body, reader) = stream_body(vault.clone(), prepared.path.clone(), prepared.size);
    let announce = Announce {
        id,
        name: &prepared.name,
        size: prepared.size,
        sha256: prepared.sha256,
        agent: agent.settings().agent_identifier.as_deref(),
    };
    // The request's own timeout grows with the file: the configured one plus 1 s per 64 KiB (a link of
    // 512 kbit/s still completes); a peer that vanished is noticed sooner by TCP keep-alive.
    let timeout = http.timeout() + Duration::from_secs(prepared.size / (64 * 1024));
    let sent = deliveries::put(http, base, token, &announce, body, timeout).await;
    // A read failure while streaming (the file changed or is damaged) explains a broken request.
    if let Ok(Err(e)) = reader.await {
        return Err(PushError::File(e));
    }
    let (receipt, already) = sent?;
    check_receipt(&receipt, prepared)?;
    Ok(Delivered { receipt, already })
}

/// The server must have recorded exactly what was announced.
fn check_receipt(receipt: &Receipt, prepared: &Prepared) -> Result<(), UploadFailure> {
    if receipt.size != prepared.size || receipt.sha256 != hex(&prepared.sha256) {
        return Err(UploadFailure::Refused {
            id: receipt.id.to_string(),
            status: 409,
            error: "delivery_conflict".into(),
            description: format!(
                "the server holds {} bytes with SHA-256 {} under this id; this file is {} bytes with SHA-256 {}",
                receipt.size,
                receipt.sha256,
                prepared.size,
                hex(&prepared.sha256)
            ),
        });
    }
    Ok(())
}

/// The file's plaintext as a request body of exactly `size` bytes, read (and decrypted) on a blocking
/// thread; the handle reports a read failure.
fn stream_body(
    vault: Arc<Vault>,
    path: PathBuf,
    size: u64,
) -> (
    reqwest::Body,
    tokio::task::JoinHandle<Result<(), VaultError>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
    let reader = tokio::task::spawn_blocking(move || {
        let (mut input, encrypted) = match vault.open(&path) {
            Ok(opened) => opened,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return Err(e);
            }
        };
        loop {
            let mut buf = vec![0u8; PIECE];
            match input.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        // The request ended (refused, or the connection failed): stop reading.
                        return Ok(());
                    }
                }
                Err(e) => {
                    let error = read_error(&path, encrypted, e);
                    let _ = tx.blocking_send(Err(std::io::Error::other(error.to_string())));
                    return Err(error);
                }
            }
        }
    });
    let body = ChannelBody {
        rx,
        remaining: size,
    };
    (reqwest::Body::wrap(body), reader)
}

/// A request body fed by a channel, announcing its exact length (sent as `Content-Length`).
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    remaining: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let len = data.len() as u64;
                if len > self.remaining {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the file grew while it was being sent",
                    ))));
                }
                self.remaining -= len;
                Poll::Ready(Some(Ok(http_body::Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(
                std::io::Error::other("the file shrank while it was being sent"),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn prepared(name: &str, size: u64, first: u8) -> Prepared {
        let mut sha256 = [7u8; 32];
        sha256[0] = first;
        Prepared {
            path: PathBuf::from("/x"),
            name: name.into(),
            size,
            sha256,
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
