//! Small command-line tools over the project's libraries:
//! - `new-openid-secret`: hashes a client secret for the `HashedSecret` XML attribute.
//! - `ids-bench`: measures raw signing speed and token throughput of a running server.
