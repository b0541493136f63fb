//! Delivered file names: shown to operators and used as the default export name, so a name must be
//! one plain, visible file name. [`check_name`] refuses at upload time what could disguise a file
//! (a hidden `.name`, bidirectional overrides that reverse `txt.exe`, line separators, byte order marks,
//! zero-width and other invisible characters); [`export_name`] makes a safe name out of a record
//! stored before these checks.

use super::{DeliveryError, MAX_NAME_LEN};

/// Unicode general categories Cf (format), Zl (line separator) and Zp (paragraph separator), as of
/// Unicode 16: invisible characters that change how the text around them is shown. Cc (control) is
/// `char::is_control`.
///
/// Not the same set as `ids_config::log_escape::is_escaped`, on purpose: the log escapes only what can
/// forge a line or reorder a terminal's text (controls, line and paragraph separators, bidirectional
/// marks, embeddings, overrides and isolates, the byte-order mark), and leaves every other character of
/// a logged value readable; a file name must also not hide anything (zero-width characters, soft
/// hyphens, tags...), so this set is larger. The log's set is a subset of this one (a test checks it):
/// an accepted name is never escaped in a log line.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Names of the characters most used to disguise a name.
const NAMES: &[(u32, &str)] = &[
    (0x00AD, "SOFT HYPHEN"),
    (0x061C, "ARABIC LETTER MARK"),
    (0x180E, "MONGOLIAN VOWEL SEPARATOR"),
    (0x200B, "ZERO WIDTH SPACE"),
    (0x200C, "ZERO WIDTH NON-JOINER"),
    (0x200D, "ZERO WIDTH JOINER"),
    (0x200E, "LEFT-TO-RIGHT MARK"),
    (0x200F, "RIGHT-TO-LEFT MARK"),
    (0x2028, "LINE SEPARATOR"),
    (0x2029, "PARAGRAPH SEPARATOR"),
    (0x202A, "LEFT-TO-RIGHT EMBEDDING"),
    (0x202B, "RIGHT-TO-LEFT EMBEDDING"),
    (0x202C, "POP DIRECTIONAL FORMATTING"),
    (0x202D, "LEFT-TO-RIGHT OVERRIDE"),
    (0x202E, "RIGHT-TO-LEFT OVERRIDE"),
    (0x2060, "WORD JOINER"),
    (0x2061, "FUNCTION APPLICATION"),
    (0x2062, "INVISIBLE TIMES"),
    (0x2063, "INVISIBLE SEPARATOR"),
    (0x2064, "INVISIBLE PLUS"),
    (0x2066, "LEFT-TO-RIGHT ISOLATE"),
    (0x2067, "RIGHT-TO-LEFT ISOLATE"),
    (0x2068, "FIRST STRONG ISOLATE"),
    (0x2069, "POP DIRECTIONAL ISOLATE"),
    (0xFEFF, "ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK)"),
];

/// Whether `c` is a control (Cc), format (Cf), line separator (Zl) or paragraph separator (Zp)
/// character: never allowed in a name.
pub fn is_disguising(c: char) -> bool {
    let code = u32::from(c);
    c.is_control()
        || FORMAT
            .iter()
            .any(|&(first, last)| (first..=last).contains(&code))
}

/// `U+202E RIGHT-TO-LEFT OVERRIDE`, or the code point and what kind of character it is.
pub fn describe(c: char) -> String {
    let code = u32::from(c);
    match NAMES.iter().find(|(n, _)| *n == code) {
        Some((_, name)) => format!("U+{code:04X} {name}"),
        None if c.is_control() => format!("U+{code:04X} (a control character)"),
        None if (0xE0000..=0xE007F).contains(&code) => format!("U+{code:04X} (a tag character)"),
        None => format!("U+{code:04X} (an invisible format character)"),
    }
}

/// Checks a file name given by an agent: 1 to [`MAX_NAME_LEN`] bytes, no folder (`/`, `\`), not
/// `.`/`..` nor starting with `.` (hidden once exported), and none of the characters of
/// [`is_disguising`]. The refusal names the character and its position.
pub fn check_name(name: &str) -> Result<(), DeliveryError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains(['/', '\\']) {
        return Err(DeliveryError::InvalidRequest(format!(
            "the file name must be 1 to {MAX_NAME_LEN} bytes, without `/` or `\\` (got {} bytes)",
            name.len()
        )));
    }
    if name.starts_with('.') {
        return Err(DeliveryError::InvalidRequest(
            "the file name must not start with `.`: it would be a hidden file once exported".into(),
        ));
    }
    if let Some((at, c)) = name.chars().enumerate().find(|(_, c)| is_disguising(*c)) {
        return Err(DeliveryError::InvalidRequest(format!(
            "the file name has {} at character {}: control, bidirectional, line-separator and invisible characters are refused in names, as they can disguise what a file is",
            describe(c),
            at + 1
        )));
    }
    Ok(())
}

/// The name `name` is shown as: the characters of [`is_disguising`] as `\u{...}` escapes.
pub fn shown(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if is_disguising(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A safe file name for writing delivery `id`, named `name` by its agent: each character of
/// [`is_disguising`] (and `/`, `\`) replaced by `_`, leading dots removed, `delivery-<id>` when nothing
/// is left. With what was changed, when something was.
pub fn export_name(name: &str, id: &str) -> (String, Option<String>) {
    let mut changes = Vec::new();
    let mut safe = String::with_capacity(name.len());
    for c in name.chars() {
        if is_disguising(c) || c == '/' || c == '\\' {
            let what = if is_disguising(c) {
                describe(c)
            } else {
                format!("`{c}`")
            };
            changes.push(format!("{what} replaced by `_`"));
            safe.push('_');
        } else {
            safe.push(c);
        }
    }
    let visible = safe.trim_start_matches('.');
    if visible.len() != safe.len() {
        changes.push("leading `.` removed (a hidden file)".to_string());
        safe = visible.to_string();
    }
    if safe.is_empty() {
        changes.push("nothing left: named after the delivery id".to_string());
        safe = format!("delivery-{id}");
    }
    if changes.is_empty() {
        (safe, None)
    } else {
        changes.dedup();
        (safe, Some(changes.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character the log escapes is refused in a name (so accepted names log as they are); the
    /// converse does not hold (see [`FORMAT`]).
    #[test]
    fn what_the_log_escapes_is_refused_in_names() {
        let escaped: Vec<char> = (0..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| ids_config::log_escape::is_escaped(c))
            .collect();
        assert!(escaped.len() > 60, "{}", escaped.len());
        for c in escaped {
            assert!(is_disguising(c), "{}", describe(c));
        }
        assert!(is_disguising('\u{200b}') && !ids_config::log_escape::is_escaped('\u{200b}'));
    }
}
