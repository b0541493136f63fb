//! The writer thread: takes accepted entries from a bounded queue (a request never waits for the
//! disk), appends them in batches, fsyncs at most once per `Limits::sync_interval` and compacts the
//! journal when it has grown or holds expired entries.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ids_seal::atomic::AtomicFile;

use super::file::{Compacted, Entry, HEADER, commit_for_appending, copy_live, remove_leftovers};
use super::{Limits, Opened, QUEUE_CAPACITY};
use crate::oauth::client_keys::{LEEWAY, MemoryReplayCache};
use ids_runtime::Clock;

/// The writer's pause after a write, to gather entries into batches.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Longest wait for the writer to finish at shutdown.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Writer {
    path: PathBuf,
    queue: SyncSender<Message>,
    /// Closed by the writer thread when it ends.
    finished: Mutex<Option<Receiver<()>>>,
    clock: Arc<dyn Clock>,
    /// Entries not journaled because the queue was full, since the last warning.
    dropped: AtomicU64,
    last_warning: AtomicI64,
}

#[derive(Debug)]
enum Message {
    Entry(Entry),
    Close,
}

impl Writer {
    /// Queues `entry` without waiting; counts (and periodically reports) what a full queue refused.
    pub(super) fn record(&self, entry: Entry) {
        match self.queue.try_send(Message::Entry(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let now = self.clock.now();
                let last = self.last_warning.load(Ordering::Relaxed);
                if now - last >= 60
                    && self
                        .last_warning
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    self.dropped.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        path = %self.path.display(),
                        entries = dropped,
                        "replay cache journal: accepted assertions could not be queued for writing (the journal's disk is slower than the token rate, or its writer stopped): they are refused as replays until the server stops, but not after a restart"
                    );
                }
            }
        }
    }

    /// Asks the writer to write and fsync what it holds, and waits for it (bounded).
    pub(super) fn close(&self) {
        let Ok(mut finished) = self.finished.lock() else {
            return;
        };
        let Some(done) = finished.take() else { return };
        // Blocks while the queue is full, which the writer empties.
        if self.queue.send(Message::Close).is_err() {
            return;
        }
        match done.recv_timeout(SHUTDOWN_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                tracing::info!(path = %self.path.display(), "replay cache journal written");
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::error!(
                    path = %self.path.display(),
                    "replay cache journal: the writer did not finish within {} s; the last accepted assertions may not be refused after a restart",
                    SHUTDOWN_WAIT.as_secs()
                );
            }
        }
    }
}

/// Why the journal cannot be used (the cache then works in memory only).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the folder {}: {source}", .folder.display())]
    CreateFolder {
        folder: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write in {}: {source}", .folder.display())]
    Create {
        folder: PathBuf,
        source: std::io::Error,
    },
    /// Loaded or not, nothing overwrote the journal: it is there for the next start.
    #[error("cannot read or rewrite it: {0}")]
    Rewrite(std::io::Error),
    #[error("cannot replace it with its live entries: {0}")]
    Replace(std::io::Error),
    #[error("cannot start its writer thread: {0}")]
    Thread(std::io::Error),
}

/// Creates the folder, loads the journal into `memory` while writing its live entries to a new
/// journal, and starts the writer on it.
pub(super) fn start(
    folder: &Path,
    path: &Path,
    memory: &MemoryReplayCache,
    clock: Arc<dyn Clock>,
    limits: Limits,
    opened: &mut Opened,
) -> Result<Writer, JournalError> {
    ids_seal::atomic::create_private_folder(folder).map_err(|source| {
        JournalError::CreateFolder {
            folder: folder.to_path_buf(),
            source,
        }
    })?;
    remove_leftovers(folder);
    let now = clock.now();
    let mut fresh = AtomicFile::create(path, true).map_err(|source| JournalError::Create {
        folder: folder.to_path_buf(),
        source,
    })?;
    let written = (|| -> std::io::Result<Compacted> {
        fresh.write_all(HEADER.as_bytes())?;
        let kept = match File::open(path) {
            Ok(old) => copy_live(old, &mut fresh, now, Some((memory, &mut *opened)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Compacted::default(),
            Err(e) => return Err(e),
        };
        Ok(kept)
    })();
    let kept = written.map_err(JournalError::Rewrite)?;
    let file = commit_for_appending(fresh).map_err(JournalError::Replace)?;
    let (queue, messages) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
    let (finished_tx, finished) = std::sync::mpsc::sync_channel::<()>(1);
    let mut state = WriterState {
        path: path.to_path_buf(),
        file,
        clock: clock.clone(),
        limits,
        kept: kept.entries,
        appended: 0,
        earliest: kept.earliest,
        last_compaction: Instant::now(),
        last_sync: Instant::now(),
        dirty: false,
        torn: false,
        last_error_log: None,
        failed_writes: 0,
    };
    std::thread::Builder::new()
        .name("replay-journal".into())
        .spawn(move || {
            state.run(&messages);
            drop(finished_tx);
        })
        .map_err(JournalError::Thread)?;
    Ok(Writer {
        path: path.to_path_buf(),
        queue,
        finished: Mutex::new(Some(finished)),
        clock,
        dropped: AtomicU64::new(0),
        last_warning: AtomicI64::new(i64::MIN / 2),
    })
}

/// The writer thread's state.
struct WriterState {
    path: PathBuf,
    file: File,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// Entries the last compaction kept, and entries appended since.
    kept: usize,
    appended: usize,
    /// The earliest `exp` in the file.
    earliest: Option<i64>,
    last_compaction: Instant,
    last_sync: Instant,
    /// Written but not fsynced.
    dirty: bool,
    /// A write failed part-way: the next one starts on a new line.
    torn: bool,
    last_error_log: Option<Instant>,
    failed_writes: u64,
}

impl WriterState {
    fn run(&mut self, messages: &Receiver<Message>) {
        let mut batch = Vec::new();
        loop {
            let first = messages.recv_timeout(self.limits.sync_interval);
            let mut closing = false;
            match first {
                Ok(Message::Entry(e)) => batch.push(e),
                Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => closing = true,
                Err(RecvTimeoutError::Timeout) => {}
            }
            while !closing && batch.len() < QUEUE_CAPACITY {
                match messages.try_recv() {
                    Ok(Message::Entry(e)) => batch.push(e),
                    Ok(Message::Close) => closing = true,
                    Err(_) => break,
                }
            }
            let wrote = !batch.is_empty();
            if wrote {
                self.write(&batch);
                batch.clear();
            }
            if closing {
                self.sync();
                return;
            }
            if wrote {
                // Let the next entries gather: one write per pause instead of one per token, and no
                // wake-up of this thread on the request path while it sleeps (an entry waits at
                // most this long before it reaches the kernel).
                std::thread::sleep(BATCH_PAUSE);
            }
            if self.dirty && self.last_sync.elapsed() >= self.limits.sync_interval {
                self.sync();
            }
            self.maybe_compact();
        }
    }

    fn write(&mut self, batch: &[Entry]) {
        let mut text = String::with_capacity(batch.len() * 64 + 1);
        if self.torn {
            text.push('\n');
        }
        for entry in batch {
            text.push_str(&entry.line());
        }
        match self.file.write_all(text.as_bytes()) {
            Ok(()) => {
                self.torn = false;
                self.dirty = true;
                self.appended += batch.len();
                for e in batch {
                    self.earliest =
                        Some(self.earliest.map_or(e.expires_at, |x| x.min(e.expires_at)));
                }
                if self.failed_writes > 0 {
                    tracing::info!(path = %self.path.display(), "replay cache journal writable again");
                    self.failed_writes = 0;
                }
            }
            Err(e) => {
                self.torn = true;
                self.failed_writes += batch.len() as u64;
                self.error(&format!(
                    "cannot append to it: {e}; {} accepted assertion(s) will not be refused after a restart",
                    self.failed_writes
                ));
            }
        }
    }

    fn sync(&mut self) {
        if !self.dirty {
            return;
        }
        if let Err(e) = self.file.sync_data() {
            self.error(&format!("cannot fsync it: {e}"));
        }
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    /// Errors are logged at most once a minute.
    fn error(&mut self, message: &str) {
        if self
            .last_error_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_error_log = Some(Instant::now());
            tracing::error!("replay cache journal {}: {message}", self.path.display());
        }
    }

    fn maybe_compact(&mut self) {
        let grown = self.appended >= self.kept.max(self.limits.compact_after);
        let now = self.clock.now();
        let expired = self
            .earliest
            .is_some_and(|e| e.saturating_add(LEEWAY) < now)
            && self.last_compaction.elapsed() >= self.limits.expiry_sweep;
        if grown || expired {
            self.compact(now);
        }
    }

    /// Rewrites the journal with its live entries (a new file renamed over it).
    fn compact(&mut self, now: i64) {
        self.last_compaction = Instant::now();
        let result = (|| -> std::io::Result<(Compacted, File)> {
            let mut fresh = AtomicFile::create(&self.path, true)?;
            fresh.write_all(HEADER.as_bytes())?;
            let kept = copy_live(File::open(&self.path)?, &mut fresh, now, None)?;
            Ok((kept, commit_for_appending(fresh)?))
        })();
        match result {
            Ok((kept, file)) => {
                tracing::debug!(path = %self.path.display(), kept = kept.entries, "replay cache journal compacted");
                self.file = file;
                self.kept = kept.entries;
                self.appended = 0;
                self.earliest = kept.earliest;
                self.dirty = false;
                self.torn = false;
            }
            Err(e) => self.error(&format!(
                "cannot compact it (it keeps growing until it can): {e}"
            )),
        }
    }
}
