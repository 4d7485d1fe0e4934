//! Write path: coalesces concurrent client commands into one Raft entry (one fsync, one
//! replication round trip for many transfers), stamps them with the leader's monotonic clock,
//! and forwards them to the leader (one hop) when this node is not the leader.
//!
//! Retrying after an ambiguous failure is safe because every command carries its idempotency
//! key: if the first attempt did commit, the retry returns the original result.

use crate::network::client::CallError;
use crate::network::wire::path;
use crate::network::NetworkFactory;
use crate::raft_types::{LedgerRequest, NodeId, Raft};
use ledger::{Command, CommandResult};
use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most commands in one Raft entry: bounds entry size (~200 B/command => ~1 MiB) and the
/// latency of the slowest command in a batch.
pub const BATCH_COMMANDS_MAX: usize = 4096;
/// Requests queued for batching before callers wait: absorbs bursts from many clients without
/// unbounded memory.
const QUEUE_JOBS_MAX: usize = 16_384;
/// Entries proposed but not yet applied at once: enough to keep the log pipeline busy while
/// the previous group is being fsynced and replicated.
const INFLIGHT_ENTRIES_MAX: usize = 4;
/// How long a forwarded proposal may take before the follower gives up (the client may retry
/// with the same idempotency key).
const FORWARD_TIMEOUT_MS: u64 = 10_000;

/// Outcome of proposing commands: one result per command and the log index of the entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    /// Results in the order of the submitted commands.
    pub results: Vec<CommandResult>,
    /// Log index the entry was committed at.
    pub index: u64,
}

/// Why a proposal did not produce results. None of these means "rejected by the ledger":
/// business rejections are results.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known right now (election in progress); retry shortly.
    #[error("no leader is known; retry shortly")]
    NoLeader,
    /// The leader could not be reached or answered with an error; the outcome is unknown.
    #[error("leader unavailable: {0}")]
    LeaderUnavailable(String),
    /// The node is shutting down or Raft stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

struct Job {
    commands: Vec<Command>,
    reply: oneshot::Sender<Result<Proposed, ProposeError>>,
}

/// Handle used by the API to propose commands (cheap to clone).
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Job>,
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    net: NetworkFactory,
    self_id: NodeId,
    last_stamp_us: AtomicU64,
}

impl Proposer {
    /// Starts the batching task.
    pub fn start(raft: Raft, net: NetworkFactory, self_id: NodeId) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_JOBS_MAX);
        let inner = Arc::new(Inner {
            raft,
            net,
            self_id,
            last_stamp_us: AtomicU64::new(0),
        });
        tokio::spawn(batch_loop(rx, inner.clone()));
        Self { tx, inner }
    }

    /// Proposes commands from a client of this node: batched, forwarded if we are a follower.
    pub async fn propose(&self, commands: Vec<Command>) -> Result<Proposed, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { commands, reply })
            .await
            .map_err(|_| ProposeError::Fatal("proposer stopped".into()))?;
        rx.await
            .map_err(|_| ProposeError::Fatal("proposer dropped the request".into()))?
    }

    /// Proposes commands forwarded by a follower: never forwards again (one hop).
    pub async fn propose_as_leader(
        &self,
        commands: Vec<Command>,
    ) -> Result<Proposed, ProposeError> {
        if !self.inner.raft.is_leader() {
            return Err(ProposeError::NoLeader);
        }
        self.propose(commands).await
    }
}

async fn batch_loop(mut rx: mpsc::Receiver<Job>, inner: Arc<Inner>) {
    let inflight = Arc::new(Semaphore::new(INFLIGHT_ENTRIES_MAX));
    while let Some(first) = rx.recv().await {
        // Wait for a pipeline slot first: requests arriving meanwhile join this batch.
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut count = weight(&first.commands);
        let mut jobs = vec![first];
        while count < BATCH_COMMANDS_MAX {
            match rx.try_recv() {
                Ok(job) => {
                    count += weight(&job.commands);
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            dispatch(&inner, jobs).await;
            drop(permit);
        });
    }
}

/// Commands a job contributes to an entry: a client batch counts as its inner commands, so one
/// entry never carries many full client batches.
fn weight(commands: &[Command]) -> usize {
    commands.iter().map(Command::weight).sum()
}

async fn dispatch(inner: &Inner, jobs: Vec<Job>) {
    let mut commands = Vec::with_capacity(jobs.iter().map(|j| j.commands.len()).sum());
    for job in &jobs {
        commands.extend(job.commands.iter().cloned());
    }
    metrics::histogram!("raftledger_proposal_commands").record(commands.len() as f64);
    let result = submit(inner, commands).await;
    let mut offset = 0;
    for job in jobs {
        let n = job.commands.len();
        let reply = result.as_ref().map(|p| Proposed {
            results: p.results[offset..offset + n].to_vec(),
            index: p.index,
        });
        offset += n;
        let _ = job.reply.send(reply.map_err(Clone::clone));
    }
}

/// Proposes locally when leader, else forwards to the known leader.
async fn submit(inner: &Inner, mut commands: Vec<Command>) -> Result<Proposed, ProposeError> {
    if inner.raft.is_leader() {
        for c in commands.iter_mut() {
            c.timestamp_us = inner.stamp();
        }
        #[cfg(feature = "sabotage")]
        if crate::sabotage::active(crate::sabotage::Sabotage::AckBeforeCommit) {
            return Ok(crate::sabotage::ack_before_commit(&inner.raft, commands));
        }
        match inner
            .raft
            .client_write(LedgerRequest {
                commands: commands.clone(),
            })
            .await
        {
            Ok(resp) => {
                return Ok(Proposed {
                    results: resp.data.results,
                    index: resp.log_id.index,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
            | Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
                // Lost leadership; the entry may or may not commit. Forward to the new leader:
                // idempotency keys make a duplicate return the original outcome.
                return match f.leader_id {
                    Some(id) if id != inner.self_id => forward(inner, id, commands).await,
                    _ => Err(ProposeError::NoLeader),
                };
            }
            Err(RaftError::APIError(e)) => {
                return Err(ProposeError::LeaderUnavailable(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => return Err(ProposeError::Fatal(e.to_string())),
        }
    }
    match inner.raft.current_leader().await {
        Some(id) if id != inner.self_id => forward(inner, id, commands).await,
        _ => Err(ProposeError::NoLeader),
    }
}

async fn forward(
    inner: &Inner,
    leader: NodeId,
    commands: Vec<Command>,
) -> Result<Proposed, ProposeError> {
    let node = crate::raft_types::member_addr(&inner.raft, leader);
    let Some(node) = node else {
        return Err(ProposeError::NoLeader);
    };
    metrics::counter!("raftledger_forwarded_commands_total").increment(commands.len() as u64);
    let conn = inner.net.connection(leader, &node);
    match conn
        .call::<_, Result<Proposed, ProposeError>>(
            path::PROPOSE,
            &commands,
            Duration::from_millis(FORWARD_TIMEOUT_MS),
        )
        .await
    {
        Ok(r) => r,
        Err(CallError::Unreachable(_)) => Err(ProposeError::NoLeader),
        Err(e) => Err(ProposeError::LeaderUnavailable(e.to_string())),
    }
}

/// Wall-clock time in µs since the Unix epoch (the leader's clock; replicas never read it).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Inner {
    /// Monotonic leader stamp: max(now, last + 1 µs).
    fn stamp(&self) -> u64 {
        let now = now_us();
        let mut last = self.last_stamp_us.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_stamp_us.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }
}
