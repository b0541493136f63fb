//! `agent`: get a token, verify a token, or check the agent's configuration.
//!
//! Exit codes: 0 success, 1 usage, 2 configuration, 3 server unreachable or failing, 4 TLS trust,
//! 5 credentials rejected, 6 invalid token or unexpected answer.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agent::check::{self, Line};
use agent::{Agent, AgentError, Settings, SystemClock};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Agent of the identity server: client-credentials tokens over HTTPS, verified with the server's public key"
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
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error is exit code 1 (2 means configuration).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
            Command::Check { offline } => check(&cli.config_dir, offline).await,
        }
    });
    ExitCode::from(code)
}

/// Loads the settings and builds the agent, printing warnings and errors.
fn agent(dir: &Path) -> Result<Agent, u8> {
    let loaded = match Settings::load(dir, agent::clock::Clock::now(&SystemClock)) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Err(2);
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Agent::new(loaded.settings).map_err(|e| fail(&e))
}

/// Prints a line on standard output; a closed pipe (`agent token | head`) is not an error.
fn print_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn fail(error: &AgentError) -> u8 {
    eprintln!("error: {error}");
    error.exit_code()
}

async fn token(dir: &Path, client: Option<String>, scope: Option<String>, json: bool) -> u8 {
    let agent = match agent(dir) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let client = client.unwrap_or_else(|| agent.settings().default_client.clone());
    let token = match agent.fetch_token(&client, scope.as_deref()).await {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
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
    let agent = match agent(dir) {
        Ok(a) => a,
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

async fn check(dir: &Path, offline: bool) -> u8 {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let report = check::run(dir, &vars, offline, Arc::new(SystemClock)).await;
    for line in &report.lines {
        match line {
            Line::Ok(t) => print_line(&format!("ok: {t}")),
            Line::Warning(t) => print_line(&format!("warning: {t}")),
            Line::Error(t) => print_line(&format!("error: {t}")),
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
