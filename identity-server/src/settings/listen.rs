//! Listen URLs (`Urls`, `ASPNETCORE_URLS`, `--urls`): what to bind, and the base URL clients use.

/// Why a listen URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListenUrlError {
    #[error("expected a URL like https://localhost:5001")]
    NotAUrl,
    #[error("port `{0}` is not a number from 0 to 65535")]
    Port(String),
    #[error("expected a URL like https://localhost:5001 (no path)")]
    Path,
}

/// A listen URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl ListenUrl {
    /// The base URL clients use for this listen URL on `port`: wildcard hosts become `localhost`.
    pub fn public_base(&self, port: u16) -> String {
        let host = match self.host.as_str() {
            "*" | "+" | "0.0.0.0" | "::" => "localhost".to_string(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_string(),
        };
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{host}:{port}")
    }

    /// Parses `https://host:port` (also `http://` for the insecure development switch, `*`/`+` hosts).
    pub fn parse(text: &str) -> Result<Self, ListenUrlError> {
        let text = text.trim().trim_end_matches('/');
        let (https, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(ListenUrlError::NotAUrl);
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| ListenUrlError::Port(p.to_string()))?,
            ),
            _ => (rest, if https { 443 } else { 80 }),
        };
        if host.is_empty() || host.contains('/') {
            return Err(ListenUrlError::Path);
        }
        Ok(ListenUrl {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        })
    }

    /// The socket address to bind: `localhost` -> 127.0.0.1, `*`/`+`/`0.0.0.0` -> all interfaces.
    pub fn bind_address(&self) -> String {
        let host = match self.host.as_str() {
            "localhost" => "127.0.0.1",
            "*" | "+" => "0.0.0.0",
            h => h,
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}
