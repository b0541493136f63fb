//! Where the agent's log events go: warnings and errors on standard error as `warning: ...` /
//! `error: ...` lines (the same shape as the messages the commands print themselves), and, when a
//! command runs with the settings, the log file at the settings' level.
//!
//! Control characters in an event are escaped on every output ([`EscapeControls`]), so that a value
//! that came from the server cannot forge a line; colour codes would be escaped too, so there are none.
//! Self-contained (it knows nothing of the settings or of the log file's format) so that it can move
//! into the shared runtime crate.

use ids_config::log_escape::EscapeControls;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the process's subscriber: standard error at `warn` (`RUST_LOG` overrides), and `file`, when
/// given, at `file_level` (an `EnvFilter` directive such as `info`). A second call does nothing.
pub fn init<F>(file: Option<F>, file_level: &str)
where
    F: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(Escaped(std::io::stderr))
        .with_ansi(false)
        .event_format(Terse)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let file = file.map(|writer| {
        tracing_subscriber::fmt::layer()
            .with_writer(Escaped(writer))
            .with_ansi(false)
            .with_filter(tracing_subscriber::EnvFilter::new(file_level))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// Standard error only, at `warn` (`RUST_LOG` overrides): for the commands that run without the
/// settings or before they are loaded.
pub fn init_stderr() {
    init(None::<fn() -> std::io::Sink>, "off");
}

/// A writer whose output has its control characters escaped.
struct Escaped<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaped<M> {
    type Writer = EscapeControls<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapeControls::new(self.0.make_writer())
    }
}

/// Standard error shows `warning: ...` / `error: ...` lines, as the messages of the other commands; the
/// log file keeps the full format with timestamps.
struct Terse;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Terse
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "{level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
