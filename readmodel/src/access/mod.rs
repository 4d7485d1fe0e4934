//! Who may use the read model and how it reaches its upstreams: the `/admin/*` bearer token
//! and the refusal to run open on a network (`admin`), and credentials plus TLS for NATS
//! (`nats`) and PostgreSQL (`postgres`). The flags of all three are [`AccessArgs`].
//!
//! - `admin`    — admin token policy: required off loopback unless `--insecure`.
//! - `nats`     — [`NatsAccess`]: user/password or creds file, TLS with a private CA.
//! - `postgres` — [`PgAccess`]: TLS when the URL says `sslmode=require`, the read-only URL.

pub mod admin;
pub mod nats;
pub mod postgres;

pub use admin::AdminToken;
pub use nats::NatsAccess;
pub use postgres::PgAccess;

use std::path::PathBuf;

/// Security flags of `raftledger-readmodel` (flattened into its configuration).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AccessArgs {
    /// Bearer token required on every `/admin/*` route. Without it the admin routes are open,
    /// which is allowed only when `--listen` is a loopback address (or with `--insecure`).
    #[arg(long, env = "RAFTLEDGER_READMODEL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Run on a non-loopback address without an admin token (logs a warning on every start).
    #[arg(long, env = "RAFTLEDGER_READMODEL_INSECURE")]
    pub insecure: bool,
    /// NATS user (the shipped `deploy/nats.conf` names it `raftledger_readmodel`).
    #[arg(long, env = "RAFTLEDGER_READMODEL_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password of `--nats-user`.
    #[arg(
        long,
        env = "RAFTLEDGER_READMODEL_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
    /// NATS credentials file (JWT + NKey seed), instead of user and password.
    #[arg(long, env = "RAFTLEDGER_READMODEL_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// PEM file of the CA that signed the NATS server's certificate: TLS is then required.
    #[arg(long, env = "RAFTLEDGER_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// PostgreSQL connection string of the query pool, ideally a read-only role (defaults to
    /// `--postgres-url`). The projector always uses `--postgres-url`.
    #[arg(long, env = "RAFTLEDGER_POSTGRES_READ_URL", hide_env_values = true)]
    pub pg_read_url: Option<String>,
    /// PEM file of the CA trusted for PostgreSQL TLS (used with `sslmode=require`; without it
    /// the system's roots are trusted).
    #[arg(long, env = "RAFTLEDGER_PG_TLS_CA")]
    pub pg_tls_ca: Option<PathBuf>,
}

impl AccessArgs {
    /// The NATS credentials and TLS these flags describe.
    pub fn nats(&self) -> anyhow::Result<NatsAccess> {
        NatsAccess::from_flags(
            self.nats_user.clone(),
            self.nats_password.clone(),
            self.nats_creds.clone(),
            self.nats_tls_ca.clone(),
        )
    }

    /// The PostgreSQL TLS settings these flags describe (reads the CA file).
    pub fn pg(&self) -> anyhow::Result<PgAccess> {
        PgAccess::new(self.pg_tls_ca.as_deref())
    }
}

/// Credentials and TLS of the read model's upstream connections, handed to every task that
/// connects (projectors, feed, watermark, rebuilds).
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// NATS credentials and TLS.
    pub nats: NatsAccess,
    /// PostgreSQL TLS.
    pub pg: PgAccess,
}
