//! TLS of the read model's query API: the `--tls-cert`/`--tls-key` flags, loaded into the
//! acceptor that `netserve::http_server` runs each handshake with (bounded by the listener's
//! header read timeout). Certificate loading is shared with the node (`netserve`).

use netserve::tokio_rustls::TlsAcceptor;
use std::path::PathBuf;

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
                let cfg = netserve::server_config(netserve::Identity { cert, key }, None)?;
                Ok(Some(TlsAcceptor::from(cfg)))
            }
            _ => anyhow::bail!("--tls-cert and --tls-key go together: give both (TLS) or none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_flags_or_none_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        netserve::generate::generate(&netserve::generate::CertsRequest {
            out: certs.clone(),
            nodes: vec![1],
            hosts: Vec::new(),
            force: false,
        })
        .expect("certs");
        let args = ServerTlsArgs {
            tls_cert: Some(netserve::generate::node_cert_path(&certs, 1)),
            tls_key: Some(netserve::generate::node_key_path(&certs, 1)),
        };
        assert!(args.load().expect("load").is_some(), "both flags: TLS on");
        assert!(
            ServerTlsArgs::default().load().expect("load").is_none(),
            "no flags: TLS off"
        );
        let half = ServerTlsArgs {
            tls_cert: args.tls_cert.clone(),
            tls_key: None,
        };
        assert!(half.load().is_err(), "cert without key must be refused");
        let missing = dir.path().join("missing.pem");
        let bad = ServerTlsArgs {
            tls_cert: Some(missing.clone()),
            tls_key: args.tls_key.clone(),
        };
        let e = match bad.load() {
            Ok(_) => panic!("a missing certificate file must be refused"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("missing.pem"), "{e}");
    }
}
