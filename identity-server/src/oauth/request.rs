//! Token request parsing: form parameters and client credentials (RFC 6749 sections 2.3.1, 3.2, 4.4).

use ids_proto::ClientSecret;

use super::OAuthError;

/// Longest accepted `client_id` (identifiers in the XML are short; this bounds what reaches logs and maps).
pub const MAX_CLIENT_ID: usize = 256;

/// Client credentials as presented, before authentication.
#[derive(Debug)]
pub struct Credentials {
    /// Empty when only a client assertion names the client (its `iss`).
    pub client_id: String,
    pub secret: Option<ClientSecret>,
    /// `client_assertion` (RFC 7523 section 2.2), not yet verified.
    pub assertion: Option<String>,
    pub method: AuthMethod,
}

/// How the client presented its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// `client_assertion` signed with the client's key.
    PrivateKeyJwt,
    /// `client_id` only: authenticated by the TLS client certificate, if any.
    None,
}

/// A parsed client-credentials request.
#[derive(Debug)]
pub struct TokenRequest {
    pub credentials: Credentials,
    /// Requested scopes (deduplicated, in request order); empty when `scope` was absent.
    pub scopes: Vec<String>,
    /// RFC 8707 `resource` parameters (deduplicated, in request order).
    pub resources: Vec<String>,
}

/// The parameters of a form posted by a client (token, introspection and revocation requests),
/// before its credentials are read.
#[derive(Debug)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

/// The client authentication parameters (RFC 6749 section 2.3.1, RFC 7523 section 2.2).
const CREDENTIAL_PARAMETERS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
];

impl Form {
    /// Parses a form body. `single` are the request's own parameters that may appear once (RFC 6749
    /// section 3.2; the client authentication ones are always checked); `repeatable` may appear
    /// several times (`resource`). Unknown parameters are ignored.
    pub fn parse(body: &[u8], single: &[&str], repeatable: &[&str]) -> Result<Form, OAuthError> {
        let all = form_urlencoded_pairs(body)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (key, value) in all {
            let once =
                single.contains(&key.as_str()) || CREDENTIAL_PARAMETERS.contains(&key.as_str());
            if !once && !repeatable.contains(&key.as_str()) {
                continue; // RFC 6749 section 3.2: unknown parameters are ignored.
            }
            if once && pairs.iter().any(|(k, _)| *k == key) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{key}` is repeated"
                )));
            }
            pairs.push((key, value));
        }
        Ok(Form { pairs })
    }

    /// The value of a parameter that appears once.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter, in request order.
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let index = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.remove(index).1)
    }

    /// The client's credentials: the `Authorization: Basic` header, `client_secret` in the body, a
    /// `client_assertion`, or a `client_id` alone (mutual TLS). `authorities` are the server's own
    /// `host[:port]` spellings: a `client_id` of `Job@host:port` means `Job`.
    pub fn credentials(
        &mut self,
        authorization: Option<&str>,
        authorities: &[String],
    ) -> Result<Credentials, OAuthError> {
        let client_id = self.take("client_id");
        let client_secret = self.take("client_secret");
        let assertion_type = self.take("client_assertion_type");
        let assertion = self.take("client_assertion");
        let basic = authorization.map(parse_basic).transpose()?;
        if assertion.is_some() || assertion_type.is_some() {
            if assertion_type.as_deref() != Some(ids_jose::assertion::ASSERTION_TYPE) {
                return Err(OAuthError::InvalidRequest(format!(
                    "client_assertion_type must be `{}`",
                    ids_jose::assertion::ASSERTION_TYPE
                )));
            }
            let Some(assertion) = assertion.filter(|a| !a.is_empty()) else {
                return Err(OAuthError::InvalidRequest(
                    "client_assertion is missing".into(),
                ));
            };
            if basic.is_some() || client_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method: a client_assertion or a client secret, not both".into(),
                ));
            }
            let client_id = client_id.unwrap_or_default();
            if client_id.len() > MAX_CLIENT_ID {
                return Err(OAuthError::InvalidRequest(format!(
                    "client_id is longer than {MAX_CLIENT_ID} bytes"
                )));
            }
            return Ok(Credentials {
                client_id: strip_authority(&client_id, authorities).to_string(),
                secret: None,
                assertion: Some(assertion),
                method: AuthMethod::PrivateKeyJwt,
            });
        }
        let credentials = match (basic, client_id, client_secret) {
            (Some(_), _, Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method: the Authorization header or client_secret in the body, not both".into(),
                ));
            }
            (Some((id, secret)), body_id, None) => {
                if body_id.is_some_and(|b| b != id) {
                    return Err(OAuthError::InvalidRequest(
                        "client_id in the body differs from the Authorization header".into(),
                    ));
                }
                Credentials {
                    client_id: id,
                    secret: Some(secret),
                    assertion: None,
                    method: AuthMethod::ClientSecretBasic,
                }
            }
            (None, Some(id), Some(secret)) => Credentials {
                client_id: id,
                secret: Some(ClientSecret::new(secret)),
                assertion: None,
                method: AuthMethod::ClientSecretPost,
            },
            (None, Some(id), None) => Credentials {
                client_id: id,
                secret: None,
                assertion: None,
                method: AuthMethod::None,
            },
            (None, None, _) => return Err(OAuthError::InvalidClient),
        };
        if credentials.client_id.len() > MAX_CLIENT_ID {
            return Err(OAuthError::InvalidRequest(format!(
                "client_id is longer than {MAX_CLIENT_ID} bytes"
            )));
        }
        Ok(Credentials {
            client_id: strip_authority(&credentials.client_id, authorities).to_string(),
            ..credentials
        })
    }
}

/// Parses a token request: the form body and the `Authorization` header.
///
/// `authorities` are the server's own `host[:port]` spellings: a `client_id` of `Job@host:port` means `Job`.
pub fn parse(
    body: &[u8],
    authorization: Option<&str>,
    authorities: &[String],
) -> Result<TokenRequest, OAuthError> {
    let mut form = Form::parse(body, &["grant_type", "scope"], &["resource"])?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::InvalidRequest("missing `grant_type`".into()))?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{}` is not supported; use `client_credentials`",
            printable(grant_type)
        )));
    }
    let credentials = form.credentials(authorization, authorities)?;
    let scopes = match form.get("scope") {
        None => Vec::new(),
        Some(s) => parse_scope(s)?,
    };
    let mut resources: Vec<String> = Vec::new();
    for resource in form.all("resource") {
        let resource =
            crate::settings::oauth::resource_uri(resource).map_err(OAuthError::InvalidTarget)?;
        if !resources.iter().any(|r| r == resource) {
            resources.push(resource.to_string());
        }
    }
    Ok(TokenRequest {
        credentials,
        scopes,
        resources,
    })
}

/// `Job@host:port` -> `Job` when `host:port` is one of the server's authorities (case-insensitive).
pub fn strip_authority<'a>(client_id: &'a str, authorities: &[String]) -> &'a str {
    match client_id.rsplit_once('@') {
        Some((id, authority))
            if !id.is_empty()
                && authorities
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(authority)) =>
        {
            id
        }
        _ => client_id,
    }
}

/// RFC 6749 section 3.3: space-delimited, each token `1*NQCHAR`.
fn parse_scope(text: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::InvalidScope(format!(
                "scope `{}` has characters RFC 6749 section 3.3 does not allow",
                printable(token)
            )));
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_string());
        }
    }
    Ok(scopes)
}

/// `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 section 2.3.1).
fn parse_basic(header: &str) -> Result<(String, ClientSecret), OAuthError> {
    let bad = || {
        OAuthError::InvalidRequest(
            "malformed Authorization header: expected `Basic base64(client_id:client_secret)`"
                .into(),
        )
    };
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidRequest(
            "unsupported Authorization scheme: use `Basic` for client_secret_basic".into(),
        ));
    }
    let decoded = ids_pki::b64::std_decode(value.trim()).ok_or_else(bad)?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let id = percent_decode(id).ok_or_else(bad)?;
    let secret = percent_decode(secret).ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    Ok((id, ClientSecret::new(secret)))
}

/// `application/x-www-form-urlencoded` pairs (`form_urlencoded`), strictly: the body must be UTF-8,
/// every `%` must start a `%XX` escape and the decoded values must be UTF-8 (`form_urlencoded` would
/// keep a stray `%` and replace bad bytes with U+FFFD; a value so altered must not reach
/// authentication).
fn form_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    std::str::from_utf8(body)
        .map_err(|_| OAuthError::InvalidRequest("the body is not UTF-8 form data".into()))?;
    // The separators `&` and `=` are ASCII: the decoded body is UTF-8 exactly when every decoded
    // name and value is.
    if !escapes_well_formed(body)
        || percent_encoding::percent_decode(body)
            .decode_utf8()
            .is_err()
    {
        return Err(OAuthError::InvalidRequest(
            "malformed form encoding in the body".into(),
        ));
    }
    Ok(form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect())
}

/// Form decoding of one component: `+` is a space, `%XX` a byte; `None` for a malformed escape or a
/// result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !escapes_well_formed(text.as_bytes()) {
        return None;
    }
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Whether every `%` of `bytes` is followed by two hex digits.
fn escapes_well_formed(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// RFC 6749 section 3.3: `scope-token = 1*NQCHAR`, printable ASCII without space, `"` and `\`.
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// A network-supplied value safe to echo in an error or a log line: printable ASCII, at most 64 characters.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(r: &TokenRequest) -> Option<String> {
        r.credentials
            .secret
            .as_ref()
            .map(|s| s.expose().to_string())
    }

    fn auth() -> Vec<String> {
        vec!["localhost:5001".to_string()]
    }

    #[test]
    fn post_and_basic() {
        let r = parse(
            b"grant_type=client_credentials&client_id=Job%40localhost%3A5001&client_secret=a%2Bb+c",
            None,
            &auth(),
        )
        .expect("post");
        assert_eq!(r.credentials.client_id, "Job");
        assert_eq!(secret(&r).as_deref(), Some("a+b c"));
        assert_eq!(r.credentials.method, AuthMethod::ClientSecretPost);
        let header = format!("Basic {}", ids_pki::b64::std(b"Job%3Ax:s%3Acret"));
        let r = parse(
            b"grant_type=client_credentials&scope=api+api",
            Some(&header),
            &auth(),
        )
        .expect("basic");
        assert_eq!(r.credentials.client_id, "Job:x");
        assert_eq!(secret(&r).as_deref(), Some("s:cret"));
        assert_eq!(r.scopes, vec!["api"]);
    }

    #[test]
    fn errors() {
        let long = format!(
            "grant_type=client_credentials&client_id={}&client_secret=b",
            "a".repeat(MAX_CLIENT_ID + 1)
        );
        let cases: [(&[u8], Option<&str>, &str); 9] = [
            (b"client_id=a", None, "invalid_request"),
            (
                b"grant_type=password&client_id=a",
                None,
                "unsupported_grant_type",
            ),
            (
                b"grant_type=client_credentials&grant_type=client_credentials",
                None,
                "invalid_request",
            ),
            (b"grant_type=client_credentials", None, "invalid_client"),
            (
                b"grant_type=client_credentials&client_id=a&client_secret=b&scope=a%22b",
                None,
                "invalid_scope",
            ),
            (
                b"grant_type=client_credentials&client_id=%zz",
                None,
                "invalid_request",
            ),
            (
                b"grant_type=client_credentials&client_id=a%+1&client_secret=b",
                None,
                "invalid_request",
            ),
            (
                b"grant_type=client_credentials",
                Some("Basic !!!"),
                "invalid_request",
            ),
            (long.as_bytes(), None, "invalid_request"),
        ];
        for (body, header, code) in cases {
            let got = parse(body, header, &auth())
                .map(|_| ())
                .map_err(|e| e.code());
            assert_eq!(got, Err(code), "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(strip_authority("Job@other:1", &auth()), "Job@other:1");
    }

    #[test]
    fn form_decoding_is_strict_and_keeps_what_is_sent() {
        for bad in [
            &b"client_id=%C3"[..],
            b"client_id=a%2",
            b"client_id=%e9t%e9",
        ] {
            let e = form_urlencoded_pairs(bad).expect_err("malformed");
            assert_eq!(e.description(), "malformed form encoding in the body");
        }
        let e = form_urlencoded_pairs(b"client_id=\xff").expect_err("not UTF-8");
        assert_eq!(e.description(), "the body is not UTF-8 form data");
        let pairs = form_urlencoded_pairs("a=%C3%A9+\u{fffd}&&b&=c".as_bytes()).expect("decoded");
        let expected = [("a", "\u{e9} \u{fffd}"), ("b", ""), ("", "c")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(percent_decode("a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%"), None);
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// Random and mutated bodies and headers never panic the parser (a cheap stand-in for cargo-fuzz,
    /// which needs a nightly toolchain this machine does not have).
    #[test]
    fn random_inputs_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: [&[u8]; 3] = [
            b"grant_type=client_credentials&client_id=Job%40localhost%3A5001&client_secret=a%2Bb+c&scope=api",
            b"grant_type=client_credentials&scope=a+b+c",
            b"%%%&&&===++",
        ];
        let alphabet = b"%+&=aZ09@:\"\\ \x00\xff\xc3";
        for round in 0..20_000 {
            let mut body = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (body.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if pos < body.len() => body[pos] = byte,
                    1 if pos < body.len() => {
                        body.remove(pos);
                    }
                    _ => body.insert(pos, byte),
                }
            }
            let header = match next() % 4 {
                0 => None,
                1 => Some(format!("Basic {}", String::from_utf8_lossy(&body))),
                2 => Some(format!("Basic {}", ids_pki::b64::std(&body))),
                _ => Some(String::from_utf8_lossy(&body).into_owned()),
            };
            let _ = parse(&body, header.as_deref(), &["localhost:5001".to_string()]);
        }
    }
}
