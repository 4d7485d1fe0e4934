//! Node processes owned by the harness: spawn `raftledger node` with per-node flags (each node
//! routes every peer through its own link proxies), SIGKILL (of one node or all at once),
//! SIGSTOP/SIGCONT, wipe, restart.
//! Children are killed when `Procs` is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How a node starts.
#[derive(Debug, Clone)]
pub enum StartMode {
    /// As an initial member (`--peers`); the smallest id initializes a fresh cluster.
    Peers,
    /// Joining through a member's API URL (`--join`): learner, then voter.
    Join(String),
}

/// One node slot.
pub struct NodeProc {
    /// Node id.
    pub id: u64,
    /// Client API port.
    pub api_port: u16,
    /// Real Raft port (peers reach it through link proxies).
    pub raft_port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// stdout + stderr of every incarnation, appended.
    pub log_path: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeProc {
    /// API base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Real Raft base URL (what the membership records).
    pub fn raft_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.raft_port)
    }
}

/// The node processes of one drill.
pub struct Procs {
    /// Slots by id.
    pub nodes: BTreeMap<u64, NodeProc>,
    exe: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Procs {
    /// Describes `n` nodes (ids 1..=n) with free ports and data under `dir`.
    pub fn new(
        exe: &Path,
        n: usize,
        dir: &Path,
        env: Vec<(String, String)>,
        args: Vec<String>,
    ) -> std::io::Result<Self> {
        let mut nodes = BTreeMap::new();
        for id in 1..=n as u64 {
            let data_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(&data_dir)?;
            nodes.insert(
                id,
                NodeProc {
                    id,
                    api_port: crate::ports::free()?,
                    raft_port: crate::ports::free()?,
                    data_dir,
                    log_path: dir.join(format!("node-{id}.log")),
                    child: None,
                    paused: false,
                },
            );
        }
        Ok(Self {
            nodes,
            exe: exe.to_owned(),
            env,
            args,
        })
    }

    fn peers_arg(&self) -> String {
        self.nodes
            .values()
            .map(|n| format!("{}={}|{}", n.id, n.api_url(), n.raft_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id` (no-op when running) dialing peers through `peer_raft_addr`.
    pub fn start(&mut self, id: u64, mode: &StartMode, peer_raft_addr: &str) -> anyhow::Result<()> {
        let peers = self.peers_arg();
        let n = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow::anyhow!("no node {id}"))?;
        if n.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("node")
            .args(["--id", &id.to_string()])
            .args(["--api", &format!("127.0.0.1:{}", n.api_port)])
            .args(["--raft", &format!("127.0.0.1:{}", n.raft_port)])
            .arg("--data")
            .arg(&n.data_dir);
        match mode {
            StartMode::Peers => cmd.args(["--peers", &peers]),
            StartMode::Join(url) => cmd.args(["--join", url]),
        };
        if !peer_raft_addr.is_empty() {
            cmd.args(["--peer-raft-addr", peer_raft_addr]);
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        n.child = Some(cmd.spawn()?);
        n.paused = false;
        Ok(())
    }

    /// SIGKILLs node `id`; true when it was running.
    pub fn kill(&mut self, id: u64) -> bool {
        let Some(n) = self.nodes.get_mut(&id) else {
            return false;
        };
        let Some(mut c) = n.child.take() else {
            return false;
        };
        let alive = matches!(c.try_wait(), Ok(None));
        let _ = c.kill();
        let _ = c.wait();
        n.paused = false;
        alive
    }

    /// SIGKILLs every running node with one `kill` call, so none outlives another by more
    /// than signal delivery, then reaps them; returns the ids that were running.
    pub fn kill_all(&mut self) -> Vec<u64> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let alive: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| self.is_running(*id))
            .collect();
        let pids: Vec<String> = alive
            .iter()
            .filter_map(|id| self.nodes.get(id)?.child.as_ref().map(Child::id))
            .map(|p| p.to_string())
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).status();
        }
        for id in ids {
            self.kill(id);
        }
        alive
    }

    fn signal(&mut self, id: u64, sig: &str) -> bool {
        let Some(pid) = self
            .nodes
            .get(&id)
            .and_then(|n| n.child.as_ref())
            .map(Child::id)
        else {
            return false;
        };
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// SIGSTOPs node `id`; true when the signal was delivered.
    pub fn pause(&mut self, id: u64) -> bool {
        let ok = self.signal(id, "-STOP");
        if let Some(n) = self.nodes.get_mut(&id) {
            n.paused |= ok;
        }
        ok
    }

    /// SIGCONTs node `id` if paused; true when it was paused.
    pub fn resume(&mut self, id: u64) -> bool {
        let paused = self.nodes.get(&id).is_some_and(|n| n.paused);
        if paused && self.signal(id, "-CONT") {
            if let Some(n) = self.nodes.get_mut(&id) {
                n.paused = false;
            }
            return true;
        }
        false
    }

    /// Kills node `id` and empties its data directory; true when data was deleted.
    pub fn wipe(&mut self, id: u64) -> bool {
        self.kill(id);
        let Some(n) = self.nodes.get(&id) else {
            return false;
        };
        std::fs::remove_dir_all(&n.data_dir).is_ok() && std::fs::create_dir_all(&n.data_dir).is_ok()
    }

    /// True when node `id`'s process is alive (paused counts as alive).
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.nodes.get_mut(&id).and_then(|n| n.child.as_mut()) {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Ids of slots whose process exited on its own (crash, abort, refusing to start), with the
    /// exit status and the error report the node wrote last, if any.
    pub fn exited(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for n in self.nodes.values_mut() {
            if let Some(c) = n.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    let log = std::fs::read_to_string(&n.log_path).unwrap_or_default();
                    let why = match node::local_cluster::last_error_report(&log) {
                        Some(e) => format!("{st}: {e}"),
                        None => st.to_string(),
                    };
                    out.push((n.id, why));
                }
            }
        }
        out
    }

    /// Resumes every paused node.
    pub fn resume_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.resume(id);
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.resume(id);
            self.kill(id);
        }
    }
}
