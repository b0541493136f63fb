//! The agent's log files: tracing output written to `<LogFolderPath>/agent-<UTC start>-<pid>.log.enc`
//! (encrypted with the vault's certificates) or `.log` (when `EncryptFile` is false).
//!
//! Lines go through a channel to one writer thread, which appends whatever has arrived and then seals
//! it as a chunk: under load chunks are large, when idle every line is sealed at once. A process that
//! dies leaves a file without its final chunk, which `agent decrypt --recover` reads up to the last
//! sealed line. Files rotate at UTC midnight and at 64 MiB; files older than `LogRetentionDays` are
//! deleted at start-up and at each rotation. A batch reaches the kernel when it is sealed (it survives
//! the process being killed); it is fsynced only when the file is closed, so a power loss can lose the
//! last seconds of lines.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use ids_pki::Certificate;
use ids_seal::encrypted_file::{Encryptor, Recipient};

use super::VaultError;
use super::vault::create_private_folder;
use crate::files::FilesSetup;

const ROTATE_BYTES: u64 = 64 * 1024 * 1024;
const BATCH_BYTES: usize = 64 * 1024;
const QUEUE: usize = 4096;

enum Message {
    Line(Vec<u8>),
    Finish,
}

/// Keeps the writer thread alive; dropping it writes the final chunk and closes the file.
#[derive(Debug)]
pub struct LogGuard {
    tx: SyncSender<Message>,
    worker: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl LogGuard {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Finish);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A `tracing_subscriber` writer that hands each formatted event to the log thread.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: SyncSender<Message>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            tx: self.tx.clone(),
            buf: Vec::new(),
        }
    }
}

/// One event's text; sent when the formatter is done with it.
#[derive(Debug)]
pub struct EventWriter {
    tx: SyncSender<Message>,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // Blocks when the queue is full rather than losing lines; a gone writer thread is ignored.
            let line = std::mem::take(&mut self.buf);
            if let Err(TrySendError::Full(message)) = self.tx.try_send(Message::Line(line)) {
                let _ = self.tx.send(message);
            }
        }
    }
}

/// Starts the log thread. With `recipients` the files are encrypted for them; with none, plain.
pub fn start(
    folder: &Path,
    recipients: &[Certificate],
    retention_days: u64,
) -> Result<(LogWriter, LogGuard), VaultError> {
    create_private_folder(folder)?;
    let retention = Duration::from_secs(retention_days * 86_400);
    let recipients = recipients
        .iter()
        .map(|c| {
            Recipient::from_certificate(c)
                .map_err(|e| VaultError::Setup(FilesSetup::LogRecipient(e)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut sink = Sink {
        folder: folder.to_path_buf(),
        retention,
        recipients,
        current: None,
        written: 0,
        day: 0,
        failed: false,
    };
    sink.rotate()?;
    let path = sink
        .current
        .as_ref()
        .map(|s| s.path.clone())
        .unwrap_or_default();
    let (tx, rx) = sync_channel(QUEUE);
    let worker = std::thread::Builder::new()
        .name("agent-log".into())
        .spawn(move || run(rx, sink))
        .map_err(|e| VaultError::io(folder, "cannot start the log writer", e))?;
    Ok((
        LogWriter { tx: tx.clone() },
        LogGuard {
            tx,
            worker: Some(worker),
            path,
        },
    ))
}

fn run(rx: Receiver<Message>, mut sink: Sink) {
    while let Ok(message) = rx.recv() {
        let Message::Line(first) = message else {
            break;
        };
        sink.append(&first);
        let mut batch = first.len();
        let mut finish = false;
        while batch < BATCH_BYTES {
            match rx.try_recv() {
                Ok(Message::Line(line)) => {
                    batch += line.len();
                    sink.append(&line);
                }
                Ok(Message::Finish) => {
                    finish = true;
                    break;
                }
                Err(_) => break,
            }
        }
        sink.seal();
        if finish {
            break;
        }
    }
    sink.finish();
}

struct Sink {
    folder: PathBuf,
    /// Log files older than this are deleted at each rotation (start-up included).
    retention: Duration,
    recipients: Vec<Recipient>,
    current: Option<Segment>,
    written: u64,
    day: u64,
    /// After a write error the thread reports once on standard error and drops further lines.
    failed: bool,
}

struct Segment {
    path: PathBuf,
    out: Output,
}

enum Output {
    Plain(File),
    Encrypted(Encryptor<File>),
}

impl Sink {
    fn append(&mut self, line: &[u8]) {
        if self.failed {
            return;
        }
        if (self.written >= ROTATE_BYTES || today() != self.day)
            && let Err(e) = self.rotate()
        {
            self.fail(&e.to_string());
            return;
        }
        let result = match self.current.as_mut().map(|s| &mut s.out) {
            Some(Output::Plain(f)) => f.write_all(line),
            Some(Output::Encrypted(e)) => e.write_all(line),
            None => Ok(()),
        };
        match result {
            Ok(()) => self.written += line.len() as u64,
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// Makes everything appended so far durable against a crash of the process.
    fn seal(&mut self) {
        let result = match self.current.as_mut().map(|s| &mut s.out) {
            Some(Output::Plain(f)) => f.flush().map_err(|e| e.to_string()),
            Some(Output::Encrypted(e)) => e.seal_partial().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    fn finish(&mut self) {
        if let Some(segment) = self.current.take() {
            let result = match segment.out {
                Output::Plain(f) => f.sync_all().map_err(|e| e.to_string()),
                Output::Encrypted(e) => e
                    .finish()
                    .map_err(|e| e.to_string())
                    .and_then(|f| f.sync_all().map_err(|e| e.to_string())),
            };
            if let Err(e) = result {
                self.fail(&e);
            }
        }
    }

    fn rotate(&mut self) -> Result<(), VaultError> {
        self.finish();
        delete_old_logs(&self.folder, self.retention);
        let path = self.new_path();
        let file = create_log_file(&path)?;
        let out = if self.recipients.is_empty() {
            Output::Plain(file)
        } else {
            Output::Encrypted(
                Encryptor::new(file, &self.recipients).map_err(|e| VaultError::format(&path, e))?,
            )
        };
        self.current = Some(Segment { path, out });
        self.written = 0;
        self.day = today();
        Ok(())
    }

    fn new_path(&self) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let ext = if self.recipients.is_empty() {
            "log"
        } else {
            "log.enc"
        };
        let pid = std::process::id();
        let mut path = self.folder.join(format!("agent-{stamp}-{pid}.{ext}"));
        let mut n = 1;
        while path.exists() {
            path = self.folder.join(format!("agent-{stamp}-{pid}-{n}.{ext}"));
            n += 1;
        }
        path
    }

    fn fail(&mut self, error: &str) {
        if !self.failed {
            let file = self
                .current
                .as_ref()
                .map(|s| s.path.display().to_string())
                .unwrap_or_else(|| self.folder.display().to_string());
            eprintln!("error: {file}: cannot write the log file, logging to it stops: {error}");
        }
        self.failed = true;
    }
}

fn create_log_file(path: &Path) -> Result<File, VaultError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| VaultError::io(path, "cannot create the log file", e))
}

fn today() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// Deletes `agent-*.log` and `agent-*.log.enc` files last written more than `age` ago.
fn delete_old_logs(folder: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let cutoff = SystemTime::now().checked_sub(age);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_log =
            name.starts_with("agent-") && (name.ends_with(".log") || name.ends_with(".log.enc"));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .zip(cutoff)
            .is_some_and(|(modified, cutoff)| modified < cutoff);
        if is_log && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
