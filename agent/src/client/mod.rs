//! Talking to the identity server: HTTPS with retries, discovery, and the client-credentials grant.

pub mod deliveries;
pub mod discovery;
pub mod dpop;
pub mod http;
pub mod tokens;
