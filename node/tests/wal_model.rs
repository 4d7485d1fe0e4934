//! Model-based test of the WAL: random sequences of appends (small, blank and larger-than-a-
//! segment entries), truncations, purges (also past the last entry), votes, committed log ids,
//! clean reopens and power cuts (with unacknowledged appends in flight) run against a `SimFs`
//! with 64 KiB segments, so segments rotate and get deleted all the time. After every operation
//! the log bounds must match a simple in-memory model; after every reopen the whole state must:
//! bounds, every live entry (read back from disk), vote and committed.
//!
//! Cases: 512 short and 192 long histories (about 25 s in a debug build); `PROPTEST_CASES`
//! sets both (CI runs more).

mod wal_model_support;

use node::log_store::LogStore;
use node::raft_types::{Entry, IOFlushed, TypeConfig, Vote};
use node::wal::{PowerCut, SimFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;
use wal_model_support::Model;

/// Short histories run when `PROPTEST_CASES` is not set.
const SHORT_CASES_DEFAULT: u32 = 512;
/// Long histories run when `PROPTEST_CASES` is not set.
const LONG_CASES_DEFAULT: u32 = 192;

#[derive(Debug, Clone)]
enum Op {
    /// Append entries of these sizes (bytes of memo; 0 is a blank entry), awaiting durability.
    Append(Vec<usize>),
    /// Truncate after a point this far (of `u16::MAX`) through the live log.
    Truncate(u16),
    /// Purge up to a point this far from the purge point to a little past the last entry.
    Purge(u16),
    /// Save this vote (term, node).
    Vote(u64, u64),
    /// Save a committed log id this far through the live log (not awaited).
    Committed(u16),
    /// Drop the WAL and open it again.
    Reopen,
    /// Submit appends of these sizes without awaiting them, cut the power, open again.
    PowerCut(Cut, Vec<usize>),
}

#[derive(Debug, Clone, Copy)]
enum Cut {
    Drop,
    TornPrefix(u64),
    TornPages(u64),
}

impl Cut {
    fn mode(self) -> PowerCut {
        match self {
            Cut::Drop => PowerCut::DropUnsynced,
            Cut::TornPrefix(seed) => PowerCut::TornPrefix { seed },
            Cut::TornPages(seed) => PowerCut::TornPages { seed },
        }
    }
}

/// Entry sizes: mostly 0.5-3 KiB (20-100 per 64 KiB segment), some blank, now and then one
/// larger than a segment.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        12 => 500usize..3000,
        2 => Just(0usize),
        1 => 70_000usize..200_000,
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![
        Just(Cut::Drop),
        any::<u64>().prop_map(Cut::TornPrefix),
        any::<u64>().prop_map(Cut::TornPages),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => prop::collection::vec(size(), 1..8).prop_map(Op::Append),
        6 => any::<u16>().prop_map(Op::Truncate),
        10 => any::<u16>().prop_map(Op::Purge),
        5 => (1u64..50, 1u64..4).prop_map(|(t, n)| Op::Vote(t, n)),
        6 => any::<u16>().prop_map(Op::Committed),
        6 => Just(Op::Reopen),
        6 => (cut(), prop::collection::vec(size(), 0..4)).prop_map(|(c, s)| Op::PowerCut(c, s)),
    ]
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES_MIN,
        entry_cache_max: 4,
        ..WalOptions::default()
    }
}

fn open(sim: &SimFs) -> Result<LogStore, TestCaseError> {
    LogStore::open_with_options(Arc::new(sim.clone()), Path::new("/data/wal"), options())
        .map_err(|e| TestCaseError::fail(format!("open failed: {e}")))
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

async fn append_durable(store: &mut LogStore, batch: Vec<Entry>) -> Result<(), TestCaseError> {
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append(batch, IOFlushed::signal(tx))
        .await
        .map_err(fail)?;
    rx.await.map_err(fail)?.map_err(fail)
}

/// Everything the WAL holds, read back.
async fn read_all(store: &mut LogStore) -> Result<Vec<Entry>, TestCaseError> {
    let mut reader = store.get_log_reader().await;
    reader.try_get_log_entries(0..).await.map_err(fail)
}

async fn check_bounds(store: &mut LogStore, model: &Model) -> Result<(), TestCaseError> {
    let state = store.get_log_state().await.map_err(fail)?;
    prop_assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        model.bounds(),
        "log bounds"
    );
    Ok(())
}

/// Full comparison after a clean reopen.
async fn check_all(store: &mut LogStore, model: &Model) -> Result<(), TestCaseError> {
    check_bounds(store, model).await?;
    prop_assert!(
        read_all(store).await? == model.live(),
        "live entries differ"
    );
    let vote = store
        .get_log_reader()
        .await
        .read_vote()
        .await
        .map_err(fail)?;
    prop_assert_eq!(vote, model.vote, "vote");
    let committed = store.read_committed().await.map_err(fail)?;
    prop_assert_eq!(committed, model.latest_committed(), "committed");
    Ok(())
}

/// After a power cut: acknowledged state exactly, plus some prefix of the unacknowledged
/// entries; a committed value among those saved since the last sync. Adopts what survived.
async fn check_after_cut(
    store: &mut LogStore,
    model: &mut Model,
    unacked: Vec<Entry>,
) -> Result<(), TestCaseError> {
    let recovered = read_all(store).await?;
    let acked = model.live();
    prop_assert!(
        recovered.len() >= acked.len() && recovered[..acked.len()] == acked[..],
        "acknowledged entries lost or changed by the power cut ({} recovered, {} acknowledged)",
        recovered.len(),
        acked.len()
    );
    let extra = &recovered[acked.len()..];
    prop_assert!(
        unacked.starts_with(extra),
        "recovered entries that were never submitted"
    );
    let committed = store.read_committed().await.map_err(fail)?;
    prop_assert!(
        model.committed.contains(&committed),
        "committed {:?} was not saved since the last sync ({:?})",
        committed,
        model.committed
    );
    model.append(extra.to_vec());
    model.committed_recovered(committed);
    check_bounds(store, model).await?;
    let vote = store
        .get_log_reader()
        .await
        .read_vote()
        .await
        .map_err(fail)?;
    prop_assert_eq!(vote, model.vote, "vote after the power cut");
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sim = SimFs::new();
    let mut model = Model::new();
    let mut store = open(&sim)?;
    for op in ops {
        match op {
            Op::Append(sizes) => {
                let batch = model.new_entries(&sizes);
                append_durable(&mut store, batch.clone()).await?;
                model.append(batch);
            }
            Op::Truncate(frac) => {
                let last = model.truncation_point(frac);
                store.truncate_after(last).await.map_err(fail)?;
                model.truncate_after(last);
            }
            Op::Purge(frac) => {
                let upto = model.purge_point(frac);
                store.purge(upto).await.map_err(fail)?;
                model.purge(upto);
            }
            Op::Vote(term, node) => {
                let vote = Vote::new(term, node);
                store.save_vote(&vote).await.map_err(fail)?;
                model.save_vote(vote);
            }
            Op::Committed(frac) => {
                let committed = model.committed_point(frac);
                store.save_committed(committed).await.map_err(fail)?;
                model.save_committed(committed);
            }
            Op::Reopen => {
                drop(store);
                store = open(&sim)?;
                check_all(&mut store, &model).await?;
            }
            Op::PowerCut(cut, sizes) => {
                let unacked = model.new_entries(&sizes);
                if !unacked.is_empty() {
                    let queued = store.append(unacked.clone(), IOFlushed::noop()).await;
                    queued.map_err(fail)?;
                }
                sim.power_cut_with(cut.mode());
                // Joins the flusher, whose writes all fail from the cut on.
                drop(store);
                store = open(&sim)?;
                check_after_cut(&mut store, &mut model, unacked).await?;
            }
        }
        check_bounds(&mut store, &model).await?;
    }
    drop(store);
    let mut store = open(&sim)?;
    check_all(&mut store, &model).await
}

fn block_on(ops: Vec<Op>) -> Result<(), TestCaseError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(fail)?
        .block_on(run(ops))
}

fn config(cases_default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases_default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(SHORT_CASES_DEFAULT))]

    /// Short histories: every kind of operation, reopened often.
    #[test]
    fn short_histories_match_the_model(ops in prop::collection::vec(op(), 1..40)) {
        block_on(ops)?;
    }
}

proptest! {
    #![proptest_config(config(LONG_CASES_DEFAULT))]

    /// Long histories: many segments written, purged and deleted across reopens.
    #[test]
    fn long_histories_match_the_model(ops in prop::collection::vec(op(), 60..140)) {
        block_on(ops)?;
    }
}
