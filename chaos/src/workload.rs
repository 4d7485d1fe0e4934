//! The bank workload (Jepsen "bank"): K accounts holding a fixed total, C concurrent logical
//! clients sending transfers with client-generated ids to random nodes (retried with the SAME id
//! on another node after a timeout or 5xx, until the op deadline), snapshot reads of every
//! balance, linearizable / stale single-account reads, and time-travel reads. Every op goes into
//! the `History`; an op whose outcome stays unknown is `info`, and its process retires.

use crate::history::{History, Op, OpKind, Outcome, TransferReq};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Timeout of one attempt; an op retries attempts until its deadline.
const ATTEMPT_TIMEOUT_MS: u64 = 1_500;
/// Pause before retrying an unknown attempt on the next node.
const RETRY_BACKOFF_MS: u64 = 100;
/// Recent (index, timestamp) pairs kept for time-travel reads.
const KNOWN_POINTS_MAX: usize = 4_096;
/// Longest the setup (open accounts, deposits) may take.
const SETUP_TIMEOUT_MS: u64 = 60_000;

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Prefix of account and transfer ids (unique per run, so runs against one cluster do not
    /// collide).
    pub tag: String,
    /// Number of accounts.
    pub accounts: usize,
    /// Money in the bank.
    pub total: i64,
    /// Concurrent logical clients.
    pub clients: usize,
    /// Deadline of one op, retries included.
    pub op_deadline_ms: u64,
    /// Pause between a client's ops.
    pub think_ms: u64,
    /// Seed of the clients' choices.
    pub seed: u64,
    /// Length of a filler memo on every transfer (0: none): bulkier log entries fill WAL
    /// segments sooner (`--compaction aggressive`). The checkers ignore memos.
    pub memo_bytes: usize,
}

impl WorkloadConfig {
    /// Account ids.
    pub fn account_ids(&self) -> Vec<String> {
        (0..self.accounts)
            .map(|i| format!("{}-a{i}", self.tag))
            .collect()
    }
}

/// Shared state of the running workload.
pub struct Workload {
    cfg: WorkloadConfig,
    nodes: Vec<(u64, String)>,
    http: reqwest::Client,
    /// The run's history.
    pub history: Arc<History>,
    started: Instant,
    next_op: AtomicU64,
    known: Mutex<VecDeque<(u64, String)>>,
    ok_transfers: Mutex<Vec<(TransferReq, u64)>>,
    latest_ack: Mutex<Option<Ack>>,
}

/// The most recent acknowledged transfer: what a read-your-writes read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Debit account.
    pub from: String,
    /// Credit account.
    pub to: String,
    /// `last_event_seq` of the acknowledgement (the `min_seq` that must be visible).
    pub last_event_seq: u64,
}

/// What one HTTP attempt produced.
enum Attempt {
    Reply(u16, Option<u64>, Value),
    Unknown(String),
}

impl Workload {
    /// A workload against `nodes` (id, API URL); `started` is time zero of the history.
    pub fn new(cfg: WorkloadConfig, nodes: Vec<(u64, String)>, started: Instant) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .tcp_nodelay(true)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Arc::new(Self {
            cfg,
            nodes,
            http,
            history: Arc::new(History::default()),
            started,
            next_op: AtomicU64::new(0),
            known: Mutex::new(VecDeque::new()),
            ok_transfers: Mutex::new(Vec::new()),
            latest_ack: Mutex::new(None),
        })
    }

    /// The most recent acknowledged transfer, if any.
    pub fn latest_ack(&self) -> Option<Ack> {
        self.latest_ack.lock().ok().and_then(|a| a.clone())
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    async fn attempt(&self, node: usize, post: Option<&Value>, path: &str, ms: u64) -> Attempt {
        let url = format!("{}{path}", self.nodes[node % self.nodes.len()].1);
        let req = match post {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url),
        };
        match req.timeout(Duration::from_millis(ms.max(1))).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let index = r
                    .headers()
                    .get("x-ledger-index")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                match r.json::<Value>().await {
                    Ok(v) => Attempt::Reply(status, index, v),
                    Err(e) if status >= 500 => Attempt::Unknown(format!("{status}: {e}")),
                    Err(e) => {
                        Attempt::Reply(status, index, json!({"error": {"code": e.to_string()}}))
                    }
                }
            }
            Err(e) => Attempt::Unknown(e.to_string()),
        }
    }

    /// Opens the accounts and deposits `total / K` into each (retrying with the same ids).
    pub async fn setup(&self) -> anyhow::Result<()> {
        let each = self.cfg.total / self.cfg.accounts as i64;
        anyhow::ensure!(
            each * self.cfg.accounts as i64 == self.cfg.total,
            "total must divide evenly"
        );
        for a in self.cfg.account_ids() {
            self.setup_write("/v1/accounts", &json!({"id": a, "currency": "USD"}))
                .await?;
            self.setup_write(
                "/v1/deposits",
                &json!({"id": format!("{a}-seed"), "account": a, "amount": each}),
            )
            .await?;
        }
        Ok(())
    }

    async fn setup_write(&self, path: &str, body: &Value) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(SETUP_TIMEOUT_MS);
        let mut n = 0;
        while Instant::now() < deadline {
            match self
                .attempt(n, Some(body), path, ATTEMPT_TIMEOUT_MS * 2)
                .await
            {
                Attempt::Reply(s, _, _) if (200..300).contains(&s) => return Ok(()),
                Attempt::Reply(s, _, v) if s < 500 => anyhow::bail!("setup {path}: {s} {v}"),
                _ => {}
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS * 2)).await;
        }
        anyhow::bail!("setup {path} {body}: no definite answer in {SETUP_TIMEOUT_MS} ms")
    }

    /// Runs `clients` logical clients until `stop` turns true; in-flight ops finish first.
    pub async fn run(self: &Arc<Self>, stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = (0..self.cfg.clients)
            .map(|slot| {
                let w = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { w.client(slot as u64, stop).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn client(&self, slot: u64, stop: watch::Receiver<bool>) {
        let mut rng = StdRng::seed_from_u64(self.cfg.seed.wrapping_mul(1_000_003) ^ slot);
        let mut process = slot;
        let mut n = 0u64;
        while !*stop.borrow() {
            n += 1;
            let op = self.one_op(&mut rng, process, n).await;
            let retire = op.outcome == Outcome::Info;
            self.history.record(op);
            if retire {
                process += self.cfg.clients as u64;
            }
            tokio::time::sleep(Duration::from_millis(self.cfg.think_ms)).await;
        }
    }

    async fn one_op(&self, rng: &mut StdRng, process: u64, n: u64) -> Op {
        let node = rng.random_range(0..self.nodes.len());
        let op_id = self.next_op.fetch_add(1, Ordering::Relaxed);
        let accounts = self.cfg.account_ids();
        let roll = rng.random_range(0..100);
        let f = match roll {
            0..45 => OpKind::Transfer,
            45..48 => OpKind::Replay,
            48..62 => OpKind::ReadAll,
            62..76 => OpKind::Read,
            76..86 => OpKind::ReadStale,
            86..93 => OpKind::ReadAtIndex,
            _ => OpKind::ReadAtTime,
        };
        let mut op = Op::new(op_id, process, f, self.nodes[node].0, self.now_us());
        let account = accounts[rng.random_range(0..accounts.len())].clone();
        match f {
            OpKind::Transfer => {
                let from = rng.random_range(0..accounts.len());
                let to = (from + rng.random_range(1..accounts.len())) % accounts.len();
                let max = (self.cfg.total / self.cfg.accounts as i64 / 3).max(1);
                let req = TransferReq {
                    id: format!("{}-p{process}-{n}", self.cfg.tag),
                    from: accounts[from].clone(),
                    to: accounts[to].clone(),
                    amount: rng.random_range(1..=max),
                };
                self.transfer(&mut op, node, req).await;
            }
            OpKind::Replay => {
                let earlier = {
                    let v = self
                        .ok_transfers
                        .lock()
                        .map(|v| v.clone())
                        .unwrap_or_default();
                    (!v.is_empty()).then(|| v[rng.random_range(0..v.len())].0.clone())
                };
                match earlier {
                    Some(req) => self.transfer(&mut op, node, req).await,
                    None => {
                        op.f = OpKind::Read;
                        self.read(&mut op, node, account, "").await
                    }
                }
            }
            OpKind::ReadAll => {
                let path = format!("/v1/balances?accounts={}", accounts.join(","));
                self.read_path(&mut op, node, &path).await;
            }
            OpKind::Read => self.read(&mut op, node, account, "").await,
            OpKind::ReadStale => {
                self.read(&mut op, node, account, "?consistency=stale")
                    .await
            }
            OpKind::ReadAtIndex | OpKind::ReadAtTime => {
                let point = {
                    let k = self.known.lock().map(|k| k.clone()).unwrap_or_default();
                    (!k.is_empty()).then(|| k[rng.random_range(0..k.len())].clone())
                };
                let (index, ts) = point.unwrap_or((1, String::new()));
                // at_index waits for that index (stale is enough); at=T must be linearizable so
                // the node has applied every event up to T.
                let q = if f == OpKind::ReadAtIndex || ts.is_empty() {
                    op.f = OpKind::ReadAtIndex;
                    op.at_index = Some(index);
                    format!("at_index={index}&consistency=stale")
                } else {
                    op.at_time = Some(ts.clone());
                    format!("at={}", ts.replace('+', "%2B"))
                };
                let path = format!("/v1/accounts/{account}/balance?{q}");
                op.account = Some(account);
                self.read_path(&mut op, node, &path).await;
            }
        }
        op.complete_us = self.now_us();
        op
    }

    async fn read(&self, op: &mut Op, node: usize, account: String, q: &str) {
        let path = format!("/v1/accounts/{account}{q}");
        op.account = Some(account);
        self.read_path(op, node, &path).await;
    }

    /// Reads have no effect, so anything but 2xx is `fail`.
    async fn read_path(&self, op: &mut Op, node: usize, path: &str) {
        op.attempts = 1;
        match self
            .attempt(node, None, path, self.cfg.op_deadline_ms)
            .await
        {
            Attempt::Reply(s, index, v) if (200..300).contains(&s) => {
                op.outcome = Outcome::Ok;
                op.index = index;
                if let Some(m) = v["balances"].as_object() {
                    op.balances = Some(
                        m.iter()
                            .map(|(k, b)| (k.clone(), b.as_i64().unwrap_or(i64::MIN)))
                            .collect::<BTreeMap<_, _>>(),
                    );
                } else {
                    op.balance = v["balance"].as_i64();
                }
            }
            Attempt::Reply(s, _, v) => {
                op.outcome = Outcome::Fail;
                op.error = Some(format!("{s} {}", v["error"]["code"].as_str().unwrap_or("")));
            }
            Attempt::Unknown(e) => {
                op.outcome = Outcome::Fail;
                op.error = Some(e);
            }
        }
    }

    async fn transfer(&self, op: &mut Op, first_node: usize, req: TransferReq) {
        let mut body = json!({"id": req.id, "from": req.from, "to": req.to, "amount": req.amount});
        if self.cfg.memo_bytes > 0 {
            body["memo"] = json!("m".repeat(self.cfg.memo_bytes));
        }
        op.transfer = Some(req.clone());
        let deadline = Instant::now() + Duration::from_millis(self.cfg.op_deadline_ms);
        let mut node = first_node;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
            if left == 0 {
                op.outcome = Outcome::Info;
                return;
            }
            op.attempts += 1;
            match self
                .attempt(
                    node,
                    Some(&body),
                    "/v1/transfers",
                    left.min(ATTEMPT_TIMEOUT_MS),
                )
                .await
            {
                Attempt::Reply(s, _, v) if (200..300).contains(&s) => {
                    op.outcome = Outcome::Ok;
                    op.index = v["index"].as_u64();
                    op.timestamp = v["timestamp"].as_str().map(str::to_owned);
                    op.error = None;
                    if let (Some(i), Some(t)) = (op.index, op.timestamp.clone()) {
                        if let Ok(mut k) = self.known.lock() {
                            if k.len() >= KNOWN_POINTS_MAX {
                                k.pop_front();
                            }
                            k.push_back((i, t));
                        }
                        let seq = v["last_event_seq"].as_u64().or(v["event_seq"].as_u64());
                        if let (OpKind::Transfer, Some(seq)) = (op.f, seq) {
                            if let Ok(mut a) = self.latest_ack.lock() {
                                if a.as_ref().is_none_or(|a| a.last_event_seq < seq) {
                                    *a = Some(Ack {
                                        from: req.from.clone(),
                                        to: req.to.clone(),
                                        last_event_seq: seq,
                                    });
                                }
                            }
                        }
                        if op.f == OpKind::Transfer {
                            if let Ok(mut v) = self.ok_transfers.lock() {
                                if v.len() < KNOWN_POINTS_MAX {
                                    v.push((req.clone(), i));
                                }
                            }
                        }
                    }
                    return;
                }
                Attempt::Reply(s, _, v) if s < 500 => {
                    op.outcome = Outcome::Fail;
                    op.error = Some(format!("{s} {}", v["error"]["code"].as_str().unwrap_or("")));
                    return;
                }
                Attempt::Reply(s, _, v) => {
                    op.error = Some(format!("{s} {}", v["error"]["code"].as_str().unwrap_or("")));
                }
                Attempt::Unknown(e) => op.error = Some(e),
            }
            node += 1;
            tokio::time::sleep(Duration::from_millis(RETRY_BACKOFF_MS)).await;
        }
    }
}
