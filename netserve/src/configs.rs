//! rustls configs for both ends of a connection and the bounded server handshake.
//!
//! Servers speak HTTP/1.1 only (ALPN `http/1.1`). A server given a client CA requires every
//! client to present a certificate that CA signed (mutual TLS, the Raft port); a client trusts
//! only the CA it is given (no system roots: peers are cluster members, not web sites).

use crate::pem::{load_certs, load_key, load_roots};
use anyhow::Context as _;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// ALPN protocol both ends announce: the listeners serve HTTP/1.1 only.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A certificate (chain, leaf first) and its private key, as PEM files.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Certificate chain file.
    pub cert: &'a Path,
    /// Private key file.
    pub key: &'a Path,
}

/// A server config presenting `identity`; with `client_ca`, clients must present a
/// certificate signed by that CA (mutual TLS), otherwise no client certificate is asked for.
pub fn server_config(
    identity: Identity<'_>,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = load_certs(identity.cert)?;
    let key = load_key(identity.key)?;
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, crate::provider())
                .build()
                .with_context(|| format!("client verifier from {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "certificate {} and key {} do not form a usable pair",
            identity.cert.display(),
            identity.key.display()
        )
    })?;
    cfg.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(cfg))
}

/// A client config trusting only the CA in `ca`, presenting `identity` when given (mutual
/// TLS).
pub fn client_config(ca: &Path, identity: Option<Identity<'_>>) -> anyhow::Result<ClientConfig> {
    let roots = load_roots(ca)?;
    let builder = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some(id) => builder
            .with_client_auth_cert(load_certs(id.cert)?, load_key(id.key)?)
            .with_context(|| {
                format!(
                    "certificate {} and key {} do not form a usable pair",
                    id.cert.display(),
                    id.key.display()
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(cfg)
}

/// Runs the server side of a TLS handshake on `tcp`, failing with `TimedOut` after
/// `timeout`: a client that opens a connection and never finishes the handshake holds it no
/// longer than one that never sends its request headers.
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> std::io::Result<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}
