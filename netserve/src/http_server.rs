//! The HTTP/1.1 server loop of every listener (node client API, node Raft RPC, read model):
//! accepts connections,
//! serves an axum router on each with hyper, and shuts down gracefully.
//!
//! Unlike `axum::serve`, it bounds how long a client may take to send request headers
//! ([`ServerLimits::header_read_timeout`]): a client trickling its headers byte by byte
//! (slowloris) is disconnected instead of holding a connection and its task forever. hyper
//! applies the same timeout while a keep-alive connection waits for its next request, so it is
//! also the idle timeout; our own HTTP clients expire idle pooled connections sooner (see
//! [`ServerLimits::client_pool_idle`]). Body read timeouts are per route (the node's API
//! extractors and Raft handlers), since only a handler knows how large a body it expects.
//!
//! With TLS (a `TlsAcceptor` from `crate::configs`) each accepted connection first completes a TLS handshake,
//! bounded by the same header read timeout, on its own task: a stalled handshake never holds
//! up the accept loop or other clients.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 50;
/// How long shutdown waits for open connections to finish their requests before dropping them
/// (event streams never finish by themselves).
const SHUTDOWN_GRACE_MS: u64 = 2_000;

/// Connection-level bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest a client may take to send a request's headers; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
}

impl ServerLimits {
    /// Idle timeout for pooled client connections to a server with these limits: half the
    /// server's idle timeout, so a client never reuses a connection the server is closing.
    pub fn client_pool_idle(&self) -> Duration {
        self.header_read_timeout / 2
    }
}

/// Serves `router` on `listener` until `stop` turns true; over TLS when `tls` is given (the
/// handshake bounded by [`ServerLimits::header_read_timeout`]).
pub fn spawn(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let mut connections = JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = stopped(&mut stop) => break,
            };
            // Reap finished connection tasks so the set holds only open connections.
            while connections.try_join_next().is_some() {}
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                    continue;
                }
            };
            // TCP_NODELAY: responses are small and latency-bound; Nagle + delayed ACK would add
            // up to 40 ms per request on both the client and the Raft listener.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "set TCP_NODELAY failed");
            }
            let (http, router, stop) = (http.clone(), router.clone(), stop.clone());
            let tls = tls.clone();
            connections.spawn(async move {
                let Some(acceptor) = tls else {
                    return serve_connection(http, TokioIo::new(tcp), router, stop).await;
                };
                // The handshake gets the header read timeout too: a client that connects and
                // never finishes it (a TLS slowloris) is dropped as soon as one that never
                // sends its headers.
                match crate::accept(&acceptor, tcp, limits.header_read_timeout).await {
                    Ok(stream) => serve_connection(http, TokioIo::new(stream), router, stop).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                }
            });
        }
        drop(listener);
        let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(open = connections.len(), "dropping connections at shutdown");
        }
    })
}

/// Serves HTTP/1.1 requests on one accepted connection (plain or TLS) until the client
/// leaves, a limit closes it, or `stop` (graceful: the request in flight finishes).
async fn serve_connection<I>(
    http: hyper::server::conn::http1::Builder,
    io: I,
    router: Router,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(
        router.map_request(|req: hyper::Request<Incoming>| req.map(axum::body::Body::new)),
    );
    let mut conn = std::pin::pin!(http.serve_connection(io, service));
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
