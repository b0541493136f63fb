//! One module per subcommand (as rust-lang/cargo's `src/bin/cargo/commands/`): each declares its
//! arguments (`Args`) and `exec`, which calls the library and prints what it returns.

pub mod check;
pub mod deliveries;
pub mod health;
pub mod protect;
pub mod quickstart;
pub mod serve;
pub mod store;

/// Logs to standard error in the full format (or JSON lines: `Logging:Format` of the settings in
/// `config_dir`), filtered by `RUST_LOG` (default `info`); control characters escaped, no colours
/// (`ids_runtime::logging`).
pub fn init_logging(config_dir: &std::path::Path) {
    ids_runtime::logging::init_stderr(ids_runtime::logging::Stderr {
        format: identity_server::settings::operations::log_format(config_dir),
        default_filter: "info",
    });
}
