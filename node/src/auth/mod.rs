//! Who may talk to a node, and on which terms:
//! - `args`       — the authentication flags (`--insecure`, `--peer-allow`, `--api-keys-file`,
//!   `--allowed-hosts`), flattened into the node configuration.
//! - `exposure`   — "insecure only on purpose": a node reachable from the network refuses to
//!   start without an admin token and a strong cluster secret, unless `--insecure`.
//! - `peer_mac`   — mutual authentication of Raft RPC with an HMAC of every request and every
//!   response; the cluster secret itself never leaves the node.
//! - `member_url` — validation of member URLs (learners, `--join`, `--peers`) and the optional
//!   allow-list.
//! - `api_keys`   — client API keys with a scope, stored as SHA-256 hashes in a file.
//! - `gate`       — the client API middleware: `Host` check, API keys, admin authorization.

pub mod api_keys;
pub mod args;
pub mod exposure;
pub mod gate;
pub mod member_url;
pub mod peer_mac;

/// Compares two byte strings in constant time (for equal lengths; a length difference is not
/// hidden, which is fine for tokens whose length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
