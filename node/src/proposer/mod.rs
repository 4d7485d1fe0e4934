//! Write path: coalesces concurrent client commands into one Raft entry (one fsync, one
//! replication round trip for many transfers), stamps them with the leader's monotonic clock,
//! and forwards them to the leader (one hop) when this node is not the leader.
//!
//! Every bound here is enforced before a command reaches the log:
//! - an entry's encoded size stays within `--entry-bytes-max` (`size`), so no client input can
//!   make the WAL refuse an append; a request that alone exceeds it is refused (`TooLarge`);
//! - the bytes of waiting and in-flight requests are bounded by [`QUEUE_BYTES_MAX`]; when full,
//!   a request is shed at once (`Overloaded`) instead of waiting;
//! - a write that has not committed by `--write-timeout-ms` is answered `Timeout` (outcome
//!   unknown; it may still commit later).
//!
//! Retrying after an ambiguous failure is safe because every command carries its idempotency
//! key: if the first attempt did commit, the retry returns the original result.

mod queue;
pub mod size;
mod submit;

use crate::clock::Clock;
use crate::network::NetworkFactory;
use crate::raft_types::{NodeId, Raft};
use ledger::{Command, CommandResult};
use queue::{Job, Queue};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

pub use submit::now_us;

/// Default `--entry-bytes-max`: half the WAL's 8 MiB record limit, so an entry's encoding (log id,
/// framing) always fits with room to spare, and a follower decodes one within its RPC timeout.
pub const ENTRY_BYTES_MAX_DEFAULT: u64 = 4 * 1024 * 1024;
/// Largest accepted `--entry-bytes-max`: still 2 MiB under the WAL's 8 MiB record limit.
pub const ENTRY_BYTES_MAX_LIMIT: u64 = 6 * 1024 * 1024;
/// Smallest accepted `--entry-bytes-max`: one command is at most ~5 KiB (4 KiB metadata plus
/// ids), so every single command fits many times over.
pub const ENTRY_BYTES_MAX_MIN: u64 = 64 * 1024;
/// Most commands in one Raft entry: bounds the apply work of one entry and the latency of the
/// slowest command in it (bytes are bounded separately by `--entry-bytes-max`).
pub const BATCH_COMMANDS_MAX: usize = 4096;
/// Encoded bytes of requests queued or in flight in the proposer: 16 full entries. Bounds the
/// memory a burst of large requests can pin; beyond it requests are shed with 503 at once.
/// At least [`ENTRY_BYTES_MAX_LIMIT`], so any request under the entry budget can be admitted.
pub const QUEUE_BYTES_MAX: u64 = 64 * 1024 * 1024;
const _: () = assert!(QUEUE_BYTES_MAX >= ENTRY_BYTES_MAX_LIMIT);
/// Requests queued for batching: absorbs bursts of small requests from many clients (the byte
/// bound above caps large ones); beyond it requests are shed with 503 at once.
const QUEUE_JOBS_MAX: usize = 16_384;
/// Entries proposed but not yet applied at once: enough to keep the log pipeline busy while
/// the previous group is being fsynced and replicated.
const INFLIGHT_ENTRIES_MAX: usize = 4;

/// Outcome of proposing commands: one result per command and the log index of the entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposed {
    /// Results in the order of the submitted commands.
    pub results: Vec<CommandResult>,
    /// Log index the entry was committed at.
    pub index: u64,
}

/// Why a proposal did not produce results. None of these means "rejected by the ledger":
/// business rejections are results. Sent over the wire from the leader to a forwarding
/// follower: new variants go at the end.
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
    /// The commands of one request encode to more than one entry may hold; nothing was
    /// proposed.
    #[error("the request encodes to {bytes} bytes; one log entry holds at most {max}")]
    TooLarge {
        /// Encoded bytes of the request's commands (upper bound, entry overhead included).
        bytes: u64,
        /// The entry budget (`--entry-bytes-max`).
        max: u64,
    },
    /// The proposer's queue is full (bytes or requests); nothing was proposed.
    #[error("too many writes are waiting; retry shortly")]
    Overloaded,
    /// No commit within the write deadline; the commands may still commit later.
    #[error("the write did not commit within {timeout_ms} ms; it may still commit")]
    Timeout {
        /// The deadline (`--write-timeout-ms`).
        timeout_ms: u64,
    },
}

/// The write path's bounds (from the node configuration) and its clock.
#[derive(Debug, Clone, Copy)]
pub struct ProposerConfig {
    /// Largest encoded entry (`--entry-bytes-max`).
    pub entry_bytes_max: u64,
    /// Deadline of one write, queueing included (`--write-timeout-ms`); also the timeout of a
    /// proposal forwarded to the leader, so a forward never outlives its client's deadline.
    pub write_timeout: Duration,
    /// The clock commands are stamped with.
    pub clock: Clock,
}

/// Handle used by the API to propose commands (cheap to clone).
#[derive(Clone)]
pub struct Proposer {
    queue: Queue,
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    net: NetworkFactory,
    self_id: NodeId,
    config: ProposerConfig,
    last_stamp_us: AtomicU64,
}

impl Proposer {
    /// Starts the batching task.
    pub fn start(raft: Raft, net: NetworkFactory, self_id: NodeId, config: ProposerConfig) -> Self {
        let (queue, rx) = Queue::new(QUEUE_JOBS_MAX, QUEUE_BYTES_MAX);
        let inner = Arc::new(Inner {
            raft,
            net,
            self_id,
            config,
            last_stamp_us: AtomicU64::new(0),
        });
        tokio::spawn(batch_loop(rx, inner.clone()));
        Self { queue, inner }
    }

    /// Now on the clock commands are stamped with, in µs since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        self.inner.config.clock.now_us()
    }

    /// Proposes commands from a client of this node: batched, forwarded if we are a follower.
    /// Refuses at once what cannot fit an entry or the queue; answers `Timeout` at the deadline.
    pub async fn propose(&self, commands: Vec<Command>) -> Result<Proposed, ProposeError> {
        let bytes = size::commands_bytes(&commands);
        let max = self.inner.config.entry_bytes_max;
        if !size::fits_entry(bytes, max) {
            metrics::counter!("raftledger_proposals_refused_total", "reason" => "too_large")
                .increment(1);
            return Err(ProposeError::TooLarge {
                bytes: bytes.saturating_add(size::ENTRY_OVERHEAD_BYTES),
                max,
            });
        }
        let rx = self.queue.admit(commands, bytes)?;
        let deadline = self.inner.config.write_timeout;
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Fatal("proposer dropped the request".into())),
            Err(_) => {
                metrics::counter!("raftledger_write_timeouts_total").increment(1);
                Err(ProposeError::Timeout {
                    timeout_ms: deadline.as_millis() as u64,
                })
            }
        }
    }

    /// Proposes commands forwarded by a follower: never forwards again (one hop). The same
    /// bounds apply as to a local client: a follower's request is client input too.
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

/// Jobs coalesced into one entry.
struct Group {
    jobs: Vec<Job>,
    bytes: u64,
    weight: usize,
}

impl Group {
    fn new(first: Job) -> Self {
        Self {
            bytes: first.bytes,
            weight: weight(&first.commands),
            jobs: vec![first],
        }
    }

    /// Adds `job` when the entry stays within `max` bytes; else hands it back.
    fn try_push(&mut self, job: Job, max: u64) -> Result<(), Job> {
        if !size::fits_entry(self.bytes.saturating_add(job.bytes), max) {
            return Err(job);
        }
        self.bytes += job.bytes;
        self.weight += weight(&job.commands);
        self.jobs.push(job);
        Ok(())
    }
}

async fn batch_loop(mut rx: mpsc::Receiver<Job>, inner: Arc<Inner>) {
    let inflight = Arc::new(Semaphore::new(INFLIGHT_ENTRIES_MAX));
    // A job that did not fit the previous entry opens the next one.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        // Wait for a pipeline slot first: requests arriving meanwhile join this entry.
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut group = Group::new(first);
        while group.weight < BATCH_COMMANDS_MAX {
            let Ok(job) = rx.try_recv() else { break };
            if let Err(job) = group.try_push(job, inner.config.entry_bytes_max) {
                carried = Some(job);
                break;
            }
        }
        metrics::histogram!("raftledger_proposal_bytes").record(group.bytes as f64);
        let inner = inner.clone();
        tokio::spawn(async move {
            submit::dispatch(&inner, group.jobs).await;
            drop(permit);
        });
    }
}

/// Commands a job contributes to an entry: a client batch counts as its inner commands, so one
/// entry never carries many full client batches.
fn weight(commands: &[Command]) -> usize {
    commands.iter().map(Command::weight).sum()
}
