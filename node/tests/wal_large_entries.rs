//! Entries larger than a segment: with small segments (64 KiB) an ordinary batch entry of a few
//! MiB must still be accepted (a refused append is a fatal storage error for openraft), written
//! to a segment sized to fit it, read back, and recovered after a restart or a power cut next to
//! segments of the normal size. Only a record above the format's hard limit is refused.

use ledger::{AccountId, Command, CommandBody};
use node::log_store::LogStore;
use node::raft_types::{Entry, EntryPayload, IOFlushed, LedgerRequest, LogId, TypeConfig};
use node::wal::{PowerCut, RealFs, SimFs, WalFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use std::io;
use std::path::Path;
use std::sync::Arc;

const MIB: usize = 1024 * 1024;

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

/// Entry `index` with a memo of `memo_bytes` (a function of both, so recovery checks exactly).
fn entry(index: u64, memo_bytes: usize) -> Entry {
    let command = Command {
        id: format!("big-{index}"),
        timestamp_us: index,
        body: CommandBody::Transfer {
            from: AccountId::parse("frank").unwrap(),
            to: AccountId::parse("grace").unwrap(),
            amount: 1 + index as i64,
            pending: false,
            timeout_s: None,
            memo: Some(
                ((b'a' + (index % 26) as u8) as char)
                    .to_string()
                    .repeat(memo_bytes),
            ),
        },
    };
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(LedgerRequest {
            commands: vec![command],
        }),
    }
}

/// The workload: small entries around large ones (1 MiB, 3 MiB, and two in a row).
fn workload() -> Vec<Entry> {
    let sizes = [100, 200, MIB, 150, 3 * MIB, MIB, 120, 64 * 1024, 90];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| entry(i as u64, n))
        .collect()
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES_MIN,
        entry_cache_max: 2,
        ..WalOptions::default()
    }
}

fn open(fs: Arc<dyn WalFs>, dir: &Path) -> io::Result<LogStore> {
    LogStore::open_with_options(fs, dir, options())
}

async fn append_durable(store: &mut LogStore, batch: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(batch, IOFlushed::signal(tx)).await?;
    rx.await.unwrap()
}

async fn all_entries(store: &mut LogStore) -> Vec<Entry> {
    store
        .get_log_reader()
        .await
        .try_get_log_entries(0..)
        .await
        .unwrap()
}

#[tokio::test]
async fn entries_larger_than_a_segment_are_written_read_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let expected = workload();
    {
        let mut store = open(Arc::new(RealFs), dir.path()).unwrap();
        append_durable(&mut store, expected[..4].to_vec())
            .await
            .unwrap();
        for e in &expected[4..] {
            append_durable(&mut store, vec![e.clone()]).await.unwrap();
        }
        assert_eq!(all_entries(&mut store).await, expected);
    }
    let mut sizes: Vec<u64> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes[0], SEGMENT_BYTES_MIN,
        "normal segments keep their size"
    );
    assert!(
        *sizes.last().unwrap() > 3 * MIB as u64,
        "a large entry gets a segment sized to fit it: {sizes:?}"
    );
    let mut store = open(Arc::new(RealFs), dir.path()).unwrap();
    // Cache of 2: the large entries come back from disk.
    assert_eq!(all_entries(&mut store).await, expected);
    let next = entry(expected.len() as u64, 2 * MIB);
    append_durable(&mut store, vec![next.clone()])
        .await
        .unwrap();
    drop(store);
    let mut store = open(Arc::new(RealFs), dir.path()).unwrap();
    let mut all = expected;
    all.push(next);
    assert_eq!(all_entries(&mut store).await, all);
}

#[tokio::test]
async fn large_entries_survive_power_cuts() {
    let modes = [
        PowerCut::DropUnsynced,
        PowerCut::TornPrefix { seed: 1 },
        PowerCut::TornPrefix { seed: 2 },
        PowerCut::TornPages { seed: 3 },
        PowerCut::TornPages { seed: 4 },
    ];
    for mode in modes {
        let sim = SimFs::new();
        let dir = Path::new("/wal");
        let expected = workload();
        let mut store = open(Arc::new(sim.clone()), dir).unwrap();
        for e in &expected {
            append_durable(&mut store, vec![e.clone()]).await.unwrap();
        }
        // One more large entry whose durability is not awaited: the cut may keep any part of it.
        let extra = entry(expected.len() as u64, 2 * MIB);
        store
            .append(vec![extra.clone()], IOFlushed::noop())
            .await
            .unwrap();
        sim.power_cut_with(mode);
        drop(store);
        let mut store = open(Arc::new(sim.clone()), dir)
            .unwrap_or_else(|e| panic!("{mode:?}: recovery failed: {e}"));
        let recovered = all_entries(&mut store).await;
        let mut submitted = expected.clone();
        submitted.push(extra);
        assert!(
            recovered.len() >= expected.len() && submitted.starts_with(&recovered),
            "{mode:?}: recovered {} entries, not the acknowledged prefix",
            recovered.len()
        );
        // The repaired log takes another large entry and survives a second cut.
        let next = entry(recovered.len() as u64, MIB);
        append_durable(&mut store, vec![next.clone()])
            .await
            .unwrap();
        drop(store);
        sim.power_cut();
        let mut store = open(Arc::new(sim.clone()), dir).unwrap();
        let mut again = recovered;
        again.push(next);
        assert_eq!(all_entries(&mut store).await, again, "{mode:?}");
    }
}

#[tokio::test]
async fn only_an_entry_above_the_record_limit_is_refused() {
    let sim = SimFs::new();
    let dir = Path::new("/wal");
    let mut store = open(Arc::new(sim.clone()), dir).unwrap();
    // Just under the 8 MiB payload limit.
    let near_limit = entry(0, 8 * MIB - 4096);
    append_durable(&mut store, vec![near_limit.clone()])
        .await
        .unwrap();
    let err = store
        .append(vec![entry(1, 8 * MIB)], IOFlushed::noop())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    drop(store);
    let mut store = open(Arc::new(sim), dir).unwrap();
    assert_eq!(all_entries(&mut store).await, vec![near_limit]);
}
