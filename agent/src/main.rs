//! `agent`: get a token, verify a token, check the agent's configuration, encrypt or decrypt files.
//!
//! Exit codes: 0 success, 1 failure not listed below, 2 usage or configuration error (the same
//! convention as `identity-server`, `new-openid-secret` and `ids-keytool`), 3 server unreachable or failing, 4 TLS trust,
//! 5 credentials rejected, 6 invalid token or unexpected answer, 7 file encrypted for another
//! certificate, 8 file damaged, truncated or modified, 9 file unreadable, unwritable or not encrypted,
//! 10 delivery refused by the server (not allowed, too large, id already used for another file).

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agent::check::{self, Line};
use agent::files::commands::{self, Format, Target};
use agent::files::{FilesError, Vault, logs};
use agent::{Agent, AgentError, Settings, SystemClock};
use clap::{Parser, Subcommand};
use ids_config::log_escape::EscapeControls;
use ids_pki::pfx::{Pfx, public_certificate_from_file};
use ids_seal::encrypted_file::Mode;

#[derive(Parser)]
#[command(
    version,
    about = "Agent of the identity server: client-credentials tokens over HTTPS, verified with the server's public key",
    after_help = "Exit codes: 0 success, 1 failure at run time, 2 usage or configuration error (as identity-server, new-openid-secret and ids-keytool), 3 server unreachable or failing, 4 TLS, 5 credentials refused, 6 invalid token or answer, 7 file for another certificate, 8 file damaged, 9 file unreadable or unwritable, 10 delivery refused."
)]
struct Cli {
    /// Folder holding appsettings.json and appsettings.agent.json.
    #[arg(long, global = true, default_value = ".", env = "AGENT_CONFIG_DIR")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Get an access token and print it (verified with the server's public key first).
    Token {
        /// The OpenId client to authenticate as (default: OpenId:DefaultOpenIdClient).
        #[arg(long)]
        client: Option<String>,
        /// Scope to request (space-separated); the server grants all allowed scopes when omitted.
        #[arg(long)]
        scope: Option<String>,
        /// Print the token response and the verified claims as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a token (argument, or `-` for standard input) and print its claims, or why it is rejected.
    Verify {
        /// The token, `Bearer <token>`, or `-` to read it from standard input.
        token: String,
    },
    /// Validate the configuration and certificates; unless --offline, also that the server is reachable,
    /// trusted, and accepts each client's credentials.
    Check {
        #[arg(long)]
        offline: bool,
        /// Warn about certificates that expire within this many days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        expiry_days: u64,
    },
    /// List the servers whose key is pinned (Tls:ServerPinning First, in <WorkFolderPath>/known_servers),
    /// or forget one.
    Trust {
        /// Remove the pin of AUTHORITY (`host:port` as listed, or the server's URL), e.g. after its key
        /// was changed on purpose: the next connection pins the key it presents then.
        #[arg(long, value_name = "AUTHORITY")]
        forget: Option<String>,
        /// List the pinned servers (what the command does without --forget).
        #[arg(long)]
        show: bool,
    },
    /// Deliver files to the server: each is decrypted as a stream (when encrypted with the agent's
    /// certificate) and sent over HTTPS with the agent's token; the server stores it encrypted with
    /// its own certificate. Delivering the same file again stores nothing new.
    Push {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Delivery id (one file only). Default: derived from the agent identifier, the name and the
        /// content, so that a repeated push is recognised.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// Name recorded on the server (one file only). Default: the file name, without `.enc` for an
        /// encrypted file.
        #[arg(long)]
        name: Option<String>,
    },
    /// Deliver every file dropped into <WorkFolderPath>/outbox, exactly once, retrying while the server
    /// is away, until SIGTERM or Ctrl-C.
    Run {
        /// Stop once the outbox is empty (for a scheduled job).
        #[arg(long)]
        once: bool,
    },
    /// Protect a password or secret setting (or every value of a JSON file) with the agent's
    /// EncryptionCertificate, into appsettings.encrypted.agent.json, so that it need not sit in clear JSON.
    Protect(ids_config::protected::ProtectArgs),
    /// Encrypt files for the agent's certificate (EncryptionCertificate) or the given ones: FILE ->
    /// FILE.enc (FILE.p7m with --format cms). The original is left in place.
    Encrypt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder for the encrypted files (default: beside each file).
        #[arg(short = 'o', long = "output-dir")]
        output_dir: Option<PathBuf>,
        /// Certificate to encrypt for (PEM, DER, or PFX without a password); repeat for several
        /// recipients. Replaces the agent's own certificate.
        #[arg(long = "recipient", value_name = "CERT")]
        recipients: Vec<PathBuf>,
        /// `native` (streaming, any size) or `cms` (readable by `openssl cms -decrypt`, up to 1 GiB).
        #[arg(long, value_enum, default_value = "native")]
        format: Format,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
    /// Decrypt files (the agent's format or CMS) with the agent's private key or the given PFX:
    /// FILE.enc -> FILE.
    Decrypt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Folder for the decrypted files (default: beside each file).
        #[arg(short = 'o', long = "output-dir", conflicts_with = "stdout")]
        output_dir: Option<PathBuf>,
        /// Write the plaintext to standard output (chunks are written as they are authenticated).
        #[arg(long)]
        stdout: bool,
        /// Output the authentic part of a damaged or cut-short file (a log written until a crash)
        /// and report where it stops.
        #[arg(long)]
        recover: bool,
        /// PFX file with the private key (default: EncryptionCertificate from the settings).
        #[arg(long, value_name = "PFX")]
        key: Option<PathBuf>,
        /// Environment variable holding the --key password.
        #[arg(
            long,
            value_name = "VAR",
            requires = "key",
            conflicts_with = "password_file"
        )]
        password_env: Option<String>,
        /// File holding the --key password (first line).
        #[arg(long, value_name = "FILE", requires = "key")]
        password_file: Option<PathBuf>,
        /// Replace existing output files.
        #[arg(long)]
        force: bool,
    },
}

/// The command line or the configuration is wrong.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error is exit code 2, as a configuration
            // error is (the operator has something to change), in every tool of the product.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Token {
                client,
                scope,
                json,
            } => token(&cli.config_dir, client, scope, json).await,
            Command::Verify { token } => verify(&cli.config_dir, &token).await,
            Command::Push { files, id, name } => push(&cli.config_dir, &files, id, name).await,
            Command::Run { once } => run(&cli.config_dir, once).await,
            Command::Check {
                offline,
                expiry_days,
            } => {
                init_logging(None, "off");
                check(&cli.config_dir, offline, expiry_days).await
            }
            Command::Protect(args) => {
                init_logging(None, "off");
                protect(&cli.config_dir, args)
            }
            Command::Trust { forget, show } => {
                init_logging(None, "off");
                trust(&cli.config_dir, forget.as_deref(), show)
            }
            Command::Encrypt {
                files,
                output_dir,
                recipients,
                format,
                force,
            } => encrypt(
                &cli.config_dir,
                &files,
                output_dir,
                &recipients,
                format,
                force,
            ),
            Command::Decrypt {
                files,
                output_dir,
                stdout,
                recover,
                key,
                password_env,
                password_file,
                force,
            } => {
                let key = key.map(|path| KeyArg {
                    path,
                    password_env,
                    password_file,
                });
                let mode = if recover { Mode::Recover } else { Mode::Strict };
                decrypt(
                    &cli.config_dir,
                    &files,
                    output_dir,
                    stdout,
                    mode,
                    key,
                    force,
                )
            }
        }
    });
    ExitCode::from(code)
}

/// Logs: warnings and errors on standard error (`RUST_LOG` overrides), and, when the settings are
/// loaded, the log file at the settings' level.
fn init_logging(file: Option<logs::LogWriter>, file_level: &str) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::fmt::MakeWriter as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Control characters in an event are escaped (a value from the server cannot forge a line), so
    // colour codes would be too: no ANSI colours.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(|| EscapeControls::new(std::io::stderr()))
        .with_ansi(false)
        .event_format(Terse)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        );
    let file = file.map(|writer| {
        tracing_subscriber::fmt::layer()
            .with_writer(move || EscapeControls::new(writer.make_writer()))
            .with_ansi(false)
            .with_filter(tracing_subscriber::EnvFilter::new(file_level))
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
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

/// The settings, the agent's vault, and the log file, for the commands that run with the settings.
/// Keep the guard until the end: dropping it writes the log file's final chunk.
struct Session {
    settings: Settings,
    vault: Arc<Vault>,
    _log: Option<logs::LogGuard>,
}

fn session(dir: &Path) -> Result<Session, u8> {
    let loaded = match Settings::load(dir, agent::clock::Clock::now(&SystemClock)) {
        Ok(loaded) => loaded,
        Err(errors) => {
            init_logging(None, "off");
            for e in errors {
                eprintln!("error: {e}");
            }
            return Err(2);
        }
    };
    let settings = loaded.settings;
    let vault = match Vault::from_settings(&settings, agent::clock::Clock::now(&SystemClock)) {
        Ok(v) => v,
        Err(e) => {
            init_logging(None, "off");
            return Err(fail_files(&e));
        }
    };
    let recipients: &[ids_pki::Certificate] = if vault.encrypts() {
        vault.certificates()
    } else {
        &[]
    };
    let (writer, guard) = match logs::start(
        &settings.log_folder,
        recipients,
        settings.log_retention_days,
    ) {
        Ok((writer, guard)) => (Some(writer), Some(guard)),
        Err(e) => {
            eprintln!("warning: no log file: {e}");
            (None, None)
        }
    };
    init_logging(writer, &settings.log_level);
    if let Some(line) = ids_config::describe_ignored(&settings.ignored_sections, "agent") {
        tracing::info!("{line}");
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if !vault.encrypts() {
        tracing::warn!(
            "EncryptionCertificate:EncryptFile is false: the agent's logs, temporary and exported files under {} are written in clear",
            settings.work_folder.display()
        );
    }
    if let Some(guard) = &guard {
        tracing::info!(log = %guard.path().display(), "agent {} started", env!("CARGO_PKG_VERSION"));
    }
    Ok(Session {
        settings,
        vault: Arc::new(vault),
        _log: guard,
    })
}

/// Starts the session (settings, vault, log file) and builds the agent from its settings.
fn agent(dir: &Path) -> Result<(Session, Agent), u8> {
    let session = session(dir)?;
    let agent = Agent::new(session.settings.clone()).map_err(|e| fail(&e))?;
    Ok((session, agent))
}

/// Prints a line on standard output; a closed pipe (`agent token | head`) is not an error.
fn print_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn fail(error: &AgentError) -> u8 {
    tracing::error!("{error}");
    error.exit_code()
}

fn fail_files(error: &FilesError) -> u8 {
    tracing::error!("{error}");
    error.exit_code()
}

async fn token(dir: &Path, client: Option<String>, scope: Option<String>, json: bool) -> u8 {
    // The session holds the log file: keep it until the command ends.
    let (_session, agent) = match agent(dir) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let client = client.unwrap_or_else(|| agent.settings().default_client.clone());
    let token = match agent.fetch_token(&client, scope.as_deref()).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    tracing::info!(client = %client, expires_in = ?token.expires_in, "token obtained and verified");
    if json {
        let out = serde_json::json!({
            "client_id": token.client_id,
            "access_token": token.access_token.expose(),
            "token_type": token.token_type,
            "expires_in": token.expires_in,
            "scope": token.scope,
            "header": { "alg": token.claims.algorithm.as_str(), "kid": token.claims.kid },
            "claims": token.claims.claims,
        });
        print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_line(token.access_token.expose());
    }
    0
}

async fn verify(dir: &Path, token: &str) -> u8 {
    let text = if token == "-" {
        let mut buf = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut buf) {
            eprintln!("error: cannot read the token from standard input: {e}");
            return 1;
        }
        buf
    } else {
        token.to_string()
    };
    // The session holds the log file: keep it until the command ends.
    let (_session, agent) = match agent(dir) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    match agent.verify(&text).await {
        Ok(claims) => {
            let out = serde_json::json!({
                "valid": true,
                "header": { "alg": claims.algorithm.as_str(), "kid": claims.kid },
                "claims": claims.claims,
            });
            print_line(&serde_json::to_string_pretty(&out).unwrap_or_default());
            0
        }
        Err(e) => fail(&e),
    }
}

async fn check(dir: &Path, offline: bool, expiry_days: u64) -> u8 {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let report = check::run(dir, &vars, offline, expiry_days, Arc::new(SystemClock)).await;
    for line in &report.lines {
        match line {
            Line::Ok(t) => print_line(&format!("ok: {t}")),
            Line::Note(t) => print_line(&format!("note: {t}")),
            Line::Warning(t) => print_line(&format!("warning: {t}")),
            // Errors on standard error, results on standard output (as every command does).
            Line::Error(t) => eprintln!("error: {t}"),
        }
    }
    if report.exit_code == 0 {
        print_line(if offline {
            "configuration OK (server not contacted: --offline)"
        } else {
            "all checks passed"
        });
    }
    report.exit_code
}

/// `agent protect`: encrypts settings for the agent's EncryptionCertificate.
fn protect(dir: &Path, args: ids_config::protected::ProtectArgs) -> u8 {
    use ids_config::protected::{self, ProtectError};
    let schema = agent::settings::schema();
    match protected::run_in(
        dir,
        agent::settings::LAYERS,
        &schema,
        args,
        "appsettings.encrypted.agent.json",
    ) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(ProtectError::Input(m)) => {
            eprintln!("error: {m}");
            EXIT_USAGE
        }
        Err(ProtectError::Io(m)) => {
            eprintln!("error: {m}");
            1
        }
    }
}

/// `agent trust`: lists the pinned servers, or forgets one.
fn trust(dir: &Path, forget: Option<&str>, show: bool) -> u8 {
    use agent::tls::known_servers::{self, StoreError};
    let settings = match Settings::load(dir, agent::clock::Clock::now(&SystemClock)) {
        Ok(loaded) => loaded.settings,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return 2;
        }
    };
    let store = known_servers::path(&settings.work_folder);
    if !matches!(
        settings.server_pinning,
        agent::settings::ServerPinning::First { .. }
    ) {
        eprintln!(
            "warning: Tls:ServerPinning is not First: the pins in {} are not used",
            store.display()
        );
    }
    let store_failure = |e: &StoreError| -> u8 {
        eprintln!("error: {e}");
        match e {
            StoreError::Malformed { .. } => 2,
            _ => agent::files::EXIT_FILE,
        }
    };
    let mut code = 0;
    if let Some(given) = forget {
        let authority =
            agent::tls::authority(given).unwrap_or_else(|| given.trim().to_ascii_lowercase());
        match known_servers::forget(&store, &authority) {
            Ok(Some(pin)) => print_line(&format!(
                "forgot {} (key thumbprint {}, pinned on {}): the next connection pins the key the server presents then",
                pin.authority, pin.thumbprint, pin.first_seen
            )),
            Ok(None) => {
                eprintln!(
                    "error: {} does not pin {authority} (`agent trust` lists the pinned servers)",
                    store.display()
                );
                code = 1;
            }
            Err(e) => return store_failure(&e),
        }
    }
    if show || forget.is_none() {
        match known_servers::load(&store) {
            Ok(pins) if pins.is_empty() => {
                print_line(&format!("no server pinned in {}", store.display()))
            }
            Ok(pins) => {
                for p in pins {
                    print_line(&format!(
                        "{} key thumbprint {} pinned on {} ({} line {})",
                        p.authority,
                        p.thumbprint,
                        p.first_seen,
                        store.display(),
                        p.line
                    ));
                }
            }
            Err(e) => return store_failure(&e),
        }
    }
    code
}

/// `decrypt --key`: a PFX and where its password comes from.
struct KeyArg {
    path: PathBuf,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

impl KeyArg {
    fn open(&self) -> Result<Pfx, String> {
        let password = match (&self.password_env, &self.password_file) {
            (Some(var), _) => std::env::var(var).map_err(|_| {
                format!("--password-env: the environment variable `{var}` is not set")
            })?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|text| text.lines().next().unwrap_or_default().to_string())
                .map_err(|e| format!("--password-file {}: {e}", file.display()))?,
            (None, None) => String::new(),
        };
        let password = zeroize::Zeroizing::new(password);
        Pfx::from_file(&self.path, &password).map_err(|e| format!("--key: {e}"))
    }
}

/// The session when the command needs the settings; `None` (and logging to standard error only) when
/// the command line gave all the certificates.
fn optional_session(dir: &Path, needed: bool) -> Result<Option<Session>, u8> {
    if needed {
        session(dir).map(Some)
    } else {
        init_logging(None, "off");
        Ok(None)
    }
}

fn encrypt(
    dir: &Path,
    files: &[PathBuf],
    output_dir: Option<PathBuf>,
    recipients: &[PathBuf],
    format: Format,
    force: bool,
) -> u8 {
    let session = match optional_session(dir, recipients.is_empty()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let vault = match &session {
        Some(s) => {
            // Once for all the files, rather than the same error for each.
            if let Err(e) = commands::can_encrypt(&s.vault) {
                return fail_files(&e);
            }
            None
        }
        None => {
            let mut certs = Vec::new();
            for path in recipients {
                match public_certificate_from_file(path, "", "a password") {
                    Ok(cert) => certs.push(cert),
                    Err(e) => return fail_files(&FilesError::Setup(format!("--recipient: {e}"))),
                }
            }
            match Vault::with(None, certs, true) {
                Ok(v) => Some(v),
                Err(e) => return fail_files(&e),
            }
        }
    };
    let vault = match chosen_vault(&vault, &session, &output_dir) {
        Ok(v) => v,
        Err(code) => return code,
    };
    each_file(files, |input, progress| {
        let output = commands::encrypted_name(input, output_dir.as_deref(), format);
        match commands::encrypt_file(vault, input, &output, format, force, progress) {
            Ok(bytes) => {
                tracing::info!(input = %input.display(), output = %output.display(), bytes, "file encrypted");
                eprintln!(
                    "encrypted {} -> {} ({bytes} bytes, for {})",
                    input.display(),
                    output.display(),
                    describe_recipients(vault)
                );
                0
            }
            Err(e) => fail_files(&e),
        }
    })
}

/// The vault from the command line if one was given, else the settings' one; creates `--output-dir`.
fn chosen_vault<'a>(
    given: &'a Option<Vault>,
    session: &'a Option<Session>,
    output_dir: &Option<PathBuf>,
) -> Result<&'a Vault, u8> {
    let vault = match (given, session) {
        (Some(v), _) => v,
        (None, Some(s)) => s.vault.as_ref(),
        (None, None) => return Err(2),
    };
    output_folder(output_dir)?;
    Ok(vault)
}

/// Runs `each` on every file with its progress bar; the exit code is the first non-zero one (every file
/// is tried).
fn each_file(files: &[PathBuf], mut each: impl FnMut(&Path, &mut dyn FnMut(u64)) -> u8) -> u8 {
    let mut code = 0;
    for input in files {
        let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        let bar = progress_bar(input, size);
        let c = each(input, &mut |n| bar.inc(n));
        bar.finish_and_clear();
        if code == 0 {
            code = c;
        }
    }
    code
}

/// Creates `--output-dir` if it does not exist yet.
fn output_folder(dir: &Option<PathBuf>) -> Result<(), u8> {
    match dir {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| {
            fail_files(&FilesError::Io {
                file: dir.display().to_string(),
                what: "cannot create the output folder",
                source: e,
            })
        }),
        None => Ok(()),
    }
}

fn describe_recipients(vault: &Vault) -> String {
    vault
        .recipients()
        .iter()
        .map(|r| r.name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn decrypt(
    dir: &Path,
    files: &[PathBuf],
    output_dir: Option<PathBuf>,
    stdout: bool,
    mode: Mode,
    key: Option<KeyArg>,
    force: bool,
) -> u8 {
    let session = match optional_session(dir, key.is_none()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let own_vault = match &key {
        Some(key) => match key
            .open()
            .and_then(|pfx| Vault::with(Some(pfx), Vec::new(), false).map_err(|e| e.to_string()))
        {
            Ok(v) => Some(v),
            Err(e) => return fail_files(&FilesError::Setup(e)),
        },
        None => None,
    };
    let vault = match chosen_vault(&own_vault, &session, &output_dir) {
        Ok(v) => v,
        Err(code) => return code,
    };
    each_file(files, |input, progress| {
        let target = if stdout {
            Target::Stdout
        } else {
            Target::File {
                path: commands::decrypted_name(input, output_dir.as_deref()),
                overwrite: force,
            }
        };
        match commands::decrypt_file(vault, input, &target, mode, progress) {
            Ok(done) => report_decrypted(input, &target, &done),
            Err(e) => fail_files(&e),
        }
    })
}

/// Prints what a decryption did; with --recover, a file that stopped early because it was cut short
/// is a success (the authentic part was output), one that was modified is not.
fn report_decrypted(input: &Path, target: &Target, done: &commands::Decrypted) -> u8 {
    let to = match target {
        Target::File { path, .. } => path.display().to_string(),
        Target::Stdout => "standard output".into(),
    };
    tracing::info!(input = %input.display(), output = %to, bytes = done.bytes, "file decrypted");
    if !done.authenticated {
        tracing::warn!(
            "{}: {} is not authenticated encryption: a modified file may decrypt to altered content without an error",
            input.display(),
            done.format
        );
    }
    match &done.stopped {
        None => {
            eprintln!(
                "decrypted {} -> {to} ({} bytes, {})",
                input.display(),
                done.bytes,
                done.format
            );
            0
        }
        Some((reason, damaged)) => {
            eprintln!(
                "recovered {} authentic bytes of {} -> {to}; stopped: {reason}",
                done.bytes,
                input.display()
            );
            if *damaged {
                agent::files::EXIT_DAMAGED
            } else {
                0
            }
        }
    }
}

/// A progress bar on standard error for files over 4 MiB when it is a terminal; hidden otherwise.
fn progress_bar(file: &Path, len: u64) -> indicatif::ProgressBar {
    if len < 4 * 1024 * 1024 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(file.display().to_string());
    bar
}

async fn push(dir: &Path, files: &[PathBuf], id: Option<String>, name: Option<String>) -> u8 {
    if files.len() > 1 && (id.is_some() || name.is_some()) {
        eprintln!("error: --id and --name apply to one file; push the files one by one");
        return EXIT_USAGE;
    }
    let (session, agent) = match agent(dir) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let mut code = 0;
    for file in files {
        let c = push_one(&session, &agent, file, id.as_deref(), name.as_deref()).await;
        if code == 0 {
            code = c;
        }
    }
    code
}

async fn push_one(
    session: &Session,
    agent: &Agent,
    file: &Path,
    id: Option<&str>,
    name: Option<&str>,
) -> u8 {
    use agent::delivery;
    let name = name.map(str::to_string).unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let prepared = {
        let (vault, path) = (session.vault.clone(), file.to_path_buf());
        tokio::task::spawn_blocking(move || delivery::prepare(&vault, &path, &name)).await
    };
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return fail_files(&e),
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return 9;
        }
    };
    let settings = &session.settings;
    let id = id.map(str::to_string).unwrap_or_else(|| {
        delivery::content_id(
            &settings.default_client,
            settings.agent_identifier.as_deref(),
            &prepared,
        )
    });
    // Temporary failures (server away or busy, storage full) are retried as `Http:Retries` says.
    let mut attempt = 0;
    let result = loop {
        attempt += 1;
        match delivery::deliver(agent, &session.vault, &prepared, &id).await {
            Err(delivery::DeliverError::Server(
                agent::client::deliveries::DeliveryFailure::Temporary {
                    detail,
                    retry_after,
                },
            )) if attempt <= settings.http.retries => {
                let pause = retry_after
                    .unwrap_or_else(|| agent.http().backoff(attempt))
                    .min(settings.http.max_retry_delay);
                tracing::warn!(
                    "{}: {detail}; retrying in {} ms (attempt {attempt} of {})",
                    file.display(),
                    pause.as_millis(),
                    settings.http.retries + 1
                );
                tokio::time::sleep(pause).await;
            }
            other => break other,
        }
    };
    match result {
        Ok(done) => {
            let r = &done.receipt;
            let what = if done.already {
                "already delivered"
            } else {
                "delivered"
            };
            tracing::info!(file = %file.display(), id = %r.id, size = r.size, sha256 = %r.sha256, already = done.already, "file delivered");
            print_line(&format!(
                "{}: {what} as `{}` ({} bytes, SHA-256 {}, received {})",
                file.display(),
                r.id,
                r.size,
                r.sha256,
                r.received_at
            ));
            0
        }
        Err(e) => {
            tracing::error!("{}: {e}", file.display());
            e.exit_code()
        }
    }
}

async fn run(dir: &Path, once: bool) -> u8 {
    let (session, agent) = match agent(dir) {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    let delivery = session.settings.delivery.clone();
    let result = agent::delivery::outbox::run(
        Arc::new(agent),
        session.vault.clone(),
        delivery,
        once,
        stop_signal(),
    )
    .await;
    match result {
        Ok(summary) => {
            if once && summary.left > 0 {
                // Only when stopped by a signal before the outbox was empty.
                return 3;
            }
            if once && summary.unclaimable > 0 {
                return agent::files::EXIT_FILE;
            }
            0
        }
        Err(e) => fail_files(&e),
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop requested");
}
