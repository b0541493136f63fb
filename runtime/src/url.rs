//! URL pieces messages and keys are made of.

/// `host[:port]` of a URL as written (no scheme, no path): what log lines and error messages name.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_host_and_port() {
        assert_eq!(
            authority("https://ids.example:5001/connect/token"),
            "ids.example:5001"
        );
        assert_eq!(authority("https://[::1]:8443"), "[::1]:8443");
        assert_eq!(authority("ids.example/x"), "ids.example");
        assert_eq!(authority("https://h?x=1"), "h");
    }
}
