//! Submitting one coalesced entry: locally through `client_write` when leader, else forwarded
//! to the leader's `propose` route (one hop); and splitting the results back to the requests.

use super::queue::Job;
use super::{Inner, ProposeError, Proposed};
use crate::network::client::CallError;
use crate::network::wire::path;
use crate::raft_types::{LedgerRequest, NodeId};
use ledger::Command;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::atomic::Ordering;

/// Proposes the commands of `jobs` as one entry and answers each job with its results.
pub(super) async fn dispatch(inner: &Inner, jobs: Vec<Job>) {
    let mut commands = Vec::with_capacity(jobs.iter().map(|j| j.commands.len()).sum());
    for job in &jobs {
        commands.extend(job.commands.iter().cloned());
    }
    metrics::histogram!("raftledger_proposal_commands").record(commands.len() as f64);
    let result = submit(inner, commands).await;
    if jobs.len() > 1 && matches!(result, Err(ProposeError::TooLarge { .. })) {
        // Only a leader with a smaller `--entry-bytes-max` than ours refuses a group we built:
        // propose each request on its own, so only a request that is itself too large fails.
        for job in jobs {
            let result = submit(inner, job.commands.clone()).await;
            let _ = job.reply.send(result);
        }
        return;
    }
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
            inner.config.write_timeout,
        )
        .await
    {
        Ok(r) => r,
        Err(CallError::Unreachable(_)) => Err(ProposeError::NoLeader),
        Err(e) => Err(ProposeError::LeaderUnavailable(e.to_string())),
    }
}

/// System wall-clock time in µs since the Unix epoch.
pub fn now_us() -> u64 {
    crate::clock::Clock::System.now_us()
}

impl Inner {
    /// Monotonic leader stamp: max(now, last + 1 µs).
    fn stamp(&self) -> u64 {
        let now = self.config.clock.now_us();
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
