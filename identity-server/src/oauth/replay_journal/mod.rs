//! The `jti` replay cache, kept across restarts: [`JournaledReplayCache`] is the in-memory
//! [`MemoryReplayCache`] plus an append-only journal in the data folder
//! (`<Deliveries:DataFolder>/replay/journal`), so that an assertion accepted before a restart is still
//! refused as a replay after it, until it expires (issue 14).
//!
//! # How it is written
//! - Off the request path: an accepted assertion's entry goes into a bounded queue
//!   ([`QUEUE_CAPACITY`] entries); one writer thread appends the queued entries to the journal and
//!   hands them to the kernel at once (one `write` per batch), so a crash of the process loses
//!   nothing already accepted, and fsyncs at most once a second (a crash of the machine loses at
//!   most that second). When the queue is full (a disk slower than the token rate), the entry is not
//!   journaled: the assertion is still refused as a replay until the server stops, and a warning
//!   counts what was not written. A request never waits for the disk.
//! - Compacted by the writer (a new file written beside it, fsynced, then renamed over it): when
//!   as many entries were appended as the last compaction kept (at least [`Limits::compact_after`]),
//!   and every [`Limits::expiry_sweep`] when an entry in the file has expired. A compaction keeps the
//!   live entries only, so the file holds at most about twice the live entries.
//! - Flushed and fsynced when the server stops gracefully ([`ReplayCache::shutdown`]).
//!
//! # How it is read
//! At start-up, before the server accepts a connection: expired entries are skipped, a malformed
//! line (a torn last line when the machine crashed while writing it, or a damaged file) is skipped
//! and reported, never a reason not to start; the live entries are written to a new journal at once
//! (the start-up compaction).
//!
//! # When the folder cannot be used
//! The server starts anyway, with the in-memory cache only, and logs an error naming the folder and
//! saying that replay protection will not survive a restart.
//!
//! # Format
//! UTF-8 text, one entry per line: `<key> <exp> <client>`, where `key` is the hex of the 128-bit
//! replay key (SHA-256 of the client id and the `jti`, truncated; the `jti` itself is not kept), `exp`
//! the assertion's `exp` (Unix seconds) and `client` the client id in base64url (so that its share of
//! the cache is counted again). Lines starting with `#` are comments (the first line says what the
//! file is). The folder is created with mode 0700 and the file with 0600.
//!
//! # Layout
//! - here: [`JournaledReplayCache`], what opening found ([`Opened`]) and when to compact ([`Limits`]);
//! - `file`: the journal's lines, read back and rewritten with their live entries;
//! - `writer`: the writer thread, its bounded queue, batching, fsync and compaction.

mod file;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::client_keys::{KeyRejection, MemoryReplayCache, ReplayCache, ReplayFuture, replay_key};
use file::Entry;
use ids_runtime::Clock;
use writer::{Writer, start};

/// The journal's file name in its folder.
pub const JOURNAL: &str = "journal";
/// Entries waiting for the writer, at most (~48 bytes each).
pub const QUEUE_CAPACITY: usize = 16_384;

/// When the writer compacts the journal.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Compact once this many entries were appended, or as many as the last compaction kept if more.
    pub compact_after: usize,
    /// Compact at this interval when an entry in the file has expired.
    pub expiry_sweep: Duration,
    /// fsync at most this often.
    pub sync_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            compact_after: 4096,
            expiry_sweep: Duration::from_secs(600),
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// What opening the journal found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    pub path: PathBuf,
    /// Live entries put back into the cache.
    pub loaded: usize,
    /// Entries skipped because they had expired.
    pub expired: usize,
    /// Malformed lines skipped: the first few (line number and why), and how many in all.
    pub malformed: Vec<String>,
    pub malformed_count: usize,
    /// An incomplete last line (bytes), as a crash while writing leaves it.
    pub torn_tail: Option<usize>,
    /// Why the journal is not used (replay protection does not survive a restart), if it is not.
    pub unusable: Option<String>,
}

impl Opened {
    /// Logs what was found: an error when the journal cannot be used, a warning for skipped lines.
    pub fn log(&self) {
        let path = self.path.display();
        if let Some(reason) = &self.unusable {
            tracing::error!(
                "replay cache journal {path}: {reason}; replay protection will NOT survive a restart: \
                 an assertion accepted before a restart can be replayed after it until it expires \
                 (fix the folder, Deliveries:DataFolder, and restart)"
            );
        }
        if let Some(bytes) = self.torn_tail {
            tracing::warn!(
                "replay cache journal {path}: ignored an incomplete last line ({bytes} bytes), as a crash while writing it leaves"
            );
        }
        if self.malformed_count > 0 {
            tracing::warn!(
                "replay cache journal {path}: skipped {} malformed line(s): {}",
                self.malformed_count,
                self.malformed.join("; ")
            );
        }
        if self.unusable.is_none() {
            tracing::info!(
                path = %path,
                loaded = self.loaded,
                expired = self.expired,
                "replay cache journal opened"
            );
        }
    }
}

/// A [`MemoryReplayCache`] whose entries are also written to a journal (see the module doc).
#[derive(Debug)]
pub struct JournaledReplayCache {
    memory: MemoryReplayCache,
    writer: Option<Writer>,
}

impl JournaledReplayCache {
    /// Loads `folder/journal` into `memory` and starts the writer. Never fails: when the folder
    /// cannot be used, the cache works in memory only and [`Opened::unusable`] says why.
    pub fn open(
        folder: &Path,
        memory: MemoryReplayCache,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> (Self, Opened) {
        let path = folder.join(JOURNAL);
        let mut opened = Opened {
            path: path.clone(),
            ..Opened::default()
        };
        match start(folder, &path, &memory, clock, limits, &mut opened) {
            Ok(writer) => (
                JournaledReplayCache {
                    memory,
                    writer: Some(writer),
                },
                opened,
            ),
            Err(reason) => {
                opened.unusable = Some(reason.to_string());
                (
                    JournaledReplayCache {
                        memory,
                        writer: None,
                    },
                    opened,
                )
            }
        }
    }

    /// Whether entries are being journaled.
    pub fn is_journaled(&self) -> bool {
        self.writer.is_some()
    }
}

impl ReplayCache for JournaledReplayCache {
    fn entries(&self) -> usize {
        self.memory.len()
    }

    fn first_use<'a>(
        &'a self,
        client_id: &'a str,
        jti: &'a str,
        expires_at: i64,
        now: i64,
    ) -> ReplayFuture<'a> {
        Box::pin(std::future::ready(
            self.first_use_now(client_id, jti, expires_at, now),
        ))
    }

    fn shutdown(&self) {
        if let Some(writer) = &self.writer {
            writer.close();
        }
    }
}

impl JournaledReplayCache {
    /// [`ReplayCache::first_use`], answered at once (the journal is written behind, by its queue).
    pub fn first_use_now(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, KeyRejection> {
        let key = replay_key(client_id, jti);
        let first = self.memory.insert(key, client_id, expires_at, now)?;
        if first && let Some(writer) = &self.writer {
            writer.record(Entry {
                key,
                expires_at,
                client: client_id.into(),
            });
        }
        Ok(first)
    }
}
