//! "Did you mean": the closest known name to a misspelt one, for settings keys and XML names.

/// The candidate closest to `word` (case-insensitive Levenshtein distance, `strsim`) if at most
/// `max_edits` edits away; the first one wins a tie.
pub fn closest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    max_edits: usize,
) -> Option<&'c str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (distance(&word, &candidate.to_lowercase()), candidate))
        .filter(|(d, _)| *d <= max_edits)
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between `a` and `b`, counted in characters.
pub fn distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_characters() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("HashedSecrt", "HashedSecret"), 1);
        assert_eq!(distance("é", "e"), 1);
    }

    #[test]
    fn closest_is_case_insensitive_bounded_and_first_wins() {
        let names = ["Identifier", "HashedSecret", "Profile"];
        assert_eq!(closest("hashedsecrt", names, 2), Some("HashedSecret"));
        assert_eq!(closest("Profil", names, 2), Some("Profile"));
        assert_eq!(closest("Secret", names, 2), None);
        assert_eq!(closest("ab", ["ax", "ay"], 1), Some("ax"));
    }
}
