//! Log lines nobody can forge: every log event both apps write goes through [`EscapeControls`], which
//! escapes the control characters inside the event (`\n`, `\r`, `\t`, ESC and the other C0 and C1
//! controls, DEL, the line and paragraph separators U+2028/U+2029, the bidirectional marks and
//! overrides, the byte-order mark) and keeps only the event's final line break. A value a client
//! sends (a `client_id`, a `jti`, a header) can then neither start a line of its own nor move the
//! terminal's cursor, whatever code logs it and however.
//!
//! `tracing-subscriber`'s `fmt` layer formats each event into one buffer and hands it to its writer in
//! a single `write_all`, so one `write` call here is one event (a writer that is given less still
//! escapes everything, only a line break at the very end of a call is kept).
//!
//! The escapes are `\n`, `\r`, `\t` and `\uXXXX` (four hex digits): also valid inside a JSON string,
//! so a JSON log format (where the encoder already escapes C0 controls) stays valid JSON and decodes
//! to the original characters. Logs written through it carry no terminal colours (an ESC is always
//! escaped): the apps turn ANSI colours off.

use std::fmt::Write as _;
use std::io::{self, Write};

/// Whether `c` is escaped in logs: control characters (C0, DEL, C1), the line and paragraph
/// separators, the bidirectional marks, embeddings, overrides and isolates, and the byte-order mark.
pub fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_escaped(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// One event as it is written: everything escaped except a final `\n`. Bytes that are not UTF-8
/// (never produced by `tracing`, which formats into a `String`) are written as `\xNN`.
pub fn escape_event(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    let clean = std::str::from_utf8(body).is_ok_and(|t| !t.chars().any(is_escaped));
    if clean {
        return event.into();
    }
    let mut out = String::with_capacity(event.len() + 16);
    for chunk in body.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(end);
    bytes.into()
}

/// A writer that escapes each event it is given (see the module documentation). Build one per event:
/// `tracing_subscriber::fmt().with_writer(|| EscapeControls::new(std::io::stderr()))`.
#[derive(Debug)]
pub struct EscapeControls<W>(W);

impl<W: Write> EscapeControls<W> {
    pub fn new(inner: W) -> Self {
        EscapeControls(inner)
    }
}

impl<W: Write> Write for EscapeControls<W> {
    fn write(&mut self, event: &[u8]) -> io::Result<usize> {
        // The whole event in one `write_all` below, so that lines of concurrent events do not mix.
        self.0.write_all(&escape_event(event))?;
        Ok(event.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn written(events: &[&str]) -> String {
        let mut out = Vec::new();
        for e in events {
            EscapeControls::new(&mut out)
                .write_all(e.as_bytes())
                .unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_the_final_line_break_survives() {
        assert_eq!(
            written(&[
                "WARN jti=\"a\nFORGED line\" ok\n",
                "INFO plain line, no change: é ü 日本\n"
            ]),
            "WARN jti=\"a\\nFORGED line\" ok\nINFO plain line, no change: é ü 日本\n"
        );
        assert_eq!(written(&["x\n\n"]), "x\\n\n");
        assert_eq!(written(&["no line break"]), "no line break");
        assert_eq!(written(&["\r\n"]), "\\r\n");
    }

    #[test]
    fn terminal_escapes_separators_and_bidi_are_escaped() {
        let text = "a\u{1b}[2J\tb\u{7}\u{7f}\u{85}\u{9b}c\u{2028}d\u{2029}\u{202e}txt.exe\u{2066}\u{200f}\u{61c}\u{feff}";
        let out = written(&[&format!("{text}\n")]);
        assert_eq!(
            out,
            "a\\u001b[2J\\tb\\u0007\\u007f\\u0085\\u009bc\\u2028d\\u2029\\u202etxt.exe\\u2066\\u200f\\u061c\\ufeff\n"
        );
        assert_eq!(out.lines().count(), 1);
        assert!(!out.chars().any(|c| is_escaped(c) && c != '\n'));
        assert_eq!(escape_event(b"a\nb").as_ref(), b"a\\nb");
    }

    #[test]
    fn json_strings_stay_valid_and_decode_to_the_original() {
        // serde_json escapes C0 controls itself; what is left (C1, separators, bidi) becomes \uXXXX.
        let value = "x\u{85}\u{2028}\u{202e}y\n";
        let line = format!("{}\n", serde_json::json!({ "jti": value }));
        let out = written(&[&line]);
        assert!(!out.contains('\u{2028}'));
        let parsed: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(parsed["jti"], value);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        let mut out = Vec::new();
        EscapeControls::new(&mut out)
            .write_all(b"a\xff\nb\n")
            .unwrap();
        assert_eq!(out, b"a\\xff\\nb\n");
    }
}
