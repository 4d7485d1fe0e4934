//! The cluster under test: either owned (node processes + link proxies started here) or
//! `--target` (existing API URLs; no process or link control). Status polling, leader
//! discovery and admin calls (membership, learners, leader transfer) live here.

use crate::procs::{Procs, StartMode};
use crate::proxy::Mesh;
use crate::readside::ReadSide;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Timeout of one status or admin request.
const ADMIN_TIMEOUT_MS: u64 = 2_000;
/// Pause between polls while waiting.
const POLL_MS: u64 = 100;

/// Processes and links, when the harness owns them.
pub struct Owned {
    /// Node processes.
    pub procs: Procs,
    /// Link proxies.
    pub mesh: Mesh,
    /// nats-server, PostgreSQL and the read model (`--readmodel`).
    pub readside: Option<ReadSide>,
}

/// The cluster under test.
pub struct Cluster {
    /// API URL by node id.
    pub apis: BTreeMap<u64, String>,
    /// Present when the harness owns processes and links.
    pub owned: Option<Owned>,
    http: reqwest::Client,
}

impl Cluster {
    /// A cluster the harness owns.
    pub fn owned(procs: Procs, mesh: Mesh, readside: Option<ReadSide>) -> Self {
        let apis = procs.nodes.values().map(|n| (n.id, n.api_url())).collect();
        Self {
            apis,
            owned: Some(Owned {
                procs,
                mesh,
                readside,
            }),
            http: http_client(),
        }
    }

    /// An existing cluster: ids are learned from each URL's `/cluster/status`.
    pub async fn target(urls: &[String]) -> anyhow::Result<Self> {
        let http = http_client();
        let mut apis = BTreeMap::new();
        for u in urls {
            let u = u.trim_end_matches('/').to_owned();
            let v: Value = http
                .get(format!("{u}/cluster/status"))
                .send()
                .await?
                .json()
                .await?;
            let id = v["id"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("{u}: status has no id"))?;
            apis.insert(id, u);
        }
        Ok(Self {
            apis,
            owned: None,
            http,
        })
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.apis.keys().copied().collect()
    }

    /// The read model's API URL, when the harness runs the read side.
    pub fn readmodel_url(&self) -> Option<String> {
        self.owned
            .as_ref()
            .and_then(|o| o.readside.as_ref())
            .map(ReadSide::api_url)
    }

    /// Starts node `id` (owned clusters only).
    pub fn start(&mut self, id: u64, mode: &StartMode) -> anyhow::Result<()> {
        let o = self
            .owned
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("not owned"))?;
        let arg = o.mesh.peer_raft_addr_arg(id);
        o.procs.start(id, mode, &arg)
    }

    /// `GET /cluster/status` of node `id`.
    pub async fn status(&self, id: u64) -> Option<Value> {
        let url = self.apis.get(&id)?;
        let r = self
            .http
            .get(format!("{url}/cluster/status"))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Status of every node that answers.
    pub async fn statuses(&self) -> BTreeMap<u64, Value> {
        let futs = self.ids().into_iter().map(|id| async move {
            let s = self.status(id).await;
            (id, s)
        });
        futures::future::join_all(futs)
            .await
            .into_iter()
            .filter_map(|(id, s)| s.map(|s| (id, s)))
            .collect()
    }

    /// The leader every answering node agrees on, if any.
    pub async fn agreed_leader(&self) -> Option<u64> {
        let st = self.statuses().await;
        let mut leaders = st.values().map(|s| s["leader"].as_u64());
        let first = leaders.next()??;
        leaders.all(|l| l == Some(first)).then_some(first)
    }

    /// Any leader some node reports that itself claims to lead.
    pub async fn leader(&self) -> Option<u64> {
        let st = self.statuses().await;
        st.iter()
            .find(|(_, s)| s["role"] == "leader")
            .map(|(id, _)| *id)
    }

    /// The voter ids the leader reports.
    pub async fn voters(&self) -> Option<Vec<u64>> {
        let l = self.leader().await?;
        let s = self.status(l).await?;
        serde_json::from_value(s["voters"].clone()).ok()
    }

    /// POSTs an admin request to node `via`; Ok(body) on 2xx.
    pub async fn admin(&self, via: u64, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = self
            .apis
            .get(&via)
            .ok_or_else(|| anyhow::anyhow!("no node {via}"))?;
        let r = self
            .http
            .post(format!("{url}{path}"))
            .json(body)
            .timeout(Duration::from_millis(ADMIN_TIMEOUT_MS * 5))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path} via {via}: {status} {v}");
        Ok(v)
    }

    /// Repeats an admin request through the current leader until it succeeds or `timeout`.
    pub async fn admin_retry(&self, path: &str, body: &Value, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(l) = self.leader().await {
                if self.admin(l, path, body).await.is_ok() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS * 3)).await;
        }
        false
    }

    /// Removes `id` from the voters (and the membership); retries until `timeout` while no
    /// leader is known.
    pub async fn remove_voter(&self, id: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(voters) = self.voters().await {
                if !voters.contains(&id) {
                    return true;
                }
                let rest: Vec<u64> = voters.into_iter().filter(|v| *v != id).collect();
                if rest.is_empty() {
                    return false;
                }
                let body = json!({"voters": rest, "retain": false});
                let left = deadline.saturating_duration_since(Instant::now());
                return self.admin_retry("/cluster/membership", &body, left).await;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        false
    }

    /// Adds `id` back: learner (waits for catch-up), then voter.
    pub async fn add_voter(&self, id: u64, api: &str, raft: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        if !self
            .admin_retry(
                "/cluster/learners",
                &json!({"id": id, "api": api, "raft": raft}),
                timeout,
            )
            .await
        {
            return false;
        }
        while Instant::now() < deadline {
            if let Some(mut v) = self.voters().await {
                if v.contains(&id) {
                    return true;
                }
                v.push(id);
                let left = deadline.saturating_duration_since(Instant::now());
                if self
                    .admin_retry(
                        "/cluster/membership",
                        &json!({"voters": v, "retain": false}),
                        left,
                    )
                    .await
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        false
    }

    /// Waits until every node in `ids` answers `/readyz` and agrees on one leader.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let st = self.statuses().await;
            if st.len() == self.apis.len() {
                if let Some(l) = self.agreed_leader().await {
                    return Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        None
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(ADMIN_TIMEOUT_MS))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
