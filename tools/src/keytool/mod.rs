//! `ids-keytool`: keys and certificates without `openssl` recipes.
//!
//! - `ca`, `server`, `client`: a private CA and the TLS certificates it issues (mutual TLS on a private
//!   CA, replacing the `openssl genrsa` / `req` / `x509 -req` steps);
//! - `csr`, `sign`: the same with the private key never leaving the requester's machine;
//! - `pfx`: certificate + key (+ chain) -> PKCS#12, AES-256/SHA-256 or `--legacy` 3DES/SHA-1;
//! - `keygen`: an `ssh-keygen`-like key pair and self-signed certificate in `~/.ids`, with the
//!   `authorized_clients/` folder in server mode;
//! - `thumbprint`: RFC 7638 JWK thumbprints (the Gorgone `authorized_clients` key), `x5t#S256` and the
//!   Windows SHA-1 thumbprint of any key, certificate, PFX or JWK file.
//!
//! Passwords and passphrases come only from environment variables or files (never from argv, which
//! `ps` shows), or are generated. Private files are written 0600 and atomically; nothing is
//! overwritten without `--force`. Errors name the file or argument; bad input exits with status 2.
//! The formats are described in `docs/keys-and-certificates.md`.

// The argument structs' doc comments are the `--help` text, shown as written: `<stem>.crt` is a
// placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod authority;
mod files;
mod keygen;
mod pfx;
mod request;
mod thumbprint;

use std::io::Write;
use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ids_devpki::{DevCertError, KeyKind};
use ids_pki::keyfile::KeyFileError;

/// Bad input from the operator: a missing or unreadable file, a wrong passphrase, a refused option
/// combination. Exits with status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The exit status for an error: 2 for bad input, 1 otherwise.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|e| e.is::<BadInput>()) {
        2
    } else {
        1
    }
}

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// A key file that cannot be used is bad input; a failure to encode is not.
fn key_error(error: KeyFileError) -> anyhow::Error {
    match error {
        KeyFileError::Write { .. } => error.into(),
        other => bad(other.to_string()),
    }
}

/// Names, requests and CA files the operator gave are bad input; generation failures are not.
fn cert_error(error: DevCertError) -> anyhow::Error {
    match error {
        DevCertError::Request { .. }
        | DevCertError::Authority { .. }
        | DevCertError::Name { .. } => bad(error.to_string()),
        other => other.into(),
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "ids-keytool",
    version,
    about = "Keys and certificates for the identity server and its clients: a private CA, TLS server and \
             client certificates, CSRs, PFX files, ssh-keygen-like key pairs, JWK thumbprints",
    after_help = "Passwords and passphrases are read from environment variables (--*-env VAR) or files \
                  (--*-file F), never from the command line.\n\nExit codes: 0 success, 1 failure at run time, 2 usage error or bad input (as identity-server, agent and new-openid-secret)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a private certificate authority: DIR/ca.crt and DIR/ca.key.
    Ca(CaArgs),
    /// Issue a TLS server certificate (SAN = every --name) signed by the CA.
    Server(ServerArgs),
    /// Issue a TLS client certificate for a client id, signed by the CA.
    Client(ClientArgs),
    /// Create a certificate signing request (PKCS#10); the private key stays on this machine.
    Csr(CsrArgs),
    /// Sign a certificate signing request with the CA.
    Sign(SignArgs),
    /// Bundle a certificate, its private key and a chain into a PFX (PKCS#12) file.
    Pfx(PfxArgs),
    /// Generate a key pair and a self-signed certificate in the manner of ssh-keygen.
    Keygen(KeygenArgs),
    /// Print the RFC 7638 JWK thumbprint (and certificate thumbprints) of key files.
    Thumbprint(ThumbprintArgs),
    /// Write the public certificate of a PFX file (PEM), e.g. the server's signing certificate for the
    /// agent's IdentityServer:X509KeyFilePath. The private key never leaves the PFX.
    Cert(CertArgs),
    /// Write man pages and shell completions (for packages).
    #[command(hide = true)]
    GenerateAssets(ids_runtime::assets::GenerateAssets),
}

/// `cert`: the certificate (and optionally the chain) of a PFX, without its key.
#[derive(Args, Debug)]
pub struct CertArgs {
    /// The PFX file (e.g. the server's IdentityServer:X509KeyFilePath).
    #[arg(long, value_name = "FILE")]
    pub pfx: PathBuf,
    /// Environment variable holding the PFX password (none: try without a password).
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// File holding the PFX password (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Also write the chain certificates the PFX holds, after the leaf.
    #[arg(long)]
    pub chain: bool,
    /// The PEM file to write (mode 0644); `-` for standard output.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Key algorithm of a new key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// EC P-256 (ES256): small and fast.
    Ec,
    /// RSA (RS256), --rsa-bits bits.
    Rsa,
}

/// The key options shared by commands that generate a key.
#[derive(Args, Debug, Clone)]
pub struct KeyOptions {
    /// Key algorithm.
    #[arg(long, value_enum, default_value = "ec")]
    pub key_type: KeyType,
    /// RSA key size (with --key-type rsa).
    #[arg(long, default_value_t = 2048, value_parser = clap::builder::PossibleValuesParser::new(["2048", "3072", "4096"]).map(|s| s.parse::<u32>().unwrap_or(2048)))]
    pub rsa_bits: u32,
}

impl KeyOptions {
    pub fn kind(&self) -> KeyKind {
        match (self.key_type, self.rsa_bits) {
            (KeyType::Ec, _) => KeyKind::EcP256,
            (KeyType::Rsa, 4096) => KeyKind::Rsa4096,
            (KeyType::Rsa, 3072) => KeyKind::Rsa3072,
            (KeyType::Rsa, _) => KeyKind::Rsa2048,
        }
    }
}

/// Where the CA's certificate and key are.
#[derive(Args, Debug, Clone)]
pub struct CaSource {
    /// Folder holding ca.crt and ca.key (as written by `ids-keytool ca`).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["ca_cert", "ca_key"])]
    pub ca_dir: Option<PathBuf>,
    /// The CA certificate (PEM or DER), with --ca-key.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The CA private key (PEM PKCS#8, encrypted PKCS#8, PKCS#1, SEC1, DER or a PFX), with --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Environment variable holding the CA key's passphrase.
    #[arg(long, value_name = "VAR", conflicts_with = "ca_passphrase_file")]
    pub ca_passphrase_env: Option<String>,
    /// File holding the CA key's passphrase (first line).
    #[arg(long, value_name = "FILE")]
    pub ca_passphrase_file: Option<PathBuf>,
}

/// The PFX output options of `server` and `client`.
#[derive(Args, Debug, Clone)]
pub struct PfxOutput {
    /// Also write <stem>.pfx (certificate, key and CA chain).
    #[arg(long)]
    pub pfx: bool,
    /// Environment variable holding the PFX password (default: a generated one, written to <stem>.pfx.password).
    #[arg(
        long,
        value_name = "VAR",
        requires = "pfx",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// File holding the PFX password (first line).
    #[arg(long, value_name = "FILE", requires = "pfx")]
    pub password_file: Option<PathBuf>,
    /// Encrypt the PFX with 3DES and a SHA-1 MAC for old Windows versions (default AES-256 + SHA-256).
    #[arg(long, requires = "pfx")]
    pub legacy: bool,
}

#[derive(Args, Debug)]
pub struct CaArgs {
    /// Folder to write ca.crt and ca.key into (created 0700 when missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Subject common name of the CA.
    #[arg(long, default_value = "IDS private CA")]
    pub name: String,
    /// Validity in days.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    #[command(flatten)]
    pub key: KeyOptions,
    /// Environment variable holding a passphrase to encrypt ca.key with (recommended).
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// File holding a passphrase to encrypt ca.key with (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    pub ca: CaSource,
    /// DNS name or IP address clients connect to (repeat for several; the first is also the CN).
    #[arg(long = "name", value_name = "DNS_OR_IP", required = true)]
    pub names: Vec<String>,
    /// Validity in days (825 is the longest that Apple platforms accept for TLS servers).
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    #[command(flatten)]
    pub key: KeyOptions,
    /// Folder to write the files into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// File name stem: <stem>.crt, <stem>.key, <stem>.pfx.
    #[arg(long, value_name = "STEM", default_value = "server")]
    pub file_name: String,
    #[command(flatten)]
    pub pfx: PfxOutput,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    #[command(flatten)]
    pub ca: CaSource,
    /// The client id (the OpenIdClient Identifier): subject CN and SAN `urn:ids:client:<ID>`.
    #[arg(long, value_name = "ID")]
    pub client_id: String,
    /// Validity in days.
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    #[command(flatten)]
    pub key: KeyOptions,
    /// Folder to write the files into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// File name stem (default: the client id): <stem>.crt, <stem>.key, <stem>.pfx.
    #[arg(long, value_name = "STEM")]
    pub file_name: Option<String>,
    #[command(flatten)]
    pub pfx: PfxOutput,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct CsrArgs {
    /// Generate a new private key into this file (0600).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "key",
        required_unless_present = "key"
    )]
    pub key_out: Option<PathBuf>,
    /// Use an existing private key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Environment variable holding the key's passphrase (to read --key, or to encrypt --key-out).
    #[arg(long, value_name = "VAR", conflicts_with = "key_passphrase_file")]
    pub key_passphrase_env: Option<String>,
    /// File holding the key's passphrase (first line).
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,
    /// The request to write (PEM).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Request a client certificate for this client id.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "names",
        required_unless_present = "names"
    )]
    pub client_id: Option<String>,
    /// Request a server certificate for these DNS names or IP addresses.
    #[arg(long = "name", value_name = "DNS_OR_IP")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub key_options: KeyOptions,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// What a signed certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UsageArg {
    Server,
    Client,
}

#[derive(Args, Debug)]
pub struct SignArgs {
    #[command(flatten)]
    pub ca: CaSource,
    /// The certificate signing request (PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,
    /// serverAuth (SANs must be DNS names / IP addresses) or clientAuth (a client id is required).
    #[arg(long, value_enum)]
    pub usage: UsageArg,
    /// Validity in days.
    #[arg(long, default_value_t = 825, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    /// The certificate to write (default: the request's name with .crt).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PfxArgs {
    /// The certificate (PEM or DER; a PEM bundle may also hold the chain).
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Its private key (any format `thumbprint` reads).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Certificates to add as the chain (e.g. ca.crt); repeatable.
    #[arg(long, value_name = "FILE")]
    pub chain: Vec<PathBuf>,
    /// Environment variable holding the key's passphrase.
    #[arg(long, value_name = "VAR", conflicts_with = "key_passphrase_file")]
    pub key_passphrase_env: Option<String>,
    /// File holding the key's passphrase (first line).
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,
    /// The PFX to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Environment variable holding the PFX password (default: generated, written to <out>.password).
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// File holding the PFX password (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// 3DES + SHA-1 MAC for old Windows versions (default AES-256 + SHA-256).
    #[arg(long)]
    pub legacy: bool,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// Whose key `keygen` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// A client (agent) key: certificate with clientAuth.
    Agent,
    /// A server key: certificate with serverAuth for the host, and an authorized_clients/ folder.
    Server,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Agent => "agent",
            Mode::Server => "server",
        }
    }
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// agent (client) or server.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Key folder (created 0700; refused when group or others can access it). Default: $HOME/.ids.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Host name in the file names (and the server certificate). Default: this machine's host name.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Agent mode: the client id in the certificate and the printed configuration. Default: the host name.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    #[command(flatten)]
    pub key: KeyOptions,
    /// Certificate validity in days.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    /// Environment variable holding a passphrase to encrypt the private key with.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file")]
    pub passphrase_env: Option<String>,
    /// File holding a passphrase to encrypt the private key with (first line).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ThumbprintArgs {
    /// Key, certificate, PFX or JWK files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Environment variable holding the password of PFX files / passphrase of encrypted keys.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// File holding that password (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Print only the JWK thumbprints, one per line.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs one command, writing its report to `out` (warnings go to standard error).
pub fn run(command: &Command, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        Command::Ca(args) => authority::ca(args, out),
        Command::Server(args) => authority::server(args, out),
        Command::Client(args) => authority::client(args, out),
        Command::Csr(args) => request::csr(args, out),
        Command::Sign(args) => authority::sign(args, out),
        Command::Pfx(args) => pfx::pfx(args, out),
        Command::Keygen(args) => keygen::keygen(args, out),
        Command::Thumbprint(args) => thumbprint::thumbprint(args, out),
        Command::Cert(args) => pfx::export_certificate(args, out),
        Command::GenerateAssets(assets) => {
            for file in
                ids_runtime::assets::write(<Cli as clap::CommandFactory>::command(), &assets.out)?
            {
                writeln!(out, "{}", file.display())?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
