//! Keeps the history held in memory bounded: when more than `--history-in-memory-max`
//! finished transfers and idempotency entries have accumulated since they last left memory,
//! this task moves them to the cold history file, without waiting for a snapshot build (which
//! also moves them, every `--snapshot-every-entries`).
//!
//! Moves go one sealed generation at a time (`LedgerReader::migrate_oldest_generation`: one
//! sequential append on a thread of its own), and the young history is sealed whenever it
//! holds a quarter of the bound, so no single move is larger than that plus one check's
//! intake. Each move chooses its own CPU priority when it starts ([`move_nice`]): the lowest
//! while the host has CPU to spare and the bound is not far exceeded, normal otherwise. A
//! thread cannot raise its priority again without privileges, so a move started at the
//! lowest priority on a host that then saturates is starved until it ends; keeping moves
//! small bounds what piles up meanwhile (one unbounded move once let 3 GB pile up). On a
//! host with CPU to spare, sealed generations move before the bound is reached ([`plan`]).

use crate::sm::LedgerReader;
use crate::spare_cpu::SpareCpu;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

/// Default of `--history-in-memory-max`: records (a finished transfer or an idempotency
/// entry, about 350 bytes each in memory) held before they move to disk.
pub const HISTORY_IN_MEMORY_MAX_DEFAULT: u64 = 200_000;

/// How often the bound is checked and the young history sealed.
const CHECK_INTERVAL_MS: u64 = 250;

/// Nice value of a move when the host has CPU to spare: the lowest priority, so the move takes
/// what apply and replication leave (at nice 10 it took about a fifth of the batch API's
/// throughput). Not `SCHED_IDLE`: like a niced thread, an idle one cannot be sped up again.
const MOVE_NICE_SPARE: i32 = 19;

/// Nice value of a move on a busy host or beyond twice the bound: normal priority. On a host
/// saturated for minutes a nice-19 thread gets about 1% of a CPU, and the history held would
/// grow without bound; at normal priority moving takes its share of the CPU from apply, which
/// slows intake instead.
const MOVE_NICE_BUSY: i32 = 0;

/// CPUs' worth of time the host must have left over during the last check interval for a
/// move to start at the lowest priority.
const SPARE_CPUS_MIN: f64 = 0.5;

/// A move under way: the records it appended, or `None` when nothing was sealed.
type Moving = Pin<Box<dyn Future<Output = io::Result<Option<u64>>> + Send>>;

/// Runs until `stop` turns true (and a move under way has ended).
pub async fn run(reader: LedgerReader, max: u64, mut stop: watch::Receiver<bool>) {
    let generation_records = generation_records(max);
    let mut check = tokio::time::interval(Duration::from_millis(CHECK_INTERVAL_MS));
    let mut meter = SpareCpu::default();
    meter.sample();
    let mut spare_cpus = None;
    let mut moving: Option<Moving> = None;
    loop {
        tokio::select! {
            _ = check.tick() => spare_cpus = meter.sample(),
            moved = async { moving.as_mut().expect("guarded by the branch condition").await },
                if moving.is_some() =>
            {
                moving = None;
                match moved {
                    Ok(appended) => tracing::debug!(?appended, "history generation moved to disk"),
                    Err(e) => tracing::error!(error = %e, "history move failed"),
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        reader.seal_history_over(generation_records);
        if moving.is_some() {
            continue;
        }
        let held = reader.history_in_memory() as u64;
        let sealed = reader.sealed_generations();
        let Some(plan) = plan(held, max, sealed, spare_cpus) else {
            continue;
        };
        if plan.seal_young {
            // Held records that are all young (a bound below a generation) still move.
            reader.seal_history_over(1);
        }
        let mover = reader.clone();
        moving = Some(Box::pin(crate::sm::run_at_low_priority(
            "history-move",
            plan.nice,
            move || mover.migrate_oldest_generation(),
        )));
    }
    // A move under way finishes before the node goes on shutting down.
    if let Some(moving) = moving {
        if let Err(e) = moving.await {
            tracing::error!(error = %e, "history move failed");
        }
    }
}

/// The next move: its priority, and whether to seal the young history first.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// Nice value of the moving thread.
    nice: i32,
    /// Seal the young history first (the bound is exceeded; a generation may not be sealed).
    seal_young: bool,
}

/// Whether to move a generation now, with `held` records in memory, bound `max`, `sealed`
/// generations sealed, and `spare_cpus` left over by the host during the last check: when
/// the bound is exceeded, and also, at the lowest priority, when a whole generation is sealed
/// and the host has CPU to spare — so a quiet host keeps about a generation in memory, and
/// the next snapshot build (which appends what is left, beside apply) has little to append.
fn plan(held: u64, max: u64, sealed: usize, spare_cpus: Option<f64>) -> Option<Plan> {
    if held > max {
        return Some(Plan {
            nice: move_nice(held, max, spare_cpus),
            seal_young: true,
        });
    }
    let spare = spare_cpus.is_some_and(|spare| spare >= SPARE_CPUS_MIN);
    (sealed > 0 && spare).then_some(Plan {
        nice: MOVE_NICE_SPARE,
        seal_young: false,
    })
}

/// Records the young history holds before it is sealed as a generation of its own: a quarter
/// of the bound, so a move is small next to it and lookups visit a handful of generations.
fn generation_records(max: u64) -> usize {
    usize::try_from(max / 4).unwrap_or(usize::MAX).max(1)
}

/// The nice value of a move starting with `held` records in memory, bound `max`, and
/// `spare_cpus` left over by the host during the last check (`None`: unknown, taken as busy:
/// a move at normal priority only costs some throughput, a starved one breaks the bound).
fn move_nice(held: u64, max: u64, spare_cpus: Option<f64>) -> i32 {
    let far_over = held > max.saturating_mul(2);
    let busy = spare_cpus.is_none_or(|spare| spare < SPARE_CPUS_MIN);
    if far_over || busy {
        MOVE_NICE_BUSY
    } else {
        MOVE_NICE_SPARE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_yields_only_when_the_host_has_cpu_to_spare_and_the_bound_roughly_holds() {
        assert_eq!(move_nice(150, 100, Some(1.5)), MOVE_NICE_SPARE);
        assert_eq!(move_nice(150, 100, None), MOVE_NICE_BUSY);
        assert_eq!(move_nice(200, 100, Some(SPARE_CPUS_MIN)), MOVE_NICE_SPARE);
        // A saturated host would starve a nice-19 move for as long as it stays saturated.
        assert_eq!(move_nice(150, 100, Some(0.1)), MOVE_NICE_BUSY);
        assert_eq!(move_nice(201, 100, Some(1.5)), MOVE_NICE_BUSY);
        assert_eq!(move_nice(u64::MAX, u64::MAX, Some(0.0)), MOVE_NICE_BUSY);
    }

    #[test]
    fn a_quiet_host_moves_sealed_generations_before_the_bound_is_reached() {
        let spare = |nice| {
            Some(Plan {
                nice,
                seal_young: false,
            })
        };
        assert_eq!(plan(50, 100, 1, Some(1.0)), spare(MOVE_NICE_SPARE));
        // Nothing sealed, a busy host, or an unknown one: wait for the bound.
        assert_eq!(plan(50, 100, 0, Some(1.0)), None);
        assert_eq!(plan(50, 100, 1, Some(0.2)), None);
        assert_eq!(plan(50, 100, 1, None), None);
        // Over the bound: always, sealing the young history first.
        let over = plan(101, 100, 0, Some(0.2)).unwrap();
        assert_eq!((over.nice, over.seal_young), (MOVE_NICE_BUSY, true));
        let over = plan(101, 100, 0, Some(1.0)).unwrap();
        assert_eq!((over.nice, over.seal_young), (MOVE_NICE_SPARE, true));
    }

    #[test]
    fn generations_are_a_quarter_of_the_bound_and_never_empty() {
        assert_eq!(generation_records(200_000), 50_000);
        assert_eq!(generation_records(3), 1);
        assert_eq!(generation_records(0), 1);
    }
}
