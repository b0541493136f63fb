//! Atomic output files: written under a temporary name in the destination folder (same file system,
//! so the rename is atomic), fsynced, then renamed into place and the folder fsynced. A crash or a kill
//! at any point leaves either the previous file or the complete new one under the final name, never a
//! partial one; an error or a drop before [`AtomicFile::commit`] removes the temporary file.
//!
//! Temporary files are named `.<final name>.<random>.partial` and created with mode 0600. A `kill -9`
//! can leave one behind; it never carries the final name.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An output file that appears under its final name only when complete.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    overwrite: bool,
}

impl AtomicFile {
    /// Starts writing `target`. Without `overwrite`, an existing `target` is refused now and again at
    /// commit time (no rename over a file that appeared meanwhile).
    pub fn create(target: &Path, overwrite: bool) -> std::io::Result<Self> {
        if !overwrite && target.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file already exists (use --force to replace it)",
            ));
        }
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(folder)?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
            overwrite,
        })
    }

    /// The temporary file, to write into.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The temporary file's path (for tests and messages).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// fsyncs the data, renames the file into place and fsyncs the folder so the rename is durable.
    pub fn commit(self) -> std::io::Result<()> {
        self.temp.as_file().sync_all()?;
        let persisted = if self.overwrite {
            self.temp.persist(&self.target)
        } else {
            self.temp.persist_noclobber(&self.target)
        };
        persisted.map_err(|e| e.error)?;
        sync_folder(&self.target)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.as_file_mut().flush()
    }
}

/// fsyncs the folder holding `path`, making a rename in it durable (POSIX: the directory entry is
/// data of the folder). An error (EIO) is returned: a rename that may not survive a crash must not be
/// reported as done. A no-op where folders cannot be opened or synced (Windows).
pub fn sync_folder(path: &Path) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        File::open(folder)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = File::open(folder).and_then(|dir| dir.sync_all());
        Ok(())
    }
}

/// Creates `folder` (and its parents) readable by the owner only (0700 on Unix): where encrypted
/// files, logs and deliveries are kept.
pub fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(folder)
}
