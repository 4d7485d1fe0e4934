//! The relay's NATS credentials and TLS flags. The shipped `deploy/nats.conf` lets the user
//! `raftledger_node` publish `ledger.events.>` and manage stream `LEDGER`, nothing else; the
//! connection itself is made with `readmodel::access::NatsAccess`, shared with the read model.

use readmodel::access::NatsAccess;
use std::path::PathBuf;

/// NATS credentials and TLS of the relay (flattened into the node's configuration).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NatsArgs {
    /// NATS user the relay connects as (`raftledger_node` in `deploy/nats.conf`).
    #[arg(long, env = "RAFTLEDGER_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password of `--nats-user`.
    #[arg(long, env = "RAFTLEDGER_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS credentials file (JWT + NKey seed), instead of user and password.
    #[arg(long, env = "RAFTLEDGER_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// PEM file of the CA that signed the NATS server's certificate: TLS is then required.
    #[arg(long, env = "RAFTLEDGER_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
}

impl NatsArgs {
    /// The validated credentials and TLS settings.
    pub fn access(&self) -> anyhow::Result<NatsAccess> {
        NatsAccess::from_flags(
            self.nats_user.clone(),
            self.nats_password.clone(),
            self.nats_creds.clone(),
            self.nats_tls_ca.clone(),
        )
    }
}
