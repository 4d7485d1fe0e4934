//! The read side for `raftledger demo --with-readmodel`: a local nats-server and PostgreSQL
//! (from the project's install step) in fresh dirs under the demo's data dir, and the read
//! model on its own port. The relay republishes the whole log into the fresh stream, and the
//! read model projects it from seq 1: both are derived from the log.

use anyhow::Context;
use readmodel::local::{nats::LocalNats, postgres::LocalPostgres};
use std::path::Path;

/// The running read side; dropping it stops the servers.
pub struct DemoReadSide {
    /// The NATS server the nodes relay to.
    pub nats: LocalNats,
    /// The PostgreSQL server of the projections.
    pub postgres: LocalPostgres,
    /// The read model (in this process), once started.
    pub readmodel: Option<readmodel::RunningReadModel>,
}

impl DemoReadSide {
    /// Starts nats-server and PostgreSQL in fresh dirs under `data`.
    pub fn start_servers(data: &Path) -> anyhow::Result<Self> {
        let dir = data.join("readside");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("clear {}", dir.display()))?;
        }
        let nats = LocalNats::start(&dir.join("nats")).context("start nats-server")?;
        let postgres = LocalPostgres::start(&dir.join("pg")).context("start postgres")?;
        Ok(Self {
            nats,
            postgres,
            readmodel: None,
        })
    }

    /// Starts the read model's projector and API on `127.0.0.1:port`.
    pub async fn start_readmodel(&mut self, port: u16) -> anyhow::Result<String> {
        let rm = readmodel::start(readmodel::config::ReadModelConfig {
            listen: format!("127.0.0.1:{port}"),
            nats_url: self.nats.url(),
            postgres_url: self.postgres.url(),
            query_connections_max: 8,
            header_read_timeout_ms: readmodel::config::HEADER_READ_TIMEOUT_MS_DEFAULT,
            access: Default::default(),
            tls: Default::default(),
        })
        .await
        .context("start read model")?;
        let url = rm.url();
        self.readmodel = Some(rm);
        Ok(url)
    }
}
