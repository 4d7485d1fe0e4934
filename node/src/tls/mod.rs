//! TLS of a node (rustls, via the `netserve` crate): the `--tls-*` flags, the acceptors of
//! both listeners and the client config of every outbound connection.
//!
//! With TLS on, the client API serves TLS, and the Raft listener serves *mutual* TLS: a peer
//! must present a certificate signed by the cluster CA (`--tls-ca`) or the handshake fails
//! before any request is read. Outbound clients (Raft RPC, read-index and write forwarding,
//! join and admin proxying to peers' APIs) trust only that CA and present the node's own
//! certificate, which is therefore both a server and a client certificate
//! (`raftledger certs` issues such certificates).

mod args;

pub use args::TlsArgs;

use netserve::tokio_rustls::TlsAcceptor;
use std::sync::Arc;

/// Loaded TLS material of a node (present only when TLS is on).
#[derive(Clone)]
pub struct NodeTls {
    /// Acceptor of the client API listener (server TLS, no client certificate asked).
    pub api: TlsAcceptor,
    /// Acceptor of the Raft listener (mutual TLS: client certificate signed by the CA).
    pub raft: TlsAcceptor,
    /// Client config of outbound connections: trusts only the CA, presents this node's
    /// certificate.
    pub client: Arc<netserve::rustls::ClientConfig>,
}

/// Validates the TLS flags of `cfg` and that every node URL it names (advertised, `--peers`,
/// `--join`, `--peer-raft-addr`) uses the scheme of the mode: `https://` with TLS, `http://`
/// without.
pub fn validate(cfg: &crate::config::NodeConfig) -> anyhow::Result<()> {
    let peers = cfg.peer_map()?;
    let overrides = cfg.peer_raft_overrides()?;
    let mut urls: Vec<(&str, &str)> = Vec::new();
    urls.extend(cfg.advertise_api.as_deref().map(|u| ("--advertise-api", u)));
    urls.extend(
        cfg.advertise_raft
            .as_deref()
            .map(|u| ("--advertise-raft", u)),
    );
    urls.extend(cfg.join.as_deref().map(|u| ("--join", u)));
    for addr in peers.values() {
        urls.push(("--peers API URL", &addr.api));
        urls.push(("--peers Raft URL", &addr.raft));
    }
    urls.extend(overrides.values().map(|u| ("--peer-raft-addr", u.as_str())));
    cfg.tls.validate(urls)
}

/// A reqwest client builder that, when `tls` is given, speaks TLS with its client config
/// (trust the cluster CA only, present the node certificate).
pub fn reqwest_builder(tls: Option<&NodeTls>) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder();
    match tls {
        Some(t) => b.use_preconfigured_tls((*t.client).clone()),
        None => b,
    }
}
