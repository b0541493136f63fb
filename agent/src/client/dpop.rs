//! DPoP on the agent's side (RFC 9449), when `OpenId:DPoP` is true: a proof with every token request
//! and every API request, made with the agent's key, and the server's nonce remembered from its
//! answers.
//!
//! The key is `ClientCertificate`'s when the agent has one; otherwise a P-256 key the agent makes once
//! and keeps in `<WorkFolderPath>/dpop.key`, written atomically with mode 0600, through the agent's
//! vault like its other files: encrypted for its certificate (and its
//! `EncryptionCertificate:AdditionalRecipients`) when `EncryptionCertificate:EncryptFile` is true, in
//! clear (PKCS#8 DER, 0600) otherwise. A key file that cannot be read is reported with the advice to
//! delete it (a new key is then made: the tokens bound to the old one stop working, new ones are
//! asked for).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ids_jose::DpopSigner;
use ids_pki::{Algorithm, SigningKey};
use reqwest::RequestBuilder;

use crate::files::Vault;
use crate::files::VaultError;
use crate::settings::{ClientKey, Settings};

/// The file the generated key is kept in, under `WorkFolderPath`.
pub const KEY_FILE: &str = "dpop.key";

/// Why the DPoP key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DpopKeyError {
    #[error("OpenId:DPoP: the key of ClientCertificate cannot sign DPoP proofs: {0}")]
    ClientKey(ids_pki::keys::KeyError),
    #[error("OpenId:DPoP: {}: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
    #[error("OpenId:DPoP: {0}")]
    Vault(#[from] VaultError),
}

/// The agent's DPoP key and the server's latest nonce.
#[derive(Debug)]
pub struct DpopClient {
    signer: DpopSigner,
    nonce: Mutex<Option<String>>,
    /// Where the key came from, for messages.
    pub origin: String,
}

impl DpopClient {
    /// The key of `client_key` (`ClientCertificate`), else the one kept in the work folder (made now
    /// if there is none).
    pub fn load(
        settings: &Settings,
        client_key: Option<&ClientKey>,
        vault: &Vault,
    ) -> Result<DpopClient, DpopKeyError> {
        if let Some(key) = client_key {
            let signing = SigningKey::from_pkcs8(&key.pkcs8).map_err(DpopKeyError::ClientKey)?;
            let public = signing.public_key();
            return Ok(DpopClient::new(
                DpopSigner::new(signing, &public),
                format!("ClientCertificate ({})", key.file.display()),
            ));
        }
        let path = settings.work_folder.join(KEY_FILE);
        let signing = kept_key(&path, vault)?;
        let public = signing.public_key();
        Ok(DpopClient::new(
            DpopSigner::new(signing, &public),
            path.display().to_string(),
        ))
    }

    pub fn new(signer: DpopSigner, origin: String) -> DpopClient {
        DpopClient {
            signer,
            nonce: Mutex::new(None),
            origin,
        }
    }

    /// The RFC 7638 thumbprint of the key (the `cnf.jkt` of the agent's tokens).
    pub fn jkt(&self) -> &str {
        self.signer.jkt()
    }

    /// Adds a `DPoP` proof for `method` `url` (with the hash of `access_token` towards an API) and the
    /// nonce the server last gave. A proof that cannot be made (the key cannot sign) is left out: the
    /// server then says what is missing.
    pub fn prove(
        &self,
        request: RequestBuilder,
        method: &str,
        url: &str,
        now: i64,
        access_token: Option<&str>,
    ) -> RequestBuilder {
        let nonce = self.nonce.lock().ok().and_then(|n| n.clone());
        match self
            .signer
            .proof(method, url, now, nonce.as_deref(), access_token)
        {
            Ok(proof) => request.header(ids_proto::headers::DPOP, proof),
            Err(e) => {
                tracing::warn!("cannot make a DPoP proof: {e}");
                request
            }
        }
    }

    /// Remembers the nonce of an answer's `DPoP-Nonce` header, if any; whether there was one.
    pub fn remember(&self, headers: &reqwest::header::HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(ids_proto::headers::DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        if let Ok(mut slot) = self.nonce.lock() {
            *slot = Some(nonce.to_string());
        }
        true
    }
}

/// The key in `path`, or a new P-256 key written there.
fn kept_key(path: &Path, vault: &Vault) -> Result<SigningKey, DpopKeyError> {
    let failed = |reason: String| DpopKeyError::File {
        path: path.to_path_buf(),
        reason,
    };
    if path.exists() {
        let (mut reader, _) = vault.open(path).map_err(|e| {
            failed(format!(
                "cannot be opened ({e}); delete it to make a new one"
            ))
        })?;
        let mut der = zeroize::Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut der)
            .map_err(|e| failed(format!("cannot read the key: {e}")))?;
        return SigningKey::from_pkcs8(&der).map_err(|e| {
            failed(format!(
                "not a usable key ({e}); delete it to make a new one"
            ))
        });
    }
    let (key, pkcs8) = SigningKey::generate(Algorithm::ES256)
        .map_err(|e| failed(format!("cannot make a key: {e}")))?;
    let mut writer = vault.create(path, false)?;
    writer
        .write_all(&pkcs8)
        .map_err(|e| failed(format!("cannot write the key: {e}")))?;
    writer.commit()?;
    tracing::info!(file = %path.display(), "made the agent's DPoP key");
    Ok(key)
}
