//! `LocalNats`: a JetStream-enabled `nats-server` in a temp dir (crash, restart, wipe). The binary is taken from
//! `RAFTLEDGER_NATS_SERVER`, `/usr/local/bin`, or `PATH`, and must be >= 2.10.

use super::{find_binary, free_port, tail, wait_port, INSTALL_HINT};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Oldest server the relay supports.
const VERSION_MIN: (u64, u64) = (2, 10);
/// Longest wait for the server to accept connections after a (re)start.
const START_TIMEOUT_MS: u64 = 15_000;

/// A running (or crashed) local nats-server.
pub struct LocalNats {
    /// Client port.
    pub port: u16,
    dir: PathBuf,
    exe: PathBuf,
    child: Option<Child>,
}

/// Finds nats-server >= 2.10 or explains how to get it.
pub fn binary() -> anyhow::Result<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/local/bin")];
    if let Some(p) = std::env::var_os("RAFTLEDGER_NATS_SERVER") {
        let p = PathBuf::from(p);
        dirs.insert(0, p.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    let exe = find_binary("nats-server", &dirs)
        .with_context(|| format!("nats-server not found; {INSTALL_HINT}"))?;
    let out = Command::new(&exe).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v = text
        .trim()
        .trim_start_matches("nats-server: ")
        .trim_start_matches('v');
    let mut it = v.split(['.', '-']);
    let parsed: Option<(u64, u64)> =
        (|| Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?)))();
    anyhow::ensure!(
        parsed.is_some_and(|p| p >= VERSION_MIN),
        "{} is version {text:?}, need >= 2.10; {INSTALL_HINT}",
        exe.display()
    );
    Ok(exe)
}

impl LocalNats {
    /// Starts a server storing JetStream data under `dir` on a free port.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(dir, free_port()?)
    }

    /// Starts a server storing JetStream data under `dir` on `port`.
    pub fn start_on(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let mut n = Self {
            port,
            dir: dir.to_path_buf(),
            exe: binary()?,
            child: None,
        };
        std::fs::create_dir_all(&n.dir)?;
        n.spawn()?;
        Ok(n)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = self.dir.join("nats.log");
        let child = Command::new(&self.exe)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            )
            .spawn()
            .with_context(|| format!("spawn {}", self.exe.display()))?;
        self.child = Some(child);
        anyhow::ensure!(
            wait_port(self.port, Duration::from_millis(START_TIMEOUT_MS)),
            "nats-server did not listen on {} within {START_TIMEOUT_MS} ms:\n{}",
            self.port,
            tail(&log, 20)
        );
        Ok(())
    }

    /// SIGKILL (a crash: JetStream may lose its unsynced tail).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port and store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl LocalNats {
    /// Crashes the server, deletes its JetStream store, and starts it again: the stream is
    /// gone and must be rebuilt from the log by the relay.
    pub fn wipe_restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let store = self.dir.join("jetstream");
        if store.exists() {
            std::fs::remove_dir_all(&store)?;
        }
        self.spawn()
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates the `LEDGER` stream as a relay-less fixture (subjects `ledger.events.>`, file
/// storage) for the bench and tests that publish synthetic events themselves.
pub async fn create_ledger_stream(
    js: &async_nats::jetstream::Context,
) -> anyhow::Result<async_nats::jetstream::stream::Stream> {
    use async_nats::jetstream::stream;
    let stream = js
        .create_stream(stream::Config {
            name: "LEDGER".into(),
            subjects: vec!["ledger.events.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    Ok(stream)
}
