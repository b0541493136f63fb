//! The embedded [`DeliveryStore`]: a folder on the server's disk (`Deliveries:DataFolder`).
//!
//! # Layout
//! ```text
//! <DataFolder>/deliveries/@<client>/<id>.idsenc        the content, IDSENC for the EncryptionCertificate
//! <DataFolder>/deliveries/@<client>/<id>.json          the record; its presence is the commit point
//! <DataFolder>/deliveries/@<client>/.<id>.*.partial    content or record being written
//! <DataFolder>/deliveries/<id>.idsenc, <id>.json       written before ids were per client: read, never written
//! ```
//! Delivery ids belong to the client that delivered them: each client has its folder, `@` followed by
//! its id with every byte outside `A-Z a-z 0-9 - _ .` written `%XX` (a long id is cut and ends with
//! `~` and 32 hex digits of its SHA-256), so the same id from two clients is two deliveries. The record
//! names its client; a record found in another client's folder is refused as corrupt.
//!
//! A store written before ids were per client keeps its deliveries directly in `deliveries/`: they are
//! read where they are (each belongs to the `client_id` of its record), and the server writes new ones
//! in the client folders only. Nothing is moved, so operator commands and older servers keep reading it.
//!
//! A delivery is committed by renaming the content into place, then the record (each fsynced, with the
//! folder). A crash before the record's rename leaves at most a `.partial` file or a content file
//! without a record; both are removed when the store is opened, so a delivery is either complete or
//! absent. Folders are created with mode 0700 and files with 0600.
//!
//! While a large delivery is being written, a thread of its own flushes it to the disk every
//! [`SYNC_EVERY`] bytes ([`Syncer`]), so that the disk works while the body still arrives and the fsync
//! of the commit only waits for the tail, rather than for the whole file after the last byte.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use ids_seal::atomic::AtomicFile;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::store::{DeliveryStore, PendingContent, Record, StoreError};
use super::{DeliveryId, DeliveryKey};

const CONTENT_EXT: &str = "idsenc";
/// Bytes written between two background flushes of a delivery's content.
const SYNC_EVERY: u64 = 32 * 1024 * 1024;
const RECORD_EXT: &str = "json";
/// The first character of a client's folder (never that of a delivery id).
const CLIENT_PREFIX: char = '@';
/// Longest client folder name written in full; longer ones are cut and end with a hash.
pub const MAX_CLIENT_FOLDER: usize = 160;

/// The folder name of `client`'s deliveries: `@` and the client id, every byte outside
/// `A-Z a-z 0-9 - _ .` written `%XX`; past [`MAX_CLIENT_FOLDER`] bytes, cut, then `~` and 32 hex
/// digits of the id's SHA-256. Different ids give different names.
pub fn client_folder_name(client: &str) -> String {
    let encoded: Vec<&str> = utf8_percent_encode(client, CLIENT_FOLDER_KEEPS).collect();
    let mut name = String::from(CLIENT_PREFIX);
    if encoded.iter().map(|piece| piece.len()).sum::<usize>() < MAX_CLIENT_FOLDER {
        name.extend(encoded);
        return name;
    }
    // Cut at [`MAX_CLIENT_FOLDER`] - 40 bytes, never inside a `%XX` escape (each escape is a piece
    // of its own; kept runs may be cut anywhere, they are ASCII).
    let limit = MAX_CLIENT_FOLDER - 40;
    for piece in encoded {
        let room = limit.saturating_sub(name.len());
        if piece.starts_with('%') {
            if piece.len() > room {
                break;
            }
            name.push_str(piece);
        } else if piece.len() > room {
            name.push_str(&piece[..room]);
            break;
        } else {
            name.push_str(piece);
        }
    }
    let hash = digest::digest(&digest::SHA256, client.as_bytes());
    name.push('~');
    name.push_str(&ids_pki::b64::hex(&hash.as_ref()[..16]));
    name
}

/// What a client folder name keeps as it is: ASCII letters, digits and `-_.`; every other byte is
/// written `%XX`.
const CLIENT_FOLDER_KEEPS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Deliveries kept in a folder.
#[derive(Debug)]
pub struct FolderStore {
    folder: PathBuf,
    /// Largest total of stored bytes (`Deliveries:QuotaMiB`), if any.
    quota: Option<u64>,
    /// Free space to leave on the disk (`Deliveries:MinFreeSpaceMiB`).
    min_free: u64,
    /// Bytes stored, and bytes reserved by deliveries in progress.
    used: Arc<Mutex<Usage>>,
    /// The last readiness answer and when it was found.
    readiness: Mutex<Option<(std::time::Instant, Result<String, String>)>>,
}

#[derive(Debug, Default)]
struct Usage {
    stored: u64,
    reserved: u64,
}

/// What opening the store found and cleaned up.
#[derive(Debug, Default)]
pub struct Opened {
    pub deliveries: usize,
    pub stored_bytes: u64,
    /// Leftovers of interrupted deliveries that were removed.
    pub removed: Vec<PathBuf>,
}

impl FolderStore {
    /// Whether a delivery could be stored now: the folder is writable (a probe file is created and
    /// removed: permissions, read-only remounts) and the disk has more free space than
    /// `Deliveries:MinFreeSpaceMiB`. The answer is public (`/health/ready`): paths and figures go to
    /// the log only.
    fn probe(&self) -> Result<String, String> {
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = self
            .folder
            .join(format!(".ready-probe-{}-{n}", std::process::id()));
        if let Err(e) = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)) {
            tracing::warn!(folder = %self.folder.display(), "readiness: the deliveries folder cannot be written: {e}");
            return Err("the deliveries folder cannot be written (the server log says why)".into());
        }
        match free_space(&self.folder) {
            Some(free) if free < self.min_free => {
                tracing::warn!(
                    folder = %self.folder.display(),
                    "readiness: {} free on the disk, less than the {} Deliveries:MinFreeSpaceMiB keeps free",
                    mib(free),
                    mib(self.min_free)
                );
                Err("less free disk space than Deliveries:MinFreeSpaceMiB keeps".into())
            }
            _ => Ok("writable, more free space than Deliveries:MinFreeSpaceMiB".into()),
        }
    }

    /// Opens (creating it if needed) `<data folder>/deliveries`. With `clean_up` (the server at
    /// start-up, the only writer), removes what interrupted deliveries left behind; operator commands
    /// open it without, so that they never touch a delivery a running server is receiving.
    pub fn open(
        data_folder: &Path,
        quota: Option<u64>,
        min_free: u64,
        clean_up: bool,
    ) -> Result<(FolderStore, Opened), StoreError> {
        Self::open_folder(&data_folder.join("deliveries"), quota, min_free, clean_up)
    }

    /// Opens the deliveries folder itself (`<data folder>/deliveries`, or a copy of it elsewhere:
    /// `identity-server store import --from-folder`), as [`FolderStore::open`] does.
    pub fn open_folder(
        folder: &Path,
        quota: Option<u64>,
        min_free: u64,
        clean_up: bool,
    ) -> Result<(FolderStore, Opened), StoreError> {
        let folder = folder.to_path_buf();
        if clean_up {
            create_private_folder(&folder)?;
        } else if !folder.is_dir() {
            return Err(StoreError::Corrupt {
                path: folder.display().to_string(),
                detail: "no deliveries folder here (Deliveries:DataFolder): has the server received any delivery?".into(),
            });
        }
        let mut opened = Opened::default();
        // The deliveries written before ids were per client, then each client's folder.
        scan(&folder, clean_up, &mut opened)?;
        for client_folder in client_folders(&folder)? {
            scan(&client_folder, clean_up, &mut opened)?;
        }
        Ok((
            FolderStore {
                folder,
                quota,
                min_free,
                used: Arc::new(Mutex::new(Usage {
                    stored: opened.stored_bytes,
                    reserved: 0,
                })),
                readiness: Mutex::new(None),
            },
            opened,
        ))
    }

    /// Where `key` is written: its client's folder.
    fn client_folder(&self, client: &str) -> PathBuf {
        self.folder.join(client_folder_name(client))
    }

    /// The record of `key` and the path of its content: in its client's folder, or (a delivery
    /// stored before ids were per client) in the top folder when its record names this client.
    fn locate(&self, key: &DeliveryKey) -> Result<Option<(Record, PathBuf)>, StoreError> {
        let folder = self.client_folder(key.client.as_str());
        let path = record_path(&folder, &key.id);
        if let Some(record) = read_record(&path)? {
            if record.client_id != key.client || record.id != key.id.as_str() {
                return Err(StoreError::Corrupt {
                    path: path.display().to_string(),
                    detail: format!(
                        "holds delivery `{}` of client `{}`, not `{}` of `{}`",
                        record.id,
                        record.client_id,
                        key.id.as_str(),
                        key.client
                    ),
                });
            }
            return Ok(Some((record, content_path(&folder, &key.id))));
        }
        match read_record(&record_path(&self.folder, &key.id))? {
            Some(record) if record.client_id == key.client => {
                Ok(Some((record, content_path(&self.folder, &key.id))))
            }
            _ => Ok(None),
        }
    }

    /// Checks the quota and the free disk space for `bytes` more, and reserves them.
    fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| StoreError::Full("storage accounting unavailable".into()))?;
        let taken = used.stored + used.reserved;
        if let Some(quota) = self.quota
            && taken.saturating_add(bytes) > quota
        {
            return Err(StoreError::Full(format!(
                "the delivery storage quota (Deliveries:QuotaMiB, {}) is used up: {} stored or in progress, this delivery needs {}",
                mib(quota),
                mib(taken),
                mib(bytes)
            )));
        }
        // Deliveries in progress will take their reservations from what is free now.
        if let Some(free) = free_space(&self.folder) {
            let needed = bytes
                .saturating_add(self.min_free)
                .saturating_add(used.reserved);
            if free < needed {
                return Err(StoreError::Full(format!(
                    "{}: {} free on the disk; this delivery needs {}, deliveries in progress {}, and Deliveries:MinFreeSpaceMiB keeps {} free",
                    self.folder.display(),
                    mib(free),
                    mib(bytes),
                    mib(used.reserved),
                    mib(self.min_free)
                )));
            }
        }
        used.reserved += bytes;
        Ok(())
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes available to this process on the file system holding `folder`.
#[cfg(unix)]
fn free_space(folder: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(folder).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_space(_folder: &Path) -> Option<u64> {
    None
}

fn create_private_folder(folder: &Path) -> Result<(), StoreError> {
    ids_seal::atomic::create_private_folder(folder)
        .map_err(|e| StoreError::io(folder, "create the folder", e))
}

fn content_path(folder: &Path, id: &DeliveryId) -> PathBuf {
    folder.join(format!("{}.{CONTENT_EXT}", id.as_str()))
}

fn record_path(folder: &Path, id: &DeliveryId) -> PathBuf {
    folder.join(format!("{}.{RECORD_EXT}", id.as_str()))
}

/// The files (not folders) of `folder`.
fn files_of(folder: &Path) -> Result<Vec<PathBuf>, StoreError> {
    entries_of(folder, |kind, _| kind.is_file())
}

/// The client folders (`@...`) of the store.
fn client_folders(folder: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut folders = entries_of(folder, |kind, name| {
        kind.is_dir() && name.to_string_lossy().starts_with(CLIENT_PREFIX)
    })?;
    folders.sort();
    Ok(folders)
}

/// The entries of `folder` whose type and name `keep` accepts.
fn entries_of(
    folder: &Path,
    keep: impl Fn(std::fs::FileType, &std::ffi::OsStr) -> bool,
) -> Result<Vec<PathBuf>, StoreError> {
    let entries = std::fs::read_dir(folder).map_err(|e| StoreError::io(folder, "list", e))?;
    let mut kept = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(folder, "list", e))?;
        let kind = entry
            .file_type()
            .map_err(|e| StoreError::io(&entry.path(), "look at", e))?;
        if keep(kind, &entry.file_name()) {
            kept.push(entry.path());
        }
    }
    Ok(kept)
}

/// Counts the deliveries of one folder and, with `clean_up`, removes what interrupted deliveries
/// left there.
fn scan(folder: &Path, clean_up: bool, opened: &mut Opened) -> Result<(), StoreError> {
    for path in files_of(folder)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let orphan_content = path.extension().is_some_and(|e| e == CONTENT_EXT)
            && !path.with_extension(RECORD_EXT).exists();
        let leftover = (name.starts_with('.') && name.ends_with(".partial")) || orphan_content;
        if leftover && !clean_up {
            continue;
        }
        if leftover {
            std::fs::remove_file(&path)
                .map_err(|e| StoreError::io(&path, "remove an interrupted delivery", e))?;
            opened.removed.push(path.clone());
        } else if path.extension().is_some_and(|e| e == RECORD_EXT) {
            opened.deliveries += 1;
        }
        if path.extension().is_some_and(|e| e == CONTENT_EXT) && !orphan_content {
            opened.stored_bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(())
}

/// The committed records of one folder.
fn records_in(folder: &Path, records: &mut Vec<Record>) -> Result<(), StoreError> {
    for path in files_of(folder)? {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || path.extension().is_none_or(|e| e != RECORD_EXT) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, "read", e))?;
        records.push(parse_record(&path, &bytes)?);
    }
    Ok(())
}

/// The record at `path`, if there is one.
fn read_record(path: &Path) -> Result<Option<Record>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => parse_record(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, "read", e)),
    }
}

impl DeliveryStore for FolderStore {
    fn check_ready(&self) -> Result<String, String> {
        // Probes come often and from several places (load balancers, a container HEALTHCHECK): the
        // answer is kept a second, and each probe file has its own name.
        let mut last = self
            .readiness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return answer.clone();
        }
        let answer = self.probe();
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }

    fn get(&self, key: &DeliveryKey) -> Result<Option<Record>, StoreError> {
        Ok(self.locate(key)?.map(|(record, _)| record))
    }

    fn with_id(&self, id: &DeliveryId) -> Result<Vec<Record>, StoreError> {
        let mut found = Vec::new();
        let legacy = read_record(&record_path(&self.folder, id))?;
        for folder in client_folders(&self.folder)? {
            if let Some(record) = read_record(&record_path(&folder, id))? {
                found.push(record);
            }
        }
        // A client's own folder wins over a record of the same client written before.
        if let Some(record) = legacy
            && !found.iter().any(|r| r.client_id == record.client_id)
        {
            found.push(record);
        }
        found.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(found)
    }

    fn list(&self) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        records_in(&self.folder, &mut records)?;
        for folder in client_folders(&self.folder)? {
            records_in(&folder, &mut records)?;
        }
        Record::sort_for_listing(&mut records);
        Ok(records)
    }

    fn begin(
        &self,
        key: &DeliveryKey,
        expected_bytes: u64,
    ) -> Result<Box<dyn PendingContent>, StoreError> {
        let folder = self.client_folder(key.client.as_str());
        if !folder.is_dir() {
            create_private_folder(&folder)?;
            // The new folder's entry is data of the store folder: make it durable too.
            ids_seal::atomic::sync_folder(&folder)
                .map_err(|e| StoreError::io(&self.folder, "sync", e))?;
        }
        self.reserve(expected_bytes)?;
        let content_path = content_path(&folder, &key.id);
        let mut pending = FolderPending {
            content: None,
            content_path: content_path.clone(),
            record_path: record_path(&folder, &key.id),
            reserved: expected_bytes,
            written: 0,
            used: self.used.clone(),
            content_in_place: false,
            committed: false,
            unsynced: 0,
            syncer: None,
        };
        // Overwriting is right here: a content file without a record is an interrupted delivery.
        // (On error, dropping `pending` releases the reservation.)
        pending.content = Some(
            AtomicFile::create(&content_path, true)
                .map_err(|e| StoreError::io(&content_path, "create", e))?,
        );
        Ok(Box::new(pending))
    }

    fn open(&self, key: &DeliveryKey) -> Result<Box<dyn Read + Send>, StoreError> {
        let Some((_, path)) = self.locate(key)? else {
            return Err(StoreError::io(
                &content_path(&self.client_folder(key.client.as_str()), &key.id),
                "open",
                std::io::ErrorKind::NotFound.into(),
            ));
        };
        let file = File::open(&path).map_err(|e| StoreError::io(&path, "open", e))?;
        Ok(Box::new(std::io::BufReader::with_capacity(64 * 1024, file)))
    }
}

fn parse_record(path: &Path, bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.display().to_string(),
        detail: format!("not a delivery record: {e}"),
    })
}

#[derive(Debug)]
struct FolderPending {
    content: Option<AtomicFile>,
    content_path: PathBuf,
    record_path: PathBuf,
    reserved: u64,
    written: u64,
    used: Arc<Mutex<Usage>>,
    /// The content was renamed into place (the record may still fail).
    content_in_place: bool,
    committed: bool,
    /// Bytes written since the last background flush was asked for.
    unsynced: u64,
    /// Started at the first [`SYNC_EVERY`] bytes.
    syncer: Option<Syncer>,
}

/// Flushes a file being written to the disk on a thread of its own, one flush at a time: a request
/// while one runs is dropped (the running one, or the next, covers its bytes). Memory: nothing.
#[derive(Debug)]
struct Syncer {
    wake: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(file: &File) -> Option<Syncer> {
        let file = file.try_clone().ok()?;
        let (wake, asked) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("delivery-sync".into())
            .spawn(move || {
                while asked.recv().is_ok() {
                    // A failure shows again, and counts, at the commit's own fsync.
                    let _ = file.sync_data();
                }
            })
            .ok()?;
        Some(Syncer { wake, thread })
    }

    fn ask(&self) {
        let _ = self.wake.try_send(());
    }

    /// Stops the thread once its flush under way is done.
    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

impl Write for FolderPending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = self
            .content
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the delivery was already committed"))?;
        let n = file.write(buf)?;
        self.written += n as u64;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY {
            self.unsynced = 0;
            if self.syncer.is_none() {
                self.syncer = Syncer::start(file.file());
            }
            if let Some(syncer) = &self.syncer {
                syncer.ask();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.content.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl PendingContent for FolderPending {
    fn bytes_written(&self) -> u64 {
        self.written
    }

    fn commit(mut self: Box<Self>, record: &Record) -> Result<(), StoreError> {
        if self.record_path.exists() {
            return Err(StoreError::AlreadyCommitted(record.id.to_string()));
        }
        let Some(content) = self.content.take() else {
            return Err(StoreError::AlreadyCommitted(record.id.to_string()));
        };
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
        content
            .commit()
            .map_err(|e| StoreError::io(&self.content_path, "store", e))?;
        self.content_in_place = true;
        let json = serde_json::to_vec_pretty(record).map_err(|e| StoreError::Corrupt {
            path: self.record_path.display().to_string(),
            detail: e.to_string(),
        })?;
        let mut file = AtomicFile::create(&self.record_path, false).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::AlreadyCommitted(record.id.to_string())
            } else {
                StoreError::io(&self.record_path, "create", e)
            }
        })?;
        file.write_all(&json)
            .map_err(|e| StoreError::io(&self.record_path, "write", e))?;
        file.commit().map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                StoreError::AlreadyCommitted(record.id.to_string())
            } else {
                StoreError::io(&self.record_path, "store", e)
            }
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for FolderPending {
    fn drop(&mut self) {
        if let Some(syncer) = self.syncer.take() {
            // Not joined: an abandoned upload need not wait for its last flush.
            drop(syncer.wake);
        }
        if let Ok(mut used) = self.used.lock() {
            used.reserved = used.reserved.saturating_sub(self.reserved);
            if self.committed {
                used.stored += self.written;
            }
        }
        if !self.committed && self.content_in_place {
            // The content was renamed into place but the record could not be written: remove it, so
            // that the delivery is absent rather than half there.
            let _ = std::fs::remove_file(&self.content_path);
        }
    }
}
