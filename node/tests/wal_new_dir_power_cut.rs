//! A WAL created in new directories survives a power cut: every directory created on the way is
//! made durable in its parent, so the vote and entries acknowledged in it are still there after
//! the cut. The negative control shows SimFs does lose a directory whose parent was not synced,
//! with everything in it.

use ledger::{AccountId, Command, CommandBody};
use node::log_store::LogStore;
use node::raft_types::{Entry, EntryPayload, IOFlushed, LedgerRequest, TypeConfig, Vote};
use node::wal::{SimFs, WalFs};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use std::path::Path;
use std::sync::Arc;

fn entry(index: u64) -> Entry {
    let command = Command {
        id: format!("d-{index}"),
        timestamp_us: index,
        body: CommandBody::Deposit {
            account: AccountId::parse("heidi").unwrap(),
            amount: 1 + index as i64,
        },
    };
    Entry {
        log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
        payload: EntryPayload::Normal(LedgerRequest {
            commands: vec![command],
        }),
    }
}

#[tokio::test]
async fn a_vote_saved_in_a_new_wal_directory_survives_a_power_cut() {
    let sim = SimFs::new();
    let dir = Path::new("/data/node-1/wal");
    let vote = Vote::new_committed(3, 1);
    let expected: Vec<Entry> = (0..5).map(entry).collect();
    {
        let mut store = LogStore::open_with_fs(Arc::new(sim.clone()), dir).unwrap();
        store.save_vote(&vote).await.unwrap();
        let (tx, rx) = TypeConfig::oneshot();
        store
            .append(expected.clone(), IOFlushed::signal(tx))
            .await
            .unwrap();
        rx.await.unwrap().unwrap();
    }
    sim.power_cut();
    let mut store = LogStore::open_with_fs(Arc::new(sim.clone()), dir).unwrap();
    let mut reader = store.get_log_reader().await;
    assert_eq!(
        reader.read_vote().await.unwrap(),
        Some(vote),
        "the acknowledged vote was lost with its directory"
    );
    assert_eq!(reader.try_get_log_entries(0..).await.unwrap(), expected);
}

#[test]
fn a_directory_whose_parent_was_not_synced_is_lost_with_its_files() {
    let sim = SimFs::new();
    let (kept, lost, lost_sub) = (
        Path::new("/kept"),
        Path::new("/lost"),
        Path::new("/lost/sub"),
    );
    sim.create_dir(kept).unwrap();
    sim.sync_dir(Path::new("/")).unwrap();
    // /lost is created after the last sync of /; /lost/sub inside it.
    sim.create_dir(lost).unwrap();
    sim.create_dir(lost_sub).unwrap();
    for dir in [kept, lost, lost_sub] {
        // The file itself is written, synced and dir-synced: only its directory is at risk.
        let file = sim.create(&dir.join("f")).unwrap();
        file.write_at(0, b"acknowledged").unwrap();
        file.sync_data().unwrap();
        sim.sync_dir(dir).unwrap();
    }
    sim.power_cut();
    assert_eq!(
        sim.contents(&kept.join("f")).as_deref(),
        Some(&b"acknowledged"[..])
    );
    assert_eq!(sim.list(kept).unwrap(), vec!["f".to_owned()]);
    for dir in [lost, lost_sub] {
        assert!(sim.contents(&dir.join("f")).is_none(), "{}", dir.display());
        assert!(sim.list(dir).is_err(), "{} itself is gone", dir.display());
    }
}
