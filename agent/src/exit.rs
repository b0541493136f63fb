//! The agent's exit codes, and the one place where an error becomes one.
//!
//! A script or a service manager tells failures apart by the exit code alone: the server is away (3,
//! try again later), the TLS trust is wrong (4), the credentials are refused (5), a file is damaged
//! (8)... Each code is one [`ExitStatus`] variant; every error type the agent's commands can end with
//! maps to one through a `From<&Error>` implementation below (as rustls maps its errors to TLS alerts
//! with `TryFrom<&Error> for AlertDescription`), and `agent --help` lists the codes from
//! [`ExitStatus::ALL`], so that the documentation cannot drift from the code.
//!
//! Codes 0, 1 and 2 mean the same in every tool of the product (`identity-server`, `new-openid-secret`,
//! `ids-keytool`): success, failure at run time, usage or configuration error.

use ids_config::ConfigError;
use ids_config::protected::ProtectError;
use ids_seal::cms::CmsError;
use ids_seal::encrypted_file::FailureKind;

use crate::client::deliveries::UploadFailure;
use crate::commands::Error;
use crate::delivery::PushError;
use crate::error::{AgentError, Refusal};
use crate::files::VaultError;
use crate::tls::known_servers::PinStoreError;

/// How the agent's process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    Success = 0,
    /// A failure at run time not listed below.
    Failure = 1,
    /// The command line or the configuration is wrong: the operator has something to change.
    Usage = 2,
    /// The server cannot be reached, answers 5xx or 429, or the service stopped with work left.
    Unreachable = 3,
    /// TLS: the server is not trusted (CA, pinning) or the handshake fails.
    Tls = 4,
    /// The server refused the agent's credentials.
    CredentialsRefused = 5,
    /// A token does not verify, or the server answered something unexpected.
    InvalidAnswer = 6,
    /// The file was encrypted for other certificates.
    NotForThisKey = 7,
    /// The file is damaged, truncated or was modified.
    Damaged = 8,
    /// A file cannot be read or written, or is not an encrypted file.
    FileUnusable = 9,
    /// The server refuses the delivery (not allowed, too large, id already used for another file).
    DeliveryRefused = 10,
}

impl ExitStatus {
    /// Every status, in the order of their codes.
    pub const ALL: [ExitStatus; 11] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Unreachable,
        ExitStatus::Tls,
        ExitStatus::CredentialsRefused,
        ExitStatus::InvalidAnswer,
        ExitStatus::NotForThisKey,
        ExitStatus::Damaged,
        ExitStatus::FileUnusable,
        ExitStatus::DeliveryRefused,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code means, as `agent --help` says it.
    pub fn summary(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure at run time",
            ExitStatus::Usage => {
                "usage or configuration error (as identity-server, new-openid-secret and ids-keytool)"
            }
            ExitStatus::Unreachable => "server unreachable or failing",
            ExitStatus::Tls => "TLS",
            ExitStatus::CredentialsRefused => "credentials refused",
            ExitStatus::InvalidAnswer => "invalid token or answer",
            ExitStatus::NotForThisKey => "file for another certificate",
            ExitStatus::Damaged => "file damaged",
            ExitStatus::FileUnusable => "file unreadable or unwritable",
            ExitStatus::DeliveryRefused => "delivery refused",
        }
    }

    /// The exit-code paragraph of `agent --help`, made from [`ExitStatus::ALL`].
    pub fn help() -> String {
        let codes: Vec<String> = ExitStatus::ALL
            .iter()
            .map(|s| format!("{} {}", s.code(), s.summary()))
            .collect();
        format!("Exit codes: {}.", codes.join(", "))
    }

    /// The first failure of several (each file of a command is tried): `self` unless it is a success.
    #[must_use]
    pub fn or(self, next: ExitStatus) -> ExitStatus {
        if self == ExitStatus::Success {
            next
        } else {
            self
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

impl From<&AgentError> for ExitStatus {
    fn from(error: &AgentError) -> Self {
        match error {
            AgentError::Setup(_) | AgentError::UnknownClient { .. } => ExitStatus::Usage,
            AgentError::Unreachable { .. } | AgentError::ServerError { .. } => {
                ExitStatus::Unreachable
            }
            AgentError::TlsTrust { .. } | AgentError::TlsHandshake { .. } => ExitStatus::Tls,
            AgentError::Rejected {
                refusal: Refusal::Credentials,
                ..
            } => ExitStatus::CredentialsRefused,
            AgentError::Rejected {
                refusal: Refusal::Request,
                ..
            }
            | AgentError::Malformed { .. }
            | AgentError::InvalidToken(_) => ExitStatus::InvalidAnswer,
        }
    }
}

impl From<&VaultError> for ExitStatus {
    fn from(error: &VaultError) -> Self {
        match error {
            VaultError::Setup(_) => ExitStatus::Usage,
            VaultError::Format { source, .. } => match source.kind() {
                FailureKind::NotForThisKey => ExitStatus::NotForThisKey,
                FailureKind::Damaged => ExitStatus::Damaged,
                FailureKind::Unsupported | FailureKind::Io => ExitStatus::FileUnusable,
            },
            VaultError::Cms { source, .. } => match source {
                CmsError::NotForThisKey { .. } => ExitStatus::NotForThisKey,
                CmsError::Malformed { .. }
                | CmsError::KeyUnwrap
                | CmsError::Tampered
                | CmsError::BadPadding => ExitStatus::Damaged,
                _ => ExitStatus::FileUnusable,
            },
            VaultError::Io { .. } => ExitStatus::FileUnusable,
        }
    }
}

impl From<&UploadFailure> for ExitStatus {
    fn from(failure: &UploadFailure) -> Self {
        match failure {
            UploadFailure::Temporary { .. } => ExitStatus::Unreachable,
            UploadFailure::InvalidToken(_) | UploadFailure::DpopNonce => ExitStatus::InvalidAnswer,
            UploadFailure::Refused { .. } => ExitStatus::DeliveryRefused,
            UploadFailure::Agent(e) => e.into(),
        }
    }
}

impl From<&PushError> for ExitStatus {
    fn from(error: &PushError) -> Self {
        match error {
            PushError::File(e) => e.into(),
            PushError::Server(e) => e.into(),
        }
    }
}

/// A setting that does not load.
impl From<&ConfigError> for ExitStatus {
    fn from(_: &ConfigError) -> Self {
        ExitStatus::Usage
    }
}

/// The pins of `Tls:ServerPinning First`: a malformed line is the operator's to fix, a file that
/// cannot be read or written is a file problem.
impl From<&PinStoreError> for ExitStatus {
    fn from(error: &PinStoreError) -> Self {
        match error {
            PinStoreError::Malformed { .. } => ExitStatus::Usage,
            _ => ExitStatus::FileUnusable,
        }
    }
}

impl From<&ProtectError> for ExitStatus {
    fn from(error: &ProtectError) -> Self {
        match error {
            ProtectError::Input(_) => ExitStatus::Usage,
            ProtectError::Io(_) => ExitStatus::Failure,
        }
    }
}

/// How a command ends when it fails as a whole.
impl From<&Error> for ExitStatus {
    fn from(error: &Error) -> Self {
        match error {
            Error::Agent(e) => e.as_ref().into(),
            Error::Files(e) => e.into(),
            Error::Deliver { source, .. } => source.as_ref().into(),
            Error::Settings(_)
            | Error::Key(_)
            | Error::OneFileOnly
            | Error::Metrics { .. }
            | Error::Dpop(_) => ExitStatus::Usage,
            Error::Pins(e) => e.into(),
            Error::Protect(e) => e.into(),
            Error::NotPinned { .. } | Error::Stdin(_) => ExitStatus::Failure,
            Error::Task { .. } => ExitStatus::FileUnusable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_code_in_order() {
        assert_eq!(
            ExitStatus::help(),
            "Exit codes: 0 success, 1 failure at run time, 2 usage or configuration error (as identity-server, new-openid-secret and ids-keytool), 3 server unreachable or failing, 4 TLS, 5 credentials refused, 6 invalid token or answer, 7 file for another certificate, 8 file damaged, 9 file unreadable or unwritable, 10 delivery refused."
        );
        for (i, status) in ExitStatus::ALL.iter().enumerate() {
            assert_eq!(usize::from(status.code()), i);
        }
    }

    #[test]
    fn refusals_of_the_credentials_are_5_and_other_refusals_6() {
        let rejected = |error: &str, refusal| AgentError::Rejected {
            client: "Job".into(),
            status: 400,
            error: error.into(),
            description: None,
            hint: String::new(),
            refusal,
        };
        for code in [
            "invalid_client",
            "unauthorized_client",
            "invalid_grant",
            "access_denied",
        ] {
            let e = rejected(code, Refusal::of_oauth_error(code));
            assert_eq!(ExitStatus::from(&e), ExitStatus::CredentialsRefused);
        }
        let e = rejected("invalid_scope", Refusal::of_oauth_error("invalid_scope"));
        assert_eq!(ExitStatus::from(&e), ExitStatus::InvalidAnswer);
        let e = rejected("HTTP 401 Unauthorized", Refusal::Credentials);
        assert_eq!(ExitStatus::from(&e).code(), 5);
    }

    #[test]
    fn the_first_failure_is_kept() {
        let s = ExitStatus::Success.or(ExitStatus::Success);
        assert_eq!(s, ExitStatus::Success);
        let s = s.or(ExitStatus::Damaged).or(ExitStatus::FileUnusable);
        assert_eq!(s, ExitStatus::Damaged);
    }
}
