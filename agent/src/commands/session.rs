//! What the commands that run with the settings start with: the validated settings, the agent's
//! [`Vault`], the log file, and logging set up for both.

use std::path::Path;
use std::sync::Arc;

use super::Error;
use crate::files::{Vault, logs};
use crate::{Agent, AgentKeys, Clock as _, Settings, SystemClock, logging};

/// The settings, the vault and the log file. Keep it until the command ends: dropping it writes the
/// log file's final chunk.
#[derive(Debug)]
pub struct Session {
    pub settings: Settings,
    pub keys: AgentKeys,
    pub vault: Arc<Vault>,
    _log: Option<logs::LogGuard>,
}

impl Session {
    /// Loads the settings from `dir`, opens the vault and the log file, and sets up logging (standard
    /// error only when the settings or the vault fail).
    pub fn start(dir: &Path) -> Result<Session, Error> {
        let loaded = Settings::load(dir, SystemClock.now()).map_err(|errors| {
            logging::init_stderr();
            Error::Settings(errors)
        })?;
        let settings = loaded.settings;
        let keys = loaded.keys;
        let vault = Vault::from_settings(&settings, SystemClock.now()).map_err(|e| {
            logging::init_stderr();
            Error::Files(e)
        })?;
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
        logging::init(settings.log_format, writer, &settings.log_level);
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
            keys,
            vault: Arc::new(vault),
            _log: guard,
        })
    }

    /// The settings, keys and vault of `dir` read again (`agent run` on SIGHUP), without touching
    /// logging: the log file of the first session stays the log file.
    pub fn reload(dir: &Path) -> Result<Session, Error> {
        let loaded = Settings::load(dir, SystemClock.now()).map_err(Error::Settings)?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let vault = Vault::from_settings(&loaded.settings, SystemClock.now())?;
        Ok(Session {
            settings: loaded.settings,
            keys: loaded.keys,
            vault: Arc::new(vault),
            _log: None,
        })
    }

    /// The agent built from the session's settings (with its DPoP key when `OpenId:DPoP` is on).
    pub fn agent(&self) -> Result<Agent, Error> {
        let agent = Agent::new(self.settings.clone(), self.keys.clone())?;
        if !self.settings.dpop {
            return Ok(agent);
        }
        let dpop = crate::client::dpop::DpopClient::load(
            &self.settings,
            self.keys.client_key.as_ref(),
            &self.vault,
        )?;
        tracing::debug!(key = %dpop.origin, jkt = dpop.jkt(), "DPoP on");
        Ok(agent.with_dpop(std::sync::Arc::new(dpop)))
    }
}
