//! TLS of the read model's query API: the `--tls-cert`/`--tls-key` flags and a TLS listener
//! for `axum::serve`.
//!
//! [`TlsListener`] accepts TCP connections and runs each TLS handshake on its own task,
//! bounded by [`HANDSHAKE_TIMEOUT_MS`], handing finished ones to the server: a client that
//! connects and never completes a handshake holds neither the accept loop nor other clients.
//! Certificate loading is shared with the node (`tlsconf`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tlsconf::tokio_rustls::server::TlsStream;
use tlsconf::tokio_rustls::TlsAcceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Handshaken connections waiting for the server to take them.
const READY_QUEUE_LEN: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_BACKOFF_MS: u64 = 50;

/// TLS flags of the read model: both or none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// PEM certificate (chain) of the query API; with `--tls-key`, the API serves HTTPS only.
    #[arg(long, env = "RAFTLEDGER_READMODEL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "RAFTLEDGER_READMODEL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// Loads the acceptor; `None` when TLS is off. Errors name the bad file.
    pub fn load(&self) -> anyhow::Result<Option<TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                let cfg = tlsconf::server_config(tlsconf::Identity { cert, key }, None)?;
                Ok(Some(TlsAcceptor::from(cfg)))
            }
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both (TLS) or none"),
        }
    }
}

/// A listener yielding TLS connections whose handshake completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `acceptor`.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE_LEN);
        let acceptor_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "readmodel.accept_failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let timeout = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
                    match tlsconf::accept(&acceptor, stream, timeout).await {
                        Ok(tls) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Err(e) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            addr,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task only ends when aborted by our own drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;

    #[tokio::test]
    async fn serves_https_with_the_given_certificate_and_refuses_plain_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        tlsconf::generate::generate(&tlsconf::generate::CertsRequest {
            out: certs.clone(),
            nodes: vec![1],
            hosts: Vec::new(),
            force: false,
        })
        .expect("certs");
        let args = ServerTlsArgs {
            tls_cert: Some(tlsconf::generate::node_cert_path(&certs, 1)),
            tls_key: Some(tlsconf::generate::node_key_path(&certs, 1)),
        };
        let acceptor = args.load().expect("load").expect("tls on");
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listener = TlsListener::new(tcp, acceptor).expect("listener");
        let addr = listener.local_addr().expect("addr");
        let router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, router).await });

        // A client that opens a connection and never handshakes does not block others.
        let _stalled = TcpStream::connect(addr).await.expect("connect");
        let ca = tlsconf::generate::ca_path(&certs);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tlsconf::client_config(&ca, None).expect("client"))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let r = client
            .get(format!("https://127.0.0.1:{}/healthz", addr.port()))
            .send()
            .await
            .expect("https request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "ok");

        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let r = plain
            .get(format!("http://127.0.0.1:{}/healthz", addr.port()))
            .send()
            .await;
        assert!(r.is_err(), "plain HTTP must not be served: {r:?}");

        let half = ServerTlsArgs {
            tls_cert: args.tls_cert.clone(),
            tls_key: None,
        };
        assert!(half.load().is_err(), "cert without key must be refused");
    }
}
