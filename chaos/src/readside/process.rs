//! The `raftledger-readmodel` child process: spawned on a fixed free port (so restarts keep the
//! URL), stdout + stderr appended to `readmodel.log` in the run dir, SIGKILLed by the
//! `readmodel-kill` nemesis, and watched for exits the harness did not cause (crashes).

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for the read model's API to answer after a (re)start.
pub const READY_TIMEOUT_MS: u64 = 30_000;
/// Query connections of the processor's pool (the harness reads little).
const QUERY_CONNECTIONS_MAX: &str = "4";
/// Pause between readiness polls.
const READY_POLL_MS: u64 = 100;

/// The read-model processor owned by the harness.
pub struct RmProc {
    exe: PathBuf,
    /// API port on 127.0.0.1.
    pub port: u16,
    /// Log of every incarnation, appended.
    pub log_path: PathBuf,
    nats_url: String,
    postgres_url: String,
    child: Option<Child>,
    /// Exits the harness did not cause: exit status, in order.
    pub crashes: Vec<String>,
}

impl RmProc {
    /// Describes the processor (not started) with a free port, logging into `dir`.
    pub fn new(exe: &Path, dir: &Path, nats_url: &str, postgres_url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            exe: exe.to_owned(),
            port: crate::ports::free()?,
            log_path: dir.join("readmodel.log"),
            nats_url: nats_url.to_owned(),
            postgres_url: postgres_url.to_owned(),
            child: None,
            crashes: Vec::new(),
        })
    }

    /// API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (no-op while it runs).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.reap_crash();
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let child = Command::new(&self.exe)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--nats-url", &self.nats_url])
            .args(["--postgres-url", &self.postgres_url])
            .args(["--query-connections-max", QUERY_CONNECTIONS_MAX])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the process and waits until `GET /admin/projections` answers 200.
    pub async fn start_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let t0 = Instant::now();
        self.spawn()?;
        let url = format!("{}/admin/projections", self.url());
        while t0.elapsed() < Duration::from_millis(READY_TIMEOUT_MS) {
            if let Ok(r) = http.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(t0.elapsed().as_millis() as u64);
                }
            }
            if self.reap_crash() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
        anyhow::bail!(
            "raftledger-readmodel not ready on {} within {READY_TIMEOUT_MS} ms (crashes: {:?}); last log lines:\n{}",
            self.url(),
            self.crashes,
            readmodel::local::tail(&self.log_path, 20)
        )
    }

    /// SIGKILLs the process; true when it was running.
    pub fn kill(&mut self) -> bool {
        self.reap_crash();
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = c.kill();
        let _ = c.wait();
        true
    }

    /// If the process exited on its own, records it as a crash and forgets the child; true
    /// when it did.
    pub fn reap_crash(&mut self) -> bool {
        let Some(c) = self.child.as_mut() else {
            return false;
        };
        match c.try_wait() {
            Ok(Some(st)) => {
                self.crashes.push(st.to_string());
                self.child = None;
                true
            }
            _ => false,
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.reap_crash();
        self.child.is_some()
    }
}

impl Drop for RmProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
