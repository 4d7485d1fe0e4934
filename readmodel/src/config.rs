//! Read-model configuration: one struct, from flags and environment, validated at start and
//! logged once with the password redacted.

/// Configuration of `raftledger-readmodel`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "raftledger-readmodel",
    about = "raftledger read model: JetStream -> PostgreSQL projections + query API"
)]
pub struct ReadModelConfig {
    /// Query API listen address (port 0 picks a free port).
    #[arg(
        long,
        env = "RAFTLEDGER_READMODEL_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: String,
    /// NATS server URL (JetStream stream `LEDGER`).
    #[arg(
        long,
        env = "RAFTLEDGER_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// PostgreSQL connection string (key=value or postgres:// URL).
    #[arg(
        long,
        env = "RAFTLEDGER_POSTGRES_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub postgres_url: String,
    /// Connections in the query pool.
    #[arg(long, default_value_t = 16)]
    pub query_connections_max: usize,
    /// Longest a client may take to send a request's headers (or finish a TLS handshake); also
    /// how long an idle keep-alive connection is kept. Stops slowloris clients.
    #[arg(long, env = "RAFTLEDGER_READMODEL_HEADER_READ_TIMEOUT_MS", default_value_t = HEADER_READ_TIMEOUT_MS_DEFAULT)]
    pub header_read_timeout_ms: u64,
    /// Admin token, NATS credentials and TLS, PostgreSQL read role and TLS.
    #[command(flatten)]
    pub access: crate::access::AccessArgs,
    /// TLS of the query API: `--tls-cert`, `--tls-key` (see `crate::tls`).
    #[command(flatten)]
    pub tls: crate::tls::ServerTlsArgs,
}

/// Default `--header-read-timeout-ms`, as on the nodes.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;

impl ReadModelConfig {
    /// Validates fields.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.postgres_url.is_empty(),
            "--postgres-url (or RAFTLEDGER_POSTGRES_URL) is required"
        );
        anyhow::ensure!(
            (1..=256).contains(&self.query_connections_max),
            "--query-connections-max must be 1..=256"
        );
        anyhow::ensure!(
            (100..=600_000).contains(&self.header_read_timeout_ms),
            "--header-read-timeout-ms must be 100..=600000"
        );
        self.access.nats()?;
        Ok(())
    }

    /// Logs the effective configuration once.
    pub fn log_effective(&self) {
        tracing::info!(
            listen = %self.listen,
            nats_url = %self.nats_url,
            postgres_url = %redact(&self.postgres_url),
            query_connections_max = self.query_connections_max,
            pg_read_url = %self.access.pg_read_url.as_deref().map(redact).unwrap_or_else(|| "<postgres_url>".into()),
            pg_tls_ca = ?self.access.pg_tls_ca,
            nats = %self.access.nats().map(|n| n.describe()).unwrap_or_default(),
            admin_token = self.access.admin_token.is_some(),
            insecure = self.access.insecure,
            tls = self.tls.tls_cert.is_some(),
            "readmodel.config"
        );
    }
}

/// Hides a password in `postgres://user:pw@host` or `password=pw` forms.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.split_once('@') {
            let user = creds.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:<redacted>@{host}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=<redacted>"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts() {
        assert_eq!(
            super::redact("postgres://u:pw@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(
            super::redact("host=h password=pw"),
            "host=h password=<redacted>"
        );
    }
}
