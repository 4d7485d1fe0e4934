//! Tests of `ColdStore` through its API: records survive a reopen and are stored once, torn
//! tails, lookups across many appends and merges, and a model check against a `HashMap`.

use super::*;
use ledger::{CommandResult, Outcome};
use proptest::prelude::*;
use std::collections::HashMap;
use std::io::Write;

pub(super) fn transfer(id: &str, index: u64) -> Transfer {
    Transfer {
        id: id.into(),
        debit: ledger::AccountId::parse("a").unwrap(),
        credit: ledger::AccountId::parse("b").unwrap(),
        amount: 5,
        status: TransferStatus::Posted,
        memo: None,
        created_at_us: index,
        created_index: index,
        expires_at_us: None,
        updated_index: index,
    }
}

pub(super) fn entry(id: &str, index: u64) -> (String, IdempotencyEntry) {
    let result = CommandResult {
        command_id: id.into(),
        index,
        timestamp_us: index,
        outcome: Outcome::Rejected(ledger::Rejection::InsufficientFunds),
        replayed: false,
    };
    let fingerprint = [index as u8; 32];
    (
        id.to_owned(),
        IdempotencyEntry {
            fingerprint,
            result,
        },
    )
}

/// Transfers `t<from>..t<to>`.
pub(super) fn transfers(from: u64, to: u64) -> Vec<Transfer> {
    (from..to).map(|i| transfer(&format!("t{i}"), i)).collect()
}

/// Names of the run files in `dir`.
pub(super) fn run_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("index-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_payload_tells_its_kind_without_decoding() {
    let transfer = super::super::codec::encode(&ColdRecord::Transfer(transfer("t", 1)));
    let (id, e) = entry("t", 1);
    let entry = super::super::codec::encode(&ColdRecord::Idempotency(id, e));
    assert_eq!(Kind::of_payload(&transfer.unwrap()), Some(Kind::Transfer));
    assert_eq!(Kind::of_payload(&entry.unwrap()), Some(Kind::Idempotency));
}

#[test]
fn records_survive_a_reopen_and_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let transfers: Vec<Transfer> = (0..50).map(|i| transfer(&format!("t{i}"), i)).collect();
    let entries: Vec<_> = (0..50).map(|i| entry(&format!("t{i}"), i)).collect();
    assert_eq!(cold.append_transfers(transfers.iter()).unwrap(), 50);
    assert_eq!(cold.append_entries(entries.iter()).unwrap(), 50);
    // The same records again (a replay after a crash copies them twice): not stored again.
    assert_eq!(cold.append_transfers(transfers.iter()).unwrap(), 0);
    assert_eq!(cold.append_entries(entries.iter()).unwrap(), 0);
    cold.sync().unwrap();
    drop(cold);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 100);
    assert_eq!(cold.transfer("t7"), Some(transfers[7].clone()));
    assert_eq!(cold.idempotency("t7"), Some(entries[7].1.clone()));
    assert_eq!(cold.transfer("t50"), None);
    let mut scanned: Vec<Transfer> = cold.transfers().collect();
    scanned.sort_by_key(|t| t.created_index);
    assert_eq!(scanned, transfers);
    assert_eq!(cold.idempotency_entries().count(), 50);
}

/// The digest appends sum from the encoded records is the one of the records themselves, and
/// counts each record once however often it was offered.
#[test]
fn the_digest_of_appends_is_the_digest_of_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let transfers = transfers(0, 40);
    let entries: Vec<_> = (0..30).map(|i| entry(&format!("c{i}"), i)).collect();
    cold.append_transfers(transfers.iter()).unwrap();
    cold.append_entries(entries.iter()).unwrap();
    cold.append_transfers(transfers[..10].iter()).unwrap();
    let mut typed = HistoryDigest::default();
    transfers.iter().for_each(|t| typed.transfer(t));
    entries.iter().for_each(|(id, e)| typed.idempotency(id, e));
    assert_eq!(cold.digest(), typed);
    assert_eq!(cold.digest().counts(), (40, 30));
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let first: Vec<Transfer> = (0..10).map(|i| transfer(&format!("t{i}"), i)).collect();
    cold.append_transfers(first.iter()).unwrap();
    cold.sync().unwrap();
    drop(cold);
    let path = dir.path().join(RECORDS_FILE);
    let good = std::fs::metadata(&path).unwrap().len();
    // A frame cut short by a crash: a header announcing more bytes than follow.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(file);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
    assert_eq!(cold.len(), 10);
    cold.append_transfers([transfer("t10", 10)].iter()).unwrap();
    cold.sync().unwrap();
    drop(cold);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 11);
    assert_eq!(cold.transfer("t10").map(|t| t.updated_index), Some(10));
    assert_eq!(cold.transfer("t3"), Some(first[3].clone()));
}

#[test]
fn lookups_hit_and_miss_across_many_appends_and_merges() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let appends = 40u64;
    let per_append = 500u64;
    for n in 0..appends {
        let batch = transfers(n * per_append, (n + 1) * per_append);
        assert_eq!(cold.append_transfers(batch.iter()).unwrap(), per_append);
        let runs_max = (n + 1).ilog2() as usize + 2;
        assert!(cold.runs().len() <= runs_max, "{} runs", cold.runs().len());
        assert_eq!(run_files(dir.path()).len(), cold.runs().len());
    }
    let check = |cold: &ColdStore| {
        assert_eq!(cold.len() as u64, appends * per_append);
        for i in 0..appends * per_append {
            let found = cold.transfer(&format!("t{i}")).map(|t| t.created_index);
            assert_eq!(found, Some(i));
            assert_eq!(cold.idempotency(&format!("t{i}")), None);
        }
        for i in appends * per_append..appends * per_append + 2000 {
            assert_eq!(cold.transfer(&format!("t{i}")), None);
        }
    };
    check(&cold);
    // Memory: the filters and fences, about 2 bytes a record.
    let ram_bytes: usize = cold.runs().iter().map(|r| r.ram_bytes()).sum();
    assert!(ram_bytes * 100 <= cold.len() * 250, "{ram_bytes} bytes");
    // The runs tile the file: each starts where the one before it ends.
    let runs = cold.runs();
    assert_eq!(runs[0].span.start, 0);
    assert!(runs.windows(2).all(|w| w[0].span.end == w[1].span.start));
    drop(cold);
    let cold = ColdStore::open(dir.path()).unwrap();
    check(&cold);
}

#[test]
#[should_panic(expected = "cold history: cannot read transfer")]
fn a_damaged_entry_block_fails_the_lookup_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let batch = transfers(0, 1000);
    cold.append_transfers(batch.iter()).unwrap();
    drop(cold);
    let [name] = run_files(dir.path()).try_into().unwrap();
    let path = dir.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[run::HEADER_BYTES as usize + 3] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    // Open reads no entry block, so it does not notice; a lookup that needs the block does.
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 1000);
    for t in &batch {
        cold.transfer(&t.id);
    }
}

/// One step of the model check: append a batch, or reopen.
#[derive(Clone, Debug)]
enum Step {
    /// Transfers (true) or idempotency entries (false) with these (id, index) pairs.
    Append(bool, Vec<(u8, u64)>),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), prop::collection::vec((0u8..60, 0u64..1000), 0..40))
            .prop_map(|(t, batch)| Step::Append(t, batch)),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The store answers like a map that keeps the first record appended for each key.
    #[test]
    fn the_store_behaves_like_a_map_of_first_appends(steps in prop::collection::vec(step(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let mut cold = ColdStore::open(dir.path()).unwrap();
        let mut model: HashMap<(bool, u8), u64> = HashMap::new();
        for step in steps {
            match step {
                Step::Append(is_transfer, batch) => {
                    let mut fresh = 0;
                    for (id, index) in &batch {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            model.entry((is_transfer, *id))
                        {
                            slot.insert(*index);
                            fresh += 1;
                        }
                    }
                    let appended = if is_transfer {
                        let ts: Vec<_> = batch.iter().map(|(id, i)| transfer(&id.to_string(), *i)).collect();
                        cold.append_transfers(ts.iter()).unwrap()
                    } else {
                        let es: Vec<_> = batch.iter().map(|(id, i)| entry(&id.to_string(), *i)).collect();
                        cold.append_entries(es.iter()).unwrap()
                    };
                    prop_assert_eq!(appended, fresh);
                }
                Step::Reopen => {
                    drop(cold);
                    cold = ColdStore::open(dir.path()).unwrap();
                }
            }
            prop_assert_eq!(cold.len(), model.len());
            for id in 0u8..60 {
                let t = cold.transfer(&id.to_string()).map(|t| t.created_index);
                prop_assert_eq!(t, model.get(&(true, id)).copied());
                let e = cold.idempotency(&id.to_string()).map(|e| e.result.index);
                prop_assert_eq!(e, model.get(&(false, id)).copied());
            }
        }
        prop_assert_eq!(cold.transfers().count() + cold.idempotency_entries().count(), model.len());
    }
}

/// A kept boundary (the end a snapshot relies on) stays between runs however much is appended
/// after it, so a restart's cut there keeps whole runs; once settled at a later end, merging
/// goes on across the old one.
#[test]
fn merges_never_join_runs_across_a_kept_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    cold.append_transfers(transfers(0, 300).iter()).unwrap();
    let kept = cold.end_bytes();
    cold.keep_boundary(kept);
    for i in 0..8 {
        let from = 300 + i * 300;
        cold.append_transfers(transfers(from, from + 300).iter())
            .unwrap();
    }
    let ends: Vec<u64> = cold.runs().iter().map(|r| r.span.end).collect();
    assert!(ends.contains(&kept), "{ends:?} lost the kept end {kept}");
    assert!(
        ends.len() <= 5,
        "the runs after the boundary merge: {ends:?}"
    );
    // A restart cut there keeps the runs before it whole and finds their records.
    cold.cut_to(kept, ledger::HistoryDigest::default()).unwrap();
    assert_eq!(cold.len(), 300);
    assert!(cold.transfer("t299").is_some());
    assert!(cold.transfer("t300").is_none());
    // Settled at a later end, the old boundary no longer holds merges back.
    cold.append_transfers(transfers(300, 600).iter()).unwrap();
    cold.settle_boundary(cold.end_bytes());
    let boundaries = cold.boundaries.lock().unwrap().clone();
    assert_eq!(boundaries, vec![cold.end_bytes()]);
}
