//! Access-control XML (`ids_xml`): one document, then the cross-file checks on it twice (as if two
//! files held the same elements).

use crate::consume;

/// Parses `data` (UTF-8, else with invalid sequences replaced, as the server refuses them earlier) and
/// builds the access-control model from it alone and from two copies of it.
pub fn xml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let document = match ids_xml::parse_document("fuzz.xml", &text) {
        Ok(document) => document,
        Err(e) => return consume(e.to_string()),
    };
    for documents in [vec![document.clone()], vec![document.clone(), document]] {
        match ids_xml::AccessControl::build(documents) {
            Ok(model) => consume(model.client("Job")),
            Err(errors) => errors.iter().for_each(|e| consume(e.to_string())),
        }
    }
}
