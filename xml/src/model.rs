//! The collected elements and one parsed file.

use std::collections::BTreeMap;

use crate::Position;

/// An `<OpenIdClient>` element: a client allowed to get tokens with the client-credentials flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenIdClient {
    /// `Identifier`: the OAuth `client_id`. Never empty.
    pub identifier: String,
    /// `HashedSecret`: raw attribute text, not validated here.
    pub hashed_secret: Option<String>,
    /// `DisplayName_L1` .. `DisplayName_L16`, keyed by language number (1..=16).
    pub display_names: BTreeMap<u8, String>,
    /// `Profile`: the identifier of a [`Profile`].
    pub profile: Option<String>,
    /// `ContextId` attribute, raw.
    pub context_id: Option<String>,
    /// `Context` attribute, raw.
    pub context: Option<String>,
    /// `ExpirationDate`; a value without offset is UTC, a date alone is midnight UTC.
    pub expiration_date: Option<time::OffsetDateTime>,
    /// `Thumbprints`: keys and certificates the client may authenticate with instead of (or besides)
    /// a secret: RFC 7638 JWK thumbprints, certificate `x5t#S256` or SHA-1 hex thumbprints, separated
    /// by spaces, commas or semicolons. Raw, not validated here.
    pub thumbprints: Vec<String>,
    /// `TlsClientAuthSubjectDn` (RFC 8705 `tls_client_auth_subject_dn`): the subject of the client's
    /// CA-issued TLS certificate.
    pub tls_client_auth_subject_dn: Option<String>,
    /// `TlsClientAuthSan`: a subject alternative name (DNS name, URI, email or IP address) of the
    /// client's CA-issued TLS certificate.
    pub tls_client_auth_san: Option<String>,
    /// `Audiences`: the audiences the client may ask for with `resource` (RFC 8707), separated by
    /// spaces, commas or semicolons; raw, not validated here. `None` when the attribute is absent.
    pub audiences: Option<Vec<String>>,
    /// `RequireDPoP` (`true`/`false`): the client's tokens must be DPoP-bound (RFC 9449).
    pub require_dpop: bool,
    /// The file the element was read from (as given to [`crate::parse_document`]).
    pub file: String,
    /// Where the element starts.
    pub position: Position,
}

/// A `<Profile>` element: a named set of permissions that clients refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// `Identifier`. Never empty.
    pub identifier: String,
    /// `DisplayName_L1` .. `DisplayName_L16`, keyed by language number (1..=16).
    pub display_names: BTreeMap<u8, String>,
    /// The file the element was read from.
    pub file: String,
    /// Where the element starts.
    pub position: Position,
}

/// An `<Agent>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// `Identifier`. Never empty.
    pub identifier: String,
    /// `URI` (also accepted as `Uri`), raw.
    pub uri: Option<String>,
    /// The file the element was read from.
    pub file: String,
    /// Where the element starts.
    pub position: Position,
}

/// What one file declares, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    /// The file name given to [`crate::parse_document`].
    pub file: String,
    /// The `OpenIdClient` elements.
    pub clients: Vec<OpenIdClient>,
    /// The `Profile` elements.
    pub profiles: Vec<Profile>,
    /// The `Agent` elements.
    pub agents: Vec<Agent>,
    /// Non-fatal problems, each formatted `file:line:column: message`.
    pub warnings: Vec<String>,
}
