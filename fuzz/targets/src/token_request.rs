//! Token requests (`identity_server::oauth::request::parse`): the form body and the `Authorization`
//! header of `POST /connect/token`.

use identity_server::oauth::request;

use crate::consume;
use crate::fixtures::AUTHORITIES;

/// Parses `data` as `Authorization header value \n form body`; without a newline, all of `data` is
/// the body and there is no header (a header value never holds a newline).
pub fn token_request(data: &[u8]) {
    let (authorization, body) = match data.iter().position(|&b| b == b'\n') {
        Some(split) => (std::str::from_utf8(&data[..split]).ok(), &data[split + 1..]),
        None => (None, data),
    };
    let authorities = AUTHORITIES.map(String::from);
    match request::parse(body, authorization, &authorities) {
        Ok(parsed) => {
            consume(request::strip_authority(
                &parsed.credentials.client_id,
                &authorities,
            ));
            consume(parsed.scopes.iter().all(|s| request::is_scope_token(s)));
            consume(format!("{parsed:?}"));
        }
        Err(e) => consume((e.code(), e.to_string())),
    }
}
