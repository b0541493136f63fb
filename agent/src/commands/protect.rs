//! `agent protect`: encrypts settings for the agent's EncryptionCertificate (the command line and the
//! work are shared with `identity-server protect` in [`ids_config::protected`]).

use std::path::Path;

use ids_config::protected::{self, ProtectArgs};

use super::Error;
use crate::exit::ExitStatus;
use crate::logging;

pub fn exec(dir: &Path, args: ProtectArgs) -> Result<ExitStatus, Error> {
    logging::init_stderr();
    let schema = crate::settings::schema();
    let text = protected::run_in(
        dir,
        crate::settings::LAYERS,
        &schema,
        args,
        "appsettings.encrypted.agent.json",
    )?;
    print!("{text}");
    Ok(ExitStatus::Success)
}
