//! A file's plaintext as a request body, read (and decrypted) once on a blocking thread and hashed as
//! it goes: the SHA-256 ends the body as a `Repr-Digest` request trailer when the server reads one, so
//! the file is read once; otherwise the body has an exact length (`Content-Length`) and the digest
//! was sent before it.
//!
//! Memory: one 64 KiB piece being read and at most [`QUEUE`] pieces queued towards the connection.

use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_lc_rs::digest;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use ids_proto::headers;

use super::read_error;
use crate::files::VaultError;
use crate::files::vault::Vault;

/// Plaintext read at a time, and pieces queued towards the connection.
pub(super) const PIECE: usize = 64 * 1024;
const QUEUE: usize = 8;

/// The reading thread: the SHA-256 of the whole file once it was sent (`None` if the request ended
/// first), or why the file could not be read.
pub(super) type Reading = tokio::task::JoinHandle<Result<Option<[u8; 32]>, VaultError>>;

/// How the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// The digest was sent before the body: an exact length, nothing after the data.
    Length,
    /// The digest follows the data as a `Repr-Digest` trailer; no length on the body.
    DigestTrailer,
}

/// The file's plaintext as a request body of exactly `size` bytes (then the trailer, with
/// [`Ending::DigestTrailer`]). The handle gives the SHA-256 of what was read once the whole file was
/// sent (`None` if the request ended first), or the read failure.
pub(super) fn stream(
    vault: Arc<Vault>,
    path: PathBuf,
    size: u64,
    ending: Ending,
) -> (reqwest::Body, Reading) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(QUEUE);
    let reader = tokio::task::spawn_blocking(move || {
        let (mut input, encrypted) = match vault.open(&path) {
            Ok(opened) => opened,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return Err(e);
            }
        };
        let mut hasher = digest::Context::new(&digest::SHA256);
        loop {
            let mut buf = vec![0u8; PIECE];
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    hasher.update(&buf);
                    if tx.blocking_send(Ok(Frame::data(Bytes::from(buf)))).is_err() {
                        // The request ended (refused, or the connection failed): stop reading.
                        return Ok(None);
                    }
                }
                Err(e) => {
                    let error = read_error(&path, encrypted, e);
                    let _ = tx.blocking_send(Err(std::io::Error::other(error.to_string())));
                    return Err(error);
                }
            }
        }
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(hasher.finish().as_ref());
        if ending == Ending::DigestTrailer {
            let mut fields = reqwest::header::HeaderMap::new();
            let value =
                reqwest::header::HeaderValue::from_str(&headers::repr_digest_sha256(&sha256))
                    .map_err(|e| {
                        VaultError::io(&path, "cannot send the digest", std::io::Error::other(e))
                    })?;
            fields.insert(headers::REPR_DIGEST, value);
            if tx.blocking_send(Ok(Frame::trailers(fields))).is_err() {
                return Ok(None);
            }
        }
        Ok(Some(sha256))
    });
    let body = ChannelBody {
        rx,
        remaining: size,
        ending,
    };
    (reqwest::Body::wrap(body), reader)
}

/// A request body fed by a channel: `remaining` bytes of data, then, with [`Ending::DigestTrailer`],
/// the trailer.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
    remaining: u64,
    ending: Ending,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > self.remaining {
                        return Poll::Ready(Some(Err(std::io::Error::other(
                            "the file grew while it was being sent",
                        ))));
                    }
                    self.remaining -= len;
                } else if self.remaining > 0 {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "the file shrank while it was being sent",
                    ))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(
                std::io::Error::other("the file shrank while it was being sent"),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.ending {
            Ending::Length => SizeHint::with_exact(self.remaining),
            // Not exact, so that HTTP/1.1 sends it chunked, the one way trailers go with it.
            Ending::DigestTrailer => {
                let mut hint = SizeHint::new();
                hint.set_lower(self.remaining);
                hint
            }
        }
    }
}
