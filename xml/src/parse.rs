//! One file's text -> [`Document`], in a single pass over quick-xml's event reader.

use std::collections::BTreeMap;

use quick_xml::escape::{EscapeError, resolve_predefined_entity};
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use crate::date::parse_expiration;
use crate::locate::Locator;
use crate::model::{Agent, Document, OpenIdClient, Profile};
use crate::{Position, XmlError};
use ids_runtime::suggest::closest;

/// Parses one file's text. `file` is the name used in errors/positions. A leading UTF-8 BOM is
/// skipped.
///
/// Collects the `OpenIdClient`, `Profile` and `Agent` elements at any depth, matched by local
/// name (a namespace prefix is ignored). The whole text must be well-formed XML: a syntax error
/// anywhere, even in an element that is otherwise ignored, is an [`XmlError`] located where the
/// parser noticed it. Entities declared in a `DOCTYPE` are not expanded: they are tolerated in
/// text (which is ignored) but are an error in attribute values.
pub fn parse_document(file: &str, text: &str) -> Result<Document, XmlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser {
        file,
        text,
        locator: Locator::new(text),
        document: Document {
            file: file.to_owned(),
            ..Document::default()
        },
        doctype: false,
        version: XmlVersion::Implicit1_0,
    };
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    // Byte offset of the `<` and length of the name of each open element.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut root_seen = false;
    loop {
        // Before a markup event, the reader stands on its `<`.
        let before = offset(reader.buffer_position());
        match reader.read_event() {
            Ok(Event::Start(element)) => {
                parser.element(&element, before)?;
                open.push((before, element.name().as_ref().len()));
                root_seen = true;
            }
            Ok(Event::Empty(element)) => {
                parser.element(&element, before)?;
                root_seen = true;
            }
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::GeneralRef(reference)) => parser.reference(&reference, before)?,
            Ok(Event::DocType(_)) => parser.doctype = true,
            Ok(Event::Decl(decl)) => {
                // Attribute values are normalised by the rules of the declared version (1.0 when
                // absent or unreadable).
                if let Ok(version) = decl.xml_version() {
                    parser.version = version;
                }
            }
            Ok(Event::Eof) => break,
            Ok(Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_)) => {}
            Err(error) => {
                let at = offset(reader.error_position());
                return Err(parser.error(at, format!("malformed XML: {}", describe(&error))));
            }
        }
    }
    if let Some(&(start, name_len)) = open.last() {
        let name = text.get(start + 1..start + 1 + name_len).unwrap_or("?");
        let opened = parser.locator.locate(start);
        return Err(parser.error(
            text.len(),
            format!(
                "malformed XML: unexpected end of file: `<{name}>` opened at {opened} is not closed"
            ),
        ));
    }
    if !root_seen {
        return Err(parser.error(text.len(), "malformed XML: no root element"));
    }
    Ok(parser.document)
}

fn offset(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// quick-xml's message without its category prefix.
fn describe(error: &quick_xml::Error) -> String {
    match error {
        quick_xml::Error::Syntax(error) => error.to_string(),
        quick_xml::Error::IllFormed(error) => error.to_string(),
        quick_xml::Error::Escape(error) => describe_escape(error),
        other => other.to_string(),
    }
}

fn describe_escape(error: &EscapeError) -> String {
    match error {
        EscapeError::UnrecognizedEntity(_, name) => format!("unknown entity `&{name};`"),
        EscapeError::UnterminatedEntity(_) => {
            "`&` does not start an entity reference ending with `;` (write `&amp;` for a literal `&`)".to_owned()
        }
        EscapeError::InvalidCharRef(error) => format!("invalid character reference: {error}"),
        EscapeError::TooManyNestedEntities => "too many nested entities".to_owned(),
    }
}

/// The elements this crate collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Client,
    Profile,
    Agent,
}

/// A recognised attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Identifier,
    HashedSecret,
    DisplayName(u8),
    Profile,
    ContextId,
    Context,
    ExpirationDate,
    Uri,
    Thumbprints,
    TlsClientAuthSubjectDn,
    TlsClientAuthSan,
    Audiences,
    RequireDpop,
}

const CLIENT_ATTRIBUTES: &[(&str, Field)] = &[
    ("Identifier", Field::Identifier),
    ("HashedSecret", Field::HashedSecret),
    ("Profile", Field::Profile),
    ("ContextId", Field::ContextId),
    ("Context", Field::Context),
    ("ExpirationDate", Field::ExpirationDate),
    ("Thumbprints", Field::Thumbprints),
    ("TlsClientAuthSubjectDn", Field::TlsClientAuthSubjectDn),
    ("TlsClientAuthSan", Field::TlsClientAuthSan),
    ("Audiences", Field::Audiences),
    ("RequireDPoP", Field::RequireDpop),
];
const PROFILE_ATTRIBUTES: &[(&str, Field)] = &[("Identifier", Field::Identifier)];
const AGENT_ATTRIBUTES: &[(&str, Field)] =
    &[("Identifier", Field::Identifier), ("URI", Field::Uri)];

const DISPLAY_NAME_PREFIX: &str = "DisplayName_L";

impl Kind {
    fn from_local_name(name: &str) -> Option<Kind> {
        match name {
            "OpenIdClient" => Some(Kind::Client),
            "Profile" => Some(Kind::Profile),
            "Agent" => Some(Kind::Agent),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Client => "OpenIdClient",
            Kind::Profile => "Profile",
            Kind::Agent => "Agent",
        }
    }

    /// The documented attributes, `DisplayName_L*` aside.
    fn attributes(self) -> &'static [(&'static str, Field)] {
        match self {
            Kind::Client => CLIENT_ATTRIBUTES,
            Kind::Profile => PROFILE_ATTRIBUTES,
            Kind::Agent => AGENT_ATTRIBUTES,
        }
    }

    fn has_display_names(self) -> bool {
        matches!(self, Kind::Client | Kind::Profile)
    }

    /// Attribute names offered in "did you mean" hints.
    fn suggestions(self) -> impl Iterator<Item = &'static str> {
        let display_name = self.has_display_names().then_some("DisplayName_L1");
        self.attributes()
            .iter()
            .map(|(name, _)| *name)
            .chain(display_name)
    }

    /// What attribute `key` is. Names are documented with their case, but a case-only
    /// difference is accepted (operators hand-edit these files).
    fn classify(self, key: &str) -> Match {
        if let Some((_, field)) = self
            .attributes()
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
        {
            return Match::Field(*field);
        }
        if self.has_display_names() {
            let prefix = key.get(..DISPLAY_NAME_PREFIX.len()).unwrap_or_default();
            let digits = key.get(DISPLAY_NAME_PREFIX.len()..).unwrap_or_default();
            if prefix.eq_ignore_ascii_case(DISPLAY_NAME_PREFIX)
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                return match digits.parse::<u8>() {
                    Ok(language @ 1..=16) => Match::Field(Field::DisplayName(language)),
                    _ => Match::LanguageOutOfRange,
                };
            }
        }
        Match::Unknown
    }
}

enum Match {
    Field(Field),
    LanguageOutOfRange,
    Unknown,
}

/// The attribute values of one collected element.
#[derive(Default)]
struct Values {
    identifier: Option<String>,
    hashed_secret: Option<String>,
    display_names: BTreeMap<u8, String>,
    profile: Option<String>,
    context_id: Option<String>,
    context: Option<String>,
    expiration_date: Option<String>,
    uri: Option<String>,
    thumbprints: Option<String>,
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san: Option<String>,
    audiences: Option<String>,
    require_dpop: Option<String>,
}

struct Parser<'t> {
    file: &'t str,
    text: &'t str,
    locator: Locator<'t>,
    document: Document,
    /// A `DOCTYPE` was seen: it may declare entities, so unknown ones in text are tolerated.
    doctype: bool,
    /// The version in the XML declaration, which decides how attribute values are normalised.
    version: XmlVersion,
}

impl Parser<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) -> XmlError {
        XmlError::at(self.file, self.locator.locate(offset), message)
    }

    fn warn(&mut self, position: Position, message: &str) {
        self.document
            .warnings
            .push(format!("{}:{position}: {message}", self.file));
    }

    /// An entity or character reference in text: must be known (unless a DOCTYPE may declare it).
    fn reference(&mut self, reference: &BytesRef<'_>, at: usize) -> Result<(), XmlError> {
        match reference.resolve_char_ref() {
            Ok(Some(_)) => Ok(()),
            Ok(None) => {
                let name: &str = reference.as_ref();
                if self.doctype || resolve_predefined_entity(name).is_some() {
                    Ok(())
                } else {
                    Err(self.error(at, format!("malformed XML: unknown entity `&{name};`")))
                }
            }
            Err(error) => Err(self.error(at, format!("malformed XML: {}", describe(&error)))),
        }
    }

    /// Any start or empty element starting at byte `start`: its attributes are checked
    /// (syntax, duplicates, escapes); the three collected kinds are recorded.
    fn element(&mut self, element: &BytesStart<'_>, start: usize) -> Result<(), XmlError> {
        let kind = Kind::from_local_name(element.local_name().as_ref());
        let mut values = Values::default();
        // (field, attribute name as written), to catch case-only duplicates.
        let mut seen: Vec<(Field, String)> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let mut out_of_range: Vec<String> = Vec::new();

        let mut attributes = element.attributes();
        attributes.with_checks(true);
        for attribute in attributes {
            let attribute = attribute.map_err(|error| self.attribute_error(start, &error))?;
            let key: &str = attribute.key.as_ref();
            let value = attribute.normalized_value(self.version).map_err(|error| {
                self.error(
                    start,
                    format!("malformed XML: attribute `{key}`: {}", describe(&error)),
                )
            })?;
            let Some(kind) = kind else { continue };
            if key == "xmlns" || key.contains(':') {
                // Namespace declarations and attributes of other namespaces are not ours.
                continue;
            }
            let field = match kind.classify(key) {
                Match::Field(field) => field,
                Match::LanguageOutOfRange => {
                    out_of_range.push(key.to_owned());
                    continue;
                }
                Match::Unknown => {
                    unknown.push(key.to_owned());
                    continue;
                }
            };
            if let Some((_, first)) = seen.iter().find(|(f, _)| *f == field) {
                return Err(self.error(
                    start,
                    format!(
                        "{}: duplicate attribute `{key}` (same as `{first}`)",
                        kind.name()
                    ),
                ));
            }
            seen.push((field, key.to_owned()));
            let value = value.into_owned();
            match field {
                Field::Identifier => values.identifier = Some(value),
                Field::HashedSecret => values.hashed_secret = Some(value),
                Field::DisplayName(language) => {
                    values.display_names.insert(language, value);
                }
                Field::Profile => values.profile = Some(value),
                Field::ContextId => values.context_id = Some(value),
                Field::Context => values.context = Some(value),
                Field::ExpirationDate => values.expiration_date = Some(value),
                Field::Uri => values.uri = Some(value),
                Field::Thumbprints => values.thumbprints = Some(value),
                Field::TlsClientAuthSubjectDn => values.tls_client_auth_subject_dn = Some(value),
                Field::TlsClientAuthSan => values.tls_client_auth_san = Some(value),
                Field::Audiences => values.audiences = Some(value),
                Field::RequireDpop => values.require_dpop = Some(value),
            }
        }
        let Some(kind) = kind else { return Ok(()) };

        let position = self.locator.locate(start);
        let identifier = match values.identifier.take() {
            None => {
                return Err(XmlError::at(
                    self.file,
                    position,
                    format!("{} has no Identifier attribute", kind.name()),
                ));
            }
            Some(identifier) if identifier.trim().is_empty() => {
                return Err(XmlError::at(
                    self.file,
                    position,
                    format!("{} has no Identifier attribute (it is empty)", kind.name()),
                ));
            }
            Some(identifier) => identifier,
        };
        for key in out_of_range {
            self.warn(
                position,
                &format!("{key} ignored: languages go from _L1 to _L16"),
            );
        }
        for key in unknown {
            let hint = match closest(&key, kind.suggestions(), 2) {
                Some(name) => format!("; did you mean `{name}`?"),
                None => String::new(),
            };
            let message = format!(
                "{} `{identifier}`: unknown attribute `{key}` ignored{hint}",
                kind.name()
            );
            self.warn(position, &message);
        }

        let file = self.file.to_owned();
        match kind {
            Kind::Client => {
                let expiration_date = match values.expiration_date {
                    None => None,
                    Some(text) => Some(parse_expiration(&text).ok_or_else(|| {
                        XmlError::at(
                            self.file,
                            position,
                            format!(
                                "OpenIdClient `{identifier}`: ExpirationDate `{text}` is not a date \
                                 (expected e.g. 2027-01-01T00:00:00)"
                            ),
                        )
                    })?),
                };
                let require_dpop = match values.require_dpop.as_deref().map(str::trim) {
                    None => false,
                    Some(v) if v.eq_ignore_ascii_case("true") => true,
                    Some(v) if v.eq_ignore_ascii_case("false") => false,
                    Some(v) => {
                        return Err(XmlError::at(
                            self.file,
                            position,
                            format!(
                                "OpenIdClient `{identifier}`: RequireDPoP `{v}` is not a boolean \
                                 (expected true or false)"
                            ),
                        ));
                    }
                };
                self.document.clients.push(OpenIdClient {
                    audiences: values.audiences.as_deref().map(|a| {
                        a.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                            .filter(|t| !t.is_empty())
                            .map(str::to_string)
                            .collect()
                    }),
                    require_dpop,
                    identifier,
                    hashed_secret: values.hashed_secret,
                    display_names: values.display_names,
                    profile: values.profile,
                    context_id: values.context_id,
                    context: values.context,
                    expiration_date,
                    thumbprints: values
                        .thumbprints
                        .as_deref()
                        .unwrap_or_default()
                        .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                    tls_client_auth_subject_dn: values
                        .tls_client_auth_subject_dn
                        .filter(|v| !v.trim().is_empty()),
                    tls_client_auth_san: values
                        .tls_client_auth_san
                        .filter(|v| !v.trim().is_empty()),
                    file,
                    position,
                });
            }
            Kind::Profile => self.document.profiles.push(Profile {
                identifier,
                display_names: values.display_names,
                file,
                position,
            }),
            Kind::Agent => self.document.agents.push(Agent {
                identifier,
                uri: values.uri,
                file,
                position,
            }),
        }
        Ok(())
    }

    /// A syntax error in the attributes of the element whose `<` is at byte `start`; quick-xml
    /// reports positions relative to the byte after the `<`.
    fn attribute_error(&mut self, start: usize, error: &AttrError) -> XmlError {
        let at = |relative: usize| start + 1 + relative;
        let (offset, message) = match *error {
            AttrError::ExpectedEq(p) => {
                (at(p), "attribute name must be followed by `=`".to_owned())
            }
            AttrError::ExpectedValue(p) => (
                at(p),
                "`=` must be followed by a quoted attribute value".to_owned(),
            ),
            AttrError::UnquotedValue(p) => (
                at(p),
                "attribute value must be enclosed in `\"` or `'`".to_owned(),
            ),
            AttrError::ExpectedQuote(p, quote) => (
                at(p),
                format!(
                    "attribute value is not closed: missing `{}`",
                    char::from(quote)
                ),
            ),
            AttrError::Duplicated(p, _) => (
                at(p),
                format!("duplicate attribute `{}`", self.name_at(at(p))),
            ),
        };
        self.error(offset, format!("malformed XML: {message}"))
    }

    /// The XML name starting at byte `offset`.
    fn name_at(&self, offset: usize) -> &str {
        let rest = self.text.get(offset..).unwrap_or_default();
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/' || c == '>')
            .unwrap_or(rest.len());
        &rest[..end]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
