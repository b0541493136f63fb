//! The audit trail (`Audit:Path` or `Audit:Output` `Stdout`): one JSON object per line per event,
//! written by a thread of its own so that a slow or full disk never holds a request.
//!
//! Files are `<Audit:Path>/audit-YYYY-MM-DD.jsonl` (UTC days), mode 0600 in a 0700 folder, appended to
//! (several processes may write to one folder: the server and `identity-server deliveries export`;
//! each line is written by one `write` call on a file opened with `O_APPEND`), and removed after
//! `Audit:RetentionDays`. Events never carry a secret, a password, a whole token or an assertion: the
//! event types below have no field that could hold one.
//!
//! Requests hand events over a bounded queue and never wait: when the queue is full the event is
//! dropped and counted (`ids_audit_events_dropped_total`), when a write fails (disk full,
//! permissions) the events are counted (`ids_audit_write_errors_total`) and the failure logged, once
//! per episode.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use serde::Serialize;

use super::metrics::{ServerMetrics, TypeLabel};

/// Events queued at most: at ~3,000 tokens/s, several seconds of a stalled disk.
const QUEUE: usize = 65_536;

/// How often written lines are made durable (`fdatasync`) while events arrive.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Where audit events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditOutput {
    /// Daily files in a folder, kept `retention_days` (0: forever).
    Folder { path: PathBuf, retention_days: u32 },
    /// Standard output, one line per event (containers, journald).
    Stdout,
}

/// An audit event, as written: `time` and `type` first, then the event's own fields.
#[derive(Debug, Serialize)]
pub struct Record {
    /// Unix seconds (`time`, for the writer: which day's file).
    #[serde(skip)]
    pub at: i64,
    /// RFC 3339, UTC, seconds.
    pub time: String,
    #[serde(flatten)]
    pub event: Event,
}

/// The events. Field names are the file format (docs/monitoring/README.md).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TokenIssued {
        client: String,
        method: &'static str,
        scopes: Vec<String>,
        jti: String,
        kid: String,
        peer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        cnf_x5t_s256: Option<String>,
        /// The DPoP key the token is bound to (RFC 9449).
        #[serde(skip_serializing_if = "Option::is_none")]
        cnf_jkt: Option<String>,
        /// The audiences asked for with `resource` (RFC 8707); absent for the default one.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        audiences: Vec<String>,
        exp: i64,
    },
    TokenRevoked {
        client: String,
        jti: String,
        exp: i64,
        peer: String,
    },
    ClientAuthenticationFailed {
        /// As the client sent it (control characters escaped by the JSON encoder).
        client: String,
        method: &'static str,
        reason: &'static str,
        /// The reason as the server logs it.
        detail: String,
        peer: String,
    },
    DeliveryStored {
        client: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        delivery: String,
        name: String,
        bytes: u64,
        sha256: String,
        peer: String,
    },
    DeliveryDuplicate {
        client: String,
        delivery: String,
        peer: String,
    },
    DeliveryRefused {
        /// `-` when the caller was not authenticated.
        client: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        delivery: Option<String>,
        status: u16,
        reason: String,
        peer: String,
    },
    DeliveryRead {
        client: String,
        delivery: String,
        owner: String,
        peer: String,
    },
    DeliveryExported {
        /// The operating-system user who ran `identity-server deliveries export`.
        operator: String,
        delivery: String,
        owner: String,
        destination: String,
    },
    ConfigurationReloaded {
        /// `access_control` or `authorized_clients`.
        what: &'static str,
        result: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        clients: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    CertificateReloaded {
        role: &'static str,
        result: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thumbprint: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Event {
    /// The `type` value.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TokenIssued { .. } => "token_issued",
            Event::TokenRevoked { .. } => "token_revoked",
            Event::ClientAuthenticationFailed { .. } => "client_authentication_failed",
            Event::DeliveryStored { .. } => "delivery_stored",
            Event::DeliveryDuplicate { .. } => "delivery_duplicate",
            Event::DeliveryRefused { .. } => "delivery_refused",
            Event::DeliveryRead { .. } => "delivery_read",
            Event::DeliveryExported { .. } => "delivery_exported",
            Event::ConfigurationReloaded { .. } => "configuration_reloaded",
            Event::CertificateReloaded { .. } => "certificate_reloaded",
        }
    }
}

enum Message {
    /// Boxed: an event is much larger than the other messages.
    Record(Box<Record>),
    /// Write out and make durable what came before, then answer.
    Flush(SyncSender<()>),
}

/// The handle requests send events through. Cloning is cheap; the writer stops when the last
/// handle is closed or dropped.
#[derive(Clone, Debug)]
pub struct Auditor {
    queue: SyncSender<MessageBox>,
    metrics: Option<Arc<ServerMetrics>>,
    /// Events are being dropped (the queue is full): logged once per episode.
    dropping: Arc<std::sync::atomic::AtomicBool>,
    /// The last write failed (readiness).
    failing: Arc<std::sync::atomic::AtomicBool>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// [`Message`] with a `Debug` that shows nothing (it may be queued behind a `Debug` handle).
struct MessageBox(Message);

impl std::fmt::Debug for MessageBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageBox")
    }
}

/// Why the audit trail cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("Audit:Path {}: cannot create the folder: {source}", .path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Audit:Path {}: cannot write there: {source}", .path.display())]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

impl Auditor {
    /// Starts the writer. For a folder, creates it (0700) and opens today's file once, so that a
    /// folder the server cannot write to stops it at start-up rather than losing events later.
    pub fn start(
        output: &AuditOutput,
        metrics: Option<Arc<ServerMetrics>>,
        now: i64,
    ) -> Result<Auditor, AuditError> {
        let sink: Box<dyn Sink> = match output {
            AuditOutput::Stdout => Box::new(StdoutSink),
            AuditOutput::Folder {
                path,
                retention_days,
            } => {
                create_private_folder(path).map_err(|source| AuditError::Folder {
                    path: path.clone(),
                    source,
                })?;
                let mut files = DailyFiles::new(path.clone(), *retention_days);
                files
                    .file_for(now)
                    .map_err(|source| AuditError::NotWritable {
                        path: path.clone(),
                        source,
                    })?;
                files.remove_old(now);
                Box::new(files)
            }
        };
        Self::with_sink(sink, metrics, QUEUE)
    }

    fn with_sink(
        sink: Box<dyn Sink>,
        metrics: Option<Arc<ServerMetrics>>,
        queue: usize,
    ) -> Result<Auditor, AuditError> {
        let (queue, received) = std::sync::mpsc::sync_channel::<MessageBox>(queue);
        let writer_metrics = metrics.clone();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_failing = failing.clone();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(received, sink, writer_metrics, &writer_failing))
            .map_err(AuditError::Thread)?;
        Ok(Auditor {
            queue,
            metrics,
            dropping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            failing,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Queues `event` at `now` (Unix seconds); never waits.
    pub fn record(&self, event: Event, now: i64) {
        let record = Record {
            at: now,
            time: rfc3339(now),
            event,
        };
        use std::sync::atomic::Ordering;
        match self
            .queue
            .try_send(MessageBox(Message::Record(Box::new(record))))
        {
            Ok(()) => {
                if self.dropping.load(Ordering::Relaxed)
                    && self.dropping.swap(false, Ordering::Relaxed)
                {
                    tracing::info!("audit trail: events are queued again");
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if let Some(m) = &self.metrics {
                    m.audit_dropped.inc();
                }
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "audit events are being dropped: the audit writer cannot keep up (counted in ids_audit_events_dropped_total)"
                    );
                }
            }
        }
    }

    /// Writes out and syncs every event queued so far (waits at most `timeout`).
    pub fn flush(&self, timeout: Duration) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.queue.send(MessageBox(Message::Flush(done))).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }

    /// Writes out and syncs what is queued, waiting up to 10 s (at shutdown, and before a command
    /// that recorded an event exits). The writer thread ends when the last handle is dropped.
    pub fn close(&self) {
        self.flush(Duration::from_secs(10));
    }

    /// Whether events are being written: the writer thread runs and its last write succeeded (the
    /// readiness check).
    pub fn is_writing(&self) -> bool {
        let running = self
            .thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false);
        running && !self.failing.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where the writer puts lines.
trait Sink: Send {
    /// Appends `lines` (whole lines) for events of `now`.
    fn write(&mut self, lines: &[u8], now: i64) -> std::io::Result<()>;
    /// Makes what was written durable.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Whether writing works again after a failure (a disk that had no room): tried while no event
    /// comes, so that readiness recovers without traffic.
    fn probe(&mut self, _now: i64) -> std::io::Result<()> {
        self.sync()
    }
}

struct StdoutSink;

impl Sink for StdoutSink {
    fn write(&mut self, lines: &[u8], _now: i64) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(lines)?;
        out.flush()
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `audit-YYYY-MM-DD.jsonl` files in one folder.
struct DailyFiles {
    folder: PathBuf,
    retention_days: u32,
    open: Option<(i64, File)>,
}

impl DailyFiles {
    fn new(folder: PathBuf, retention_days: u32) -> DailyFiles {
        DailyFiles {
            folder,
            retention_days,
            open: None,
        }
    }

    fn file_for(&mut self, now: i64) -> std::io::Result<&mut File> {
        let day = now.div_euclid(86_400);
        if self.open.as_ref().is_none_or(|(d, _)| *d != day) {
            if let Some((_, old)) = self.open.take() {
                let _ = old.sync_data();
            }
            let path = self.folder.join(file_name(day));
            let file = open_append(&path)?;
            self.open = Some((day, file));
            self.remove_old(now);
        }
        match &mut self.open {
            Some((_, file)) => Ok(file),
            None => Err(std::io::Error::other("no audit file open")),
        }
    }

    /// Removes the files of days older than the retention.
    fn remove_old(&self, now: i64) {
        if self.retention_days == 0 {
            return;
        }
        let oldest_kept = now.div_euclid(86_400) - i64::from(self.retention_days);
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name.to_str().and_then(day_of) else {
                continue;
            };
            if day < oldest_kept {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "audit file removed (Audit:RetentionDays {})", self.retention_days)
                    }
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), "cannot remove an old audit file: {e}")
                    }
                }
            }
        }
    }
}

impl Sink for DailyFiles {
    fn probe(&mut self, now: i64) -> std::io::Result<()> {
        // Room for a few events: a probe file written, made durable and removed.
        let probe = self.folder.join(".audit-probe");
        let written = std::fs::File::create(&probe).and_then(|mut f| {
            f.write_all(&[b' '; 4096])?;
            f.sync_data()
        });
        let _ = std::fs::remove_file(&probe);
        written?;
        self.open = None;
        self.file_for(now).map(|_| ())
    }

    fn write(&mut self, lines: &[u8], now: i64) -> std::io::Result<()> {
        let file = self.file_for(now)?;
        if let Err(e) = file.write_all(lines) {
            // Reopen next time: the file may have been removed or the disk replaced.
            self.open = None;
            return Err(e);
        }
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        match &self.open {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// `audit-2026-12-03.jsonl` for the day `day` (days since 1970-01-01).
fn file_name(day: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "audit-{:04}-{:02}-{:02}.jsonl",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The day of an audit file's name.
fn day_of(name: &str) -> Option<i64> {
    let date = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(date, &format).ok()?;
    Some(
        date.with_hms(0, 0, 0)
            .ok()?
            .assume_utc()
            .unix_timestamp()
            .div_euclid(86_400),
    )
}

/// Opens (creating it 0600) an audit file for appending. A file created by root (an operator's
/// `sudo identity-server deliveries export`) is given to the folder's owner, so that the server,
/// running as its own user, can go on writing to it. A file whose last line was cut (a write that
/// failed half-way on a full disk) gets its line ended first, so that the next event starts a line.
fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // Only a file root owns (it was just created by root) in a folder owned by someone else.
        if rustix::process::geteuid().is_root()
            && let Some(folder) = path.parent()
            && let Ok(owner) = std::fs::metadata(folder)
            && let Ok(meta) = file.metadata()
            && meta.uid() == 0
            && owner.uid() != 0
            && let Err(e) = std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()))
        {
            tracing::warn!(
                file = %path.display(),
                "the audit file cannot be given to the folder's owner: {e}"
            );
        }
    }
    end_last_line(&mut file)?;
    Ok(file)
}

/// Writes a line break when the file does not end with one.
fn end_last_line(file: &mut File) -> std::io::Result<()> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

fn create_private_folder(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// `2026-12-03T09:30:40Z`.
pub fn rfc3339(now: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| now.to_string())
}

fn write_loop(
    queue: Receiver<MessageBox>,
    mut sink: Box<dyn Sink>,
    metrics: Option<Arc<ServerMetrics>>,
    shared_failing: &std::sync::atomic::AtomicBool,
) {
    let mut failing = false;
    let mut dirty = false;
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let first = match queue.recv_timeout(SYNC_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let Some(first) = first else {
            if dirty {
                let _ = sink.sync();
                dirty = false;
            }
            if failing {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                if sink.probe(now).is_ok() {
                    tracing::info!("audit trail: writing works again");
                    failing = false;
                    shared_failing.store(false, std::sync::atomic::Ordering::Relaxed);
                }
            }
            continue;
        };
        // Everything already queued goes out in one write.
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match queue.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        buffer.clear();
        let mut kinds: Vec<&'static str> = Vec::new();
        let mut last_time: i64 = 0;
        for MessageBox(message) in batch {
            match message {
                Message::Record(record) => {
                    let day_time = record.at;
                    // Each event goes to its own day's file, also in a batch that spans midnight.
                    if !buffer.is_empty()
                        && day_time.div_euclid(86_400) != last_time.div_euclid(86_400)
                    {
                        write_out(
                            &mut sink,
                            &buffer,
                            last_time,
                            &kinds,
                            &metrics,
                            &mut failing,
                        );
                        buffer.clear();
                        kinds.clear();
                    }
                    last_time = day_time;
                    if serde_json::to_writer(&mut buffer, &record).is_ok() {
                        buffer.push(b'\n');
                        kinds.push(record.event.kind());
                    }
                }
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !buffer.is_empty() {
            write_out(
                &mut sink,
                &buffer,
                last_time,
                &kinds,
                &metrics,
                &mut failing,
            );
            dirty = true;
        }
        shared_failing.store(failing, std::sync::atomic::Ordering::Relaxed);
        if !flushes.is_empty() {
            let _ = sink.sync();
            dirty = false;
            for done in flushes {
                let _ = done.send(());
            }
        }
    }
    let _ = sink.sync();
}

fn write_out(
    sink: &mut Box<dyn Sink>,
    lines: &[u8],
    now: i64,
    kinds: &[&'static str],
    metrics: &Option<Arc<ServerMetrics>>,
    failing: &mut bool,
) {
    match sink.write(lines, now) {
        Ok(()) => {
            if *failing {
                tracing::info!("audit trail: writing again");
                *failing = false;
            }
            if let Some(m) = metrics {
                for kind in kinds {
                    m.audit_events
                        .get_or_create(&TypeLabel { r#type: kind })
                        .inc();
                }
            }
        }
        Err(e) => {
            if let Some(m) = metrics {
                m.audit_write_errors.inc_by(kinds.len() as u64);
            }
            if !*failing {
                tracing::error!(
                    "audit trail: cannot write {} event(s): {e}; events are lost until writing succeeds again (counted in ids_audit_write_errors_total)",
                    kinds.len()
                );
                *failing = true;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn event(n: usize) -> Event {
        Event::ConfigurationReloaded {
            what: "access_control",
            result: "reloaded",
            clients: Some(n),
            error: None,
        }
    }

    /// A disk that fails while `failing` is set, and keeps what it was given otherwise.
    struct Disk {
        failing: Arc<AtomicBool>,
        kept: Arc<Mutex<Vec<u8>>>,
        /// Held while set: the writer blocks in `write` (a stalled disk).
        stall: Arc<Mutex<()>>,
    }

    impl Sink for Disk {
        fn write(&mut self, lines: &[u8], _now: i64) -> std::io::Result<()> {
            let _stalled = self.stall.lock().unwrap();
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("No space left on device"));
            }
            self.kept.lock().unwrap().extend_from_slice(lines);
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    type Handles = (Disk, Arc<AtomicBool>, Arc<Mutex<Vec<u8>>>, Arc<Mutex<()>>);

    fn disk() -> Handles {
        let failing = Arc::new(AtomicBool::new(false));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let stall = Arc::new(Mutex::new(()));
        (
            Disk {
                failing: failing.clone(),
                kept: kept.clone(),
                stall: stall.clone(),
            },
            failing,
            kept,
            stall,
        )
    }

    /// A full disk: the events are counted as write errors (and logged), recording returns at once,
    /// and writing resumes when the disk has room again.
    #[test]
    fn a_full_disk_is_counted_and_writing_resumes() {
        let metrics = Arc::new(ServerMetrics::new());
        let (disk, failing, kept, _) = disk();
        let auditor = Auditor::with_sink(Box::new(disk), Some(metrics.clone()), 1024).unwrap();
        failing.store(true, Ordering::SeqCst);
        for n in 0..10 {
            auditor.record(event(n), 1_764_700_000);
        }
        auditor.flush(Duration::from_secs(5));
        assert_eq!(metrics.audit_write_errors.get(), 10);
        assert!(kept.lock().unwrap().is_empty());
        assert!(!auditor.is_writing(), "readiness says writes fail");
        // Room again: readiness recovers without any event (the writer probes while idle).
        failing.store(false, Ordering::SeqCst);
        let mut recovered = false;
        for _ in 0..40 {
            if auditor.is_writing() {
                recovered = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(recovered);
        auditor.record(event(99), 1_764_700_001);
        auditor.flush(Duration::from_secs(5));
        let text = String::from_utf8(kept.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["type"], "configuration_reloaded");
        assert_eq!(line["clients"], 99);
        assert_eq!(line["time"], "2025-12-02T18:26:41Z");
        assert_eq!(
            metrics
                .audit_events
                .get_or_create(&TypeLabel {
                    r#type: "configuration_reloaded"
                })
                .get(),
            1
        );
    }

    /// A stalled disk: once the queue is full, events are dropped and counted; recording never
    /// waits for the disk.
    #[test]
    fn a_stalled_disk_never_blocks_recording() {
        let metrics = Arc::new(ServerMetrics::new());
        let (disk, _, kept, stall) = disk();
        let stalled = stall.lock().unwrap();
        let auditor = Auditor::with_sink(Box::new(disk), Some(metrics.clone()), 8).unwrap();
        let started = std::time::Instant::now();
        for n in 0..100 {
            auditor.record(event(n), 1_764_700_000);
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        // The writer holds at most one batch, the queue 8: the rest were dropped, and counted.
        let dropped = metrics.audit_dropped.get();
        assert!(dropped > 0, "{dropped}");
        drop(stalled);
        auditor.flush(Duration::from_secs(5));
        let written = kept.lock().unwrap().iter().filter(|b| **b == b'\n').count() as u64;
        assert_eq!(written + dropped, 100);
    }

    /// One file per UTC day, named by the day; files older than the retention are removed when a
    /// new day starts.
    #[test]
    fn daily_files_roll_over_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400;
        let start = 1_764_633_600; // 2025-12-02T00:00:00Z
        let mut files = DailyFiles::new(dir.path().to_path_buf(), 2);
        files.write(b"a\n", start + 10).unwrap();
        files.write(b"b\n", start + day + 10).unwrap();
        files.write(b"c\n", start + day + 20).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit-2025-12-02.jsonl", "audit-2025-12-03.jsonl"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit-2025-12-03.jsonl")).unwrap(),
            "b\nc\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("audit-2025-12-02.jsonl"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A line cut by a write that failed half-way is ended before the next event.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("audit-2025-12-03.jsonl"))
            .unwrap()
            .write_all(b"{\"cut")
            .unwrap();
        files.open = None;
        files.write(b"e\n", start + day + 30).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit-2025-12-03.jsonl")).unwrap(),
            "b\nc\n{\"cut\ne\n"
        );
        // Three days later: the first two are past the retention of 2 days.
        files.write(b"d\n", start + 4 * day).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit-2025-12-06.jsonl"]);
        assert_eq!(
            day_of("audit-2025-12-06.jsonl"),
            Some((start + 4 * day) / day)
        );
        assert_eq!(day_of("other.jsonl"), None);
    }
}
