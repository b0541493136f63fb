//! `private_key_jwt` (RFC 7523, OpenID Connect Core section 9): an assertion verified with a key
//! registered for the client, then its `jti` recorded so that it is used once.

use ids_jose::assertion::{AssertionError, UnverifiedAssertion};
use ids_pki::PublicKey;

use super::{KeyRejection, ReplayCache};
use crate::access_control::RegisteredClient;
use crate::authorized_clients::AuthorizedKey;

/// Clock leeway for assertions, seconds.
pub const LEEWAY: i64 = 30;

/// What every assertion is checked against.
#[derive(Debug, Clone, Copy)]
pub struct AssertionPolicy<'a> {
    /// The values `aud` may take (token endpoint URLs, issuer).
    pub audiences: &'a [String],
    /// The `jti`s already used.
    pub replay: &'a dyn ReplayCache,
    /// `IdentityServer:MaxClientAssertionLifetimeSeconds`.
    pub max_lifetime: i64,
}

/// Verifies a `private_key_jwt` assertion for `client` (`spellings`: other accepted forms of its id in
/// `iss`/`sub`, such as `Job@host:port`). `keys` are the client's keys from the
/// authorized-clients folder. The replay cache is consulted last, after the signature and claims
/// verified: only a registered client's valid assertions cost a (possibly shared) replay entry.
pub async fn authenticate_assertion(
    assertion: UnverifiedAssertion,
    client: &RegisteredClient,
    spellings: &[String],
    keys: &[AuthorizedKey],
    policy: AssertionPolicy<'_>,
    now: i64,
) -> Result<(), KeyRejection> {
    let public = registered_key(&assertion, client, keys)?;
    let verified = assertion.verify(&public)?;
    let mut names = vec![client.identifier.to_string()];
    names.extend(spellings.iter().cloned());
    let claims = verified.check(&names, policy.audiences, now, LEEWAY, policy.max_lifetime)?;
    if !policy
        .replay
        .first_use(
            client.identifier.as_str(),
            &claims.jti,
            claims.expires_at,
            now,
        )
        .await?
    {
        return Err(AssertionError::Replayed(claims.jti).into());
    }
    Ok(())
}

/// The registered key an assertion must verify with: the key in its header when that key's thumbprint
/// (or its certificate's) is registered, else the folder key its `kid` names, else the only folder key.
pub(super) fn registered_key(
    assertion: &UnverifiedAssertion,
    client: &RegisteredClient,
    keys: &[AuthorizedKey],
) -> Result<PublicKey, KeyRejection> {
    if let Some(embedded) = assertion.embedded_key() {
        let names = std::iter::once(embedded.thumbprint.as_str())
            .chain(embedded.certificate_thumbprint.as_deref())
            .chain(embedded.certificate_sha1.as_deref());
        for name in names {
            if client.thumbprints.iter().any(|t| t == name)
                || keys.iter().any(|k| k.answers_to(name))
            {
                return Ok(embedded.public_key.clone());
            }
        }
        return Err(KeyRejection::UnregisteredKey {
            presented: embedded.thumbprint.clone(),
        });
    }
    if keys.is_empty() && !client.thumbprints.is_empty() {
        return Err(KeyRejection::ThumbprintWithoutKey {
            client: client.identifier.to_string(),
            presented: assertion
                .kid()
                .map_or_else(|| "no kid".to_string(), |kid| format!("kid {kid}")),
        });
    }
    if let Some(kid) = assertion.kid() {
        if let Some(key) = keys.iter().find(|k| k.answers_to(kid)) {
            return Ok(key.public_key.clone());
        }
        return Err(KeyRejection::UnregisteredKey {
            presented: format!("kid {kid}"),
        });
    }
    match keys {
        [only] => Ok(only.public_key.clone()),
        _ => Err(KeyRejection::UnregisteredKey {
            presented: "(no kid and no key in the assertion header)".into(),
        }),
    }
}
