//! Tests of what a crash or damage leaves on disk: open reads only the runs and the unindexed
//! tail, rebuilds a run a crash kept from being written, drops runs beyond the intact end of
//! the records file, and prefers a merged run to the inputs it left behind.

use super::tests::{run_files, transfers};
use super::*;
use crate::sm::codec::encode;
use crate::sm::frame::{write_frame, FRAME_HEAD_BYTES};
use std::io::Write;

fn records_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join(RECORDS_FILE)).unwrap().len()
}

/// A store holding `t0..t100` in one run and `t100..t110` in a second (too small to be merged).
fn two_runs(dir: &Path) -> (u64, u64) {
    let cold = ColdStore::open(dir).unwrap();
    cold.append_transfers(transfers(0, 100).iter()).unwrap();
    let first_end = records_len(dir);
    cold.append_transfers(transfers(100, 110).iter()).unwrap();
    assert_eq!(cold.runs().len(), 2);
    cold.sync().unwrap();
    (first_end, records_len(dir))
}

#[test]
fn a_reopen_does_not_read_the_indexed_records() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    cold.append_transfers(transfers(0, 50).iter()).unwrap();
    cold.append_transfers(transfers(50, 100).iter()).unwrap();
    cold.sync().unwrap();
    drop(cold);
    // Damage the first block (the first append's one frame; not the last frame of the second
    // run, which open checks).
    let path = dir.path().join(RECORDS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[FRAME_HEAD_BYTES as usize + 8] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 100);
    assert_eq!(cold.transfer("t60").map(|t| t.created_index), Some(60));
    assert_eq!(cold.transfer("t100"), None);
    // The damaged records themselves are an error, not a miss.
    assert!(cold.get(Kind::Transfer, "t0").is_err());
    assert!(cold.get(Kind::Transfer, "t10").is_err());
}

#[test]
fn frames_appended_without_their_run_are_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (first_end, _) = two_runs(dir.path());
    // A crash after the second append's frames, before its run: its run file is missing.
    let second = run_path(dir.path(), first_end);
    std::fs::remove_file(&second).unwrap();
    // And frames appended directly (a crash before the run of that append was written).
    let path = dir.path().join(RECORDS_FILE);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    for t in transfers(110, 120) {
        let mut block = BlockWriter::default();
        block
            .push(&encode(&ColdRecord::Transfer(t)).unwrap())
            .unwrap();
        write_frame(&mut file, &block.finish().unwrap(), FRAME_BYTES_MAX).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 120);
    for i in 0..120 {
        assert_eq!(
            cold.transfer(&format!("t{i}")).map(|t| t.created_index),
            Some(i)
        );
    }
    // The first run was kept; the tail got one run of its own.
    assert_eq!(cold.runs().len(), 2);
    assert_eq!(cold.runs()[1].span.start, first_end);
    assert_eq!(cold.append_transfers(transfers(0, 120).iter()).unwrap(), 0);
}

/// The name of the run starting at `start` (there is one).
fn run_path(dir: &Path, start: u64) -> PathBuf {
    let prefix = format!("index-{start:020}-");
    let [name] = run_files(dir)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    dir.join(name)
}

#[test]
fn a_run_beyond_the_intact_end_of_the_records_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (first_end, end) = two_runs(dir.path());
    // The second append's records were never synced: a crash kept only part of them.
    let file = OpenOptions::new()
        .write(true)
        .open(dir.path().join(RECORDS_FILE))
        .unwrap();
    file.set_len(first_end + (end - first_end) / 2).unwrap();
    drop(file);
    let cold = ColdStore::open(dir.path()).unwrap();
    let kept = cold.len() as u64;
    assert!((100..110).contains(&kept), "{kept} records kept");
    assert_eq!(
        records_len(dir.path()),
        cold.runs().last().unwrap().span.end
    );
    for i in 0..110 {
        let found = cold.transfer(&format!("t{i}")).map(|t| t.created_index);
        assert_eq!(found, (i < kept).then_some(i));
    }
    // Appends continue where the intact records end.
    assert_eq!(
        cold.append_transfers(transfers(0, 110).iter()).unwrap(),
        110 - kept
    );
    drop(cold);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 110);
}

#[test]
fn a_merged_run_beyond_the_intact_end_is_rebuilt_from_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    cold.append_transfers(transfers(0, 100).iter()).unwrap();
    let first_end = records_len(dir.path());
    cold.append_transfers(transfers(100, 200).iter()).unwrap();
    assert_eq!(cold.runs().len(), 1, "equal runs are merged");
    drop(cold);
    let file = OpenOptions::new()
        .write(true)
        .open(dir.path().join(RECORDS_FILE))
        .unwrap();
    file.set_len(first_end + 3).unwrap();
    drop(file);
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(cold.len(), 100);
    assert_eq!(cold.transfer("t99").map(|t| t.created_index), Some(99));
    assert_eq!(cold.transfer("t100"), None);
    assert_eq!(run_files(dir.path()).len(), 1);
}

#[test]
fn a_merged_run_wins_over_the_inputs_a_crash_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = two_runs(dir.path());
    // A merge that wrote its run and crashed before deleting its inputs.
    let cold = ColdStore::open(dir.path()).unwrap();
    let runs = cold.runs();
    chain::merge(dir.path(), &runs[0], &runs[1]).unwrap();
    drop((runs, cold));
    assert_eq!(run_files(dir.path()).len(), 3);
    let cold = ColdStore::open(dir.path()).unwrap();
    let name = format!("index-{:020}-{end:020}.run", 0);
    assert_eq!(run_files(dir.path()), vec![name]);
    assert_eq!(cold.len(), 110);
    for i in 0..110 {
        assert_eq!(
            cold.transfer(&format!("t{i}")).map(|t| t.created_index),
            Some(i)
        );
    }
}

#[test]
fn leftover_temporary_and_stray_runs_are_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (first_end, end) = two_runs(dir.path());
    let tmp = dir
        .path()
        .join(format!("index-{first_end:020}-{end:020}.run.tmp"));
    std::fs::write(&tmp, b"half a run").unwrap();
    // A run with a gap before it (and garbage inside).
    let stray = dir
        .path()
        .join(format!("index-{:020}-{:020}.run", end + 10, end + 20));
    std::fs::write(&stray, b"not a run").unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    assert_eq!(run_files(dir.path()).len(), 2);
    assert_eq!(cold.len(), 110);
}

#[test]
fn an_append_of_many_blocks_is_read_back_whole_and_a_torn_block_cuts_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let many = transfers(0, 20_000);
    let raw: usize = many
        .iter()
        .map(|t| encode(&ColdRecord::Transfer(t.clone())).unwrap().len())
        .sum();
    assert!(
        raw > 4 * block::BLOCK_RAW_BYTES,
        "the append spans several blocks"
    );
    cold.append_transfers(many.iter()).unwrap();
    cold.sync().unwrap();
    assert!(
        records_len(dir.path()) < raw as u64 / 2,
        "blocks are compressed"
    );
    for i in (0..20_000).step_by(97) {
        assert_eq!(
            cold.transfer(&format!("t{i}")),
            Some(many[i as usize].clone())
        );
    }
    let scanned: Vec<Transfer> = cold.transfers().collect();
    assert_eq!(scanned, many);
    let before: Vec<ColdRecord> = cold
        .records_before(cold.end_bytes())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(before.len(), 20_000);
    drop(cold);
    // A crash tore the last block of the append and its run was never written: open keeps the
    // whole blocks before it and indexes them.
    let [run] = run_files(dir.path()).try_into().unwrap();
    std::fs::remove_file(dir.path().join(run)).unwrap();
    let path = dir.path().join(RECORDS_FILE);
    let len = records_len(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let cold = ColdStore::open(dir.path()).unwrap();
    let kept = cold.len();
    assert!(kept > 0 && kept < 20_000, "{kept} records kept");
    let scanned: Vec<Transfer> = cold.transfers().collect();
    assert_eq!(scanned, many[..kept].to_vec());
    assert_eq!(
        cold.transfer(&format!("t{}", kept - 1)),
        Some(many[kept - 1].clone())
    );
    assert_eq!(cold.transfer(&format!("t{kept}")), None);
}

#[test]
fn a_frame_in_another_format_is_refused_not_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (_, end) = two_runs(dir.path());
    // A whole frame (its crc matches) holding a bare record, as an older version wrote them.
    let path = dir.path().join(RECORDS_FILE);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    let payload = encode(&ColdRecord::Transfer(transfers(200, 201).remove(0))).unwrap();
    write_frame(&mut file, &payload, FRAME_BYTES_MAX).unwrap();
    drop(file);
    let err = ColdStore::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("another format"), "{err}");
    assert!(records_len(dir.path()) > end, "nothing was cut off");
}
