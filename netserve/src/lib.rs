//! How the node (`raftledger`) and the read model serve connections: one HTTP accept loop with
//! bounded header reads and TLS handshakes, and the TLS plumbing. rustls only (no OpenSSL),
//! with the `ring` crypto provider named explicitly so no process-wide default is needed.
//!
//! Modules:
//! - `http_server` — the HTTP/1.1 accept loop of every listener (node API, node Raft, read
//!   model): header read timeout (slowloris; also the idle keep-alive timeout), TLS handshake
//!   bounded by the same timeout on each connection's own task, graceful shutdown.
//! - `pem`      — reading certificate chains, private keys and CA bundles from PEM files
//!   (errors name the file).
//! - `configs`  — rustls server configs (optionally requiring a client certificate signed by
//!   a CA: mutual TLS), client configs trusting only a CA (optionally presenting a
//!   certificate), and the bounded server handshake.
//! - `generate` — a local CA plus node and operator certificates (`raftledger certs`, test
//!   clusters).

pub mod configs;
pub mod generate;
pub mod http_server;
pub mod pem;

pub use configs::{accept, client_config, server_config, Identity};
pub use rustls;
pub use tokio_rustls;

use std::sync::Arc;

/// The crypto provider every config here is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
