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

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ids_seal::atomic::AtomicFile;

use super::client_keys::{KeyRejection, LEEWAY, MemoryReplayCache, ReplayCache, replay_key};
use crate::Clock;

/// The journal's file name in its folder.
pub const JOURNAL: &str = "journal";
/// Entries waiting for the writer, at most (~48 bytes each).
pub const QUEUE_CAPACITY: usize = 16_384;
/// The writer's pause after a write, to gather entries into batches.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
const HEADER: &str = "# ids replay journal v1: <128-bit replay key, hex> <exp, Unix seconds> <client id, base64url>\n";
/// Longest wait for the writer to finish at shutdown.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Malformed lines named one by one in the start-up report (the rest are counted).
const REPORTED_LINES: usize = 5;

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

#[derive(Debug)]
struct Writer {
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: [u8; 16],
    expires_at: i64,
    client: Box<str>,
}

impl Entry {
    fn line(&self) -> String {
        let mut key = String::with_capacity(32);
        for b in self.key {
            key.push_str(&format!("{b:02x}"));
        }
        format!(
            "{key} {} {}\n",
            self.expires_at,
            ids_pki::b64::url(self.client.as_bytes())
        )
    }

    fn parse(line: &str) -> Result<Entry, &'static str> {
        let mut fields = line.split(' ');
        let (Some(key), Some(exp), Some(client), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("expected three fields separated by spaces");
        };
        if key.len() != 32 {
            return Err("the key is not 32 hex digits");
        }
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = key
                .get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("the key is not 32 hex digits")?;
        }
        let expires_at = exp.parse().map_err(|_| "exp is not a number")?;
        let client = ids_pki::b64::url_decode(client)
            .and_then(|c| String::from_utf8(c).ok())
            .filter(|c| !c.is_empty())
            .ok_or("the client id is not base64url of UTF-8")?;
        Ok(Entry {
            key: bytes,
            expires_at,
            client: client.into(),
        })
    }

    fn live(&self, now: i64) -> bool {
        self.expires_at.saturating_add(LEEWAY) >= now
    }
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
                opened.unusable = Some(reason);
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
    fn first_use(
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

    fn shutdown(&self) {
        if let Some(writer) = &self.writer {
            writer.close();
        }
    }
}

impl Writer {
    /// Queues `entry` without waiting; counts (and periodically reports) what a full queue refused.
    fn record(&self, entry: Entry) {
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
    fn close(&self) {
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

/// Creates the folder, loads the journal into `memory` while writing its live entries to a new
/// journal, and starts the writer on it.
fn start(
    folder: &Path,
    path: &Path,
    memory: &MemoryReplayCache,
    clock: Arc<dyn Clock>,
    limits: Limits,
    opened: &mut Opened,
) -> Result<Writer, String> {
    ids_seal::atomic::create_private_folder(folder)
        .map_err(|e| format!("cannot create the folder {}: {e}", folder.display()))?;
    remove_leftovers(folder);
    let now = clock.now();
    let mut fresh = AtomicFile::create(path, true)
        .map_err(|e| format!("cannot write in {}: {e}", folder.display()))?;
    let written = (|| -> std::io::Result<Compacted> {
        fresh.write_all(HEADER.as_bytes())?;
        let kept = match File::open(path) {
            Ok(old) => copy_live(old, &mut fresh, now, Some((memory, &mut *opened)))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Compacted::default(),
            Err(e) => return Err(e),
        };
        Ok(kept)
    })();
    let kept = match written {
        Ok(kept) => kept,
        Err(e) => {
            // Loaded or not, nothing overwrote the journal: it is there for the next start.
            return Err(format!("cannot read or rewrite it: {e}"));
        }
    };
    let file = commit_for_appending(fresh)
        .map_err(|e| format!("cannot replace it with its live entries: {e}"))?;
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
        .map_err(|e| format!("cannot start its writer thread: {e}"))?;
    Ok(Writer {
        path: path.to_path_buf(),
        queue,
        finished: Mutex::new(Some(finished)),
        clock,
        dropped: AtomicU64::new(0),
        last_warning: AtomicI64::new(i64::MIN / 2),
    })
}

/// Puts a rewritten journal in place; the handle to append to it. The handle is taken before the
/// rename, so that it is the new journal's: opening the path afterwards could fail (no file handle
/// left), leaving appends to go to the replaced file.
fn commit_for_appending(mut fresh: AtomicFile) -> std::io::Result<File> {
    let file = fresh.file().try_clone()?;
    fresh.commit()?;
    Ok(file)
}

/// Removes what an interrupted compaction left (`.journal.*.partial`).
fn remove_leftovers(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!(".{JOURNAL}.")) && name.ends_with(".partial") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[derive(Debug, Default)]
struct Compacted {
    entries: usize,
    earliest: Option<i64>,
}

/// Copies the live entries of the journal `old` to `out`; at start-up (`load`), also puts them into
/// the cache and reports what was skipped.
fn copy_live(
    old: File,
    out: &mut impl std::io::Write,
    now: i64,
    mut load: Option<(&MemoryReplayCache, &mut Opened)>,
) -> std::io::Result<Compacted> {
    let mut reader = BufReader::new(old);
    let mut line = Vec::new();
    let mut number = 0usize;
    let mut kept = Compacted::default();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            if let Some((_, opened)) = load.as_mut() {
                opened.torn_tail = Some(line.len());
            }
            break;
        }
        let text = std::str::from_utf8(&line[..line.len() - 1]).map_err(|_| "not UTF-8");
        let text = match text {
            Ok(t) if t.is_empty() || t.starts_with('#') => continue,
            Ok(t) => t,
            Err(why) => {
                malformed(&mut load, number, why);
                continue;
            }
        };
        let entry = match Entry::parse(text) {
            Ok(e) => e,
            Err(why) => {
                malformed(&mut load, number, why);
                continue;
            }
        };
        if !entry.live(now) {
            if let Some((_, opened)) = load.as_mut() {
                opened.expired += 1;
            }
            continue;
        }
        if let Some((memory, opened)) = load.as_mut() {
            if !memory.restore(entry.key, &entry.client, entry.expires_at, now) {
                // Already there (a duplicate line) or no room: not kept twice.
                continue;
            }
            opened.loaded += 1;
        }
        out.write_all(entry.line().as_bytes())?;
        kept.entries += 1;
        kept.earliest = Some(
            kept.earliest
                .map_or(entry.expires_at, |e| e.min(entry.expires_at)),
        );
    }
    Ok(kept)
}

fn malformed(load: &mut Option<(&MemoryReplayCache, &mut Opened)>, number: usize, why: &str) {
    if let Some((_, opened)) = load.as_mut() {
        opened.malformed_count += 1;
        if opened.malformed.len() < REPORTED_LINES {
            opened.malformed.push(format!("line {number}: {why}"));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FixedClock(AtomicI64);
    impl Clock for FixedClock {
        fn now(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn clock(now: i64) -> Arc<FixedClock> {
        Arc::new(FixedClock(AtomicI64::new(now)))
    }

    fn open(
        folder: &Path,
        clock: &Arc<FixedClock>,
        limits: Limits,
    ) -> (JournaledReplayCache, Opened) {
        JournaledReplayCache::open(
            folder,
            MemoryReplayCache::new(1000, 1000),
            clock.clone(),
            limits,
        )
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("journal")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn accepted_assertions_are_refused_after_a_restart_until_they_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("data/replay");
        let now = 1_000_000;
        let c = clock(now);
        let (cache, opened) = open(&folder, &c, Limits::default());
        assert_eq!(opened.unusable, None);
        assert!(cache.first_use("Job", "a", now + 60, now).expect("ok"));
        assert!(cache.first_use("Job", "b", now + 3600, now).expect("ok"));
        assert!(
            cache
                .first_use("Other Client", "a", now + 60, now)
                .expect("ok")
        );
        cache.shutdown();
        drop(cache);

        // Restarted 100 s later: `a` (exp + leeway passed) is gone, `b` is still refused.
        c.0.store(now + 100, Ordering::SeqCst);
        let (cache, opened) = open(&folder, &c, Limits::default());
        assert_eq!((opened.loaded, opened.expired), (1, 2), "{opened:?}");
        assert_eq!(
            cache.first_use("Job", "b", now + 3600, now + 100),
            Ok(false)
        );
        assert_eq!(cache.first_use("Job", "a", now + 160, now + 100), Ok(true));
        cache.shutdown();
        // The start-up compaction dropped the expired entries.
        assert_eq!(lines(&folder.join(JOURNAL)).len(), 2);
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            (
                std::fs::metadata(&folder)
                    .expect("folder")
                    .permissions()
                    .mode()
                    & 0o777,
                std::fs::metadata(folder.join(JOURNAL))
                    .expect("file")
                    .permissions()
                    .mode()
                    & 0o777,
            )
        };
        assert_eq!(mode, (0o700, 0o600));
    }

    #[test]
    fn a_torn_last_line_and_damaged_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("replay");
        std::fs::create_dir_all(&folder).expect("mkdir");
        let now = 5000;
        let good = |n: u8, exp: i64| Entry {
            key: [n; 16],
            expires_at: exp,
            client: "Job".into(),
        };
        let text = format!(
            "{HEADER}{}garbage line\n{}{}\n{}",
            good(1, now + 100).line(),
            good(2, now + 100).line(),
            "ab".repeat(16) + " 12 !!",
            &good(3, now + 100).line()[..20],
        );
        std::fs::write(folder.join(JOURNAL), text).expect("write");
        let c = clock(now);
        let (cache, opened) = open(&folder, &c, Limits::default());
        assert_eq!(opened.unusable, None);
        assert_eq!(opened.loaded, 2);
        assert_eq!(opened.malformed_count, 2, "{opened:?}");
        assert!(opened.malformed[0].starts_with("line 3:"), "{opened:?}");
        assert_eq!(opened.torn_tail, Some(20));
        assert_eq!(
            cache.memory.insert([1; 16], "Job", now + 100, now),
            Ok(false),
            "the entries before and after the damage are back"
        );
        assert_eq!(
            cache.memory.insert([2; 16], "Job", now + 100, now),
            Ok(false)
        );
        cache.shutdown();
        assert_eq!(lines(&folder.join(JOURNAL)).len(), 2);
    }

    #[test]
    fn an_unusable_folder_leaves_a_working_cache_in_memory_and_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the data folder should be: no folder can be made under it (even as root).
        let file = dir.path().join("data");
        std::fs::write(&file, "not a folder").expect("write");
        let c = clock(100);
        let (cache, opened) = open(&file.join("replay"), &c, Limits::default());
        let reason = opened.unusable.clone().expect("unusable");
        assert!(
            reason.contains(&file.join("replay").display().to_string()),
            "{reason}"
        );
        assert!(!cache.is_journaled());
        assert_eq!(cache.first_use("Job", "a", 200, 100), Ok(true));
        assert_eq!(cache.first_use("Job", "a", 200, 100), Ok(false));
        cache.shutdown();
    }

    #[test]
    fn the_writer_compacts_away_expired_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("replay");
        let now = 10_000;
        let c = clock(now);
        let limits = Limits {
            compact_after: 10,
            expiry_sweep: Duration::ZERO,
            sync_interval: Duration::from_millis(10),
        };
        let (cache, _) = open(&folder, &c, limits);
        for i in 0..10 {
            assert_eq!(
                cache.first_use("Job", &format!("short-{i}"), now + 1, now),
                Ok(true)
            );
        }
        c.0.store(now + 100, Ordering::SeqCst);
        for i in 0..3 {
            assert_eq!(
                cache.first_use("Job", &format!("long-{i}"), now + 1000, now + 100),
                Ok(true)
            );
        }
        // The writer compacts on its own (the 10 short ones expired); bounded wait.
        let path = folder.join(JOURNAL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while lines(&path).len() != 3 {
            assert!(
                Instant::now() < deadline,
                "not compacted: {:?}",
                lines(&path)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cache.shutdown();
        assert_eq!(lines(&path).len(), 3);
    }
}
