//! The agent's log options for `ids_runtime::logging`: standard error shows warnings and errors as
//! `warning: ...` / `error: ...` lines (the same shape as the messages the commands print themselves;
//! `RUST_LOG` overrides the level), and, when a command runs with the settings, the log file gets the
//! full format at the settings' level.

use ids_runtime::logging::{Stderr, StderrFormat};
use tracing_subscriber::fmt::MakeWriter;

/// Standard error: terse, at `warn`.
const STDERR: Stderr<'static> = Stderr {
    format: StderrFormat::Terse,
    default_filter: "warn",
};

/// Standard error in `format` (`Logging:Format`: terse lines or JSON), and `file`, when given, at
/// `file_level` (an `EnvFilter` directive such as `info`). A second call does nothing.
pub fn init<F>(format: StderrFormat, file: Option<F>, file_level: &str)
where
    F: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    ids_runtime::logging::init(Stderr { format, ..STDERR }, file, file_level);
}

/// Standard error only: for the commands that run without the settings or before they are loaded.
pub fn init_stderr() {
    ids_runtime::logging::init_stderr(STDERR);
}
