//! `identity-server protect`: encrypts settings for the EncryptionCertificate into
//! appsettings.encrypted.json (the same command line as `agent protect`).

use std::path::Path;

use identity_server::Error;

pub use ids_config::protected::ProtectArgs as Args;

pub fn exec(config_dir: &Path, args: Args) -> Result<(), Error> {
    let schema = identity_server::settings::schema();
    let text = ids_config::protected::run_in(
        config_dir,
        &[("appsettings", true)],
        &schema,
        args,
        "appsettings.encrypted.json",
    )?;
    print!("{text}");
    Ok(())
}
