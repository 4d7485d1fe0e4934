//! `--tls-cert`, `--tls-key`, `--tls-ca`: parsed, validated (all three or none; URL schemes
//! agree with the mode) and loaded into a [`NodeTls`] at start.

use super::NodeTls;
use netserve::tokio_rustls::TlsAcceptor;
use netserve::Identity;
use std::path::PathBuf;
use std::sync::Arc;

/// TLS flags of a node: all three or none.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// PEM certificate (chain) of this node, presented on both listeners and to peers. With
    /// `--tls-key` and `--tls-ca`, turns on TLS: API over TLS, Raft over mutual TLS, every
    /// URL `https://`.
    #[arg(long, env = "RAFTLEDGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "RAFTLEDGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificate of the cluster CA: peers' Raft client certificates and every server
    /// this node dials must be signed by it.
    #[arg(long, env = "RAFTLEDGER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// True when TLS is configured.
    pub fn enabled(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The URL scheme every node URL must use in this mode.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() {
            "https"
        } else {
            "http"
        }
    }

    /// Checks that the three flags are all set or all unset, and that every URL in `urls`
    /// (`(what, url)`) uses [`TlsArgs::scheme`].
    pub fn validate<'a>(
        &self,
        urls: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> anyhow::Result<()> {
        let set = [&self.tls_cert, &self.tls_key, &self.tls_ca]
            .iter()
            .filter(|f| f.is_some())
            .count();
        anyhow::ensure!(
            set == 0 || set == 3,
            "--tls-cert, --tls-key and --tls-ca go together: give all three (TLS) or none"
        );
        let scheme = self.scheme();
        for (what, url) in urls {
            anyhow::ensure!(
                url.starts_with(&format!("{scheme}://")),
                "{what} {url:?} must be an {scheme}:// URL: TLS is {} (--tls-cert/--tls-key/--tls-ca)",
                if self.enabled() { "on" } else { "off" }
            );
        }
        Ok(())
    }

    /// Loads the certificates (errors name the bad file); `None` when TLS is off.
    pub fn load(&self) -> anyhow::Result<Option<NodeTls>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        let identity = Identity { cert, key };
        let api = netserve::server_config(identity, None)?;
        let raft = netserve::server_config(identity, Some(ca))?;
        let client = netserve::client_config(ca, Some(identity))?;
        Ok(Some(NodeTls {
            api: TlsAcceptor::from(api),
            raft: TlsAcceptor::from(raft),
            client: Arc::new(client),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::TlsArgs;

    #[test]
    fn all_or_none_and_schemes_follow_the_mode() {
        let off = TlsArgs::default();
        off.validate([("peer", "http://a:1")]).expect("plain");
        let err = off
            .validate([("peer", "https://a:1")])
            .expect_err("https without TLS");
        assert!(err.to_string().contains("http://"), "{err}");
        let partial = TlsArgs {
            tls_cert: Some("c.pem".into()),
            ..TlsArgs::default()
        };
        assert!(partial.validate([]).is_err());
        let on = TlsArgs {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            tls_ca: Some("ca.pem".into()),
        };
        on.validate([("peer", "https://a:1")]).expect("tls");
        let err = on
            .validate([("peer", "http://a:1")])
            .expect_err("http with TLS");
        assert!(err.to_string().contains("https://"), "{err}");
    }
}
