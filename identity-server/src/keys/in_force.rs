//! The keys in force while the server runs, replaced as a whole when a certificate file is reloaded
//! (`crate::reload::certificates`): the token signer, and what is published from the keys (JWKS,
//! discovery documents, the verifier of the server's own tokens), and the client CAs of
//! `tls_client_auth`.
//!
//! Readers take an `Arc` of the current value and keep it for their request: a token is signed and
//! described (`kid`) with one key, even if a reload happens meanwhile.

use std::sync::{Arc, RwLock};

use ids_jose::TokenSigner;
use ids_pki::{Certificate, Jwk};

use super::{Discovery, discovery_documents};
use crate::oauth::bearer::BearerVerifier;
use crate::oauth::client_keys::ClientAuthorities;

/// The key tokens are signed with now.
#[derive(Debug)]
pub struct Signing {
    pub signer: TokenSigner,
    pub certificate: Certificate,
    /// Makes and checks DPoP nonces (derived from this signing key: every server sharing the key
    /// accepts the nonces of the others).
    pub nonce_key: crate::oauth::dpop::NonceKey,
}

/// What is published from the keys in force.
#[derive(Debug)]
pub struct Published {
    /// The JWKS document: the signing key, the validation keys, then the previous signing keys
    /// still retained (tokens they signed have not expired yet).
    pub jwks: String,
    pub discovery: Discovery,
    /// Verifies tokens presented to the server's own API with every published key.
    pub bearer: BearerVerifier,
}

/// What publishing needs besides the keys.
#[derive(Debug, Clone)]
pub struct PublishContext {
    pub issuer: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub mutual_tls: bool,
    /// `IdentityServer:SigningAlgorithm`: the `alg` of RSA keys in the JWKS (RS256 when unset).
    pub signing_algorithm: Option<ids_pki::Algorithm>,
    /// `IdentityServer:DPoPSigningAlgorithms`.
    pub dpop_algorithms: Vec<ids_pki::Algorithm>,
}

impl PublishContext {
    /// The JWKS entry of `cert`, with the `alg` its key signs with: `known` (the signing key's, a
    /// managed key's), else `IdentityServer:SigningAlgorithm` when it fits the key, else the key
    /// type's own.
    fn jwk(&self, cert: &Certificate, known: Option<ids_pki::Algorithm>) -> Jwk {
        let mut jwk = Jwk::from_certificate(cert);
        let algorithm = known.or(self.signing_algorithm.filter(|a| a.fits(cert.public_key())));
        if let Some(algorithm) = algorithm {
            jwk.alg = Some(algorithm.as_str().into());
        }
        jwk
    }
}

impl Published {
    /// Publishes `signing`, then `others` (validation keys, retained previous keys), each key once.
    pub fn new(
        signing: &Signing,
        others: &[Certificate],
        context: &PublishContext,
    ) -> Result<Published, ids_jose::KeySetError> {
        Self::with_algorithms(signing, others, context, &std::collections::HashMap::new())
    }

    /// [`Published::new`], with the algorithms of some of `others` (by `x5t#S256`) known.
    pub fn with_algorithms(
        signing: &Signing,
        others: &[Certificate],
        context: &PublishContext,
        algorithms: &std::collections::HashMap<String, ids_pki::Algorithm>,
    ) -> Result<Published, ids_jose::KeySetError> {
        let algorithm = signing.signer.algorithm();
        let signing = &signing.certificate;
        let mut keys = vec![context.jwk(signing, Some(algorithm))];
        let mut verified: Vec<Certificate> = Vec::new();
        for cert in others {
            let jwk = context.jwk(cert, algorithms.get(&cert.x5t_s256()).copied());
            if !keys.iter().any(|k| k.kid == jwk.kid) {
                keys.push(jwk);
                verified.push(cert.clone());
            }
        }
        let bearer = BearerVerifier::new(signing, &verified, &context.issuer, &context.audience)?;
        Ok(Published {
            jwks: serde_json::json!({ "keys": keys }).to_string(),
            discovery: discovery_documents(context, algorithm),
            bearer,
        })
    }
}

/// The keys published besides the signing key, by who keeps them.
#[derive(Debug, Clone, Default)]
pub struct Others {
    /// The certificate reloader's: `IdentityServer:ValidationKeys`, and previous signing keys retained.
    pub reloaded: Vec<Certificate>,
    /// The key manager's (`KeyManagement Automatic`): keys made and not signing yet, keys that
    /// signed and are retained, each with the algorithm it signs with.
    pub managed: Vec<(Certificate, ids_pki::Algorithm)>,
}

impl Others {
    pub fn all(&self) -> Vec<Certificate> {
        let mut all = self.reloaded.clone();
        all.extend(self.managed.iter().map(|(c, _)| c.clone()));
        all
    }

    /// The algorithms of the managed keys, by certificate (`x5t#S256`): published as they are.
    pub fn algorithms(&self) -> std::collections::HashMap<String, ids_pki::Algorithm> {
        self.managed
            .iter()
            .map(|(c, a)| (c.x5t_s256(), *a))
            .collect()
    }
}

/// The keys in force: each part replaced on its own.
#[derive(Debug)]
pub struct InForce {
    signing: RwLock<Arc<Signing>>,
    published: RwLock<Arc<Published>>,
    client_authorities: RwLock<Option<Arc<ClientAuthorities>>>,
    /// What [`InForce::publish`] publishes besides the signing key.
    others: std::sync::Mutex<Others>,
}

impl InForce {
    pub fn new(
        signing: Signing,
        published: Published,
        client_authorities: Option<ClientAuthorities>,
        others: Others,
    ) -> InForce {
        Self::from_arc(Arc::new(signing), published, client_authorities, others)
    }

    pub fn from_arc(
        signing: Arc<Signing>,
        published: Published,
        client_authorities: Option<ClientAuthorities>,
        others: Others,
    ) -> InForce {
        InForce {
            signing: RwLock::new(signing),
            published: RwLock::new(Arc::new(published)),
            client_authorities: RwLock::new(client_authorities.map(Arc::new)),
            others: std::sync::Mutex::new(others),
        }
    }

    /// The keys published besides the signing key now.
    pub fn others(&self) -> Others {
        match self.others.lock() {
            Ok(o) => o.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes what is published (`update` edits the other keys; `signing`, when given, becomes the
    /// signing key) and publishes it, as one step for every publisher (the certificate reloader, the
    /// key manager): the JWKS is published before the new signing key signs. Nothing changes when the
    /// keys cannot be published together.
    pub fn publish(
        &self,
        context: &PublishContext,
        signing: Option<Arc<Signing>>,
        update: impl FnOnce(&mut Others),
    ) -> Result<(), ids_jose::KeySetError> {
        let mut others = match self.others.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = others.clone();
        update(&mut next);
        let current = self.signing();
        let published =
            Published::new(signing.as_deref().unwrap_or(&current), &next.all(), context)?;
        write(&self.published, Arc::new(published));
        if let Some(signing) = signing {
            write(&self.signing, signing);
        }
        *others = next;
        Ok(())
    }

    pub fn signing(&self) -> Arc<Signing> {
        read(&self.signing)
    }

    pub fn published(&self) -> Arc<Published> {
        read(&self.published)
    }

    pub fn client_authorities(&self) -> Option<Arc<ClientAuthorities>> {
        read(&self.client_authorities)
    }

    pub fn set_client_authorities(&self, authorities: Option<ClientAuthorities>) {
        write(&self.client_authorities, authorities.map(Arc::new));
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(v) => v.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut v) => *v = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}
