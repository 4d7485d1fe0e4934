//! [`PgAccess`]: PostgreSQL connections with TLS when the connection string says
//! `sslmode=require` (rustls; the server certificate and host name are verified against
//! `--pg-tls-ca` or the system's roots), plain otherwise. Every PostgreSQL connection of the
//! read model — projector, watermark, rebuilds, query pool — is made here, so one concrete
//! connection type serves them all.

use anyhow::Context as _;
use std::path::Path;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connection type every read-model connection has (TLS or plain).
pub type PgConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

/// How to open PostgreSQL connections.
#[derive(Clone)]
pub struct PgAccess {
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for PgAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgAccess")
    }
}

impl Default for PgAccess {
    fn default() -> Self {
        Self::new(None).expect("system roots load without a CA file")
    }
}

impl PgAccess {
    /// TLS trusting the PEM CA at `ca`, or the system's roots without one.
    pub fn new(ca: Option<&Path>) -> anyhow::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("--pg-tls-ca {}", path.display()))?
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("--pg-tls-ca {}: bad PEM", path.display()))?;
                anyhow::ensure!(
                    !certs.is_empty(),
                    "--pg-tls-ca {}: no certificate in it",
                    path.display()
                );
                for c in certs {
                    roots.add(c).context("--pg-tls-ca: unusable certificate")?;
                }
            }
            None => {
                // Unreadable system roots only matter to a `sslmode=require` URL, which then
                // fails verification with a clear error.
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: MakeRustlsConnect::new(config),
        })
    }

    /// Parses `url`: TLS stays required only with `sslmode=require`; `prefer` (the default)
    /// becomes plain, since a TLS that an attacker can decline protects nothing.
    pub fn config(url: &str) -> anyhow::Result<tokio_postgres::Config> {
        let mut c: tokio_postgres::Config = url.parse().context("parse postgres url")?;
        if c.get_ssl_mode() != SslMode::Require {
            c.ssl_mode(SslMode::Disable);
        }
        Ok(c)
    }

    /// Opens one connection; the caller drives the returned connection.
    pub async fn connect(
        &self,
        url: &str,
    ) -> anyhow::Result<(tokio_postgres::Client, PgConnection)> {
        let c = Self::config(url)?;
        Ok(c.connect(self.tls.clone()).await?)
    }

    /// A pool of up to `size_max` connections to `url`.
    pub fn pool(&self, url: &str, size_max: usize) -> anyhow::Result<deadpool_postgres::Pool> {
        let mgr = deadpool_postgres::Manager::from_config(
            Self::config(url)?,
            self.tls.clone(),
            deadpool_postgres::ManagerConfig {
                // Verified: a connection that died with a PostgreSQL restart is replaced, not
                // reused.
                recycling_method: deadpool_postgres::RecyclingMethod::Verified,
            },
        );
        deadpool_postgres::Pool::builder(mgr)
            .max_size(size_max)
            .wait_timeout(Some(std::time::Duration::from_secs(2)))
            .create_timeout(Some(std::time::Duration::from_secs(2)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("query pool")
    }
}
