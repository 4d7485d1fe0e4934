//! `DeployNats`: a `nats-server` running the shipped `deploy/nats.conf` (users, permissions, no
//! anonymous access) with test passwords in its environment and its own port, monitoring port
//! and store directory given as flags; optionally with TLS (`--tls --tlscert --tlskey`). Tests
//! use it to prove the deploy configuration itself, not a copy of it.

use super::{free_port, nats::binary, tail, wait_port};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Password of `raftledger_node` in tests.
pub const NODE_PASSWORD: &str = "node-pw-for-tests";
/// Password of `raftledger_readmodel` in tests.
pub const READMODEL_PASSWORD: &str = "readmodel-pw-for-tests";
/// Longest wait for the server to accept connections.
const START_TIMEOUT_MS: u64 = 15_000;

/// A running nats-server with `deploy/nats.conf`; killed on drop.
pub struct DeployNats {
    /// Client port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

/// The shipped configuration file.
pub fn conf_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats.conf")
}

impl DeployNats {
    /// Starts it storing under `dir`; with `tls = Some((cert, key))` clients must use TLS.
    pub fn start(dir: &Path, tls: Option<(&Path, &Path)>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let (port, http_port) = (free_port()?, free_port()?);
        let log = dir.join("nats.log");
        let mut cmd = Command::new(binary()?);
        cmd.arg("-c")
            .arg(conf_path())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &http_port.to_string()])
            .arg("-sd")
            .arg(dir.join("js"))
            .env("RAFTLEDGER_NATS_NODE_PASSWORD", NODE_PASSWORD)
            .env("RAFTLEDGER_NATS_READMODEL_PASSWORD", READMODEL_PASSWORD);
        if let Some((cert, key)) = tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawn nats-server")?;
        let n = Self { port, child };
        anyhow::ensure!(
            wait_port(port, Duration::from_millis(START_TIMEOUT_MS)),
            "nats-server with deploy/nats.conf did not listen within {START_TIMEOUT_MS} ms:\n{}",
            tail(&log, 20)
        );
        Ok(n)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for DeployNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
