//! What the phases share: the cluster under test (self-started or `--target`), the HTTP client,
//! leader discovery, the pre-funded account pool, and the count of postings this run committed
//! (the denominator of "per million postings").

use super::http::{Batch, BatchReply, Http, Item};
use super::BenchArgs;
use crate::local_cluster::LocalCluster;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nodes of the self-started cluster (the bars are for 3 nodes on one host).
pub const OWNED_NODES: usize = 3;
/// Accounts in the pool the write phases move money between.
pub const POOL_ACCOUNTS: usize = 1000;
/// Minor units deposited into each pool account: far more than a run can move out at 1 per
/// transfer, so no transfer is rejected for funds.
const POOL_DEPOSIT_MINOR: i64 = 1_000_000_000_000;
/// Commands per setup batch (accounts, deposits): under the API's 4096 and 1 MiB body limits.
pub const SETUP_BATCH_COMMANDS_MAX: usize = 1000;
/// How long the cluster may take to elect a leader and become ready.
const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one batch request; a 4096-command batch on a loaded 2-core host stays far below.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a setup batch keeps being retried (same ids: retries are idempotent).
const SETUP_RETRY_DEADLINE: Duration = Duration::from_secs(60);

/// State shared by the phases.
pub struct Ctx {
    /// The flags.
    pub args: BenchArgs,
    /// Shared HTTP client.
    pub http: Http,
    /// API base URL of every node, by position (node id = position + 1 when owned).
    pub urls: Vec<String>,
    /// The self-started cluster; `None` under `--target`. Declared before `tmp` so the
    /// nodes are killed before their directory is removed.
    pub cluster: Option<LocalCluster>,
    tmp: Option<tempfile::TempDir>,
    /// Where the owned nodes keep data and logs.
    pub data_dir: Option<PathBuf>,
    /// Short random prefix that keeps ids unique across runs against the same cluster.
    pub run_id: String,
    /// Postings (deposits and transfers) this run committed.
    pub postings_total: u64,
    /// Single-transfer peak ops/s (phase 2), the base of phase 3's rate.
    pub single_peak_ops_s: Option<f64>,
    /// Postings loaded for time travel (phase 5), reused by catch-up (phase 6).
    pub loaded: Option<super::timetravel::Loaded>,
    /// Bytes under each owned node's data directory once the cluster was up (before any
    /// postings), so the resources phase can report growth per million postings.
    pub disk_baseline_bytes: Vec<u64>,
    pool: Option<Arc<Vec<String>>>,
}

impl Ctx {
    /// Starts the owned cluster (or checks `--target`) and waits until it is ready.
    pub async fn new(args: BenchArgs) -> anyhow::Result<Self> {
        let http = Http::new()?;
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        let mut ctx = Self {
            args,
            http,
            urls: Vec::new(),
            cluster: None,
            tmp: None,
            data_dir: None,
            run_id,
            postings_total: 0,
            single_peak_ops_s: None,
            loaded: None,
            pool: None,
            disk_baseline_bytes: Vec::new(),
        };
        if ctx.args.target.is_empty() {
            ctx.start_owned()?;
        } else {
            ctx.urls = ctx
                .args
                .target
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect();
        }
        ctx.wait_healthy().await?;
        if let Some(c) = &ctx.cluster {
            ctx.disk_baseline_bytes = c
                .nodes
                .iter()
                .map(|n| super::resources::dir_bytes(&n.data_dir, 0))
                .collect();
        }
        Ok(ctx)
    }

    fn start_owned(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("locate the raftledger binary")?;
        let dir = match &self.args.data {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                d.clone()
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("raftledger-bench-")
                    .tempdir()?;
                let p = t.path().to_owned();
                self.tmp = Some(t);
                p
            }
        };
        let mut cluster = LocalCluster::new(&exe, OWNED_NODES, 0, 0, &dir)?;
        let extra: Vec<&str> = self.args.node_args.iter().map(String::as_str).collect();
        if !extra.is_empty() {
            cluster = cluster.with_args(&extra);
        }
        cluster.start_all()?;
        println!(
            "started {OWNED_NODES} nodes from {} (data and logs in {})",
            exe.display(),
            dir.display()
        );
        self.urls = cluster.nodes.iter().map(|n| n.api_url()).collect();
        self.cluster = Some(cluster);
        self.data_dir = Some(dir);
        Ok(())
    }

    /// True when the bench started the cluster itself (kill/wipe/RSS are possible).
    pub fn owned(&self) -> bool {
        self.cluster.is_some()
    }

    /// Keeps the temporary data directory (node logs) after exit; returns its path.
    pub fn keep_data(&mut self) -> Option<PathBuf> {
        if let Some(t) = self.tmp.take() {
            let _ = t.keep();
        }
        self.data_dir.clone()
    }

    /// Waits until a leader is known and every node is ready.
    pub async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.cluster.as_mut() {
            c.wait_leader(CLUSTER_UP_TIMEOUT)
                .await
                .context("no leader elected within 30 s; see the node logs")?;
            anyhow::ensure!(
                c.wait_ready(CLUSTER_UP_TIMEOUT).await,
                "nodes not ready within 30 s; see the node logs"
            );
            return Ok(());
        }
        let deadline = Instant::now() + CLUSTER_UP_TIMEOUT;
        loop {
            let mut ready = 0;
            for u in &self.urls {
                if let Ok((h, _)) = self
                    .http
                    .get_json(&format!("{u}/readyz"), Duration::from_secs(2))
                    .await
                {
                    ready += usize::from(h.status == 200);
                }
            }
            if ready == self.urls.len() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {ready} of {} targets ready within 30 s",
                self.urls.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The current leader: (node id, API URL). Polls for up to 20 s.
    pub async fn leader(&self) -> anyhow::Result<(u64, String)> {
        let (id, url, _) = self.leader_status().await?;
        Ok((id, url))
    }

    /// The current leader and its own `/cluster/status`. A node's report names a leader only
    /// as that node last heard of it (a killed leader, or a restarted one that has not yet
    /// heard of the new term, may still be named), so the named node must answer and say
    /// it is the leader itself. Polls for up to 20 s.
    pub async fn leader_status(&self) -> anyhow::Result<(u64, String, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for u in &self.urls {
                let Some(s) = self.http.status(u).await else {
                    continue;
                };
                let Some(id) = s["leader"].as_u64() else {
                    continue;
                };
                let Some(api) = s["members"][id.to_string()]["api"].as_str() else {
                    continue;
                };
                let api = api.trim_end_matches('/').to_owned();
                let Some(own) = self.http.status(&api).await else {
                    continue;
                };
                if own["role"] == "leader" && own["leader"].as_u64() == Some(id) {
                    return Ok((id, api, own));
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no node answered as the leader within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The highest Raft term any reachable node reports (0 when none answers). Two readings
    /// around a load phase give the number of elections during it: with a healthy leader and
    /// no faults it must not change.
    pub async fn max_term(&self) -> u64 {
        let mut term = 0;
        for u in &self.urls {
            if let Some(s) = self.http.status(u).await {
                term = term.max(s["term"].as_u64().unwrap_or(0));
            }
        }
        term
    }

    /// The leader's `committed` index.
    pub async fn leader_committed(&self) -> anyhow::Result<u64> {
        let (_, _, s) = self.leader_status().await?;
        s["committed"]
            .as_u64()
            .context("status without `committed`")
    }

    /// POSTs a batch to the leader, retrying (same ids, so idempotently) on transport errors
    /// and 5xx until it answers 2xx or 60 s pass; a 4xx is returned as an error.
    pub async fn post_batch_retry(&self, body: &Batch<'_>) -> anyhow::Result<BatchReply> {
        let deadline = Instant::now() + SETUP_RETRY_DEADLINE;
        let mut url = self.leader().await?.1;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let last = match self
                .http
                .post_batch(&format!("{url}/v1/batches"), body, BATCH_TIMEOUT)
                .await
            {
                Ok(r) if r.ok_status() => return Ok(r),
                Ok(r) if (400..500).contains(&r.status) => {
                    anyhow::bail!(
                        "batch refused: {} {}",
                        r.status,
                        r.error_code.unwrap_or_default()
                    )
                }
                Ok(r) => format!("{} {}", r.status, r.error_code.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            anyhow::ensure!(
                Instant::now() < deadline,
                "batch failed after {attempt} attempts: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            url = self.urls[attempt % self.urls.len()].clone();
        }
    }

    /// Opens `n` USD accounts named `{prefix}{i}` and deposits `deposit_minor` into each.
    pub async fn open_and_fund(
        &mut self,
        prefix: &str,
        n: usize,
        deposit_minor: i64,
    ) -> anyhow::Result<Vec<String>> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        for chunk in ids.chunks(SETUP_BATCH_COMMANDS_MAX) {
            let commands = chunk
                .iter()
                .map(|id| Item::Account {
                    id,
                    currency: "USD",
                })
                .collect();
            let r = self
                .post_batch_retry(&Batch {
                    atomic: false,
                    commands,
                })
                .await?;
            anyhow::ensure!(
                r.ok == chunk.len() as u64,
                "opened {} of {} accounts: {:?}",
                r.ok,
                chunk.len(),
                r.error_code
            );
        }
        for chunk in ids.chunks(SETUP_BATCH_COMMANDS_MAX) {
            let commands = chunk
                .iter()
                .map(|a| Item::Deposit {
                    id: format!("{a}.d"),
                    account: a,
                    amount: deposit_minor,
                })
                .collect();
            let r = self
                .post_batch_retry(&Batch {
                    atomic: false,
                    commands,
                })
                .await?;
            anyhow::ensure!(
                r.ok == chunk.len() as u64,
                "funded {} of {} accounts: {:?}",
                r.ok,
                chunk.len(),
                r.error_code
            );
            self.postings_total += r.ok;
        }
        Ok(ids)
    }

    /// The pool of pre-opened, pre-funded accounts the write phases use (opened on first use).
    pub async fn pool(&mut self) -> anyhow::Result<Arc<Vec<String>>> {
        if let Some(p) = &self.pool {
            return Ok(p.clone());
        }
        let t = Instant::now();
        let prefix = format!("p{}-", self.run_id);
        let ids = self
            .open_and_fund(&prefix, POOL_ACCOUNTS, POOL_DEPOSIT_MINOR)
            .await?;
        println!(
            "  opened and funded {POOL_ACCOUNTS} pool accounts in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let p = Arc::new(ids);
        self.pool = Some(p.clone());
        Ok(p)
    }
}

/// Two distinct random positions in `0..n` (n >= 2).
pub fn two_distinct(rng: &mut impl rand::Rng, n: usize) -> (usize, usize) {
    let a = rng.random_range(0..n);
    let b = (a + rng.random_range(1..n)) % n;
    (a, b)
}
