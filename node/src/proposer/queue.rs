//! Admission to the proposer: a request enters the batching queue only while the encoded bytes
//! of everything queued or in flight stay within a byte budget and the queue has a free slot.
//! Otherwise it is refused at once (`Overloaded`, 503 + Retry-After) instead of waiting: under
//! overload, waiting only grows memory and latency for everyone.

use super::{ProposeError, Proposed};
use ledger::Command;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// One admitted request.
pub(super) struct Job {
    /// Its commands.
    pub commands: Vec<Command>,
    /// [`super::size::commands_bytes`] of `commands`.
    pub bytes: u64,
    /// Where its outcome goes.
    pub reply: oneshot::Sender<Result<Proposed, ProposeError>>,
    /// Its share of the byte budget, returned when the job is dropped (answered).
    _share: OwnedSemaphorePermit,
}

/// The sending side of the queue, with its two bounds.
#[derive(Clone)]
pub(super) struct Queue {
    tx: mpsc::Sender<Job>,
    bytes: Arc<Semaphore>,
}

impl Queue {
    /// A queue of at most `jobs_max` waiting requests and `bytes_max` bytes queued or in flight.
    pub fn new(jobs_max: usize, bytes_max: u64) -> (Self, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(jobs_max);
        let bytes = Arc::new(Semaphore::new(
            usize::try_from(bytes_max).unwrap_or(usize::MAX),
        ));
        (Self { tx, bytes }, rx)
    }

    /// Admits `commands` of `bytes` (at most one entry's budget, so it fits `u32`); returns the
    /// receiver of its outcome.
    pub fn admit(
        &self,
        commands: Vec<Command>,
        bytes: u64,
    ) -> Result<oneshot::Receiver<Result<Proposed, ProposeError>>, ProposeError> {
        let share = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        let Ok(share) = self.bytes.clone().try_acquire_many_owned(share) else {
            return Err(overloaded("queue_bytes"));
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            commands,
            bytes,
            reply,
            _share: share,
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(overloaded("queue_jobs")),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(ProposeError::Fatal("proposer stopped".into()))
            }
        }
    }
}

fn overloaded(reason: &'static str) -> ProposeError {
    metrics::counter!("raftledger_proposals_refused_total", "reason" => reason).increment(1);
    ProposeError::Overloaded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(q: &Queue, bytes: u64) -> Result<(), ProposeError> {
        q.admit(Vec::new(), bytes).map(drop)
    }

    #[tokio::test]
    async fn bytes_over_the_budget_are_shed_until_jobs_are_answered() {
        let (q, mut rx) = Queue::new(100, 1000);
        admit(&q, 400).unwrap();
        admit(&q, 400).unwrap();
        assert!(matches!(admit(&q, 400), Err(ProposeError::Overloaded)));
        admit(&q, 200).unwrap();
        assert!(matches!(admit(&q, 1), Err(ProposeError::Overloaded)));
        // Taken off the queue but not answered: still counted (its commands are in memory).
        let first = rx.recv().await.unwrap();
        assert!(matches!(admit(&q, 1), Err(ProposeError::Overloaded)));
        drop(first);
        admit(&q, 400).unwrap();
    }

    #[tokio::test]
    async fn requests_over_the_slot_count_are_shed() {
        let (q, mut rx) = Queue::new(2, 1 << 20);
        admit(&q, 10).unwrap();
        admit(&q, 10).unwrap();
        assert!(matches!(admit(&q, 10), Err(ProposeError::Overloaded)));
        drop(rx.recv().await);
        admit(&q, 10).unwrap();
    }
}
