//! One module per subcommand (as rust-lang/cargo's `src/bin/cargo/commands/`): each declares its
//! arguments (`Args`) and `exec`, which calls the library and prints what it returns.

pub mod check;
pub mod deliveries;
pub mod protect;
pub mod quickstart;
pub mod serve;
pub mod store;

/// Logs to standard error in the full format, filtered by `RUST_LOG` (default `info`); control
/// characters escaped, no colours (`ids_runtime::logging`).
pub fn init_logging() {
    ids_runtime::logging::init_stderr(ids_runtime::logging::Stderr {
        format: ids_runtime::logging::StderrFormat::Full,
        default_filter: "info",
    });
}
