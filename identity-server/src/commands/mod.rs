//! One module per subcommand (as rust-lang/cargo's `src/bin/cargo/commands/`): each declares its
//! arguments (`Args`) and `exec`, which calls the library and prints what it returns.

pub mod check;
pub mod deliveries;
pub mod protect;
pub mod quickstart;
pub mod serve;

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Control characters in an event are escaped (a client's value cannot forge a line), so
        // colour codes would be too: no ANSI colours.
        .with_writer(|| ids_config::log_escape::EscapeControls::new(std::io::stderr()))
        .with_ansi(false)
        .init();
}
