//! `TestCluster`: real `raftledger node` processes in a private tempdir; node logs are dumped
//! and the dir is kept when a test panics. [`TestCluster::start_tls`] runs the nodes with TLS
//! (API) and mutual TLS (Raft), certificates made in the tempdir.

use super::{eventually, exe, phase, Http, HTTP_TIMEOUT, LEADER_WAIT};
use node::client::LedgerClient;
use node::local_cluster::LocalCluster;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// A cluster of real node processes in its own tempdir.
pub struct TestCluster {
    /// The processes (dropped first: kills the children before the dir goes).
    pub lc: LocalCluster,
    /// Test name, for phase lines.
    pub name: &'static str,
    /// When the test started.
    pub started: Instant,
    dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// `n` node slots; starts those in `running` (all when empty) with `extra` flags, and waits
    /// for a leader every running node agrees on and for `/readyz` everywhere.
    pub async fn start(name: &'static str, n: usize, running: &[u64], extra: &[&str]) -> Self {
        Self::start_with(name, n, running, extra, false).await
    }

    /// As [`TestCluster::start`], in TLS mode (`LocalCluster::with_tls`): `https://` URLs,
    /// and [`TestCluster::http`] clients that trust only the cluster CA.
    pub async fn start_tls(name: &'static str, n: usize, running: &[u64], extra: &[&str]) -> Self {
        Self::start_with(name, n, running, extra, true).await
    }

    async fn start_with(
        name: &'static str,
        n: usize,
        running: &[u64],
        extra: &[&str],
        tls: bool,
    ) -> Self {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix(&format!("raftledger-{name}-"))
            .tempdir()
            .expect("tempdir");
        let mut lc = LocalCluster::new(&exe(), n, 0, 0, dir.path())
            .expect("describe cluster")
            .with_args(extra);
        if tls {
            lc = lc.with_tls().expect("make cluster certificates");
        }
        let mut tc = Self {
            lc,
            name,
            started,
            dir: Some(dir),
        };
        tc.phase(&format!(
            "starting {n} node slots in {}",
            tc.path().display()
        ));
        let ids: Vec<u64> = if running.is_empty() {
            (1..=n as u64).collect()
        } else {
            running.to_vec()
        };
        for id in ids {
            tc.lc.start(id).expect("spawn node");
        }
        let leader = tc.leader().await;
        assert!(
            tc.lc.wait_ready(LEADER_WAIT).await,
            "nodes not ready within {LEADER_WAIT:?}"
        );
        tc.phase(&format!("cluster up, leader {leader}"));
        tc
    }

    /// The tempdir.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .expect("tempdir present")
    }

    /// Announces a phase.
    pub fn phase(&self, msg: &str) {
        phase(self.name, self.started, msg);
    }

    /// Ids of all slots.
    pub fn ids(&self) -> Vec<u64> {
        (1..=self.lc.nodes.len() as u64).collect()
    }

    /// Ids of running nodes.
    pub fn running(&mut self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|id| self.lc.is_running(*id))
            .collect()
    }

    /// Raw client for node `id`.
    pub fn http(&self, id: u64) -> Http {
        let client = self
            .lc
            .reqwest_builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("reqwest client");
        Http::with_client(&self.lc.node(id).api_url(), client)
    }

    /// Raw clients for `ids`.
    pub fn https(&self, ids: &[u64]) -> Vec<Http> {
        ids.iter().map(|id| self.http(*id)).collect()
    }

    /// Typed client for node `id`.
    pub fn client(&self, id: u64) -> LedgerClient {
        self.lc.client(id)
    }

    /// The leader every running node agrees on (panics after [`LEADER_WAIT`]).
    pub async fn leader(&mut self) -> u64 {
        match self.lc.wait_leader(LEADER_WAIT).await {
            Some(l) => l,
            None => panic!("no agreed leader within {LEADER_WAIT:?}"),
        }
    }

    /// `GET /cluster/status` of node `id`.
    pub async fn status(&self, id: u64) -> Value {
        let r = self.http(id).must_get("/cluster/status").await;
        assert_eq!(r.status, 200, "status of node {id}: {}", r.text);
        r.body
    }

    /// Waits until node `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64, timeout: Duration) -> Value {
        let http = self.http(id);
        eventually(
            &format!("node {id} applied >= {index}"),
            timeout,
            async || {
                let r = http.get("/cluster/status").await.ok()?;
                (r.body["applied"].as_u64()? >= index).then_some(r.body)
            },
        )
        .await
    }

    /// Waits until every running node reports the same `applied_hash` at the same
    /// `applied_hash_index` (L6), and returns that index. Ticks advance the log once a second,
    /// so two quick status reads usually land on the same index.
    pub async fn wait_same_hash(&mut self, ids: &[u64], timeout: Duration) -> u64 {
        let https = self.https(ids);
        eventually(
            "equal applied_hash at an equal applied index on all nodes",
            timeout,
            async || {
                let mut seen = Vec::new();
                for h in &https {
                    let b = h.get("/cluster/status").await.ok()?.body;
                    seen.push((
                        b["applied_hash_index"].as_u64()?,
                        b["applied_hash"].as_str()?.to_owned(),
                    ));
                }
                let (i0, h0) = seen[0].clone();
                if seen.iter().any(|(i, _)| *i != i0) {
                    return None;
                }
                for (k, (_, h)) in seen.iter().enumerate() {
                    assert_eq!(
                        h, &h0,
                        "L6: node {} applied_hash differs from node {} at index {i0}",
                        ids[k], ids[0]
                    );
                }
                Some(i0)
            },
        )
        .await
    }

    /// Panics found in node logs: `node N: <location> <message>` (a panicked Raft core leaves
    /// the process running, so a live process is no proof of a healthy node).
    pub fn node_panics(&self) -> Vec<String> {
        let mut found = Vec::new();
        for n in &self.lc.nodes {
            found.extend(
                log_panics(&n.log_path)
                    .into_iter()
                    .map(|p| format!("node {}: {p}", n.id)),
            );
        }
        found
    }

    /// Fails the test if any node logged a panic.
    pub fn assert_no_panics(&self) {
        let found = self.node_panics();
        assert!(
            found.is_empty(),
            "node processes panicked:\n{}",
            found.join("\n")
        );
    }

    /// Dumps the tail of every node log to stderr.
    pub fn dump_logs(&self, lines: usize) {
        for n in &self.lc.nodes {
            let Ok(text) = std::fs::read_to_string(&n.log_path) else {
                continue;
            };
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            eprintln!(
                "----- node {} log ({}), last {} lines -----",
                n.id,
                n.log_path.display(),
                all.len() - from
            );
            for l in &all[from..] {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs(40);
            if let Some(d) = self.dir.take() {
                eprintln!(
                    "[{}] keeping test data in {}",
                    self.name,
                    d.keep().display()
                );
            }
        }
    }
}

/// Panic reports in one node log: the `panicked at` line and the message line after it.
pub fn log_panics(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("panicked at"))
        .map(|(i, l)| {
            format!(
                "{} {}",
                l.trim(),
                lines.get(i + 1).copied().unwrap_or("").trim()
            )
        })
        .collect()
}
