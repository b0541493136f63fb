//! The exit codes of `identity-server`, the same convention as `agent`, `new-openid-secret` and
//! `ids-keytool`: 0 success, 1 a failure at run time (a port in use, a file that cannot be written...),
//! 2 the command line or the configuration is wrong (every problem is listed, each naming its file and
//! key; clap exits with 2 on a usage error too).
//!
//! [`ExitStatus`] lists every code; `From<&Error>` is the one place where a failure gets its code
//! (as rustls maps its `Error` to an `AlertDescription` in one `TryFrom`), and [`ExitStatus::help`]
//! writes the `--help` text from the same list, so that neither can drift from the other.

use crate::Error;
use crate::quickstart::QuickstartError;
use ids_config::protected::ProtectError;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done.
    Success,
    /// A failure at run time: I/O, a busy port, the runtime, the server stopping on an error.
    Failure,
    /// The command line or the configuration is wrong.
    Usage,
}

impl ExitStatus {
    /// Every status, in the order of their codes.
    pub const ALL: [ExitStatus; 3] = [ExitStatus::Success, ExitStatus::Failure, ExitStatus::Usage];

    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
        }
    }

    /// What the code means, as `--help` says it.
    pub const fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "success",
            ExitStatus::Failure => "failure at run time",
            ExitStatus::Usage => "usage or configuration error",
        }
    }

    /// The `Exit codes: ...` paragraph of `--help`.
    pub fn help() -> String {
        let codes: Vec<String> = Self::ALL
            .iter()
            .map(|s| format!("{} {}", s.code(), s.meaning()))
            .collect();
        format!("Exit codes: {}.", codes.join(", "))
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// The one place where a failure gets its exit code.
impl From<&Error> for ExitStatus {
    fn from(error: &Error) -> Self {
        match error {
            Error::Settings(_)
            | Error::Load(_)
            | Error::Protect(ProtectError::Input(_))
            | Error::Quickstart(QuickstartError::Exists(_) | QuickstartError::Urls(_))
            | Error::NoEncryptionCertificate { .. }
            | Error::DeliveryId(_)
            | Error::NotPostgres { .. } => ExitStatus::Usage,
            Error::Protect(ProtectError::Io(_))
            | Error::Quickstart(QuickstartError::Io { .. } | QuickstartError::Generate(_))
            | Error::Listen { .. }
            | Error::Socket(_)
            | Error::NoListenUrl
            | Error::Runtime(_)
            | Error::Server(_)
            | Error::DataFolder(_)
            | Error::Store(_)
            | Error::List(_)
            | Error::Json(_)
            | Error::NotFound { .. }
            | Error::Export { .. }
            | Error::Create { .. }
            | Error::Write { .. }
            | Error::Import { .. }
            | Error::ImportIncomplete { .. } => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code_as_before() {
        assert_eq!(
            ExitStatus::help(),
            "Exit codes: 0 success, 1 failure at run time, 2 usage or configuration error."
        );
    }

    #[test]
    fn configuration_errors_are_usage_errors_and_io_is_a_failure() {
        assert_eq!(
            ExitStatus::from(&Error::Load(crate::startup::LoadError::NoListener.into())),
            ExitStatus::Usage
        );
        assert_eq!(
            ExitStatus::from(&Error::Runtime(std::io::Error::other("x"))),
            ExitStatus::Failure
        );
    }
}
