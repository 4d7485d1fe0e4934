//! Raft RPC between nodes: HTTP/1.1 on its own listener (never the client port), bodies in
//! bincode, every request and reply signed with an HMAC of the cluster secret (`auth::peer_mac`),
//! over mutual TLS when `--tls-*` is set.
//!
//! - `wire`   — codec and the authentication header shared by both sides.
//! - `client` — openraft `RaftNetworkFactory`/`RaftNetworkV2` over reqwest (one pooled client).
//! - `server` — the axum router that feeds requests into the local `Raft`, plus the internal
//!   routes followers use: read-index (follower linearizable reads) and propose (write forwarding).

pub mod client;
pub mod server;
pub mod wire;

pub use client::NetworkFactory;
