//! The merged model of all documents and its cross-file checks.

use std::collections::{BTreeSet, HashMap};

use crate::model::{Agent, Document, OpenIdClient, Profile};
use crate::{Position, XmlError};

/// The merged access-control model of all documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessControl {
    /// Every `OpenIdClient`, documents in the given order, each in file order.
    pub clients: Vec<OpenIdClient>,
    /// Every `Profile`, in the same order.
    pub profiles: Vec<Profile>,
    /// Every `Agent`, in the same order.
    pub agents: Vec<Agent>,
}

/// An error to report, with the index of its document for sorting.
struct Found {
    document: usize,
    error: XmlError,
}

impl AccessControl {
    /// Merges documents and checks cross-references. Returns EVERY problem found, not just the
    /// first, sorted by document (in the given order) then position.
    ///
    /// Checks: identifiers of clients, of profiles and of agents are unique across all documents
    /// (the error is at the second occurrence and names the first); when at least one `Profile`
    /// is declared, every client's `Profile` names a declared one. Document warnings are not
    /// carried over.
    pub fn build(documents: Vec<Document>) -> Result<AccessControl, Vec<XmlError>> {
        let mut model = AccessControl::default();
        // Document index of each client, profile and agent, for sorting errors.
        let (mut client_docs, mut profile_docs, mut agent_docs) =
            (Vec::new(), Vec::new(), Vec::new());
        for (index, document) in documents.into_iter().enumerate() {
            client_docs.extend(std::iter::repeat_n(index, document.clients.len()));
            profile_docs.extend(std::iter::repeat_n(index, document.profiles.len()));
            agent_docs.extend(std::iter::repeat_n(index, document.agents.len()));
            model.clients.extend(document.clients);
            model.profiles.extend(document.profiles);
            model.agents.extend(document.agents);
        }

        let mut found = Vec::new();
        let clients = model
            .clients
            .iter()
            .map(|c| (c.identifier.as_str(), c.file.as_str(), c.position));
        duplicates(
            "OpenIdClient",
            clients.zip(client_docs.iter().copied()),
            &mut found,
        );
        let profiles = model
            .profiles
            .iter()
            .map(|p| (p.identifier.as_str(), p.file.as_str(), p.position));
        duplicates(
            "Profile",
            profiles.zip(profile_docs.iter().copied()),
            &mut found,
        );
        let agents = model
            .agents
            .iter()
            .map(|a| (a.identifier.as_str(), a.file.as_str(), a.position));
        duplicates("Agent", agents.zip(agent_docs.iter().copied()), &mut found);

        if !model.profiles.is_empty() {
            let declared: BTreeSet<&str> = model
                .profiles
                .iter()
                .map(|p| p.identifier.as_str())
                .collect();
            for (client, &document) in model.clients.iter().zip(&client_docs) {
                let Some(profile) = client.profile.as_deref() else {
                    continue;
                };
                if !declared.contains(profile) {
                    let list = declared.iter().copied().collect::<Vec<_>>().join(", ");
                    let message = format!(
                        "OpenIdClient `{}`: Profile `{profile}` is not declared (declared profiles: {list})",
                        client.identifier
                    );
                    found.push(Found {
                        document,
                        error: XmlError::at(&client.file, client.position, message),
                    });
                }
            }
        }

        if found.is_empty() {
            Ok(model)
        } else {
            found.sort_by_key(|f| (f.document, f.error.line, f.error.column));
            Err(found.into_iter().map(|f| f.error).collect())
        }
    }

    /// The client whose `Identifier` is exactly `identifier` (case-sensitive).
    pub fn client(&self, identifier: &str) -> Option<&OpenIdClient> {
        self.clients
            .iter()
            .find(|client| client.identifier == identifier)
    }
}

/// Reports every element whose identifier was already declared, naming the first declaration.
fn duplicates<'m>(
    kind: &str,
    elements: impl Iterator<Item = ((&'m str, &'m str, Position), usize)>,
    found: &mut Vec<Found>,
) {
    let mut first: HashMap<&str, (&str, Position)> = HashMap::new();
    for ((identifier, file, position), document) in elements {
        match first.get(identifier) {
            Some(&(first_file, first_position)) => {
                let message = format!(
                    "duplicate {kind} `{identifier}`: already declared at {first_file}:{first_position}"
                );
                found.push(Found {
                    document,
                    error: XmlError::at(file, position, message),
                });
            }
            None => {
                first.insert(identifier, (file, position));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parse_document;

    fn parse(file: &str, text: &str) -> Document {
        parse_document(file, text).unwrap()
    }

    fn wrap(body: &str) -> String {
        format!(
            "<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n{body}\n</ConfigurationFile>\n"
        )
    }

    #[test]
    fn merges_documents_in_order() {
        let a = parse(
            "a.xml",
            &wrap(
                r#"<Profile Identifier="Administrator"/><OpenIdClient Identifier="Job" Profile="Administrator"/>"#,
            ),
        );
        let b = parse(
            "b.xml",
            &wrap(
                r#"<OpenIdClient Identifier="Batch"/><Agent Identifier="Local" URI="https://localhost:5001"/>"#,
            ),
        );
        let model = AccessControl::build(vec![a, b]).unwrap();
        let ids: Vec<&str> = model
            .clients
            .iter()
            .map(|c| c.identifier.as_str())
            .collect();
        assert_eq!(ids, ["Job", "Batch"]);
        assert_eq!(model.clients[1].file, "b.xml");
        assert_eq!(model.profiles.len(), 1);
        assert_eq!(
            model.agents[0].uri.as_deref(),
            Some("https://localhost:5001")
        );
        assert_eq!(model.client("Batch").unwrap().file, "b.xml");
        assert!(model.client("batch").is_none(), "lookup is case-sensitive");
        assert!(model.client("Nope").is_none());
    }

    #[test]
    fn duplicate_client_across_documents_names_both_locations() {
        let first = parse("other.xml", &wrap("\n  <OpenIdClient Identifier=\"Job\"/>"));
        let second = parse("second.xml", &wrap(r#"<OpenIdClient Identifier="Job"/>"#));
        let errors = AccessControl::build(vec![first, second]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "second.xml:2:1: duplicate OpenIdClient `Job`: already declared at other.xml:3:3"
        );
    }

    #[test]
    fn every_problem_is_reported_in_document_order() {
        let first = parse(
            "a.xml",
            &wrap(
                r#"<Profile Identifier="Administrator"/>
<Profile Identifier="Reader"/>
<Agent Identifier="Local"/>
<OpenIdClient Identifier="Job" Profile="Admin"/>
<OpenIdClient Identifier="Job" Profile="Reader"/>"#,
            ),
        );
        let second = parse(
            "b.xml",
            &wrap(
                r#"<Agent Identifier="Local"/>
<Profile Identifier="Reader"/>
<OpenIdClient Identifier="Other"/>
<OpenIdClient Identifier="Third" Profile="reader"/>"#,
            ),
        );
        let errors = AccessControl::build(vec![first, second]).unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "a.xml:5:1: OpenIdClient `Job`: Profile `Admin` is not declared \
                 (declared profiles: Administrator, Reader)",
                "a.xml:6:1: duplicate OpenIdClient `Job`: already declared at a.xml:5:1",
                "b.xml:2:1: duplicate Agent `Local`: already declared at a.xml:4:1",
                "b.xml:3:1: duplicate Profile `Reader`: already declared at a.xml:3:1",
                "b.xml:5:1: OpenIdClient `Third`: Profile `reader` is not declared \
                 (declared profiles: Administrator, Reader)",
            ]
        );
    }

    #[test]
    fn any_profile_is_accepted_when_none_is_declared() {
        let document = parse(
            "a.xml",
            &wrap(
                r#"<OpenIdClient Identifier="Job" Profile="Whatever"/><OpenIdClient Identifier="NoProfile"/>"#,
            ),
        );
        let model = AccessControl::build(vec![document]).unwrap();
        assert_eq!(
            model.client("Job").unwrap().profile.as_deref(),
            Some("Whatever")
        );
        assert_eq!(model.client("NoProfile").unwrap().profile, None);
    }

    #[test]
    fn client_without_profile_is_allowed_when_profiles_are_declared() {
        let document = parse(
            "a.xml",
            &wrap(r#"<Profile Identifier="Reader"/><OpenIdClient Identifier="NoProfile"/>"#),
        );
        assert!(AccessControl::build(vec![document]).is_ok());
    }

    #[test]
    fn profile_declared_in_a_later_document_counts() {
        let clients = parse(
            "clients.xml",
            &wrap(r#"<OpenIdClient Identifier="Job" Profile="Reader"/>"#),
        );
        let profiles = parse("profiles.xml", &wrap(r#"<Profile Identifier="Reader"/>"#));
        let model = AccessControl::build(vec![clients, profiles]).unwrap();
        assert_eq!(model.profiles[0].file, "profiles.xml");
    }

    #[test]
    fn empty_input_builds_an_empty_model() {
        assert_eq!(
            AccessControl::build(Vec::new()).unwrap(),
            AccessControl::default()
        );
    }
}
