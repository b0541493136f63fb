//! `identity-server store import --from-folder DIR`: an embedded store's deliveries copied into
//! PostgreSQL, idempotently.
//!
//! The content is copied as it is stored (IDSENC for the `EncryptionCertificate`: nothing is decrypted,
//! so no key is needed) through the same lease and commit as an upload, with the record unchanged
//! (its `received_at` stays the original). A delivery already in PostgreSQL with the same file is
//! skipped, so a second run copies nothing; one holding another file is reported as a conflict and
//! left as it is.

use std::path::{Path, PathBuf};

use super::PgDeliveryStore;
use crate::deliveries::folder::FolderStore;
use crate::deliveries::store::{DeliveryStore, Record, StoreError};
use crate::deliveries::{DeliveryId, DeliveryKey};

/// What happened to one delivery of the folder.
#[derive(Debug)]
pub enum Imported {
    Copied(Record),
    /// Already in PostgreSQL with the same file.
    Skipped(Record),
    /// PostgreSQL holds another file under this client's id: not overwritten.
    Conflict {
        ours: Record,
        theirs: Record,
    },
    /// Could not be copied (the reason names the file or the database).
    Failed {
        record: Record,
        error: StoreError,
    },
}

/// Every delivery of the folder and what became of it.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub folder: PathBuf,
    pub deliveries: Vec<Imported>,
}

impl ImportReport {
    /// Copied, skipped, conflicts, failed.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for d in &self.deliveries {
            match d {
                Imported::Copied(_) => c.0 += 1,
                Imported::Skipped(_) => c.1 += 1,
                Imported::Conflict { .. } => c.2 += 1,
                Imported::Failed { .. } => c.3 += 1,
            }
        }
        c
    }
}

/// Whether two records are the same delivered file.
fn same_file(a: &Record, b: &Record) -> bool {
    a.size == b.size && a.sha256 == b.sha256 && a.name == b.name
}

/// Copies every delivery of `folder` (a deliveries folder) into `pg`; `each` is told of each one as it
/// is done. A delivery that fails is reported and the others go on; only a folder that cannot be read
/// (or a database that cannot be reached) stops it.
pub fn import(
    folder: &Path,
    pg: &PgDeliveryStore,
    mut each: impl FnMut(&Imported),
) -> Result<ImportReport, StoreError> {
    let (source, _) = FolderStore::open_folder(folder, None, 0, false)?;
    let mut report = ImportReport {
        folder: folder.to_path_buf(),
        deliveries: Vec::new(),
    };
    for record in source.list()? {
        let key = DeliveryKey::new(&record.client_id, &record.id);
        let done = match pg.get(&key) {
            Err(e @ StoreError::Unavailable(_)) => return Err(e),
            Err(error) => Imported::Failed { record, error },
            Ok(Some(theirs)) if same_file(&theirs, &record) => Imported::Skipped(theirs),
            Ok(Some(theirs)) => Imported::Conflict {
                ours: record,
                theirs,
            },
            Ok(None) => copy(&source, pg, &key, record),
        };
        each(&done);
        report.deliveries.push(done);
    }
    Ok(report)
}

fn copy(source: &FolderStore, pg: &PgDeliveryStore, key: &DeliveryKey, record: Record) -> Imported {
    let copied = (|| {
        let mut content = source.open(key)?;
        let mut pending = pg.begin(key, record.stored_bytes)?;
        std::io::copy(&mut content, &mut pending).map_err(|e| {
            // The database's errors come wrapped in the writer's; the folder's are plain I/O.
            let from_store = e.get_ref().is_some_and(|inner| inner.is::<StoreError>());
            let detail = e.to_string();
            match e.into_inner().map(|inner| inner.downcast::<StoreError>()) {
                Some(Ok(store)) if from_store => *store,
                _ => StoreError::Corrupt {
                    path: describe(key),
                    detail: format!("cannot copy the content: {detail}"),
                },
            }
        })?;
        if pending.bytes_written() != record.stored_bytes {
            return Err(StoreError::Corrupt {
                path: describe(key),
                detail: format!(
                    "the stored file is {} bytes, its record says {}",
                    pending.bytes_written(),
                    record.stored_bytes
                ),
            });
        }
        pending.commit(&record)
    })();
    match copied {
        Ok(()) => Imported::Copied(record),
        // Committed by someone else meanwhile: look again.
        Err(StoreError::AlreadyCommitted(_)) => match pg.get(key) {
            Ok(Some(theirs)) if same_file(&theirs, &record) => Imported::Skipped(theirs),
            Ok(Some(theirs)) => Imported::Conflict {
                ours: record,
                theirs,
            },
            Ok(None) | Err(_) => Imported::Failed {
                error: StoreError::InProgress(key.id.as_str().to_string()),
                record,
            },
        },
        Err(error) => Imported::Failed { record, error },
    }
}

fn describe(key: &DeliveryKey) -> String {
    format!(
        "delivery `{}` of client `{}`",
        DeliveryId::as_str(&key.id),
        key.client
    )
}
