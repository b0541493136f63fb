//! The journal file: one line per entry, read back at start-up and rewritten with its live entries
//! (start-up and compaction), always as a new file renamed over the old one.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use ids_seal::atomic::AtomicFile;

use super::{JOURNAL, Opened};
use crate::oauth::client_keys::{LEEWAY, MemoryReplayCache};

pub(super) const HEADER: &str = "# ids replay journal v1: <128-bit replay key, hex> <exp, Unix seconds> <client id, base64url>\n";
/// Malformed lines named one by one in the start-up report (the rest are counted).
const REPORTED_LINES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: [u8; 16],
    pub(super) expires_at: i64,
    pub(super) client: Box<str>,
}

impl Entry {
    pub(super) fn line(&self) -> String {
        format!(
            "{} {} {}\n",
            ids_pki::b64::hex(&self.key),
            self.expires_at,
            ids_pki::b64::url(self.client.as_bytes())
        )
    }

    pub(super) fn parse(line: &str) -> Result<Entry, &'static str> {
        let mut fields = line.split(' ');
        let (Some(key), Some(exp), Some(client), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err("expected three fields separated by spaces");
        };
        if key.len() != 32 {
            return Err("the key is not 32 hex digits");
        }
        let bytes: [u8; 16] = ids_pki::b64::hex_decode(key)
            .and_then(|b| b.try_into().ok())
            .ok_or("the key is not 32 hex digits")?;
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

    pub(super) fn live(&self, now: i64) -> bool {
        self.expires_at.saturating_add(LEEWAY) >= now
    }
}

/// Puts a rewritten journal in place; the handle to append to it. The handle is taken before the
/// rename, so that it is the new journal's: opening the path afterwards could fail (no file handle
/// left), leaving appends to go to the replaced file.
pub(super) fn commit_for_appending(mut fresh: AtomicFile) -> std::io::Result<File> {
    let file = fresh.file().try_clone()?;
    fresh.commit()?;
    Ok(file)
}

/// Removes what an interrupted compaction left (`.journal.*.partial`).
pub(super) fn remove_leftovers(folder: &Path) {
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
pub(super) struct Compacted {
    pub(super) entries: usize,
    pub(super) earliest: Option<i64>,
}

/// Copies the live entries of the journal `old` to `out`; at start-up (`load`), also puts them into
/// the cache and reports what was skipped.
pub(super) fn copy_live(
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
