//! `agent run`: delivers every file dropped into the outbox, exactly once, across crashes, restarts and
//! server outages.
//!
//! # Folders (under `WorkFolderPath`, mode 0700)
//! ```text
//! outbox/       drop files here (write them elsewhere, or under a name starting with `.` or ending
//!               with `.partial` / `.tmp`, then rename them in); files still changing are left alone
//! sending/      <id>_<name>: claimed, with the delivery id chosen for it
//! sent/         <id>_<name>: delivered and confirmed by the server (Delivery:KeepSentFiles)
//! quarantine/   <id>_<name> and <id>_<name>.reason.txt: files that must not or cannot be delivered
//! ```
//! A file is claimed by renaming it from `outbox/` to `sending/` with a new random id in its name; from
//! then on that id is its delivery id, also after a crash. The server stores a delivery id once and
//! answers a repeat with the first receipt, so a file whose delivery was confirmed but not yet moved to
//! `sent/` (the agent was killed in between) is simply confirmed again. Every rename stays on one file
//! system, so it is atomic.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ids_runtime::RetryPolicy;
use tokio::sync::watch;

use super::{Prepared, PushError, deliver, new_id, prepare};
use crate::Agent;
use crate::client::deliveries::UploadFailure;
use crate::files::VaultError;
use crate::files::vault::{Vault, create_private_folder};
use crate::settings::DeliverySettings;

/// Hex characters of an id in a `sending/` name, followed by `_`.
const ID_LEN: usize = 32;

/// What `run` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub delivered: u64,
    pub quarantined: u64,
    /// Files still waiting in `outbox/` or `sending/` when it stopped.
    pub left: u64,
    /// Files in `outbox/` that could not be claimed (each was reported).
    pub unclaimable: u64,
}

/// The outbox folders.
#[derive(Clone, Debug)]
pub struct Folders {
    pub outbox: PathBuf,
    pub sending: PathBuf,
    pub sent: PathBuf,
    pub quarantine: PathBuf,
}

impl Folders {
    pub fn under(work: &Path) -> Folders {
        Folders {
            outbox: work.join("outbox"),
            sending: work.join("sending"),
            sent: work.join("sent"),
            quarantine: work.join("quarantine"),
        }
    }

    fn create(&self) -> Result<(), VaultError> {
        for folder in [&self.outbox, &self.sending, &self.sent, &self.quarantine] {
            create_private_folder(folder)?;
        }
        Ok(())
    }
}

/// Runs until `shutdown` completes (or, with `once`, until the outbox is empty). The delivery under
/// way when `shutdown` completes gets `Delivery:ShutdownGraceSeconds` to finish; after that it is
/// abandoned, its file stays in `sending/` with its id and is delivered on the next start.
pub async fn run(
    agent: Arc<Agent>,
    vault: Arc<Vault>,
    settings: DeliverySettings,
    once: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Summary, VaultError> {
    let folders = Folders::under(&agent.settings().work_folder);
    folders.create()?;
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    tracing::info!(
        outbox = %folders.outbox.display(),
        server = %agent.settings().application_uri,
        "delivering files dropped into the outbox"
    );
    let mut summary = Summary::default();
    let mut last_cleanup: Option<SystemTime> = None;
    // Outbox files that cannot be claimed (reported once each, retried at every look).
    let mut unclaimable = std::collections::HashSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if last_cleanup.is_none_or(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600))
        {
            remove_old_sent(&folders.sent, settings.sent_retention_days);
            last_cleanup = Some(SystemTime::now());
        }
        let claimed = claim(&folders, settings.settle, &mut unclaimable);
        let pending = in_order(&folders.sending)?;
        if let Some(m) = agent.metrics() {
            m.outbox_files
                .set((pending.len() as u64 + waiting(&folders.outbox, &unclaimable)) as i64);
        }
        if pending.is_empty() {
            if once && claimed == 0 && waiting(&folders.outbox, &unclaimable) == 0 {
                break;
            }
            if sleep_or_stop(settings.poll_interval, &stop).await {
                break;
            }
            continue;
        }
        let mut progress = false;
        for path in pending {
            if *stop.borrow() {
                break;
            }
            let processed = process(&agent, &vault, &settings, &folders, &path, &stop).await;
            if let Some(m) = agent.metrics() {
                match processed {
                    Processed::Delivered => {
                        m.delivery("delivered");
                        m.last_delivery.set(agent.now());
                        m.outbox_files.dec();
                    }
                    Processed::Quarantined => {
                        m.delivery("quarantined");
                        m.outbox_files.dec();
                    }
                    Processed::Stopped => {}
                }
            }
            match processed {
                Processed::Delivered => summary.delivered += 1,
                Processed::Quarantined => summary.quarantined += 1,
                Processed::Stopped => break,
            }
            progress = true;
        }
        if !progress && sleep_or_stop(settings.poll_interval, &stop).await {
            break;
        }
    }
    summary.left =
        in_order(&folders.sending)?.len() as u64 + waiting(&folders.outbox, &unclaimable);
    summary.unclaimable = unclaimable
        .iter()
        .filter(|p| p.exists() && **p != folders.outbox)
        .count() as u64;
    tracing::info!(
        delivered = summary.delivered,
        quarantined = summary.quarantined,
        left = summary.left,
        "outbox stopped"
    );
    Ok(summary)
}

enum Processed {
    Delivered,
    Quarantined,
    Stopped,
}

/// Delivers one claimed file, retrying with backoff while the server is away.
async fn process(
    agent: &Agent,
    vault: &Arc<Vault>,
    settings: &DeliverySettings,
    folders: &Folders,
    path: &Path,
    stop: &watch::Receiver<bool>,
) -> Processed {
    let Some((id, name)) = split_claimed(path) else {
        return quarantine(
            folders,
            path,
            "the file name in sending/ has no delivery id",
        );
    };
    if let Err(reason) = acceptable_name(&name) {
        return quarantine(folders, path, &reason);
    }
    // 1 s, doubling up to Delivery:MaxRetryDelaySeconds, without jitter and without end; a server's
    // Retry-After replaces the pause, capped the same way.
    let policy = RetryPolicy::forever(Duration::from_secs(1), settings.max_retry_delay);
    let mut attempt: u32 = 0;
    loop {
        // Read (again, on a retry: a file changed meanwhile is sent as it is now) for its SHA-256.
        let prepared = {
            let (vault, path, name) = (vault.clone(), path.to_path_buf(), name.clone());
            tokio::task::spawn_blocking(move || prepare(&vault, &path, &name)).await
        };
        let prepared: Prepared = match prepared {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return quarantine(folders, path, &not_sent(&e)),
            Err(e) => return quarantine(folders, path, &format!("cannot read the file: {e}")),
        };
        let delivery = deliver(agent, vault, &prepared, &id);
        tokio::pin!(delivery);
        let mut stop_wait = stop.clone();
        let result = tokio::select! {
            r = &mut delivery => r,
            _ = stop_wait.wait_for(|s| *s) => {
                tracing::info!(id = %id, name = %name, "stopping: giving the current delivery {} s to finish", settings.shutdown_grace.as_secs());
                match tokio::time::timeout(settings.shutdown_grace, &mut delivery).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::warn!(id = %id, name = %name, "delivery abandoned at shutdown; it stays in sending/ and is sent again on the next start");
                        return Processed::Stopped;
                    }
                }
            }
        };
        match result {
            Ok(done) => {
                tracing::info!(
                    id = %id,
                    name = %name,
                    size = done.receipt.size,
                    sha256 = %done.receipt.sha256,
                    received_at = %done.receipt.received_at,
                    already = done.already,
                    "file delivered"
                );
                finish(settings, folders, path);
                return Processed::Delivered;
            }
            Err(PushError::File(e)) => return quarantine(folders, path, &not_sent(&e)),
            Err(PushError::Server(UploadFailure::Refused {
                status,
                error,
                description,
                ..
            })) => {
                return quarantine(
                    folders,
                    path,
                    &format!("the server refused it (HTTP {status} {error}): {description}"),
                );
            }
            Err(PushError::Server(failure)) => {
                attempt = attempt.saturating_add(1);
                let retry_after = match &failure {
                    UploadFailure::Temporary { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = policy.pause(attempt, retry_after);
                if let Some(m) = agent.metrics() {
                    m.delivery("retried");
                }
                tracing::warn!(id = %id, name = %name, "delivery failed, retrying in {} s: {failure}", wait.as_secs());
                if sleep_or_stop(wait, stop).await {
                    return Processed::Stopped;
                }
            }
        }
    }
}

fn not_sent(e: &VaultError) -> String {
    e.to_string()
}

/// Sleeps for `wait`; true when asked to stop meanwhile.
async fn sleep_or_stop(wait: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut waiter = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = waiter.wait_for(|s| *s) => true,
    }
}

/// Moves ready files from `outbox/` to `sending/<new id>_<name>`; returns how many. A file that cannot
/// be moved (permissions, a name too long once prefixed with its id) is reported once and left where
/// it is: one bad file never stops the service.
fn claim(
    folders: &Folders,
    settle: Duration,
    unclaimable: &mut std::collections::HashSet<PathBuf>,
) -> usize {
    let mut claimed = 0;
    let files = match ready(&folders.outbox) {
        Ok(files) => files,
        Err(e) => {
            if unclaimable.insert(folders.outbox.clone()) {
                tracing::error!("{e}");
            }
            return 0;
        }
    };
    for (path, modified) in files {
        if modified.elapsed().unwrap_or_default() < settle {
            continue;
        }
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let id = match new_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!("{e}");
                return claimed;
            }
        };
        let target = folders.sending.join(format!("{id}_{name}"));
        match std::fs::rename(&path, &target) {
            Ok(()) => {
                unclaimable.remove(&path);
                claimed += 1;
            }
            // Gone meanwhile (another agent on the same folder, or the writer took it back).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                if unclaimable.insert(path.clone()) {
                    tracing::error!(
                        path = %path.display(),
                        "cannot move it to sending/, so it is not delivered (rename it, or fix the permissions): {e}"
                    );
                }
            }
        }
    }
    if claimed > 0 {
        let _ = ids_seal::atomic::sync_folder(&folders.sending.join("x"));
    }
    claimed
}

/// Regular files of a folder that are not hidden or temporary, with their modification time.
fn ready(folder: &Path) -> Result<Vec<(PathBuf, SystemTime)>, VaultError> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| VaultError::io(folder, "cannot list", e))?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".partial") || name.ends_with(".tmp") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push((
                entry.path(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    Ok(files)
}

/// Files in the outbox still to be claimed (not counting those that cannot be).
fn waiting(outbox: &Path, unclaimable: &std::collections::HashSet<PathBuf>) -> u64 {
    ready(outbox).map_or(0, |files| {
        files
            .iter()
            .filter(|(p, _)| !unclaimable.contains(p))
            .count() as u64
    })
}

/// Claimed files, oldest first.
fn in_order(sending: &Path) -> Result<Vec<PathBuf>, VaultError> {
    let mut files = ready(sending)?;
    files.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// `<id>_<name>` -> (id, name).
fn split_claimed(path: &Path) -> Option<(String, String)> {
    let file = path.file_name()?.to_str()?;
    let (id, rest) = (file.get(..ID_LEN)?, file.get(ID_LEN..)?);
    let name = rest.strip_prefix('_')?;
    (id.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty())
        .then(|| (id.to_string(), name.to_string()))
}

/// The server accepts names without control characters, up to 255 bytes.
fn acceptable_name(name: &str) -> Result<(), String> {
    if name.len() > 255 || name.chars().any(char::is_control) {
        return Err("the file name has control characters or is longer than 255 bytes; the server would refuse it".into());
    }
    Ok(())
}

/// After a confirmed delivery: to `sent/`, or removed.
fn finish(settings: &DeliverySettings, folders: &Folders, path: &Path) {
    let result = if settings.keep_sent {
        let target = folders.sent.join(path.file_name().unwrap_or_default());
        // Dated by its delivery, so that Delivery:SentRetentionDays counts from then.
        let _ = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        std::fs::rename(path, &target)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = result {
        // Harmless: the next pass confirms it again (same id) and retries the move.
        tracing::error!(path = %path.display(), "delivered, but cannot move it out of sending/: {e}");
    }
}

/// Moves a file that must not be sent to `quarantine/`, with the reason beside it.
fn quarantine(folders: &Folders, path: &Path, reason: &str) -> Processed {
    let name = path.file_name().unwrap_or_default();
    let target = folders.quarantine.join(name);
    tracing::error!(path = %path.display(), quarantine = %target.display(), "file quarantined, not sent: {reason}");
    if let Err(e) = std::fs::rename(path, &target) {
        tracing::error!(path = %path.display(), "cannot move it to quarantine/: {e}");
        return Processed::Stopped;
    }
    let mut note = target.into_os_string();
    note.push(".reason.txt");
    let _ = std::fs::write(&note, format!("{reason}\n"));
    Processed::Quarantined
}

/// Removes files in `sent/` older than `days` (0: keep them).
fn remove_old_sent(sent: &Path, days: u64) {
    if days == 0 {
        return;
    }
    let limit = Duration::from_secs(days * 86_400);
    if let Ok(files) = ready(sent) {
        for (path, modified) in files {
            if modified.elapsed().unwrap_or_default() > limit
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(path = %path.display(), "cannot remove an old sent file: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_names_carry_their_id() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            split_claimed(Path::new(&format!("/w/sending/{id}_report_1.csv"))),
            Some((id.to_string(), "report_1.csv".to_string()))
        );
        assert_eq!(split_claimed(Path::new("/w/sending/report.csv")), None);
        assert_eq!(split_claimed(Path::new(&format!("/w/sending/{id}_"))), None);
        assert_eq!(
            split_claimed(Path::new("/w/sending/0123456789abcdef0123456789abcdeX_a")),
            None
        );
    }
}
