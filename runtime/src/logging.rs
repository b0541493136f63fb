//! The log set-up of both apps, written once: standard error filtered by `RUST_LOG`, and optionally a
//! log file at its own level. Each app says how standard error looks ([`StderrFormat`]) and its
//! default level; everything else is common.
//!
//! Control characters in an event are escaped on every output ([`EscapeControls`]), so that a value
//! that came from another party cannot forge a line; colour codes would be escaped too, so there are
//! none. The module knows nothing of settings or of the log file's format: the caller hands it a
//! writer.

use tracing_subscriber::Layer as _;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::log_escape::EscapeControls;

/// How standard error shows an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrFormat {
    /// `tracing-subscriber`'s full format: timestamp, level, target, fields (the server, whose
    /// standard error is its log).
    Full,
    /// `warning: ...` / `error: ...` lines, the shape of the messages a command prints itself (the
    /// agent, whose log is a file).
    Terse,
    /// One JSON object per line (`Logging:Format` `Json`): timestamp, level, target, fields, for
    /// log collectors that parse lines.
    Json,
}

impl StderrFormat {
    /// `Logging:Format`: `Text` (the app's own format) or `Json`, case-insensitive; the message says
    /// what was expected.
    pub fn parse(value: &str, text: StderrFormat) -> Result<StderrFormat, String> {
        match value.trim() {
            v if v.eq_ignore_ascii_case("text") => Ok(text),
            v if v.eq_ignore_ascii_case("json") => Ok(StderrFormat::Json),
            v => Err(format!("`{v}` is not a log format: expected Text or Json")),
        }
    }
}

/// What standard error shows: its format, and the `EnvFilter` directive used when `RUST_LOG` is not
/// set (or not valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stderr<'a> {
    pub format: StderrFormat,
    pub default_filter: &'a str,
}

/// Installs the process's subscriber: standard error as `stderr` says, and `file`, when given, at
/// `file_filter` (an `EnvFilter` directive such as `info`) in the full format. A second call does
/// nothing.
pub fn init<F>(stderr: Stderr<'_>, file: Option<F>, file_filter: &str)
where
    F: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(stderr.default_filter));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(Escaped(std::io::stderr))
        .with_ansi(false);
    let stderr: Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync> = match stderr.format {
        StderrFormat::Full => layer.with_filter(filter).boxed(),
        StderrFormat::Terse => layer.event_format(Terse).with_filter(filter).boxed(),
        StderrFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let file = file.map(|writer| {
        tracing_subscriber::fmt::layer()
            .with_writer(Escaped(writer))
            .with_ansi(false)
            .with_filter(tracing_subscriber::EnvFilter::new(file_filter))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// Standard error only.
pub fn init_stderr(stderr: Stderr<'_>) {
    init(stderr, None::<fn() -> std::io::Sink>, "off");
}

/// A writer whose output has its control characters escaped.
struct Escaped<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaped<M> {
    type Writer = EscapeControls<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapeControls::new(self.0.make_writer())
    }
}

/// `level: fields` on one line, the level spelled as the commands' own messages spell it.
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
