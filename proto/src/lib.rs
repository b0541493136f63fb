//! The wire contract the identity server and the agent share.
//!
//! # Layout
//! - [`secrets`]: secret types (`ClientSecret`, `Password`, `BearerToken`) from one macro: redacted
//!   `Debug`, constant-time equality, wiped on drop.

pub mod secrets;

pub use secrets::{BearerToken, ClientSecret, Password};

#[doc(hidden)]
pub mod __private {
    pub use subtle::ConstantTimeEq;
    pub use zeroize::Zeroizing;
}
