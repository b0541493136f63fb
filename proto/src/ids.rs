//! Identifiers that travel between the apps, each its own type so that a client id is never passed
//! where a delivery id is expected.

/// Declares a string identifier type: `Display`, `AsRef<str>`, `as_str()`, ordering and hashing, and
/// transparent serde (oauth2-rs `new_type!`).
#[macro_export]
macro_rules! id_type {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, $crate::__private::Serialize, $crate::__private::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// An OAuth client identifier (`client_id`, the token's `sub`): an `OpenIdClient`'s `Identifier`
    /// in the access-control XML. Any non-empty string; its rules are the XML's.
    ClientId
);

impl From<String> for ClientId {
    fn from(id: String) -> Self {
        ClientId(id)
    }
}

impl From<&str> for ClientId {
    fn from(id: &str) -> Self {
        ClientId(id.to_string())
    }
}

id_type!(
    /// The id an agent gives a delivery (its idempotency key, in the namespace of its client):
    /// 1 to [`MAX_DELIVERY_ID_LEN`] characters from `A-Z a-z 0-9 - _ .`, not starting with `.`.
    /// Made only by [`DeliveryId::parse`].
    DeliveryId
);

/// Longest delivery id accepted.
pub const MAX_DELIVERY_ID_LEN: usize = 128;

/// A delivery id that breaks the rules of [`DeliveryId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the delivery id must be 1 to {MAX_DELIVERY_ID_LEN} characters from A-Z a-z 0-9 - _ . and not start with `.` (got {characters} characters)"
)]
pub struct InvalidDeliveryId {
    pub characters: usize,
}

impl DeliveryId {
    pub fn parse(text: &str) -> Result<Self, InvalidDeliveryId> {
        let ok = !text.is_empty()
            && text.len() <= MAX_DELIVERY_ID_LEN
            && !text.starts_with('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(DeliveryId(text.to_string()))
        } else {
            Err(InvalidDeliveryId {
                characters: text.chars().count(),
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_follow_the_rules() {
        assert_eq!(DeliveryId::parse("a-b_c.1").unwrap().as_str(), "a-b_c.1");
        for bad in ["", ".hidden", "a/b", "é", &"x".repeat(129)] {
            let e = DeliveryId::parse(bad).unwrap_err();
            assert_eq!(e.characters, bad.chars().count());
        }
        assert!(DeliveryId::parse(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn ids_are_transparent_in_json_and_compare_with_text() {
        let id = ClientId::from("Job");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"Job\"");
        assert_eq!(serde_json::from_str::<ClientId>("\"Job\"").unwrap(), id);
        assert_eq!(id, "Job");
        assert_eq!(id.to_string(), "Job");
    }
}
