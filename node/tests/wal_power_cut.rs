//! Simulated power cuts (SimFs): every append or vote acknowledged before the cut is present and
//! identical after restart, whatever the cut leaves of unsynced bytes. And the negative control:
//! with syncs skipped (the bug this guards against) the same check does catch lost entries.

use ledger::{AccountId, Command, CommandBody};
use node::log_store::LogStore;
use node::raft_types::{Entry, EntryPayload, IOFlushed, LedgerRequest, LogId, TypeConfig, Vote};
use node::wal::{PowerCut, SimFs, WalFile, WalFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Appends of the workload stop at this index (if no power cut stopped them first).
const WORKLOAD_INDEX_MAX: u64 = 3000;
/// Concurrent appenders (sharing the next index, as openraft's appends share one log).
const PRODUCERS: usize = 3;
/// Appends each producer keeps in flight before waiting for the oldest acknowledgement.
const PIPELINE_DEPTH: usize = 4;

fn log_id(term: u64, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, 1, index)
}

/// The entry at `index` is a pure function of the index, so recovery can be checked exactly.
fn entry(index: u64) -> Entry {
    let command = Command {
        id: format!("w-{index}"),
        timestamp_us: index,
        body: CommandBody::Transfer {
            from: AccountId::parse("dave").unwrap(),
            to: AccountId::parse("erin").unwrap(),
            amount: 1 + (index % 97) as i64,
            pending: false,
            timeout_s: None,
            // ~100-200 byte entries: the workload crosses several 64 KiB segments.
            memo: Some("m".repeat(100 + (index % 100) as usize)),
        },
    };
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(LedgerRequest {
            commands: vec![command],
        }),
    }
}

fn options() -> WalOptions {
    // Small segments: the workload rotates segments several times, so cuts hit rotations too.
    WalOptions {
        segment_bytes: SEGMENT_BYTES_MIN,
        entry_cache_max: 64,
        ..WalOptions::default()
    }
}

/// A SimFs whose N-th `sync_data` cuts the power instead of syncing: the round written just
/// before it is in the files but not durable, which is exactly what the cut may tear.
#[derive(Debug)]
struct CutAtSync {
    sim: SimFs,
    trigger: Arc<Trigger>,
}

#[derive(Debug)]
struct Trigger {
    sim: SimFs,
    mode: PowerCut,
    syncs_left: AtomicI64,
    fired: AtomicBool,
}

#[derive(Debug)]
struct CutFile {
    inner: Box<dyn WalFile>,
    trigger: Arc<Trigger>,
}

impl WalFile for CutFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.trigger.syncs_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.trigger.sim.power_cut_with(self.trigger.mode);
            self.trigger.fired.store(true, Ordering::SeqCst);
        }
        // After the cut this handle is stale: the sync fails, as on a dead machine.
        self.inner.sync_data()
    }
}

impl WalFs for CutAtSync {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.create_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(CutFile {
            inner: self.sim.create(path)?,
            trigger: self.trigger.clone(),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(CutFile {
            inner: self.sim.open(path)?,
            trigger: self.trigger.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.sync_dir(dir)
    }
}

/// What the workload saw acknowledged.
#[derive(Debug, Default)]
struct Acked {
    indexes: BTreeSet<u64>,
    /// Highest term whose `save_vote` returned Ok.
    vote_term: Option<u64>,
    /// Highest index ever passed to `save_committed` (which does not wait for a sync).
    committed_max: Option<u64>,
}

/// Appends (several producers, pipelined) and saves growing votes until writes fail or the
/// workload ends; records every acknowledgement.
async fn drive(store: LogStore) -> Acked {
    let acked = Arc::new(Mutex::new(Acked::default()));
    let next_index = Arc::new(tokio::sync::Mutex::new(0u64));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (mut store, acked, next_index) = (store.clone(), acked.clone(), next_index.clone());
        tasks.push(tokio::spawn(async move {
            let mut in_flight = VecDeque::new();
            loop {
                let mut next = next_index.lock().await;
                let start = *next;
                if start >= WORKLOAD_INDEX_MAX {
                    break;
                }
                let count = 1 + start % 5;
                let (tx, rx) = TypeConfig::oneshot();
                if store
                    .append((start..start + count).map(entry), IOFlushed::signal(tx))
                    .await
                    .is_err()
                {
                    break;
                }
                *next += count;
                drop(next);
                in_flight.push_back((start..start + count, rx));
                if in_flight.len() >= PIPELINE_DEPTH {
                    let (range, rx) = in_flight.pop_front().unwrap();
                    match rx.await {
                        Ok(Ok(())) => acked.lock().unwrap().indexes.extend(range),
                        _ => break,
                    }
                }
            }
            for (range, rx) in in_flight {
                if let Ok(Ok(())) = rx.await {
                    acked.lock().unwrap().indexes.extend(range);
                }
            }
        }));
    }
    let (mut voter, vote_acked) = (store.clone(), acked.clone());
    tasks.push(tokio::spawn(async move {
        for term in 1..=WORKLOAD_INDEX_MAX {
            if voter
                .save_vote(&Vote::new_committed(term, 1))
                .await
                .is_err()
            {
                break;
            }
            vote_acked.lock().unwrap().vote_term = Some(term);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }));
    // Committed advances behind the acknowledged appends, fire-and-forget, as openraft does.
    let (mut committer, committed_acked) = (store.clone(), acked.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let committer_stop = stop.clone();
    let committer = tokio::spawn(async move {
        while !committer_stop.load(Ordering::SeqCst) {
            let last = committed_acked.lock().unwrap().indexes.last().copied();
            if let Some(index) = last {
                if committer
                    .save_committed(Some(log_id(1, index)))
                    .await
                    .is_err()
                {
                    break;
                }
                committed_acked.lock().unwrap().committed_max = Some(index);
                if index + 1 >= WORKLOAD_INDEX_MAX {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    });
    drop(store);
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    committer.await.unwrap();
    Arc::into_inner(acked).unwrap().into_inner().unwrap()
}

/// Reopens over what survived and returns the recovered entries and vote term.
async fn recover(sim: &SimFs, dir: &Path) -> (LogStore, Vec<Entry>, Option<u64>) {
    let mut store = LogStore::open_with_options(Arc::new(sim.clone()), dir, options())
        .expect("recovery after a power cut");
    let entries = store
        .get_log_reader()
        .await
        .try_get_log_entries(0..)
        .await
        .unwrap();
    let vote = store.get_log_reader().await.read_vote().await.unwrap();
    (store, entries, vote.map(|v| v.leader_id().term))
}

/// The recovered committed index must be one that was saved, and its entry must be present
/// (a committed record is written after the entries it covers).
async fn check_committed(store: &mut LogStore, acked: &Acked, recovered: &[Entry], context: &str) {
    let Some(committed) = store.read_committed().await.unwrap() else {
        return;
    };
    assert!(
        Some(committed.index) <= acked.committed_max.max(acked.indexes.last().copied()),
        "{context}: committed {committed} was never saved"
    );
    assert!(
        (committed.index as usize) < recovered.len(),
        "{context}: committed {committed} is beyond the recovered log ({} entries)",
        recovered.len()
    );
}

/// Indexes acknowledged but missing (or different) after recovery.
fn lost(acked: &Acked, recovered: &[Entry]) -> Vec<u64> {
    let by_index: std::collections::BTreeMap<u64, &Entry> =
        recovered.iter().map(|e| (e.log_id.index, e)).collect();
    acked
        .indexes
        .iter()
        .copied()
        .filter(|i| by_index.get(i).is_none_or(|e| **e != entry(*i)))
        .collect()
}

async fn cut_at_sync_and_check(mode: PowerCut, cut_at_sync: i64) {
    let sim = SimFs::new();
    let dir = Path::new("/wal");
    let trigger = Arc::new(Trigger {
        sim: sim.clone(),
        mode,
        syncs_left: AtomicI64::new(i64::MAX),
        fired: AtomicBool::new(false),
    });
    let fs = CutAtSync {
        sim: sim.clone(),
        trigger: trigger.clone(),
    };
    let store = LogStore::open_with_options(Arc::new(fs), dir, options()).unwrap();
    // Armed once open: count the workload's syncs only.
    trigger.syncs_left.store(cut_at_sync, Ordering::SeqCst);
    let acked = drive(store).await;
    assert!(
        trigger.fired.load(Ordering::SeqCst),
        "{mode:?}: the workload ended before sync {cut_at_sync}"
    );

    let (mut store, recovered, vote_term) = recover(&sim, dir).await;
    let context = format!(
        "{mode:?}, cut at sync {cut_at_sync}, {} entries acknowledged",
        acked.indexes.len()
    );
    assert_eq!(
        lost(&acked, &recovered),
        Vec::<u64>::new(),
        "{context}: acknowledged entries lost"
    );
    // Whatever is there beyond the acknowledged entries is a clean, identical prefix of what
    // was submitted: no garbage, no hole.
    let expected: Vec<Entry> = (0..recovered.len() as u64).map(entry).collect();
    assert!(
        recovered == expected,
        "{context}: recovered log is not a prefix of the submitted one"
    );
    assert!(
        vote_term >= acked.vote_term,
        "{context}: vote regressed from {:?} to {vote_term:?}",
        acked.vote_term
    );
    check_committed(&mut store, &acked, &recovered, &context).await;

    // The repaired log takes new writes, and survives a second crash: a torn tail left in place
    // (not zeroed) would now sit after newer records and be refused, or be read as entries.
    let next = recovered.len() as u64;
    let (tx, rx) = TypeConfig::oneshot();
    store
        .append([entry(next)], IOFlushed::signal(tx))
        .await
        .unwrap();
    rx.await.unwrap().unwrap();
    drop(store);
    sim.power_cut();
    let (_store, again, _) = recover(&sim, dir).await;
    let expected: Vec<Entry> = (0..=next).map(entry).collect();
    assert!(
        again == expected,
        "{context}: second recovery differs ({} entries, expected {})",
        again.len(),
        expected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_cut_that_drops_unsynced_bytes() {
    for cut_at_sync in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144] {
        cut_at_sync_and_check(PowerCut::DropUnsynced, cut_at_sync).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_cut_that_tears_the_tail() {
    for seed in 0..24u64 {
        cut_at_sync_and_check(PowerCut::TornPrefix { seed }, 2 + (seed * 7) as i64 % 120).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_cut_that_persists_pages_out_of_order() {
    for seed in 0..24u64 {
        cut_at_sync_and_check(PowerCut::TornPages { seed }, 2 + (seed * 11) as i64 % 120).await;
    }
}

/// Negative control: the same workload and check against a flusher that acknowledges without
/// syncing. The check must see acknowledged entries disappear, or it could not catch the bug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fdatasync_acknowledged_entries_are_lost() {
    let sim = SimFs::new();
    let dir = Path::new("/wal");
    let unsafe_options = WalOptions {
        unsafe_skip_sync_for_tests: true,
        ..options()
    };
    let store = LogStore::open_with_options(Arc::new(sim.clone()), dir, unsafe_options).unwrap();
    let observer = store.clone();
    let cutter = {
        let sim = sim.clone();
        tokio::spawn(async move {
            // Cut once a good number of appends were acknowledged.
            while observer.stats().records < 500 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sim.power_cut();
        })
    };
    let acked = drive(store).await;
    cutter.await.unwrap();
    let (_store, recovered, _) = recover(&sim, dir).await;
    let lost = lost(&acked, &recovered);
    assert!(!acked.indexes.is_empty());
    assert!(
        !lost.is_empty(),
        "skipping fdatasync lost nothing: the power-cut check cannot detect the bug"
    );
}

#[tokio::test]
async fn media_corruption_of_synced_data_is_refused() {
    let sim = SimFs::new();
    let dir = Path::new("/wal");
    {
        let mut store = LogStore::open_with_options(Arc::new(sim.clone()), dir, options()).unwrap();
        for start in (0..3000).step_by(50) {
            let (tx, rx) = TypeConfig::oneshot();
            store
                .append((start..start + 50).map(entry), IOFlushed::signal(tx))
                .await
                .unwrap();
            rx.await.unwrap().unwrap();
        }
    }
    let first = dir.join(sim.list(dir).unwrap().first().unwrap());
    assert!(sim.corrupt_byte(&first, 200));
    let err = LogStore::open_with_options(Arc::new(sim.clone()), dir, options()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
}
