//! Access-control XML configuration of Usercube / Identity Manager, as a typed model.
//!
//! Who uses it: the identity server, which knows its OAuth clients from these files (and the tests).
//! Why a crate of its own: it reads another product's files, so it has no I/O and no server types, and
//! it can be fuzzed alone.
//!
//! A configuration folder holds many `*.xml` files (root element usually
//! `<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">`) with many kinds of
//! elements. Only three are collected, at any depth and whatever their namespace prefix:
//! `OpenIdClient`, `Profile` and `Agent`. Everything else (other elements, text, comments,
//! processing instructions, `DOCTYPE`) is checked for well-formedness and otherwise ignored.
//!
//! The crate does no file I/O: the caller reads the files and hands their text to
//! [`parse_document`], then merges the resulting [`Document`]s with [`AccessControl::build`],
//! which checks the cross-references (duplicate identifiers, undeclared profiles) and returns
//! every problem at once. Every error is an [`XmlError`] that prints as
//! `file:line:column: message`, the position being the `<` of the offending element (or the place
//! where the XML parser noticed a syntax error). Problems that do not prevent using the file
//! (unknown attributes, out-of-range languages) are returned as [`Document::warnings`].
//!
//! ```
//! let text = r#"<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
//!   <Profile Identifier="Administrator" />
//!   <OpenIdClient Identifier="Job" Profile="Administrator" ExpirationDate="2027-01-01" />
//! </ConfigurationFile>"#;
//! let document = ids_xml::parse_document("conf/Job.xml", text)?;
//! let model = ids_xml::AccessControl::build(vec![document]).map_err(|errors| errors[0].clone())?;
//! let job = model.client("Job").ok_or("no Job")?;
//! assert_eq!(job.position, ids_xml::Position { line: 3, column: 3 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `model`: the collected elements ([`OpenIdClient`], [`Profile`], [`Agent`]) and one parsed
//!   file ([`Document`]).
//! - `parse`: [`parse_document`], a single pass over quick-xml's event reader; attribute
//!   matching (case-insensitive fallback, "did you mean" warnings).
//! - `access`: [`AccessControl`], the merged model and its cross-file checks.
//! - `locate`: byte offset to 1-based line and character column, incremental so a whole file
//!   costs one scan (`\n`, `\r\n` and a lone `\r` each end a line).
//! - `date`: the accepted `ExpirationDate` formats.

mod access;
mod date;
mod locate;
mod model;
mod parse;

pub use access::AccessControl;
pub use model::{Agent, Document, OpenIdClient, Profile};
pub use parse::parse_document;

/// 1-based line and column (column counted in characters) of the start of an element's `<`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in Unicode scalar values (not bytes).
    pub column: u32,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// An error located in a file. Display: "{file}:{line}:{column}: {message}".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct XmlError {
    /// The file name given to [`parse_document`].
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// What is wrong, without the location.
    pub message: String,
}

impl XmlError {
    /// An error at `position` in `file`.
    pub(crate) fn at(file: &str, position: Position, message: impl Into<String>) -> Self {
        XmlError {
            file: file.to_owned(),
            line: position.line,
            column: position.column,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_is_file_line_column_message() {
        let error = XmlError::at("a.xml", Position { line: 3, column: 7 }, "boom");
        assert_eq!(error.to_string(), "a.xml:3:7: boom");
        assert_eq!(Position { line: 3, column: 7 }.to_string(), "3:7");
    }
}
