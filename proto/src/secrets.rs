//! Secret values: what a `Debug` or a log line must never show.

/// Declares a secret string type: wiped from memory on drop, `Debug` redacted, equality in constant time,
/// and one deliberately named accessor, `expose()` (oauth2-rs `new_secret_type!`).
#[macro_export]
macro_rules! secret_type {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Clone)]
        pub struct $name($crate::__private::Zeroizing<String>);

        impl $name {
            pub fn new(secret: impl Into<String>) -> Self {
                $name($crate::__private::Zeroizing::new(secret.into()))
            }

            /// Deliberately named: the only way to read the secret.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                use $crate::__private::ConstantTimeEq as _;
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl Eq for $name {}

        impl $crate::__private::Serialize for $name {
            fn serialize<S: $crate::__private::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> $crate::__private::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map($name::new)
            }
        }
    };
}

secret_type!(
    /// A plain client secret (`client_secret`), as the agent sends it and the server checks it.
    ClientSecret
);

secret_type!(
    /// The password of a PFX or key file.
    Password
);

secret_type!(
    /// An access token as sent in `Authorization: Bearer`.
    BearerToken
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_equality_compares_values() {
        let s = ClientSecret::new("hunter2");
        assert_eq!(format!("{s:?}"), "ClientSecret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s, ClientSecret::new("hunter2"));
        assert_ne!(s, ClientSecret::new("hunter3"));
        assert_eq!(format!("{:?}", Password::new("x")), "Password(<redacted>)");
    }
}
