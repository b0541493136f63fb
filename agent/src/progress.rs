//! Progress bars for long file operations (`agent encrypt`, `agent decrypt`): shown on standard error
//! only when it is a terminal and the file is large enough for the wait to be noticed, so that scripts
//! and logs never see them.

use std::io::IsTerminal as _;
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

/// Files smaller than this finish before a bar would be worth drawing.
const SHOWN_FROM: u64 = 4 * 1024 * 1024;

/// A bar counting the `len` bytes of `file`; hidden for a small file or when standard error is not a
/// terminal.
pub fn bar(file: &Path, len: u64) -> ProgressBar {
    if len < SHOWN_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(file.display().to_string());
    bar
}
