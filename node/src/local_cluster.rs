//! Launches real `raftledger node` processes on loopback: used by `raftledger demo`, the
//! benchmark and the cluster tests. Children are killed when the cluster is dropped.
//!
//! Plain HTTP by default; [`LocalCluster::with_tls`] makes a CA and node certificates in the
//! cluster directory and runs every node with TLS (API) and mutual TLS (Raft), `https://`
//! URLs, and clients that trust only that CA.

use crate::client::LedgerClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One node process slot (it may be stopped).
pub struct LocalNode {
    /// Node id (1-based).
    pub id: u64,
    /// Client API port.
    pub api_port: u16,
    /// Raft RPC port.
    pub raft_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where stdout/stderr go.
    pub log_path: PathBuf,
    /// `http` or `https`.
    scheme: &'static str,
    child: Option<Child>,
}

impl LocalNode {
    /// Base URL of the node's API.
    pub fn api_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.api_port)
    }

    /// Base URL of the node's Raft listener.
    pub fn raft_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.raft_port)
    }

    /// OS process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A set of node processes.
pub struct LocalCluster {
    /// Nodes by position (id = index + 1).
    pub nodes: Vec<LocalNode>,
    exe: PathBuf,
    extra_args: Vec<String>,
    /// How many of the slots (ids 1..=k) are initial members; the rest join later.
    initial_members: usize,
    /// The cluster directory (node data dirs and logs, certificates in TLS mode).
    dir: PathBuf,
    /// TLS mode: certificates and the operator client config.
    tls: Option<ClusterTls>,
}

/// Certificates of a TLS cluster.
struct ClusterTls {
    /// Where `raftledger certs` files are (`ca.pem`, `node<N>.pem`, ...).
    dir: PathBuf,
    /// Operator client config: trusts only the cluster CA, presents `client.pem`.
    client: netserve::rustls::ClientConfig,
}

/// Finds a free loopback TCP port (bind :0, read, release).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalCluster {
    /// Describes `n` nodes with API ports `api_base..` and Raft ports `raft_base..` under `data`.
    /// Pass port 0 bases to pick free ports.
    pub fn new(
        exe: &Path,
        n: usize,
        api_base: u16,
        raft_base: u16,
        data: &Path,
    ) -> std::io::Result<Self> {
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = i as u64 + 1;
            let api_port = if api_base == 0 {
                free_port()?
            } else {
                api_base + i as u16
            };
            let raft_port = if raft_base == 0 {
                free_port()?
            } else {
                raft_base + i as u16
            };
            let data_dir = data.join(format!("node-{id}"));
            std::fs::create_dir_all(&data_dir)?;
            nodes.push(LocalNode {
                id,
                api_port,
                raft_port,
                log_path: data.join(format!("node-{id}.log")),
                data_dir,
                scheme: "http",
                child: None,
            });
        }
        Ok(Self {
            initial_members: nodes.len(),
            nodes,
            exe: exe.to_owned(),
            extra_args: Vec::new(),
            dir: data.to_owned(),
            tls: None,
        })
    }

    /// TLS mode: makes a CA and node certificates in `<dir>/certs` (as `raftledger certs`
    /// does) and runs every node with `--tls-cert/--tls-key/--tls-ca` on `https://` URLs.
    pub fn with_tls(mut self) -> anyhow::Result<Self> {
        let dir = self.dir.join("certs");
        netserve::generate::generate(&netserve::generate::CertsRequest {
            out: dir.clone(),
            nodes: self.nodes.iter().map(|n| n.id).collect(),
            hosts: Vec::new(),
            force: false,
        })?;
        let client = netserve::client_config(
            &netserve::generate::ca_path(&dir),
            Some(netserve::Identity {
                cert: &netserve::generate::client_cert_path(&dir),
                key: &netserve::generate::client_key_path(&dir),
            }),
        )?;
        for n in &mut self.nodes {
            n.scheme = "https";
        }
        self.tls = Some(ClusterTls { dir, client });
        Ok(self)
    }

    /// The certificate directory in TLS mode.
    pub fn certs_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.dir.as_path())
    }

    /// A reqwest builder for this cluster's API: in TLS mode it trusts only the cluster CA
    /// and presents the operator certificate.
    pub fn reqwest_builder(&self) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder();
        match &self.tls {
            Some(t) => b.use_preconfigured_tls(t.client.clone()),
            None => b,
        }
    }

    /// Extra flags passed to every node (e.g. timing overrides).
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Only ids `1..=k` are initial members (listed in `--peers`); start the others with
    /// [`LocalCluster::start_joining`].
    pub fn with_initial_members(mut self, k: usize) -> Self {
        self.initial_members = k.clamp(1, self.nodes.len());
        self
    }

    fn peers_arg(&self) -> String {
        self.nodes
            .iter()
            .take(self.initial_members)
            .map(|n| format!("{}={}|{}", n.id, n.api_url(), n.raft_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node by id.
    pub fn node(&self, id: u64) -> &LocalNode {
        &self.nodes[(id - 1) as usize]
    }

    /// Starts node `id` as an initial member (`--peers`); node 1 initializes a fresh cluster.
    pub fn start(&mut self, id: u64) -> std::io::Result<()> {
        let peers = self.peers_arg();
        self.spawn(id, &["--peers", &peers])
    }

    /// Starts node `id` joining through `join_url` (learner, then voter).
    pub fn start_joining(&mut self, id: u64, join_url: &str) -> std::io::Result<()> {
        self.spawn(id, &["--join", join_url])
    }

    fn spawn(&mut self, id: u64, mode: &[&str]) -> std::io::Result<()> {
        let exe = self.exe.clone();
        let mut extra = self.extra_args.clone();
        if let Some(t) = &self.tls {
            let flags = [
                ("--tls-cert", netserve::generate::node_cert_path(&t.dir, id)),
                ("--tls-key", netserve::generate::node_key_path(&t.dir, id)),
                ("--tls-ca", netserve::generate::ca_path(&t.dir)),
            ];
            for (flag, path) in flags {
                extra.extend([flag.to_owned(), path.display().to_string()]);
            }
        }
        let n = &mut self.nodes[(id - 1) as usize];
        if n.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log_path)?;
        let child = Command::new(exe)
            .arg("node")
            .args(["--id", &id.to_string()])
            .args(["--api", &format!("127.0.0.1:{}", n.api_port)])
            .args(["--raft", &format!("127.0.0.1:{}", n.raft_port)])
            .arg("--data")
            .arg(&n.data_dir)
            .args(mode)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        n.child = Some(child);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> std::io::Result<()> {
        for id in 1..=self.nodes.len() as u64 {
            self.start(id)?;
        }
        Ok(())
    }

    /// SIGKILLs node `id` (no shutdown path runs; unsynced writes in the page cache survive,
    /// the process's in-memory state does not).
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.nodes[(id - 1) as usize].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs node `id` (its graceful shutdown path runs) and waits up to `timeout` for it to
    /// exit, SIGKILLing it after that. Returns whether it exited by itself within `timeout`.
    pub async fn terminate(&mut self, id: u64, timeout: Duration) -> std::io::Result<bool> {
        let Some(mut c) = self.nodes[(id - 1) as usize].child.take() else {
            return Ok(true);
        };
        // `kill(1)`: the workspace denies `unsafe`, so no `libc::kill`.
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        let deadline = Instant::now() + timeout;
        while sent.success() && Instant::now() < deadline {
            if c.try_wait()?.is_some() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
        Ok(false)
    }

    /// Kills node `id` and deletes its data directory.
    pub fn wipe(&mut self, id: u64) -> std::io::Result<()> {
        self.kill(id);
        let dir = self.nodes[(id - 1) as usize].data_dir.clone();
        std::fs::remove_dir_all(&dir)?;
        std::fs::create_dir_all(&dir)
    }

    /// True when node `id` has a live child process.
    pub fn is_running(&mut self, id: u64) -> bool {
        match &mut self.nodes[(id - 1) as usize].child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Client for node `id`.
    pub fn client(&self, id: u64) -> LedgerClient {
        LedgerClient::with_tls(
            &self.node(id).api_url(),
            self.tls.as_ref().map(|t| &t.client),
        )
    }

    /// Waits until some running node reports a leader that every running node agrees on.
    pub async fn wait_leader(&mut self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut seen = Vec::new();
            for id in 1..=self.nodes.len() as u64 {
                if !self.is_running(id) {
                    continue;
                }
                if let Ok(s) = self.client(id).status().await {
                    seen.push(s["leader"].as_u64());
                }
            }
            if let Some(Some(l)) = seen.first().copied() {
                if seen.iter().all(|x| *x == Some(l)) && self.is_running(l) {
                    return Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits until every running node answers `/readyz`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut all = true;
            for id in 1..=self.nodes.len() as u64 {
                if self.is_running(id) && !self.client(id).ready().await {
                    all = false;
                }
            }
            if all {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The last `Error:` report of a node log (what `main` prints when the node fails), up to its
/// backtrace, on one line.
pub fn last_error_report(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with("Error:"))?;
    Some(
        lines[at..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("Stack backtrace") && !l.starts_with("0:"))
            .filter(|l| !l.is_empty())
            .take(8)
            .collect::<Vec<_>>()
            .join(" | "),
    )
}

#[cfg(test)]
mod tests {
    use super::last_error_report;

    #[test]
    fn error_report_of_a_node_that_refused_to_start() {
        let log = "INFO started\nError: open wal\n\nCaused by:\n    wal corrupt at x:87: entry 183\n\nStack backtrace:\n   0: anyhow\n";
        assert_eq!(
            last_error_report(log).as_deref(),
            Some("Error: open wal | Caused by: | wal corrupt at x:87: entry 183")
        );
        assert_eq!(last_error_report("INFO fine\n"), None);
    }
}
